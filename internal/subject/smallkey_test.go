package subject_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/oauth"
)

// TestTrustedIssuerRefusesSmallRSAKey: a trusted issuer's token signed with an RSA
// key under 2048 bits is refused, as the SDK refuses such keys of deputy's (RFC 7518
// §3.3), whether the key comes from its jwks_uri or its jwks_file.
func TestTrustedIssuerRefusesSmallRSAKey(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ti := newExtIssuer(t)
	ti.publish(jose.JSONWebKey{Key: &small.PublicKey, KeyID: "small", Algorithm: "RS256", Use: "sig"},
		jose.JSONWebKey{Key: &ti.rsa1.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"})
	v := newTrustedVerifier(t, newOwnTokens(t), ti)
	tests := []struct {
		name, token string
	}{
		{"fail/jwks-uri", signJWT(t, small, jose.RS256, "small", entraClaims(now), nil)},
		{"fail/jwks-file", signJWT(t, small, jose.RS256, "small", map[string]any{
			"iss": partnerIssuer, "sub": "partner-user", "aud": "https://deputy.test/partner",
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		}, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), "subject", tt.token, oauth.TokenTypeAccessToken, now)
			if err == nil {
				t.Fatal("a token signed with a 1024-bit RSA key was accepted")
			}
			wantJWTRefused(t, err, "subject_token")
		})
	}
	// The same issuer's 2048-bit key still verifies.
	if _, err := v.Verify(context.Background(), "subject", signJWT(t, ti.rsa1, jose.RS256, "k1", entraClaims(now), nil), oauth.TokenTypeAccessToken, now); err != nil {
		t.Fatalf("2048-bit key: %v", err)
	}
}
