package keys_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
)

// newStore is a migrated SQLite store in a temporary directory.
func newStore(t testing.TB) *sqlstore.DB {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, "sqlite", filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// clock is a time the test moves by hand, shared by every key set of a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

func open(t testing.TB, st *sqlstore.DB, c *clock, opts keys.Options) *keys.Set {
	t.Helper()
	if opts.Algorithm == "" {
		opts.Algorithm = "ES256"
	}
	opts.RetireAfter, opts.Now = time.Hour, c.Now
	ks, err := keys.Open(context.Background(), st, opts)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func published(ks *keys.Set, kid string) bool {
	_, ok := ks.Lookup(kid)
	return ok && strings.Contains(string(ks.JWKS()), `"kid":"`+kid+`"`)
}

// TestSecondRotationKeepsPendingKeyPublished: a node loads the key a first
// `deputy keys rotate` publishes; a second rotation comes before that key signs,
// and the node has not read it when the first key's time comes, so it signs with
// that key. Every node must still verify those tokens: the key stays published
// until retire_after past its successor's activation.
func TestSecondRotationKeepsPendingKeyPublished(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	c := &clock{now: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	node := open(t, st, c, keys.Options{})

	firsts, err := open(t, st, c, keys.Options{}).Rotate(ctx, 10*time.Minute) // a first `deputy keys rotate`
	if err != nil {
		t.Fatal(err)
	}
	first := firsts[0]
	if err := node.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	c.Add(9 * time.Minute)
	seconds, err := open(t, st, c, keys.Options{}).Rotate(ctx, 10*time.Minute) // the second, while first is pending
	if err != nil {
		t.Fatal(err)
	}
	second := seconds[0]

	c.Add(2 * time.Minute) // first's time has come; the node has not reloaded yet
	if a := node.Active(); a == nil || a.ID != first.ID {
		t.Fatalf("node signs with %v, want the first rotation's key %s", a, first.ID)
	}
	other := open(t, st, c, keys.Options{}) // another node, starting now
	if !published(other, first.ID) {
		t.Fatalf("a key nodes sign with left the JWKS: %s", other.JWKS())
	}
	if err := node.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if !published(node, first.ID) || !published(node, second.ID) {
		t.Fatalf("after reload the JWKS lacks a key: %s", node.JWKS())
	}

	// The second key signs from its time; the first retires retire_after later.
	c.Add(9 * time.Minute)
	if a := node.Active(); a == nil || a.ID != second.ID {
		t.Fatalf("after the second key's activation %v signs, want %s", a, second.ID)
	}
	c.Add(time.Hour)
	if err := node.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if published(node, first.ID) {
		t.Fatalf("first key still published retire_after past its successor's activation")
	}
}

// TestNewerRotationSignsFirst: a rotation with a shorter publication than the
// pending one before it: once the newer key signs, the older pending key never
// takes over.
func TestNewerRotationSignsFirst(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	c := &clock{now: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	ks := open(t, st, c, keys.Options{})
	if _, err := ks.Rotate(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Second)
	newer, err := ks.Rotate(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Hour)
	if a := ks.Active(); a == nil || a.ID != newer[0].ID {
		t.Fatalf("%v signs, want the newest rotation's key %s", a, newer[0].ID)
	}
}

// TestRetiredKeyStopsBetweenReloads: a node's view of the keys is as old as its
// last reload; a key whose retirement time passes in between neither signs nor
// verifies from that moment.
func TestRetiredKeyStopsBetweenReloads(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	c := &clock{now: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	ks := open(t, st, c, keys.Options{})
	old := ks.Active()
	if err := st.RetireKey(ctx, old.ID, c.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := ks.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := ks.Lookup(old.ID); !ok || ks.Active() == nil {
		t.Fatal("a key withdrawn in a minute is already gone")
	}
	c.Add(time.Minute)
	if _, ok := ks.Lookup(old.ID); ok {
		t.Error("Lookup returns a key past its retirement")
	}
	if a := ks.Active(); a != nil {
		t.Errorf("key %s signs past its retirement", a.ID)
	}
}
