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

var keyTests = []test{
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
