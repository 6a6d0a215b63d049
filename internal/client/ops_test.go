package client

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/oauth"
)

// TestArgon2idWaiterLeavesOnCancel: a request waiting for an argon2id slot (all
// taken by other checks) stops waiting as soon as its context ends, and a request
// whose context has already ended never hashes.
func TestArgon2idWaiterLeavesOnCancel(t *testing.T) {
	r, err := NewRegistry([]config.Client{{
		ID: "argon-client", SecretHash: HashArgon2id("s", []byte("saltsaltsaltsalt")), AuthMethod: oauth.AuthClientSecretBasic,
	}}, issuer, tokenURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	creds := &Credentials{Basic: true, BasicID: "argon-client", BasicSecret: "s"}

	t.Run("fail/canceled-while-waiting", func(t *testing.T) {
		for range cap(r.slow) { // every slot busy
			r.slow <- struct{}{}
		}
		defer func() {
			for range cap(r.slow) {
				<-r.slow
			}
		}()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := r.Authenticate(ctx, creds, time.Now())
			done <- err
		}()
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) || codeOf(err) != oauth.CodeTemporarilyUnavail {
				t.Errorf("Authenticate = %v; want temporarily_unavailable caused by context.Canceled", err)
			}
		case <-time.After(20 * time.Second): // a watchdog, not a measurement
			t.Fatal("a canceled request kept waiting for an argon2id slot")
		}
	})
	t.Run("fail/already-canceled-never-hashes", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		// With a free slot, a select between it and the ended context would
		// pick either; the ended context must win every time.
		for range 32 {
			if _, err := r.Authenticate(ctx, creds, time.Now()); !errors.Is(err, context.Canceled) {
				t.Fatalf("Authenticate with an ended context = %v; want context.Canceled", err)
			}
		}
		if c, _ := r.Lookup("argon-client"); c.learned.Load() != nil {
			t.Error("the secret was hashed for a request whose context had ended")
		}
	})
}

// TestAssertionRefusesSmallRSAKey: a private_key_jwt assertion signed with an RSA
// key under 2048 bits is refused (RFC 7518 §3.3), as deputy refuses such keys of
// trusted issuers and the SDK of deputy's.
func TestAssertionRefusesSmallRSAKey(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRegistry([]config.Client{{
		ID: "rsa-client", AuthMethod: oauth.AuthPrivateKeyJWT,
		JWKSFile: jwksFile(t, jose.JSONWebKey{Key: &small.PublicKey, KeyID: "r1", Algorithm: string(jose.RS256), Use: "sig"}),
	}}, issuer, tokenURL, nonces(t))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	_, err = r.Authenticate(t.Context(), assertionCreds(sign(t, jose.RS256, small, "r1", claimsFor("rsa-client", now))), now)
	if codeOf(err) != oauth.CodeInvalidClient {
		t.Fatalf("assertion signed with a 1024-bit RSA key: %v; want invalid_client", err)
	}
}
