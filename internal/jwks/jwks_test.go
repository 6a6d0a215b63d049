package jwks

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// rsaTestKey is generated once per test binary: RSA generation is slow.
var rsaTestKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// equaler is a public key of crypto/ecdsa, crypto/rsa or crypto/ed25519.
type equaler interface{ Equal(crypto.PublicKey) bool }

func newEC(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newEd(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// jwkJSON serialises key (public, private or []byte) as a JWK with go-jose.
func jwkJSON(t testing.TB, key any, kid, alg, use string) json.RawMessage {
	t.Helper()
	b, err := jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: use}.MarshalJSON()
	if err != nil {
		t.Fatalf("marshal JWK %q: %v", kid, err)
	}
	return b
}

// withMembers appends raw members (`"a":1,"b":2`) to a JWK object.
func withMembers(raw json.RawMessage, members string) json.RawMessage {
	s := strings.TrimSpace(string(raw))
	return json.RawMessage(s[:len(s)-1] + "," + members + "}")
}

// jwksJSON is the document {"keys":[...]}.
func jwksJSON(t testing.TB, ks ...json.RawMessage) []byte {
	t.Helper()
	if ks == nil {
		ks = []json.RawMessage{}
	}
	b, err := json.Marshal(map[string][]json.RawMessage{"keys": ks})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goodKey is a valid public signing key with kid "good", put first in the sets of
// the tests that expect a set to be refused whole.
func goodKey(t testing.TB) json.RawMessage {
	return jwkJSON(t, newEC(t, elliptic.P256()).Public(), "good", "ES256", "sig")
}

func mustParse(t testing.TB, b []byte) *Keys {
	t.Helper()
	ks, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(%s): %v", b, err)
	}
	if ks == nil {
		t.Fatal("Parse returned nil keys and no error")
	}
	return ks
}

func TestParseValidPublicKeys(t *testing.T) {
	p256, p384, p521 := newEC(t, elliptic.P256()), newEC(t, elliptic.P384()), newEC(t, elliptic.P521())
	rk, ed := rsaTestKey(), newEd(t)
	type want struct {
		kid, alg, use string
		pub           equaler
	}
	wants := []want{
		{"ec256", "ES256", "sig", &p256.PublicKey},
		{"ec384", "ES384", "", &p384.PublicKey},
		{"ec521", "ES512", "sig", &p521.PublicKey},
		{"rsa", "RS256", "sig", &rk.PublicKey},
		{"ed", "EdDSA", "", ed.Public().(ed25519.PublicKey)},
	}
	var raws []json.RawMessage
	for _, w := range wants {
		raws = append(raws, jwkJSON(t, w.pub, w.kid, w.alg, w.use))
	}
	ks := mustParse(t, jwksJSON(t, raws...))
	if got := ks.Len(); got != len(wants) {
		t.Fatalf("Len() = %d, want %d", got, len(wants))
	}
	for _, w := range wants {
		k, ok := ks.Find(w.kid)
		if !ok {
			t.Errorf("Find(%q): not found", w.kid)
			continue
		}
		if k.KeyID != w.kid || k.Algorithm != w.alg || k.Use != w.use {
			t.Errorf("Find(%q) = kid %q alg %q use %q, want kid %q alg %q use %q", w.kid, k.KeyID, k.Algorithm, k.Use, w.kid, w.alg, w.use)
		}
		if !k.IsPublic() || !k.Valid() {
			t.Errorf("Find(%q): IsPublic %v Valid %v, want both true", w.kid, k.IsPublic(), k.Valid())
		}
		if !w.pub.Equal(k.Key) {
			t.Errorf("Find(%q): key %T is not the published public key", w.kid, k.Key)
		}
	}
}

func TestParseRefusesPrivateOrSymmetricKeysWhole(t *testing.T) {
	ecPriv := newEC(t, elliptic.P256())
	edPriv := newEd(t)
	ecPrivJSON := jwkJSON(t, ecPriv, "ec-priv", "ES256", "")
	var ecPrivMembers map[string]any
	if err := json.Unmarshal(ecPrivJSON, &ecPrivMembers); err != nil {
		t.Fatal(err)
	}
	dValue := ecPrivMembers["d"].(string)
	ecPubJSON := jwkJSON(t, ecPriv.Public(), "ec-pub-plus-d", "ES256", "")

	cases := []struct {
		name string
		key  json.RawMessage
	}{
		{"EC private key", ecPrivJSON},
		{"RSA private key", jwkJSON(t, rsaTestKey(), "rsa-priv", "RS256", "sig")},
		{"Ed25519 private key", jwkJSON(t, edPriv, "ed-priv", "EdDSA", "")},
		{"oct key", jwkJSON(t, []byte("0123456789abcdef0123456789abcdef"), "hmac", "HS256", "sig")},
		{"oct kty without k", json.RawMessage(`{"kty":"oct","kid":"oct-no-k"}`)},
		// Private material makes the set unacceptable even on a key that would
		// otherwise be skipped.
		{"private key marked use enc", jwkJSON(t, edPriv, "ed-priv-enc", "", "enc")},
		{"d on a key of unknown type", json.RawMessage(`{"kty":"XYZ","kid":"x","d":"c2VjcmV0"}`)},
		{"k on a key of unknown type", json.RawMessage(`{"kty":"XYZ","kid":"x","k":"c2VjcmV0"}`)},
		{"public EC key with a d member added", withMembers(ecPubJSON, `"d":"`+dValue+`"`)},
		// Members that the probe reads case-insensitively and go-jose
		// case-sensitively: the probe sees kty "EC" and an empty k, go-jose an
		// oct key. The IsPublic check must still refuse the set.
		{"oct key hidden from the probe by case variants", json.RawMessage(`{"kty":"oct","k":"c2VjcmV0c2VjcmV0","KTY":"EC","K":""}`)},
		{"EC private key with an empty D after d", withMembers(ecPrivJSON, `"D":""`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The valid key first: refusal must not depend on order or stop at
			// the first good key.
			for _, order := range [][]json.RawMessage{{goodKey(t), tc.key}, {tc.key, goodKey(t)}} {
				b := jwksJSON(t, order...)
				ks, err := Parse(b)
				if err == nil {
					t.Fatalf("Parse(%s) = %d keys, want an error", b, ks.Len())
				}
				if ks != nil {
					t.Errorf("Parse returned keys alongside error %v", err)
				}
			}
		})
	}
}

func TestParseSkipsEncryptionAndUnknownKeys(t *testing.T) {
	ec := newEC(t, elliptic.P256())
	cases := []struct {
		name string
		key  json.RawMessage
		kid  string
	}{
		{"EC key with use enc", jwkJSON(t, ec.Public(), "ec-enc", "ECDH-ES", "enc"), "ec-enc"},
		{"RSA key with use enc", jwkJSON(t, &rsaTestKey().PublicKey, "rsa-enc", "RSA-OAEP", "enc"), "rsa-enc"},
		{"key with some other use", jwkJSON(t, ec.Public(), "ec-other", "", "other"), "ec-other"},
		{"unknown kty", json.RawMessage(`{"kty":"XYZ","kid":"xyz","x":"AAAA"}`), "xyz"},
		{"OKP with an unknown curve", json.RawMessage(`{"kty":"OKP","crv":"X25519","kid":"x25519","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}`), "x25519"},
		{"missing kty", json.RawMessage(`{"kid":"nokty","x":"AAAA"}`), "nokty"},
		{"EC point not on the curve", json.RawMessage(`{"kty":"EC","crv":"P-256","kid":"offcurve","x":"AQ","y":"AQ"}`), "offcurve"},
		// encoding/json matches member names in any case, go-jose exactly: the
		// key's use is enc, however a case-variant member reads.
		{"use enc hidden behind USE sig", withMembers(jwkJSON(t, ec.Public(), "enc-key", "ECDH-ES", "enc"), `"USE":"sig"`), "enc-key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ks := mustParse(t, jwksJSON(t, tc.key, goodKey(t)))
			if ks.Len() != 1 {
				t.Errorf("Len() = %d, want 1 (only the good key)", ks.Len())
			}
			if _, ok := ks.Find("good"); !ok {
				t.Error(`Find("good"): not found`)
			}
			if k, ok := ks.Find(tc.kid); ok {
				t.Errorf("Find(%q) = %v, want the key skipped", tc.kid, k)
			}
			// A set of nothing but skipped keys has no usable key.
			if ks, err := Parse(jwksJSON(t, tc.key)); err == nil {
				t.Errorf("Parse of a set of only this key = %d keys, want an error", ks.Len())
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	for _, in := range []string{
		``,
		`not json`,
		`{"keys":`,
		`[]`,
		`"keys"`,
		`{"keys":{}}`,
		`{"keys":"x"}`,
		`{"keys":[1]}`,
		`{"keys":["x"]}`,
		`{"keys":[{"kty":1}]}`,
		`{"keys":[{"kty":"EC","d":1}]}`,
		`{"keys":[{"kty":"EC","use":true}]}`,
		// Well-formed, but without a usable key.
		`null`,
		`{}`,
		`{"keys":null}`,
		`{"keys":[]}`,
		`{"keys":[{}]}`,
	} {
		ks, err := Parse([]byte(in))
		if err == nil {
			t.Errorf("Parse(%q) = %d keys, want an error", in, ks.Len())
		} else if ks != nil {
			t.Errorf("Parse(%q) returned keys alongside error %v", in, err)
		}
	}
}

func TestParseDuplicateKID(t *testing.T) {
	a, b := newEC(t, elliptic.P256()), newEd(t)
	cases := []struct {
		name    string
		keys    []json.RawMessage
		wantErr bool
		wantLen int
	}{
		{"two keys with one kid", []json.RawMessage{
			jwkJSON(t, a.Public(), "k1", "ES256", ""),
			jwkJSON(t, b.Public(), "k1", "EdDSA", ""),
		}, true, 0},
		{"the same key twice", []json.RawMessage{
			jwkJSON(t, a.Public(), "k1", "ES256", ""),
			jwkJSON(t, a.Public(), "k1", "ES256", ""),
		}, true, 0},
		{"two keys without kid", []json.RawMessage{
			jwkJSON(t, a.Public(), "", "ES256", ""),
			jwkJSON(t, b.Public(), "", "EdDSA", ""),
		}, true, 0},
		{"duplicate kid among good keys", []json.RawMessage{
			jwkJSON(t, a.Public(), "k1", "ES256", ""),
			jwkJSON(t, b.Public(), "k2", "EdDSA", ""),
			jwkJSON(t, &rsaTestKey().PublicKey, "k1", "RS256", ""),
		}, true, 0},
		{"kid shared with a skipped encryption key", []json.RawMessage{
			jwkJSON(t, a.Public(), "k1", "ES256", "sig"),
			jwkJSON(t, &rsaTestKey().PublicKey, "k1", "RSA-OAEP", "enc"),
		}, false, 1},
		{"kids differing in case only", []json.RawMessage{
			jwkJSON(t, a.Public(), "k1", "ES256", ""),
			jwkJSON(t, b.Public(), "K1", "EdDSA", ""),
		}, false, 2},
		{"one key with and one without kid", []json.RawMessage{
			jwkJSON(t, a.Public(), "k1", "ES256", ""),
			jwkJSON(t, b.Public(), "", "EdDSA", ""),
		}, false, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := Parse(jwksJSON(t, tc.keys...))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Parse = %d keys, want an error", ks.Len())
				}
				if !strings.Contains(err.Error(), "appears twice") {
					t.Errorf("error %q does not name the duplicate kid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if ks.Len() != tc.wantLen {
				t.Errorf("Len() = %d, want %d", ks.Len(), tc.wantLen)
			}
		})
	}
	// The kept key for a kid shared with a skipped key is the signing one.
	ks := mustParse(t, jwksJSON(t,
		jwkJSON(t, &rsaTestKey().PublicKey, "k1", "RSA-OAEP", "enc"),
		jwkJSON(t, a.Public(), "k1", "ES256", "sig")))
	if k, ok := ks.Find("k1"); !ok || !a.PublicKey.Equal(k.Key) {
		t.Errorf(`Find("k1") = %v, %v; want the EC signing key`, k.Key, ok)
	}
}

func TestFind(t *testing.T) {
	a, b := newEC(t, elliptic.P256()), newEd(t)
	aJSON := jwkJSON(t, a.Public(), "a", "ES256", "")
	cases := []struct {
		name   string
		set    []json.RawMessage
		kid    string
		wantOK bool
		want   any // the public key expected when wantOK
	}{
		{"kid of the only key", []json.RawMessage{aJSON}, "a", true, &a.PublicKey},
		{"empty kid, one key with a kid", []json.RawMessage{aJSON}, "", true, &a.PublicKey},
		{"empty kid, one key without kid", []json.RawMessage{jwkJSON(t, a.Public(), "", "ES256", "")}, "", true, &a.PublicKey},
		{"empty kid, one usable key and a skipped one", []json.RawMessage{aJSON, jwkJSON(t, b.Public(), "b", "", "enc")}, "", true, &a.PublicKey},
		{"empty kid, two keys", []json.RawMessage{aJSON, jwkJSON(t, b.Public(), "b", "EdDSA", "")}, "", false, nil},
		{"empty kid, two keys one without kid", []json.RawMessage{aJSON, jwkJSON(t, b.Public(), "", "EdDSA", "")}, "", false, nil},
		{"kid of the second key", []json.RawMessage{aJSON, jwkJSON(t, b.Public(), "b", "EdDSA", "")}, "b", true, b.Public()},
		{"unknown kid", []json.RawMessage{aJSON}, "nope", false, nil},
		{"kid in another case", []json.RawMessage{aJSON}, "A", false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ks := mustParse(t, jwksJSON(t, tc.set...))
			k, ok := ks.Find(tc.kid)
			if ok != tc.wantOK {
				t.Fatalf("Find(%q) ok = %v, want %v", tc.kid, ok, tc.wantOK)
			}
			if !ok {
				if k.Key != nil {
					t.Errorf("Find(%q) = %v with ok false, want the zero key", tc.kid, k.Key)
				}
				return
			}
			if !tc.want.(equaler).Equal(k.Key) {
				t.Errorf("Find(%q) = %v, want %v", tc.kid, k.Key, tc.want)
			}
		})
	}
}

func TestKeysLookup(t *testing.T) {
	a, b := newEC(t, elliptic.P256()), newEd(t)
	ks := mustParse(t, jwksJSON(t, jwkJSON(t, a.Public(), "a", "ES256", ""), jwkJSON(t, b.Public(), "b", "EdDSA", "")))
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	k, err := ks.Lookup(ctx, "b", now)
	if err != nil {
		t.Fatalf(`Lookup("b"): %v`, err)
	}
	if !b.Public().(ed25519.PublicKey).Equal(k.Key) {
		t.Errorf(`Lookup("b") = %v, want the Ed25519 key`, k.Key)
	}
	// A file's keys do not expire: any time will do.
	if _, err := ks.Lookup(ctx, "a", now.AddDate(100, 0, 0)); err != nil {
		t.Errorf(`Lookup("a") far in the future: %v`, err)
	}
	for _, kid := range []string{"c", "", "A"} {
		k, err := ks.Lookup(ctx, kid, now)
		if !errors.Is(err, ErrUnknownKey) {
			t.Errorf("Lookup(%q) error = %v, want ErrUnknownKey", kid, err)
		}
		if errors.Is(err, ErrUnavailable) {
			t.Errorf("Lookup(%q) error = %v, must not be ErrUnavailable", kid, err)
		}
		if k.Key != nil {
			t.Errorf("Lookup(%q) returned key %v with its error", kid, k.Key)
		}
		if kid != "" && !strings.Contains(err.Error(), kid) {
			t.Errorf("Lookup(%q) error %q does not name the kid", kid, err)
		}
	}
}

func TestReadFile(t *testing.T) {
	a := newEC(t, elliptic.P256())
	dir := t.TempDir()

	good := filepath.Join(dir, "issuer.jwks.json")
	if err := os.WriteFile(good, jwksJSON(t, jwkJSON(t, a.Public(), "a", "ES256", "sig")), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := ReadFile(good)
	if err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	if k, ok := ks.Find("a"); ks.Len() != 1 || !ok || !a.PublicKey.Equal(k.Key) {
		t.Errorf("ReadFile = %d keys, Find(a) %v %v; want the one key written", ks.Len(), k.Key, ok)
	}

	missing := filepath.Join(dir, "missing.json")
	if ks, err := ReadFile(missing); err == nil || ks != nil {
		t.Errorf("ReadFile(missing) = %v, %v; want nil and an error", ks, err)
	}

	if ks, err := ReadFile(dir); err == nil || ks != nil {
		t.Errorf("ReadFile(a directory) = %v, %v; want nil and an error", ks, err)
	}

	private := filepath.Join(dir, "private.json")
	if err := os.WriteFile(private, jwksJSON(t, jwkJSON(t, a, "a", "ES256", "sig")), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err = ReadFile(private)
	if err == nil || ks != nil {
		t.Fatalf("ReadFile(private key set) = %v, %v; want nil and an error", ks, err)
	}
	if !strings.Contains(err.Error(), private) {
		t.Errorf("error %q does not name the file", err)
	}

	garbage := filepath.Join(dir, "garbage.json")
	if err := os.WriteFile(garbage, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ks, err := ReadFile(garbage); err == nil || ks != nil {
		t.Errorf("ReadFile(garbage) = %v, %v; want nil and an error", ks, err)
	}
}
