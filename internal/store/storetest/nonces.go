package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

func useNonce(t *testing.T, s store.Store, key string, exp time.Time) {
	t.Helper()
	if err := s.UseNonce(t.Context(), key, exp); err != nil {
		t.Fatalf("UseNonce(%s, %v): %v", key, exp, err)
	}
}

func useNonceConflict(t *testing.T, s store.Store, key string, exp time.Time) {
	t.Helper()
	if err := s.UseNonce(t.Context(), key, exp); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("UseNonce(%s) of a live nonce: %v, want ErrConflict", key, err)
	}
}

// Nonce expiry is measured against the wall clock, so these tests use times well
// away from now.
var nonceTests = []test{
	{"ok/first-use", func(t *testing.T, s store.Store) {
		now := time.Now()
		useNonce(t, s, "a", now.Add(time.Hour))
		useNonce(t, s, "b", now.Add(time.Hour)) // keys are independent
	}},
	{"fail/reuse-before-expiry", func(t *testing.T, s store.Store) {
		now := time.Now()
		useNonce(t, s, "a", now.Add(time.Hour))
		useNonceConflict(t, s, "a", now.Add(time.Hour))
		useNonceConflict(t, s, "a", now.Add(2*time.Hour)) // a later expiry changes nothing
	}},
	{"ok/reuse-after-expiry", func(t *testing.T, s store.Store) {
		now := time.Now()
		useNonce(t, s, "a", now.Add(-time.Minute))
		useNonce(t, s, "a", now.Add(time.Hour))         // the expired record is replaced…
		useNonceConflict(t, s, "a", now.Add(time.Hour)) // …by a live one
	}},
	{"ok/purge-forgets-expired", func(t *testing.T, s store.Store) {
		now := time.Now()
		useNonce(t, s, "a", now.Add(time.Hour))
		// Purging as of a time after the expiry deletes the record, so the key is
		// usable again although it is still live by the wall clock.
		if err := s.PurgeNonces(t.Context(), now.Add(2*time.Hour)); err != nil {
			t.Fatalf("PurgeNonces: %v", err)
		}
		useNonce(t, s, "a", now.Add(time.Hour))
	}},
	{"ok/purge-keeps-live", func(t *testing.T, s store.Store) {
		now := time.Now()
		useNonce(t, s, "a", now.Add(time.Hour))
		useNonce(t, s, "b", now.Add(-time.Hour))
		if err := s.PurgeNonces(t.Context(), now); err != nil {
			t.Fatalf("PurgeNonces: %v", err)
		}
		useNonceConflict(t, s, "a", now.Add(time.Hour))
		useNonce(t, s, "b", now.Add(time.Hour))
	}},
	{"ok/purge-empty", func(t *testing.T, s store.Store) {
		if err := s.PurgeNonces(t.Context(), time.Now()); err != nil {
			t.Fatalf("PurgeNonces on an empty store: %v", err)
		}
	}},
	{"ok/concurrent-uses-one-wins", func(t *testing.T, s store.Store) {
		// Many callers at once (a DPoP proof's jti on every request, RFC 9449
		// §11.1), each key sent four times: one use of each key succeeds and the
		// other three are ErrConflict, whatever commits they share.
		exp := time.Now().Add(time.Hour)
		const keys, tries = 16, 4
		var wg sync.WaitGroup
		errs := make([][tries]error, keys)
		for k := range keys {
			for i := range tries {
				wg.Go(func() { errs[k][i] = s.UseNonce(t.Context(), fmt.Sprintf("jti-%d", k), exp) })
			}
		}
		wg.Wait()
		for k, es := range errs {
			won := 0
			for _, err := range es {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, store.ErrConflict):
					t.Errorf("jti-%d: %v", k, err)
				}
			}
			if won != 1 {
				t.Errorf("jti-%d: %d uses succeeded, want 1 (%v)", k, won, es)
			}
			useNonceConflict(t, s, fmt.Sprintf("jti-%d", k), exp)
		}
	}},
	{"fail/cancelled-caller-records-nothing", func(t *testing.T, s store.Store) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := s.UseNonce(ctx, "a", time.Now().Add(time.Hour)); !errors.Is(err, context.Canceled) {
			t.Fatalf("UseNonce with an ended context: %v, want context.Canceled", err)
		}
		useNonce(t, s, "a", time.Now().Add(time.Hour))
	}},
}
