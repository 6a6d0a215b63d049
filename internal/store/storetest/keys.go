package storetest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

func key(id string, created time.Time) store.Key {
	return store.Key{
		ID:        id,
		Algorithm: "ES256",
		Private:   []byte(`{"kty":"EC","kid":"` + id + `","crv":"P-256","d":"…"}`),
		CreatedAt: created,
		ActiveAt:  created.Add(time.Minute),
	}
}

func insertKeys(t *testing.T, s store.Store, keys ...store.Key) {
	t.Helper()
	for _, k := range keys {
		if err := s.InsertKey(t.Context(), k); err != nil {
			t.Fatalf("InsertKey(%s): %v", k.ID, err)
		}
	}
}

func listKeys(t *testing.T, s store.Store) []store.Key {
	t.Helper()
	keys, err := s.ListKeys(t.Context())
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	return keys
}

func sameKey(t *testing.T, got, want store.Key) {
	t.Helper()
	if got.ID != want.ID || got.Algorithm != want.Algorithm || !bytes.Equal(got.Private, want.Private) ||
		!sameTime(got.CreatedAt, want.CreatedAt) || !sameTime(got.ActiveAt, want.ActiveAt) ||
		!sameTime(got.RetiredAt, want.RetiredAt) {
		t.Errorf("key:\n got %+v\nwant %+v", got, want)
	}
}

// rotated is a key.rotated event with that id.
func rotated(id string) *store.AuditEvent {
	e := event(id)
	e.Type = store.EventKeyRotated
	return e
}

var keyTests = []test{
	{"ok/rotate-with-its-events", func(t *testing.T, s store.Store) {
		// A rotation adds the new keys, schedules the retirement of the old ones
		// and records key.rotated, together.
		ctx := t.Context()
		old1, old2 := key("old1", t0), key("old2", t0)
		insertKeys(t, s, old1, old2)
		n1, n2 := key("new1", t0.Add(time.Hour)), key("new2", t0.Add(time.Hour))
		n2.Algorithm = "RS256"
		retireAt := t0.Add(3 * time.Hour)
		r := store.KeyRotation{Add: []store.Key{n1, n2}, Retire: []string{"old1", "old2"}, RetireAt: retireAt}
		if err := s.RotateKeys(ctx, r, []*store.AuditEvent{rotated("e1"), rotated("e2")}, Seal); err != nil {
			t.Fatalf("RotateKeys = %v", err)
		}
		old1.RetiredAt, old2.RetiredAt = retireAt, retireAt
		keys := listKeys(t, s)
		if len(keys) != 4 {
			t.Fatalf("%d keys after the rotation, want 4", len(keys))
		}
		for i, want := range []store.Key{old1, old2, n1, n2} {
			sameKey(t, keys[i], want)
		}
		got := scanAll(t, s, 0)
		if len(got) != 2 || got[0].ID != "e1" || got[1].ID != "e2" || got[0].Type != store.EventKeyRotated {
			t.Fatalf("events after the rotation: %+v", got)
		}
		if !bytes.Equal(got[1].PrevHash, got[0].Hash) {
			t.Error("the rotation's events are not chained")
		}
	}},
	{"fail/rotation-without-its-event", func(t *testing.T, s store.Store) {
		// When the event cannot be stored (its id is taken), no key is added and
		// none retired; nor when a key to add exists or one to retire does not.
		ctx := t.Context()
		appendEvents(t, s, event("taken"))
		old := key("old", t0)
		insertKeys(t, s, old)
		r := store.KeyRotation{Add: []store.Key{key("new", t0.Add(time.Hour))}, Retire: []string{"old"}, RetireAt: t0.Add(2 * time.Hour)}
		if err := s.RotateKeys(ctx, r, []*store.AuditEvent{rotated("e1"), rotated("taken")}, Seal); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("RotateKeys with an event that cannot be stored = %v, want ErrConflict", err)
		}
		dup := store.KeyRotation{Add: []store.Key{key("new", t0.Add(time.Hour)), key("old", t0)}, Retire: []string{"old"}, RetireAt: t0.Add(2 * time.Hour)}
		if err := s.RotateKeys(ctx, dup, []*store.AuditEvent{rotated("e2")}, Seal); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("RotateKeys adding an existing key = %v, want ErrConflict", err)
		}
		absent := store.KeyRotation{Add: []store.Key{key("new", t0.Add(time.Hour))}, Retire: []string{"old", "gone"}, RetireAt: t0.Add(2 * time.Hour)}
		if err := s.RotateKeys(ctx, absent, []*store.AuditEvent{rotated("e3")}, Seal); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RotateKeys retiring an absent key = %v, want ErrNotFound", err)
		}
		keys := listKeys(t, s)
		if len(keys) != 1 {
			t.Fatalf("%d keys after failed rotations, want the one there was", len(keys))
		}
		sameKey(t, keys[0], old)
		if got := scanAll(t, s, 0); len(got) != 1 {
			t.Fatalf("%d events, want only the first", len(got))
		}
	}},
	{"ok/empty", func(t *testing.T, s store.Store) {
		if keys := listKeys(t, s); len(keys) != 0 {
			t.Fatalf("ListKeys on an empty store = %d keys", len(keys))
		}
	}},
	{"ok/round-trip-oldest-first", func(t *testing.T, s store.Store) {
		paris := time.FixedZone("CET", 3600)
		// Neither the order of insertion nor that of the ids is the order of age.
		a := key("z", t0.In(paris)) // stored in UTC, read back in UTC
		b := key("a", t0.Add(time.Hour))
		c := key("m", t0.Add(2*time.Hour))
		c.RetiredAt = t0.Add(3 * time.Hour)
		insertKeys(t, s, c, a, b)
		keys := listKeys(t, s)
		if len(keys) != 3 {
			t.Fatalf("ListKeys = %d keys, want 3", len(keys))
		}
		for i, want := range []store.Key{a, b, c} {
			sameKey(t, keys[i], want)
		}
	}},
	{"fail/duplicate-key", func(t *testing.T, s store.Store) {
		a := key("a", t0)
		insertKeys(t, s, a)
		dup := key("a", t0.Add(time.Hour))
		dup.Algorithm = "EdDSA"
		if err := s.InsertKey(t.Context(), dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("InsertKey of an existing id: %v, want ErrConflict", err)
		}
		keys := listKeys(t, s)
		if len(keys) != 1 {
			t.Fatalf("ListKeys = %d keys, want 1", len(keys))
		}
		sameKey(t, keys[0], a)
	}},
	{"ok/retire", func(t *testing.T, s store.Store) {
		a, b := key("a", t0), key("b", t0.Add(time.Hour))
		insertKeys(t, s, a, b)
		at := t0.Add(5 * time.Hour)
		if err := s.RetireKey(t.Context(), "a", at); err != nil {
			t.Fatalf("RetireKey: %v", err)
		}
		a.RetiredAt = at
		keys := listKeys(t, s)
		if len(keys) != 2 {
			t.Fatalf("ListKeys = %d keys, want 2", len(keys))
		}
		sameKey(t, keys[0], a)
		sameKey(t, keys[1], b)
	}},
	{"ok/replace-private-where-unchanged", func(t *testing.T, s store.Store) {
		a, b := key("a", t0), key("b", t0.Add(time.Hour))
		insertKeys(t, s, a, b)
		sealed := append([]byte("sealed\x00\xff"), a.Private...) // any bytes, kept as given
		if err := s.ReplaceKeyPrivate(t.Context(), "a", a.Private, sealed); err != nil {
			t.Fatalf("ReplaceKeyPrivate: %v", err)
		}
		a.Private = sealed
		keys := listKeys(t, s)
		if len(keys) != 2 {
			t.Fatalf("ListKeys = %d keys, want 2", len(keys))
		}
		sameKey(t, keys[0], a)
		sameKey(t, keys[1], b)
	}},
	{"fail/replace-private-changed-meanwhile", func(t *testing.T, s store.Store) {
		a := key("a", t0)
		insertKeys(t, s, a)
		if err := s.ReplaceKeyPrivate(t.Context(), "a", []byte("not what is stored"), []byte("x")); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("ReplaceKeyPrivate with a stale old value: %v, want ErrConflict", err)
		}
		if err := s.ReplaceKeyPrivate(t.Context(), "nope", a.Private, []byte("x")); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("ReplaceKeyPrivate of an absent key: %v, want ErrConflict", err)
		}
		sameKey(t, listKeys(t, s)[0], a)
	}},
	{"fail/retire-unknown-key", func(t *testing.T, s store.Store) {
		insertKeys(t, s, key("a", t0))
		if err := s.RetireKey(t.Context(), "nope", t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RetireKey of an absent key: %v, want ErrNotFound", err)
		}
	}},
}
