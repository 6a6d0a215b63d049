package sqlstore

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/store/storetest"
)

// openFile opens and migrates a SQLite database at path, closed when t ends.
func openFile(t testing.TB, dsn string) *DB {
	t.Helper()
	db, err := Open(t.Context(), "sqlite", dsn)
	if err != nil {
		t.Fatalf("Open(%q): %v", dsn, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return db
}

func tempDSN(t testing.TB) string { return filepath.Join(t.TempDir(), "deputy.db") }

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openFile(t, tempDSN(t)) })
}

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openFile(t, ":memory:") })
}

func TestMigrateTwice(t *testing.T) {
	db := openFile(t, tempDSN(t)) // migrated once
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	ms, err := loadMigrations(db.d.migrations)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.r.QueryRowContext(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || n == 0 {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(ms))
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	db := openFile(t, tempDSN(t))
	if _, err := db.w.ExecContext(t.Context(), "INSERT INTO schema_migrations VALUES (9999, 'future', 0)"); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(t.Context()); err == nil || !strings.Contains(err.Error(), "9999") {
		t.Fatalf("Migrate with an unknown applied version: %v, want an error naming it", err)
	}
}

func TestLoadMigrationsNames(t *testing.T) {
	ms, err := loadMigrations(sqliteDialect().migrations)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.version != int64(i+1) {
			t.Errorf("migration %d is numbered %d: versions must be 1, 2, … without gaps", i, m.version)
		}
	}
}

func TestReopenKeepsData(t *testing.T) {
	dsn := tempDSN(t)
	ctx := t.Context()
	db, err := Open(ctx, "sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	k := store.Key{ID: "k1", Algorithm: "ES256", Private: []byte("{}"), CreatedAt: now, ActiveAt: now}
	if err := db.InsertKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	e := &store.AuditEvent{ID: "e1", Time: now, Type: store.EventTokenIssued, TokenJTI: "j1", Decision: store.DecisionAllow}
	if err := db.Append(ctx, []*store.AuditEvent{e}, storetest.Seal); err != nil {
		t.Fatal(err)
	}
	rev, err := db.Revoke(ctx, store.Revocation{JTI: "j1", RevokedAt: now}, func(revs []store.Revocation) (*store.AuditEvent, error) {
		ev, err := storetest.RevokedEvent("rev-j1")(revs)
		e = ev // the chain goes on from the revocation's event
		return ev, err
	}, storetest.Seal)
	if err != nil || len(rev) != 1 {
		t.Fatal(rev, err)
	}
	if err := db.UseNonce(ctx, "n1", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	db = openFile(t, dsn)
	if keys, err := db.ListKeys(ctx); err != nil || len(keys) != 1 || !keys[0].CreatedAt.Equal(now) {
		t.Fatalf("keys after reopen: %v, %v", keys, err)
	}
	if got, err := db.EventByID(ctx, "rev-j1"); err != nil || got.Seq != 2 || !slices.Equal(got.Hash, e.Hash) {
		t.Fatalf("event after reopen: %+v, %v", got, err)
	}
	if rs, err := db.ListRevocations(ctx, now); err != nil || len(rs) != 1 || rs[0].JTI != "j1" {
		t.Fatalf("revocations after reopen: %v, %v", rs, err)
	}
	if err := db.UseNonce(ctx, "n1", now.Add(time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("nonce after reopen: %v, want ErrConflict", err)
	}
	e2 := &store.AuditEvent{ID: "e2", Time: now, Type: store.EventSignIn}
	if err := db.Append(ctx, []*store.AuditEvent{e2}, storetest.Seal); err != nil {
		t.Fatal(err)
	}
	if e2.Seq != 3 || !slices.Equal(e2.PrevHash, e.Hash) {
		t.Fatalf("after reopen the chain goes on: Seq %d, PrevHash %x; want 3, %x", e2.Seq, e2.PrevHash, e.Hash)
	}
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestOpenErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-dir", "deputy.db")
	for _, tc := range []struct {
		name, driver, dsn string
		unavailable       bool
		want              string
	}{
		{"fail/missing-directory", "sqlite", missing, true, "unable to open"},
		{"fail/missing-directory-uri", "sqlite", "file:" + missing + "?_busy_timeout=10", true, "unable to open"},
		{"fail/directory-is-not-a-file", "sqlite", t.TempDir(), true, ""},
		{"fail/empty-dsn", "sqlite", "", false, "empty"},
		{"fail/bad-parameter", "sqlite", tempDSN(t) + "?_busy_timeout=soon", false, "busy_timeout"},
		{"fail/postgres-unreachable", "postgres", "postgres://postgres@" + closedPort(t) + "/test?connect_timeout=2", true, "is unreachable"},
		{"fail/postgres-bad-dsn", "postgres", "postgres://%zz", false, "postgres dsn"},
		{"fail/postgres-empty-dsn", "postgres", "", false, "empty"},
		{"fail/unknown-driver", "mysql", "x", false, `"mysql"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := Open(t.Context(), tc.driver, tc.dsn)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q, %q) succeeded", tc.driver, tc.dsn)
			}
			if got := errors.Is(err, store.ErrUnavailable); got != tc.unavailable {
				t.Errorf("Open: %v; errors.Is(err, ErrUnavailable) = %t, want %t", err, got, tc.unavailable)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v; want it to say %q", err, tc.want)
			}
		})
	}
}

func TestPingAfterClose(t *testing.T) {
	db, err := Open(t.Context(), "sqlite", tempDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := db.Ping(t.Context()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping after Close: %v, want ErrUnavailable", err)
	}
}

// TestSettings checks the connection settings durability and concurrency rest on,
// also when the dsn asks for others.
func TestSettings(t *testing.T) {
	for _, tc := range []struct{ name, dsn string }{
		{"ok/path", tempDSN(t)},
		{"ok/uri", "file:" + tempDSN(t)},
		{"ok/overridden", tempDSN(t) + "?_synchronous=OFF&_journal_mode=DELETE&_fk=0&_busy_timeout=1234"},
		{"ok/uri-overridden", "file:" + tempDSN(t) + "?_pragma=synchronous(0)&_txlock=deferred"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openFile(t, tc.dsn)
			pragma := func(pool string, name string) string {
				p := db.w
				if pool == "r" {
					p = db.r
				}
				var v string
				if err := p.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&v); err != nil {
					t.Fatalf("PRAGMA %s: %v", name, err)
				}
				return v
			}
			for _, c := range []struct{ pool, name, want string }{
				{"w", "journal_mode", "wal"},
				{"w", "synchronous", "2"}, // FULL
				{"w", "foreign_keys", "1"},
				{"w", "query_only", "0"},
				{"r", "journal_mode", "wal"},
				{"r", "foreign_keys", "1"},
				{"r", "query_only", "1"},
			} {
				if got := pragma(c.pool, c.name); got != c.want {
					t.Errorf("%s: PRAGMA %s = %s, want %s", c.pool, c.name, got, c.want)
				}
			}
			if bt := pragma("w", "busy_timeout"); bt != "5000" && bt != "1234" {
				t.Errorf("PRAGMA busy_timeout = %s", bt)
			}
			if _, err := db.r.ExecContext(t.Context(), "DELETE FROM nonces"); err == nil {
				t.Error("the read pool accepted a write")
			}
		})
	}
}

// TestLookupsUseIndexes keeps trace and revocation index lookups: they must stay
// fast on a trail of millions of events.
func TestLookupsUseIndexes(t *testing.T) {
	db := openFile(t, tempDSN(t))
	q := db.d.q
	for _, tc := range []struct {
		name, query string
		args        []any
		index       string
	}{
		{"events-by-token", q.eventsByToken, []any{"j"}, "audit_events_token_jti"},
		{"events-by-parent", q.eventsByParent, []any{"j"}, "audit_events_parent_jti"},
		{"lineage", q.lineage, []any{"j", store.DecisionAllow}, "audit_events_parent_jti"},
		{"event-by-id", q.eventByID, []any{"e"}, "sqlite_autoindex_audit_events_1"},
		{"query-subject", q.selectEvents + " WHERE subject = ? ORDER BY seq", []any{"s"}, "audit_events_subject"},
		{"query-client", q.selectEvents + " WHERE client_id = ? ORDER BY seq", []any{"c"}, "audit_events_client_id"},
		// As Query filters on a trace id: the second condition lets the partial index serve.
		{"query-trace-id", q.selectEvents + " WHERE trace_id = ? AND trace_id <> '' ORDER BY seq", []any{"t"}, "audit_events_trace_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := db.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+tc.query, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, notused int
				var detail string
				if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			text := strings.Join(plan, "\n")
			if !strings.Contains(text, "USING INDEX "+tc.index) && !strings.Contains(text, "USING COVERING INDEX "+tc.index) {
				t.Errorf("plan does not use %s:\n%s", tc.index, text)
			}
			for _, line := range plan {
				if strings.HasPrefix(line, "SCAN audit_events") || strings.HasPrefix(line, "SCAN e") {
					t.Errorf("plan scans the audit table:\n%s", text)
				}
				if strings.Contains(line, "TEMP B-TREE FOR ORDER BY") && tc.name != "lineage" {
					t.Errorf("plan sorts:\n%s", text)
				}
			}
		})
	}
}

func TestListEncoding(t *testing.T) {
	for _, tc := range []struct {
		list []string
		text string
	}{
		{nil, ""},
		{[]string{}, ""},
		{[]string{"a"}, " a "},
		{[]string{"api2", "api1"}, " api2 api1 "},
		{[]string{""}, "  "},
		{[]string{"a", "", "b"}, " a  b "},
		{[]string{"a b", "100%", "%20"}, " a%20b 100%25 %2520 "},
	} {
		if got := encodeList(tc.list); got != tc.text {
			t.Errorf("encodeList(%q) = %q, want %q", tc.list, got, tc.text)
		}
		want := tc.list
		if len(want) == 0 {
			want = nil
		}
		if got := decodeList(tc.text); !slices.Equal(got, want) || (got == nil) != (want == nil) {
			t.Errorf("decodeList(%q) = %q, want %q", tc.text, got, want)
		}
	}
}

// FuzzListEncoding checks that lists round-trip and that membership by needle is
// exact.
func FuzzListEncoding(f *testing.F) {
	f.Add("api2 api1", "api1")
	f.Add("api10", "api1")
	f.Add("a%20b a", "a b")
	f.Add("%  %", "%")
	f.Fuzz(func(t *testing.T, joined, probe string) {
		list := strings.Split(joined, " ")
		text := encodeList(list)
		if got := decodeList(text); !slices.Equal(got, list) {
			t.Fatalf("decodeList(encodeList(%q)) = %q", list, got)
		}
		if got, want := strings.Contains(text, listNeedle(probe)), slices.Contains(list, probe); got != want {
			t.Fatalf("needle %q in %q = %t, want %t", probe, text, got, want)
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	seal := func(prev []byte, e *store.AuditEvent) {
		e.PrevHash = prev
		h := sha256.New()
		h.Write(prev)
		h.Write([]byte(e.ID))
		e.Hash = h.Sum(nil)
	}
	for _, batch := range []int{1, 32, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db := openFile(b, tempDSN(b))
			now := time.Now()
			n := 0
			events := make([]*store.AuditEvent, batch)
			for b.Loop() {
				for i := range events {
					n++
					events[i] = &store.AuditEvent{
						ID: fmt.Sprintf("ev-%d", n), Time: now, Type: store.EventTokenExchanged,
						ClientID: "api1", Subject: "alice", Actors: []string{"api2", "api1"},
						Audiences: []string{"https://api3.example"}, Scopes: []string{"ledger:read"},
						ParentJTI: fmt.Sprintf("jti-%d", n-1), TokenJTI: fmt.Sprintf("jti-%d", n),
						TokenExpires: now.Add(5 * time.Minute), Decision: store.DecisionAllow,
						Rule: "policies[0]", RequestID: "req", RemoteAddr: "127.0.0.1:1234",
					}
				}
				if err := db.Append(b.Context(), events, seal); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkLookups measures trace and revocation lookups on a trail of a million
// events, written directly in SQL (unsealed) to keep the set-up short. Event i
// issues token t<i> from parent t<i/2>: a binary tree of tokens.
func BenchmarkLookups(b *testing.B) {
	const n = 1_000_000
	db := openFile(b, tempDSN(b))
	_, err := db.w.ExecContext(b.Context(), `
		WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < ?)
		INSERT INTO audit_events (seq, id, time, type, client_id, subject, actors, audiences,
			scopes, parent_jti, token_jti, token_expires, decision)
		SELECT n, 'ev-' || n, 1700000000000000 + n, 'token.exchanged', 'api' || (n % 50),
			'user' || (n % 10000), ' api1 api2 ', ' https://api3.example ', ' ledger:read ',
			't' || (n / 2), 't' || n, 1800000000000000, 'allow'
		FROM i`, n)
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.Run("EventsByToken", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			if es, err := db.EventsByToken(ctx, fmt.Sprintf("t%d", 1+(i*7919)%n)); err != nil || len(es) != 1 {
				b.Fatal(len(es), err)
			}
		}
	})
	b.Run("EventsByParent", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			if es, err := db.EventsByParent(ctx, fmt.Sprintf("t%d", 1+(i*7919)%(n/2-1))); err != nil || len(es) != 2 {
				b.Fatal(len(es), err)
			}
		}
	})
	b.Run("EventByID", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			if _, err := db.EventByID(ctx, fmt.Sprintf("ev-%d", 1+(i*7919)%n)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Revoke-subtree-of-63", func(b *testing.B) {
		// t<k> with k in [n/64, n/32) roots a full subtree of depth 5 (63 tokens).
		for b.Loop() {
			rs, err := db.Revoke(ctx, store.Revocation{JTI: fmt.Sprintf("t%d", n/64+7), RevokedAt: time.Now()}, storetest.RevokedEvent(fmt.Sprint("rev-", time.Now().UnixNano())), storetest.Seal)
			if err != nil || len(rs) != 63 {
				b.Fatal(len(rs), err)
			}
		}
	})
}

// TestCheckpointsBesideTheWriter: the background checkpointer copies committed
// pages into the database file long before the writer's own checkpoint is due (a
// checkpoint inside a commit stalls every request waiting for the audit trail).
func TestCheckpointsBesideTheWriter(t *testing.T) {
	path := tempDSN(t)
	db := openFile(t, path)
	var auto int
	if err := db.w.QueryRowContext(t.Context(), "PRAGMA wal_autocheckpoint").Scan(&auto); err != nil || auto != sqliteWriterCheckpointFrames {
		t.Fatalf("writer wal_autocheckpoint = %d (%v), want %d", auto, err, sqliteWriterCheckpointFrames)
	}
	size := func() int64 {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	before := size()
	now := time.Now()
	for b := range 20 {
		events := make([]*store.AuditEvent, 100)
		for i := range events {
			n := b*100 + i
			events[i] = &store.AuditEvent{ID: fmt.Sprintf("e%06d", n), Time: now, Type: store.EventTokenIssued,
				TokenJTI: fmt.Sprintf("t%06d", n), Decision: store.DecisionAllow, Detail: strings.Repeat("x", 200)}
		}
		if err := db.Append(t.Context(), events, storetest.Seal); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for size() <= before+100_000 {
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes (was %d) 5 s after 2000 events: nothing checkpointed", size(), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInsertEventsStatements checks the multi-row inserts against the one-row
// statement: n rows of eventColumnCount parameters, numbered on PostgreSQL.
func TestInsertEventsStatements(t *testing.T) {
	if got := len(strings.Split(eventColumns, ",")); got != eventColumnCount {
		t.Fatalf("eventColumns has %d columns, eventColumnCount is %d", got, eventColumnCount)
	}
	pg := postgresQueries()
	for _, n := range []int{1, 2, maxInsertEvents} {
		if got := strings.Count(sqliteQueries.insertEvents[n], "?"); got != n*eventColumnCount {
			t.Errorf("SQLite insertEvents[%d] has %d parameters, want %d", n, got, n*eventColumnCount)
		}
		last := fmt.Sprintf("$%d)", n*eventColumnCount)
		if !strings.HasSuffix(pg.insertEvents[n], last) || strings.Contains(pg.insertEvents[n], "?") {
			t.Errorf("PostgreSQL insertEvents[%d] = …%q, want it to end with %q", n, pg.insertEvents[n][max(0, len(pg.insertEvents[n])-40):], last)
		}
	}
	if strings.Join(strings.Fields(sqliteQueries.insertEvents[1]), " ") != strings.Join(strings.Fields(sqliteQueries.insertEvent), " ") {
		t.Errorf("insertEvents[1] %q differs from insertEvent %q", sqliteQueries.insertEvents[1], sqliteQueries.insertEvent)
	}
}
