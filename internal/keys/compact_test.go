package keys

import (
	"bytes"
	"math/big"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// der is the ECDSA-Sig-Value of r and s, with their contents as given.
func der(r, s []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(asn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(r) })
		b.AddASN1(asn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(s) })
	})
	return b.BytesOrPanic()
}

func derBig(r, s *big.Int) []byte {
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(r)
		b.AddASN1BigInt(s)
	})
	return b.BytesOrPanic()
}

func TestFixedSignature(t *testing.T) {
	full := bytes.Repeat([]byte{0x7f}, 32)
	high := append([]byte{0}, bytes.Repeat([]byte{0xff}, 32)...) // 33 octets: the sign octet of a high R
	n := func(hex string) *big.Int { v, _ := new(big.Int).SetString(hex, 16); return v }
	pad := func(v *big.Int) []byte { return v.FillBytes(make([]byte, 32)) }
	cases := []struct {
		name string
		der  []byte
		want []byte // nil: refused
	}{
		{"ok/full", der(full, full), append(append([]byte{}, full...), full...)},
		{"ok/high-bit-with-sign-octet", der(high, full), append(bytes.Repeat([]byte{0xff}, 32), full...)},
		{"ok/short-r", derBig(big.NewInt(1), n("ff00ff")), append(pad(big.NewInt(1)), pad(n("ff00ff"))...)},
		{"ok/short-s", derBig(n("8000000000000000000000000000000000000000000000000000000000000000"), big.NewInt(300)),
			append(pad(n("8000000000000000000000000000000000000000000000000000000000000000")), pad(big.NewInt(300))...)},
		{"fail/negative", der([]byte{0x80}, full), nil},
		{"fail/empty-integer", der(nil, full), nil},
		{"fail/too-long", der(append([]byte{1}, full...), full), nil},
		{"fail/trailing", append(der(full, full), 0), nil},
		{"fail/one-integer", func() []byte {
			var b cryptobyte.Builder
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1BigInt(big.NewInt(1)) })
			return b.BytesOrPanic()
		}(), nil},
		{"fail/not-der", []byte("not a signature"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var sig [signatureSize]byte
			for i := range sig {
				sig[i] = 0xaa // what was there before must not show through
			}
			ok := fixedSignature(tc.der, &sig)
			if ok != (tc.want != nil) {
				t.Fatalf("fixedSignature = %v", ok)
			}
			if ok && !bytes.Equal(sig[:], tc.want) {
				t.Errorf("got %x\nwant %x", sig, tc.want)
			}
		})
	}
}
