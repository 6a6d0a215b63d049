package account

import (
	"context"
	"errors"
	"testing"
)

// TestAuthenticateEndedContextNeverHashes: a sign-in whose request has already
// ended (client gone, deadline passed) returns the context's error without running
// argon2id, even when a hashing slot is free (a select between the two would pick
// either at random).
func TestAuthenticateEndedContextNeverHashes(t *testing.T) {
	d, _ := fixture(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for range 32 {
		if a, err := d.Authenticate(ctx, "alice", "alice-pw", "192.0.2.1:1234", t0); !errors.Is(err, context.Canceled) {
			t.Fatalf("Authenticate with an ended context = %+v, %v; want context.Canceled", a, err)
		}
	}
}
