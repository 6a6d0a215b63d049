package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// appendNonces runs AppendNonces and fails the test on an error of the commit.
func appendNonces(t *testing.T, s store.Store, nonces []store.NonceUse, events ...*store.AuditEvent) []error {
	t.Helper()
	results, err := s.AppendNonces(t.Context(), nonces, events, Seal)
	if err != nil {
		t.Fatalf("AppendNonces: %v", err)
	}
	if len(results) != len(nonces) {
		t.Fatalf("AppendNonces: %d results for %d nonces", len(results), len(nonces))
	}
	return results
}

var auditNonceTests = []test{
	{"ok/nonces-and-events-in-one-commit", func(t *testing.T, s store.Store) {
		exp := time.Now().Add(time.Hour)
		useNonce(t, s, "used", exp)
		results := appendNonces(t, s, []store.NonceUse{{Key: "a", ExpiresAt: exp}, {Key: "used", ExpiresAt: exp}, {Key: "b", ExpiresAt: exp}, {Key: "a", ExpiresAt: exp}},
			event("e1"), event("e2"))
		for i, want := range []bool{false, true, false, true} { // conflict?
			if got := errors.Is(results[i], store.ErrConflict); got != want || (!want && results[i] != nil) {
				t.Errorf("nonce %d: %v, want conflict %t", i, results[i], want)
			}
		}
		useNonceConflict(t, s, "a", exp)
		useNonceConflict(t, s, "b", exp)
		got := scanAll(t, s, 0)
		checkChain(t, got)
		if want := []string{"e1", "e2"}; !slices.Equal(ids(got), want) {
			t.Fatalf("chain = %v, want %v", ids(got), want)
		}
	}},
	{"ok/nonces-alone", func(t *testing.T, s store.Store) {
		exp := time.Now().Add(time.Hour)
		results := appendNonces(t, s, []store.NonceUse{{Key: "a", ExpiresAt: exp}, {Key: "b", ExpiresAt: time.Now().Add(-time.Second)}})
		if results[0] != nil || results[1] != nil {
			t.Fatalf("results %v, want none", results)
		}
		useNonceConflict(t, s, "a", exp)
		useNonce(t, s, "b", exp) // expired: replaced
		if got := scanAll(t, s, 0); len(got) != 0 {
			t.Fatalf("%d events stored, want none", len(got))
		}
	}},
	{"ok/live-when-presented", func(t *testing.T, s store.Store) {
		// A record is judged at the time the nonce was presented (At), not at
		// the commit's: presented before the record expired, it is a conflict.
		now := time.Now()
		appendNonces(t, s, []store.NonceUse{{Key: "a", ExpiresAt: now.Add(-time.Second), At: now.Add(-2 * time.Second)}})
		r := appendNonces(t, s, []store.NonceUse{{Key: "a", ExpiresAt: now.Add(time.Hour), At: now.Add(-1500 * time.Millisecond)}})
		if !errors.Is(r[0], store.ErrConflict) {
			t.Fatalf("presented before the record expired: %v, want ErrConflict", r[0])
		}
		r = appendNonces(t, s, []store.NonceUse{{Key: "a", ExpiresAt: now.Add(time.Hour)}}) // At zero: the commit's time
		if r[0] != nil {
			t.Fatalf("presented after the record expired: %v, want it replaced", r[0])
		}
		useNonceConflict(t, s, "a", now.Add(time.Hour))
	}},
	{"ok/outcomes-in-callers-order", func(t *testing.T, s store.Store) {
		// Keys are inserted sorted (no deadlock between nodes), the outcomes come
		// back in the callers' order, and of one key used twice the later fails.
		exp := time.Now().Add(time.Hour)
		r := appendNonces(t, s, []store.NonceUse{{Key: "z", ExpiresAt: exp}, {Key: "b", ExpiresAt: exp},
			{Key: "z", ExpiresAt: exp}, {Key: "a", ExpiresAt: exp}})
		for i, conflict := range []bool{false, false, true, false} {
			if errors.Is(r[i], store.ErrConflict) != conflict {
				t.Errorf("nonce %d: %v, want conflict %t", i, r[i], conflict)
			}
		}
	}},
	{"ok/many-events-one-chain", func(t *testing.T, s store.Store) {
		// More events than one statement inserts (sqlstore: 32), with a nonce.
		var events []*store.AuditEvent
		for i := range 70 {
			events = append(events, event(fmt.Sprintf("e%02d", i)))
		}
		appendNonces(t, s, []store.NonceUse{{Key: "n", ExpiresAt: time.Now().Add(time.Hour)}}, events...)
		got := scanAll(t, s, 0)
		checkChain(t, got)
		if len(got) != len(events) {
			t.Fatalf("%d events stored, want %d", len(got), len(events))
		}
		for i, e := range got {
			if want := fmt.Sprintf("e%02d", i); e.ID != want || e.Seq != int64(i+1) {
				t.Fatalf("event %d: %s seq %d, want %s seq %d", i, e.ID, e.Seq, want, i+1)
			}
		}
	}},
	{"fail/revoked-parent-stores-no-nonce", func(t *testing.T, s store.Store) {
		exp := time.Now().Add(time.Hour)
		appendEvents(t, s, exchanged("e1", "", "T1", exp))
		revoke(t, s, store.Revocation{JTI: "T1", ExpiresAt: exp, Reason: "test"})
		_, err := s.AppendNonces(t.Context(), []store.NonceUse{{Key: "n", ExpiresAt: exp}},
			[]*store.AuditEvent{event("e2"), exchanged("e3", "T1", "T2", exp)}, Seal)
		var pre *store.ParentRevokedError
		if !errors.As(err, &pre) || pre.Index != 1 {
			t.Fatalf("AppendNonces = %v, want a ParentRevokedError for index 1", err)
		}
		useNonce(t, s, "n", exp) // nothing of the failed commit is stored
	}},
}
