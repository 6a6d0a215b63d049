package jwk

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func TestFits(t *testing.T) {
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	key := func(k any, alg string) jose.JSONWebKey { return jose.JSONWebKey{Key: k, Algorithm: alg} }
	tests := []struct {
		name string
		key  jose.JSONWebKey
		alg  jose.SignatureAlgorithm
		ok   bool
	}{
		{"ok/rs256", key(&rsa2048.PublicKey, ""), jose.RS256, true},
		{"ok/ps512", key(&rsa2048.PublicKey, "PS512"), jose.PS512, true},
		{"ok/es256", key(&p256.PublicKey, "ES256"), jose.ES256, true},
		{"ok/es384", key(&p384.PublicKey, ""), jose.ES384, true},
		{"ok/eddsa", key(ed, ""), jose.EdDSA, true},
		{"fail/rsa-1024", key(&rsa1024.PublicKey, "RS256"), jose.RS256, false},
		{"fail/rsa-1024-ps", key(&rsa1024.PublicKey, ""), jose.PS256, false},
		{"fail/key-alg-differs", key(&rsa2048.PublicKey, "RS256"), jose.PS256, false},
		{"fail/rsa-with-es256", key(&rsa2048.PublicKey, ""), jose.ES256, false},
		{"fail/rsa-with-hs256", key(&rsa2048.PublicKey, ""), jose.HS256, false},
		{"fail/curve-mismatch", key(&p384.PublicKey, ""), jose.ES256, false},
		{"fail/ec-with-rs256", key(&p256.PublicKey, ""), jose.RS256, false},
		{"fail/ed25519-with-es256", key(ed, ""), jose.ES256, false},
		{"fail/symmetric", key([]byte("secret"), ""), jose.HS256, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Fits(tt.key, tt.alg); (err == nil) != tt.ok {
				t.Errorf("Fits = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
