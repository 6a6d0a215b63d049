package storetest

import (
	"errors"
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
}
