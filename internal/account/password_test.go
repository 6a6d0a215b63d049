package account

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// clientVector is a hash made by internal/client's HashArgon2id for the secret
// "correct horse": the two packages read the same format.
const clientVector = "$argon2id$v=19$m=65536,t=3,p=2$MDEyMzQ1Njc4OWFiY2RlZg$GQhwAP3gzV19gKYapUwd8d28/BpMT7TKfuaXMvix6HI"

func TestHashPassword(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Errorf("hash %q does not carry the documented parameters", h)
	}
	p, err := parsePHC(h)
	if err != nil {
		t.Fatalf("own hash does not parse: %v", err)
	}
	if len(p.salt) != SaltBytes || len(p.key) != KeyBytes {
		t.Errorf("salt %d bytes, key %d bytes; want %d and %d", len(p.salt), len(p.key), SaltBytes, KeyBytes)
	}
	if h2, _ := HashPassword("correct horse"); h2 == h {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	tests := []struct {
		name     string
		hash     string
		password string
		want     bool
	}{
		{"ok/round-trip", h, "correct horse", true},
		{"ok/client-format", clientVector, "correct horse", true},
		{"fail/wrong-password", h, "correct horse ", false},
		{"fail/empty-password", h, "", false},
		{"fail/client-format-wrong-password", clientVector, "Correct horse", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VerifyPassword(tt.hash, tt.password)
			if err != nil || got != tt.want {
				t.Errorf("VerifyPassword = %v, %v; want %v, nil", got, err, tt.want)
			}
		})
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	salt := base64.RawStdEncoding.EncodeToString([]byte("0123456789abcdef"))
	key := base64.RawStdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	tests := []struct{ name, hash string }{
		{"fail/empty", ""},
		{"fail/bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"fail/argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"fail/version-16", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"fail/no-version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"fail/leading-text", "x$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"fail/extra-field", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$"},
		{"fail/params-order", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key},
		{"fail/params-missing", "$argon2id$v=19$m=64,t=1$" + salt + "$" + key},
		{"fail/params-extra", "$argon2id$v=19$m=64,t=1,p=1,k=2$" + salt + "$" + key},
		{"fail/param-not-number", "$argon2id$v=19$m=lots,t=1,p=1$" + salt + "$" + key},
		{"fail/param-negative", "$argon2id$v=19$m=64,t=-1,p=1$" + salt + "$" + key},
		{"fail/param-signed", "$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key},
		{"fail/param-overflow", "$argon2id$v=19$m=4294967296,t=1,p=1$" + salt + "$" + key},
		{"fail/p-zero", "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key},
		{"fail/p-too-large", "$argon2id$v=19$m=4096,t=1,p=256$" + salt + "$" + key},
		{"fail/t-zero", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key},
		{"fail/t-too-large", "$argon2id$v=19$m=64,t=65,p=1$" + salt + "$" + key},
		{"fail/m-below-8p", "$argon2id$v=19$m=15,t=1,p=2$" + salt + "$" + key},
		{"fail/m-too-large", "$argon2id$v=19$m=1048577,t=1,p=1$" + salt + "$" + key},
		{"fail/salt-padded", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key},
		{"fail/salt-not-base64", "$argon2id$v=19$m=64,t=1,p=1$!!!!!!!!!!!$" + key},
		{"fail/salt-short", "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Ng$" + key},
		{"fail/key-short", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$MDEyMzQ1Njc4OWFiY2Rl"},
		{"fail/key-empty", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$"},
		{"fail/key-urlsafe", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat("_", 43)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := VerifyPassword(tt.hash, "x")
			if ok || !errors.Is(err, ErrMalformedHash) {
				t.Errorf("VerifyPassword = %v, %v; want false, ErrMalformedHash", ok, err)
			}
		})
	}
	// The cheapest hash accepted, for contrast: the bounds above are the edges.
	if _, err := VerifyPassword("$argon2id$v=19$m=16,t=1,p=2$"+salt+"$"+key, "x"); err != nil {
		t.Errorf("minimal valid hash refused: %v", err)
	}
}

func BenchmarkVerifyPassword(b *testing.B) {
	h, err := HashPassword("correct horse")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := VerifyPassword(h, "correct horse"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
