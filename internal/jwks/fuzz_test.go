package jwks

import (
	"context"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzParse checks what Parse promises of any input: either an error and no keys,
// or at least one key, every one a valid public signing key under a kid of its
// own, that Find and Lookup return, and that survives re-serialisation.
func FuzzParse(f *testing.F) {
	ec := newEC(f, elliptic.P256())
	ed := newEd(f)
	ecPub := jwkJSON(f, ec.Public(), "ec", "ES256", "sig")
	edPub := jwkJSON(f, ed.Public(), "ed", "EdDSA", "")
	rsaPub := jwkJSON(f, &rsaTestKey().PublicKey, "rsa", "RS256", "sig")
	for _, seed := range [][]byte{
		jwksJSON(f, ecPub),
		jwksJSON(f, ecPub, edPub, rsaPub),
		jwksJSON(f, jwkJSON(f, ec.Public(), "", "", "")),
		jwksJSON(f, ecPub, jwkJSON(f, ec, "ec-priv", "ES256", "")),
		jwksJSON(f, edPub, jwkJSON(f, ed, "ed-priv", "EdDSA", "")),
		jwksJSON(f, jwkJSON(f, []byte("0123456789abcdef"), "hmac", "HS256", "")),
		jwksJSON(f, ecPub, jwkJSON(f, ec.Public(), "ec-enc", "ECDH-ES", "enc")),
		jwksJSON(f, ecPub, jwkJSON(f, ec.Public(), "ec", "ES256", "")),
		[]byte(`{"keys":[{"kty":"XYZ","kid":"x"},{"kty":"OKP","crv":"X25519","x":"AAAA"}]}`),
		[]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0","KTY":"EC","K":""}]}`),
		[]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ","D":""}]}`),
		[]byte(`{"keys":[]}`),
		[]byte(`{"keys":null}`),
		[]byte(`{}`),
		[]byte(`null`),
		[]byte(`[`),
		[]byte(``),
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		ks, err := Parse(b)
		if err != nil {
			if ks != nil {
				t.Fatalf("Parse returned keys alongside error %v", err)
			}
			return
		}
		if ks == nil {
			t.Fatal("Parse returned neither keys nor an error")
		}
		all := ks.set.Keys()
		kids := map[string]bool{}
		for _, k := range all {
			kids[k.KeyID] = true
		}
		if ks.Len() == 0 || ks.Len() != len(all) || len(kids) != len(all) {
			t.Fatalf("Len() %d, %d keys, %d kids: want equal and at least 1", ks.Len(), len(all), len(kids))
		}
		for i, k := range all {
			if !k.IsPublic() || !k.Valid() {
				t.Fatalf("key %d (kid %q, %T): IsPublic %v Valid %v", i, k.KeyID, k.Key, k.IsPublic(), k.Valid())
			}
			if k.Use != "" && k.Use != "sig" {
				t.Fatalf("key %d (kid %q) kept with use %q", i, k.KeyID, k.Use)
			}
			if k.KeyID != "" || ks.Len() == 1 {
				if got, ok := ks.Find(k.KeyID); !ok || !sameKey(got, k) {
					t.Fatalf("key %d (kid %q) is not the one found by its kid", i, k.KeyID)
				}
				if got, err := ks.Lookup(context.Background(), k.KeyID, time.Time{}); err != nil || !sameKey(got, k) {
					t.Fatalf("Lookup(%q) = %v, %v; want key %d", k.KeyID, got.Key, err, i)
				}
			}
		}
		if _, ok := ks.Find(""); ok != (ks.Len() == 1) {
			t.Fatalf(`Find("") ok = %v with %d keys`, ok, ks.Len())
		}
		const absent = "\x00absent kid"
		if !kids[absent] {
			if _, err := ks.Lookup(context.Background(), absent, time.Time{}); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("Lookup of an absent kid: %v, want ErrUnknownKey", err)
			}
		}

		// The kept keys, written out by go-jose, parse to the same set.
		out, err := json.Marshal(map[string][]jose.JSONWebKey{"keys": all})
		if err != nil {
			t.Fatalf("marshal the kept keys: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse of the kept keys %s: %v", out, err)
		}
		if again.Len() != ks.Len() {
			t.Fatalf("Parse of the kept keys: %d keys, want %d", again.Len(), ks.Len())
		}
		for _, k := range all {
			if k.KeyID == "" && again.Len() != 1 {
				continue
			}
			if got, ok := again.Find(k.KeyID); !ok || !sameKey(got, k) {
				t.Fatalf("kid %q lost or changed on re-serialisation", k.KeyID)
			}
		}
	})
}

// sameKey reports whether two JWKs hold equal public keys.
func sameKey(a, b jose.JSONWebKey) bool {
	pa, ok := a.Key.(equaler)
	return ok && pa.Equal(b.Key)
}
