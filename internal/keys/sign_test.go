package keys_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/oauth"
)

// types are the typ headers deputy signs with.
var types = []string{oauth.JWTTypeAccessToken, oauth.JWTTypeJWT, oauth.JWTTypeTxnToken, keys.StateType}

// TestSignAsGoJose: every algorithm and typ signs a compact JWS whose protected
// header is byte for byte the one go-jose writes for the same key and typ, that
// go-jose verifies with the published key, and whose ES256 and EdDSA signatures
// are 64 octets (RFC 7518 §3.4, RFC 8037 §3.1).
func TestSignAsGoJose(t *testing.T) {
	payload := []byte(`{"iss":"https://deputy.test","sub":"alice","aud":"https://api.example","exp":1900000000}`)
	for _, alg := range keys.Algorithms {
		t.Run(alg, func(t *testing.T) {
			c := &clock{now: time.Now()}
			ks := open(t, newStore(t), c, keys.Options{Algorithm: alg})
			k := ks.Active()
			for _, typ := range types {
				raw, err := ks.Sign(typ, payload)
				if err != nil {
					t.Fatal(err)
				}
				parts := strings.Split(raw, ".")
				if len(parts) != 3 {
					t.Fatalf("%s: %q is not a compact JWS", typ, raw)
				}
				ref, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Algorithm, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.ID}},
					(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
				if err != nil {
					t.Fatal(err)
				}
				refJWS, err := ref.Sign(payload)
				if err != nil {
					t.Fatal(err)
				}
				refRaw, _ := refJWS.CompactSerialize()
				refParts := strings.Split(refRaw, ".")
				if parts[0] != refParts[0] || parts[1] != refParts[1] {
					t.Errorf("%s: header.payload %s.%s, go-jose writes %s.%s", typ, parts[0], parts[1], refParts[0], refParts[1])
				}

				jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{k.Algorithm})
				if err != nil {
					t.Fatal(err)
				}
				pub := k.Public()
				got, err := jws.Verify(&pub)
				if err != nil {
					t.Fatalf("%s: go-jose does not verify: %v", typ, err)
				}
				if !bytes.Equal(got, payload) {
					t.Errorf("%s: payload %s", typ, got)
				}
				h := jws.Signatures[0].Header
				if h.KeyID != k.ID || h.Algorithm != alg || h.ExtraHeaders[jose.HeaderType] != typ || h.JSONWebKey != nil {
					t.Errorf("%s: header %+v", typ, h)
				}
				sig, err := base64.RawURLEncoding.DecodeString(parts[2])
				if err != nil {
					t.Fatal(err)
				}
				if (alg == "ES256" || alg == "EdDSA") && len(sig) != 64 {
					t.Errorf("%s: signature of %d octets, want 64", typ, len(sig))
				}
			}
			if _, err := ks.Sign("application/unknown", payload); err == nil {
				t.Error("signed with a typ deputy does not use")
			}
		})
	}
}

// TestSignES256Fixed: ES256 signatures are R and S as 32 octets each, also when
// R or S is shorter (1 in 128 signatures has one with a leading zero octet):
// each verifies with crypto/ecdsa.Verify read that way.
func TestSignES256Fixed(t *testing.T) {
	ks := open(t, newStore(t), &clock{now: time.Now()}, keys.Options{Algorithm: "ES256"})
	pub := ks.Active().Private.Public().(*ecdsa.PublicKey)
	var short int
	for i := range 1000 {
		raw, err := ks.Sign(oauth.JWTTypeAccessToken, []byte(`{"n":`+big.NewInt(int64(i)).String()+`}`))
		if err != nil {
			t.Fatal(err)
		}
		dot := strings.LastIndexByte(raw, '.')
		sig, err := base64.RawURLEncoding.DecodeString(raw[dot+1:])
		if err != nil || len(sig) != 64 {
			t.Fatalf("signature %d: %d octets, %v", i, len(sig), err)
		}
		if sig[0] == 0 || sig[32] == 0 {
			short++
		}
		digest := sha256.Sum256([]byte(raw[:dot]))
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(pub, digest[:], r, s) {
			t.Fatalf("signature %d does not verify as R||S", i)
		}
	}
	t.Logf("%d of 1000 signatures had a short R or S", short)
}

// BenchmarkSign is one compact JWS of a token-sized payload per algorithm.
func BenchmarkSign(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 420)
	for _, alg := range keys.Algorithms {
		b.Run(alg, func(b *testing.B) {
			ks := open(b, newStore(b), &clock{now: time.Now()}, keys.Options{Algorithm: alg})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ks.Sign(oauth.JWTTypeAccessToken, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
