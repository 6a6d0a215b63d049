package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/store/storetest"
)

// postgresDSN is the server the PostgreSQL tests run on (DEPUTY_TEST_POSTGRES_DSN;
// .ci/run sets it). Without it they are skipped.
func postgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("DEPUTY_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("DEPUTY_TEST_POSTGRES_DSN is not set: no PostgreSQL to test on")
	}
	return dsn
}

// postgresSchemaDSN creates a schema of its own for the test, dropped when it
// ends, and returns a dsn whose connections use it (search_path).
func postgresSchemaDSN(t testing.TB) string {
	t.Helper()
	base := postgresDSN(t)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	schema := "deputy_test_" + strings.ToLower(rand.Text()[:12])
	if _, err := admin.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("DEPUTY_TEST_POSTGRES_DSN must be a URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func openPostgres(t testing.TB, dsn string) *DB {
	t.Helper()
	db, err := Open(context.Background(), "postgres", dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return db
}

func TestPostgresConformance(t *testing.T) {
	postgresDSN(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openPostgres(t, postgresSchemaDSN(t)) })
}

// TestPostgresMigrateConcurrently: nodes that start at once on an empty database
// take turns; each migration is applied once.
func TestPostgresMigrateConcurrently(t *testing.T) {
	dsn := postgresSchemaDSN(t)
	const nodes = 4
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	dbs := make([]*DB, nodes)
	for i := range nodes {
		db, err := Open(t.Context(), "postgres", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	for i := range nodes {
		wg.Go(func() { errs[i] = dbs[i].Migrate(t.Context()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: Migrate: %v", i, err)
		}
	}
	ms, err := loadMigrations(dbs[0].d.migrations)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := dbs[0].r.QueryRowContext(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(ms))
	}
}

// TestPostgresOneChainAcrossNodes: several handles (nodes) appending concurrently
// build one chain without gaps or forks, and revocations they record are numbered
// in commit order.
func TestPostgresOneChainAcrossNodes(t *testing.T) {
	dsn := postgresSchemaDSN(t)
	const nodes, perNode = 3, 40
	dbs := make([]*DB, nodes)
	for i := range nodes {
		dbs[i] = openPostgres(t, dsn)
	}
	var wg sync.WaitGroup
	errs := make(chan error, nodes*perNode)
	for n := range nodes {
		wg.Go(func() {
			for i := range perNode {
				e := &store.AuditEvent{ID: fmt.Sprintf("n%d-e%d", n, i), Time: time.Now(), Type: store.EventTokenIssued,
					TokenJTI: fmt.Sprintf("n%d-t%d", n, i), Decision: store.DecisionAllow}
				if err := dbs[n].Append(t.Context(), []*store.AuditEvent{e}, storetest.Seal); err != nil {
					errs <- err
					return
				}
				if i%10 == 0 {
					r := store.Revocation{JTI: e.TokenJTI, RevokedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
					if _, err := dbs[n].Revoke(t.Context(), r, storetest.RevokedEvent("rev-"+e.ID), storetest.Seal); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var prev []byte
	var count int64
	err := dbs[0].Scan(t.Context(), 0, func(e store.AuditEvent) error {
		count++
		if e.Seq != count {
			return fmt.Errorf("seq %d at position %d", e.Seq, count)
		}
		if string(e.PrevHash) != string(prev) {
			return fmt.Errorf("event %d does not chain to its predecessor", e.Seq)
		}
		sealed := e
		storetest.Seal(prev, &sealed)
		if string(sealed.Hash) != string(e.Hash) {
			return fmt.Errorf("event %d: hash does not match", e.Seq)
		}
		prev = e.Hash
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(nodes*perNode + nodes*perNode/10); count != want {
		t.Errorf("%d events, want %d (each issuance, each revocation)", count, want)
	}
	revs, err := dbs[1].RevocationsAfter(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != nodes*perNode/10 {
		t.Errorf("%d revocations, want %d", len(revs), nodes*perNode/10)
	}
	for i, r := range revs {
		if r.Seq != int64(i+1) {
			t.Errorf("revocation %d numbered %d", i, r.Seq)
		}
	}
}

// TestPostgresWatch: a revocation or a key change on one handle is announced to
// another handle's Watch, which first reports that it listens.
func TestPostgresWatch(t *testing.T) {
	dsn := postgresSchemaDSN(t)
	a, b := openPostgres(t, dsn), openPostgres(t, dsn)
	ctx, cancel := context.WithCancel(t.Context())
	topics := make(chan string, 16)
	done := make(chan error, 1)
	go func() { done <- b.Watch(ctx, func(topic string) { topics <- topic }) }()
	next := func() string {
		t.Helper()
		select {
		case s := <-topics:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no notification within 10 s")
			return ""
		}
	}
	if got := next(); got != "" {
		t.Fatalf("first notification %q, want \"\" (listening)", got)
	}
	if _, err := a.Revoke(t.Context(), store.Revocation{JTI: "j1", RevokedAt: time.Now()}, storetest.RevokedEvent("rev-j1"), storetest.Seal); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "revocations" {
		t.Errorf("after Revoke: %q, want revocations", got)
	}
	if err := a.InsertKey(t.Context(), store.Key{ID: "k1", Algorithm: "ES256", Private: []byte("{}"), CreatedAt: time.Now(), ActiveAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "keys" {
		t.Errorf("after InsertKey: %q, want keys", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch returned %v after its context ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return after its context ended")
	}
}

// TestPostgresOutage: while the server cannot be reached, operations fail with
// store.ErrUnavailable; once it can again, the same handle works without being
// reopened, and the chain goes on where it stopped.
func TestPostgresOutage(t *testing.T) {
	dsn := postgresSchemaDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, u.Host)
	u.Host = p.addr
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	db := openPostgres(t, u.String())
	appendOne := func(id string) error {
		e := &store.AuditEvent{ID: id, Time: time.Now(), Type: store.EventTokenIssued, Decision: store.DecisionAllow}
		return db.Append(t.Context(), []*store.AuditEvent{e}, storetest.Seal)
	}
	if err := appendOne("before"); err != nil {
		t.Fatal(err)
	}
	p.down()
	for _, op := range []struct {
		name string
		run  func() error
	}{
		{"Append", func() error { return appendOne("during") }},
		{"Ping", func() error { return db.Ping(t.Context()) }},
		{"ListKeys", func() error { _, err := db.ListKeys(t.Context()); return err }},
		{"UseNonce", func() error { return db.UseNonce(t.Context(), "n", time.Now().Add(time.Minute)) }},
	} {
		if err := op.run(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s during the outage: %v, want store.ErrUnavailable", op.name, err)
		}
	}
	p.up()
	if err := appendOne("after"); err != nil {
		t.Fatalf("Append after the outage: %v", err)
	}
	var ids []string
	if err := db.Scan(t.Context(), 0, func(e store.AuditEvent) error { ids = append(ids, e.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, " ") != "before after" {
		t.Errorf("chain %v, want before after", ids)
	}
}

// proxy forwards TCP connections from a loopback port to target; down closes the
// port and every connection through it, up listens on the same port again.
type proxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	l      net.Listener
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = l.Addr().String()
	p.serve(l)
	t.Cleanup(p.down)
	return p
}

func (p *proxy) serve(l net.Listener) {
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() { _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
}

func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) up() {
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("listen again on %s: %v", p.addr, err)
	}
	p.serve(l)
}

func TestDollarPlaceholders(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"a = ? AND b = ?", "a = $1 AND b = $2"},
		{"a = ?1 AND b = ?2 OR c <= ?3 AND d = ?1", "a = $1 AND b = $2 OR c <= $3 AND d = $1"},
		{"VALUES (?, ?, (SELECT ?))", "VALUES ($1, $2, (SELECT $3))"},
		{"x = ?12", "x = $12"},
	} {
		if got := dollarPlaceholders(tc.in); got != tc.want {
			t.Errorf("dollarPlaceholders(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
