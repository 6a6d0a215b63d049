package token_test

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// idTokenService signs access tokens with ES256 and ID tokens with any of
// RS256, EdDSA and PS256, as deputy does when clients choose those.
func idTokenService(t *testing.T) (*token.Service, *keys.Set) {
	t.Helper()
	ks, err := keys.Open(context.Background(), newStore(t), keys.Options{
		Algorithm: "ES256", MoreAlgorithms: []string{"RS256", "EdDSA", "PS256"}, RetireAfter: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	return token.NewService(issuer, ks, token.NewRevoked(), 16384), ks
}

func idClaims(now time.Time) *token.IDClaims {
	return &token.IDClaims{Subject: "alice", Audience: token.Audience{"portal"}, AZP: "portal",
		IssuedAt: now.Unix(), Expiry: now.Add(5 * time.Minute).Unix(), ID: token.NewID(), Nonce: "n-1"}
}

func jwtHeader(t *testing.T, raw string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestIDTokenAlgorithmPerClient: an ID token is signed with the algorithm the
// client asks for (id_token_signed_response_alg), by the key of that algorithm,
// while access tokens keep the default; deputy verifies each of them (as
// id_token_hint and as a subject token), and so does a relying party that accepts
// that algorithm — coreos/go-oidc, whose default is RS256 alone.
func TestIDTokenAlgorithmPerClient(t *testing.T) {
	svc, ks := idTokenService(t)
	ctx := context.Background()
	now := time.Now()
	at, err := svc.Mint(oauth.JWTTypeAccessToken, sample(now))
	if err != nil {
		t.Fatal(err)
	}
	if alg := jwtHeader(t, at)["alg"]; alg != "ES256" {
		t.Fatalf("access token alg %v, want ES256", alg)
	}
	var pubs []crypto.PublicKey
	for _, alg := range ks.SigningAlgorithms() {
		pubs = append(pubs, ks.ActiveFor(alg).Private.Public())
	}
	keySet := &oidc.StaticKeySet{PublicKeys: pubs}
	for _, alg := range []string{"RS256", "EdDSA", "PS256", "ES256"} {
		t.Run("ok/"+alg, func(t *testing.T) {
			raw, err := svc.MintIDToken(alg, idClaims(now))
			if err != nil {
				t.Fatal(err)
			}
			h := jwtHeader(t, raw)
			k, ok := ks.Lookup(h["kid"].(string))
			if h["alg"] != alg || !ok || string(k.Algorithm) != alg {
				t.Fatalf("header %v, key %v: want alg %s by a key of %s", h, k, alg, alg)
			}
			if _, err := svc.Verify(raw, []string{oauth.JWTTypeJWT}, now); err != nil {
				t.Errorf("Verify as a subject token: %v", err)
			}
			v := oidc.NewVerifier(issuer, keySet, &oidc.Config{ClientID: "portal", SupportedSigningAlgs: []string{alg}})
			if _, err := v.Verify(ctx, raw); err != nil {
				t.Errorf("go-oidc accepting %s: %v", alg, err)
			}
			def := oidc.NewVerifier(issuer, keySet, &oidc.Config{ClientID: "portal"})
			if _, err := def.Verify(ctx, raw); (err == nil) != (alg == "RS256") {
				t.Errorf("go-oidc with its default (RS256): %v", err)
			}
		})
	}
	t.Run("ok/at-hash-follows-the-id-token-algorithm", func(t *testing.T) {
		// OIDC Core §3.1.3.6: the hash of the ID token's alg, whatever signs the
		// access token: SHA-256 for RS256, SHA-512 for EdDSA (Ed25519).
		if n := len(svc.ATHash("RS256", at)); n != 22 {
			t.Errorf("RS256 at_hash has %d characters, want 22 (128 bits)", n)
		}
		if n := len(svc.ATHash("EdDSA", at)); n != 43 {
			t.Errorf("EdDSA at_hash has %d characters, want 43 (256 bits)", n)
		}
	})
	t.Run("fail/algorithm-without-key", func(t *testing.T) {
		only, _, _ := newService(t, "ES256")
		if _, err := only.MintIDToken("RS256", idClaims(now)); err == nil {
			t.Fatal("signed an ID token with an algorithm the node has no key for")
		}
	})
	t.Run("fail/header-alg-is-not-the-keys", func(t *testing.T) {
		// A PS256 signature by the RS256 key: a key signs with its own algorithm only.
		raw, err := svc.MintIDToken("RS256", idClaims(now))
		if err != nil {
			t.Fatal(err)
		}
		k, _ := ks.Lookup(jwtHeader(t, raw)["kid"].(string))
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.PS256, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.ID}},
			(&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
		jws, err := sig.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		forged, _ := jws.CompactSerialize()
		if _, err := svc.Verify(forged, []string{oauth.JWTTypeJWT}, now); !errors.Is(err, token.ErrAlgorithm) {
			t.Errorf("Verify of a PS256 signature by an RS256 key: %v, want ErrAlgorithm", err)
		}
	})
}
