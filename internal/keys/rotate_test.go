package keys_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/store"
)

// TestRotateRecordedAllOrNothing: `deputy keys rotate` stores its new keys, the
// retirement of the old ones and its key.rotated events together. When the
// events cannot be stored, no key is added or retired; when they can, the trail
// names every new key.
func TestRotateRecordedAllOrNothing(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	c := &clock{now: time.Now().UTC()}
	ks := open(t, st, c, keys.Options{MoreAlgorithms: []string{"RS256"}})
	before, err := st.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	taken := &store.AuditEvent{Type: store.EventKeyRotated, Decision: store.DecisionAllow}
	audit.Prepare(taken)
	if err := st.Append(ctx, []*store.AuditEvent{taken}, audit.Seal); err != nil {
		t.Fatal(err)
	}

	events := func(id string) func([]*keys.Key) []*store.AuditEvent {
		return func(made []*keys.Key) []*store.AuditEvent {
			var out []*store.AuditEvent
			for _, k := range made {
				e := &store.AuditEvent{Type: store.EventKeyRotated, Decision: store.DecisionAllow, Detail: `{"kid":"` + k.ID + `"}`}
				audit.Prepare(e)
				out = append(out, e)
			}
			if id != "" {
				out[len(out)-1].ID = id
			}
			return out
		}
	}
	if _, err := ks.RotateRecorded(ctx, time.Minute, events(taken.ID), audit.Seal); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("rotation whose event cannot be stored = %v, want ErrConflict", err)
	}
	after, err := st.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) || slices.ContainsFunc(after, func(k store.Key) bool { return !k.RetiredAt.IsZero() }) {
		t.Fatalf("a rotation without its record changed the keys: %d before, %+v after", len(before), after)
	}

	made, err := ks.RotateRecorded(ctx, time.Minute, events(""), audit.Seal)
	if err != nil {
		t.Fatal(err)
	}
	recorded, err := st.Query(ctx, store.AuditFilter{Type: store.EventKeyRotated})
	if err != nil {
		t.Fatal(err)
	}
	if len(made) != 2 || len(recorded) != 3 {
		t.Fatalf("%d keys made, %d key.rotated events (one before), want 2 and 3", len(made), len(recorded))
	}
	for i, k := range made {
		if recorded[i+1].Detail != `{"kid":"`+k.ID+`"}` {
			t.Errorf("event %d: %s, want the kid %s", i+1, recorded[i+1].Detail, k.ID)
		}
	}
	if keysNow, _ := st.ListKeys(ctx); len(keysNow) != 4 {
		t.Errorf("%d keys after the rotation, want 4", len(keysNow))
	}
}

// TestLookupFreshHonoursTheCallersContext: a kid another node has just created
// is read from the store within the caller's context: a request whose context
// has ended (cancelled, or past its deadline) reads nothing and does not use up
// the once-a-second read, so the next request finds the key.
func TestLookupFreshHonoursTheCallersContext(t *testing.T) {
	st := newStore(t)
	c := &clock{now: time.Now().UTC()}
	here := open(t, st, c, keys.Options{})
	there := open(t, st, c, keys.Options{Algorithm: "EdDSA"}) // a key here has not loaded
	kid := there.Active().ID
	if _, ok := here.Lookup(kid); ok {
		t.Fatal("the test needs a key this node has not loaded")
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	past, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for name, ctx := range map[string]context.Context{"cancelled": cancelled, "past its deadline": past} {
		if _, ok := here.LookupFresh(ctx, kid); ok {
			t.Errorf("LookupFresh with a context %s read the store", name)
		}
	}
	if _, ok := here.LookupFresh(context.Background(), kid); !ok {
		t.Fatal("LookupFresh after callers that left: the key is not found (their calls used up the read)")
	}
}

// TestCanSignEveryAlgorithm: a node is ready to sign only while every algorithm
// it signs with has a key that signs now — not only the default one, which
// signs access tokens: a node whose RS256 key (ID tokens) is withdrawn cannot
// answer clients that ask for RS256 ID tokens.
func TestCanSignEveryAlgorithm(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	c := &clock{now: time.Now().UTC()}
	ks := open(t, st, c, keys.Options{MoreAlgorithms: []string{"RS256"}})
	if err := ks.CanSign(); err != nil {
		t.Fatalf("CanSign with a key of each algorithm = %v", err)
	}
	rs := ks.ActiveFor("RS256")
	if err := st.RetireKey(ctx, rs.ID, c.Now()); err != nil {
		t.Fatal(err)
	}
	if err := ks.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if ks.Active() == nil {
		t.Fatal("the default algorithm's key is gone too")
	}
	err := ks.CanSign()
	if !errors.Is(err, keys.ErrNoActiveKey) || !strings.Contains(err.Error(), "RS256") || strings.Contains(err.Error(), "ES256") {
		t.Fatalf("CanSign without an RS256 key = %v, want ErrNoActiveKey naming RS256 alone", err)
	}
}
