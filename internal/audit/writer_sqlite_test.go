package audit

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
)

// The writer on deputy's own SQLite store: faults the in-memory store cannot show.

func openSQLite(t *testing.T) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(t.Context(), "sqlite", filepath.Join(t.TempDir(), "deputy.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestWriterRevokeNothingWithoutItsEvent: when the revocation event cannot be
// stored (here its id is taken, so its insert fails after the revocations were
// written), nothing is revoked — in the store, and in the node's revoked set — and
// the chain holds no revocation record. A revocation and its event commit
// together or not at all.
func TestWriterRevokeNothingWithoutItsEvent(t *testing.T) {
	db := openSQLite(t)
	set := &revokedSet{jtis: map[string]bool{}}
	w := NewWriter(db, db, WriterOptions{Admit: set.admit, OnRevoked: set.onRevoked})
	defer w.Close()
	ctx := context.Background()
	for _, e := range []*store.AuditEvent{issued("E0", "T0"), exchanged("E1", "T0", "T1")} {
		if err := w.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	_, err := w.Revoke(ctx, store.Revocation{JTI: "T0", ExpiresAt: t0.Add(time.Hour), RevokedAt: t0, Reason: "logout"},
		&store.AuditEvent{ID: "E1"})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Revoke with an event that cannot be stored = %v, want ErrConflict", err)
	}
	revs, err := db.ListRevocations(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 0 {
		t.Errorf("revoked %v without a token.revoked record", revs)
	}
	if set.has("T0") || set.has("T1") {
		t.Error("OnRevoked was told of revocations that were not recorded")
	}
	mustVerify(t, db, 2)

	// The same revocation with a storable event: both are there.
	revs, err = w.Revoke(ctx, store.Revocation{JTI: "T0", ExpiresAt: t0.Add(time.Hour), RevokedAt: t0, Reason: "logout"}, nil)
	if err != nil || len(revs) != 2 {
		t.Fatalf("Revoke = %v, %v; want T0 and T1", revs, err)
	}
	events, err := db.EventsByToken(ctx, "T0")
	if err != nil {
		t.Fatal(err)
	}
	if last := events[len(events)-1]; last.Type != store.EventTokenRevoked {
		t.Errorf("last event of T0 is %s, want token.revoked", last.Type)
	}
	mustVerify(t, db, 3)
}

// TestWriterHealthAfterFailedCommit: a commit that fails for the database's sake
// (here another process holds SQLite's write lock past the busy timeout, as a
// full or read-only disk fails every write) makes the writer unhealthy — a node
// is then not ready — until a commit succeeds: Healthy's probe, an
// audit.recovered event, once the database takes writes again.
func TestWriterHealthAfterFailedCommit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "deputy.db")
	db, err := sqlstore.Open(t.Context(), "sqlite", path+"?_busy_timeout=100")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	w := NewWriter(db, db, WriterOptions{StoreTimeout: 2 * time.Second})
	defer w.Close()
	ctx := context.Background()
	if err := w.Record(ctx, issued("E0", "T0")); err != nil {
		t.Fatal(err)
	}
	if err := w.Healthy(ctx); err != nil {
		t.Fatalf("Healthy after a commit = %v", err)
	}

	// Another process takes the write lock and keeps it.
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	if err := w.Record(ctx, issued("E1", "T1")); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Record while the database takes no writes = %v, want ErrUnavailable", err)
	}
	if err := w.Healthy(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Healthy while the database takes no writes = %v, want ErrUnavailable", err)
	}

	// Writable again: the probe commits, the writer is healthy, the trail says so.
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := w.Healthy(ctx); err != nil {
		t.Fatalf("Healthy once the database takes writes = %v", err)
	}
	if err := w.Healthy(ctx); err != nil {
		t.Fatalf("Healthy again = %v", err)
	}
	evs, err := db.Query(ctx, store.AuditFilter{Type: store.EventAuditRecovered})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || !strings.Contains(evs[0].Reason, "unavailable") {
		t.Fatalf("audit.recovered events: %+v, want one naming the failure", evs)
	}
	mustVerify(t, db, 2)
}
