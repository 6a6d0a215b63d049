package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// DB is a store.Store on an SQL database. It is safe for concurrent use.
type DB struct {
	d dialect
	w *sql.DB // writes, and reads that must see them (inside transactions)
	r *sql.DB // reads
	// ws and rs hold statements prepared once on w and r.
	ws, rs *stmtCache
	// nonces group-commits UseNonce (nonces.go).
	nonces nonceBatcher
	watch  func(ctx context.Context, notify func(topic string)) error
	// stop ends the dialect's background work; done is closed when it has.
	stop, done chan struct{}

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*DB)(nil)

// Open connects to the database of the given driver: "sqlite", with dsn a file path
// (e.g. "deputy.db") or a "file:" URI, both optionally with '?' parameters for the
// driver; "postgres", with dsn a PostgreSQL URL or keyword/value string (see
// postgres.go). Open does not migrate; call Migrate. When the database cannot be
// opened or reached, the error wraps store.ErrUnavailable; its message never holds
// the dsn's password (see RedactDSN).
func Open(ctx context.Context, driver, dsn string) (*DB, error) {
	var d dialect
	switch driver {
	case "sqlite":
		d = sqliteDialect()
	case "postgres":
		d = postgresDialect()
	default:
		return nil, fmt.Errorf("sqlstore: unknown storage driver %q (want sqlite or postgres)", driver)
	}
	c, err := d.connect(ctx, dsn)
	if err != nil {
		return nil, redactError(err, dsn) // pgx quotes the dsn it could not parse
	}
	db := &DB{d: d, w: c.w, r: c.r, ws: newStmtCache(c.w), rs: newStmtCache(c.r), watch: c.watch,
		stop: make(chan struct{}), done: make(chan struct{})}
	if c.background != nil {
		go func() {
			defer close(db.done)
			c.background(db.stop)
		}()
	} else {
		close(db.done)
	}
	return db, nil
}

// Driver is the name of the database engine: "sqlite" or "postgres".
func (db *DB) Driver() string { return db.d.name }

// Watch tells notify of changes other processes make to the database, until ctx
// ends: notify("revocations") after revocations were recorded, notify("keys")
// after signing keys changed, and notify("") whenever listening (re)starts, after
// which anything may have changed unseen. It keeps reconnecting while the
// database is unreachable. notify is called from Watch's goroutine and should not
// block. On engines without notifications (SQLite: one node) Watch returns nil at
// once; callers poll as well in any case.
func (db *DB) Watch(ctx context.Context, notify func(topic string)) error {
	if db.watch == nil {
		return nil
	}
	return db.watch(ctx, notify)
}

// notify runs one of the dialect's notification statements, if it has it.
func (db *DB) notify(ctx context.Context, query string) {
	if query == "" {
		return
	}
	// Best effort: listeners also poll.
	_, _ = db.w.ExecContext(ctx, query)
}

// Ping checks that both the write and the read side of the database answer.
func (db *DB) Ping(ctx context.Context) error {
	for _, p := range []*sql.DB{db.w, db.r} {
		var one int
		if err := p.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
			return fmt.Errorf("sqlstore: ping: %w: %w", store.ErrUnavailable, err)
		}
	}
	return nil
}

// Close releases the statements and connections. Calling it again returns the
// first result.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		close(db.stop)
		<-db.done
		errs := []error{db.rs.close(), db.ws.close()}
		if db.r != db.w {
			errs = append(errs, db.r.Close())
		}
		// The writer goes last: SQLite checkpoints the WAL when the last
		// connection to the file closes.
		errs = append(errs, db.w.Close())
		db.closeErr = errors.Join(errs...)
	})
	return db.closeErr
}

// fail wraps a database error of operation op, adding store.ErrUnavailable where
// the dialect says the database could not be reached.
func (db *DB) fail(op string, err error) error {
	if db.d.isUnavailable(err) {
		return fmt.Errorf("sqlstore: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("sqlstore: %s: %w", op, err)
}

// inTx prepares queries on the writer (not inside the transaction: the writer has
// one connection, which the transaction holds), then runs fn in a write transaction
// with the statements bound to it, in the order of queries, and commits if fn
// returns nil.
func (db *DB) inTx(ctx context.Context, op string, queries []string, fn func(tx *sql.Tx, stmts []*sql.Stmt) error) error {
	return db.inLockedTx(ctx, op, nil, queries, fn)
}

// inLockedTx is inTx with lock (one of the dialect's lock statements; none for
// none) run first in the transaction.
func (db *DB) inLockedTx(ctx context.Context, op string, lock []string, queries []string, fn func(tx *sql.Tx, stmts []*sql.Stmt) error) error {
	prepared := make([]*sql.Stmt, len(queries))
	for i, q := range queries {
		s, err := db.ws.get(ctx, q)
		if err != nil {
			return db.fail(op, err)
		}
		prepared[i] = s
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return db.fail(op, err)
	}
	defer tx.Rollback() // no effect after Commit
	for _, l := range lock {
		if _, err := tx.ExecContext(ctx, l); err != nil {
			return db.fail(op+": lock", err)
		}
	}
	stmts := make([]*sql.Stmt, len(prepared))
	for i, s := range prepared {
		stmts[i] = tx.StmtContext(ctx, s)
	}
	if err := fn(tx, stmts); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return db.fail(op, err)
	}
	return nil
}

// stmtCache prepares each statement once per pool; database/sql then prepares it
// on each connection that runs it, once.
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: make(map[string]*sql.Stmt)}
}

// get returns the statement of query, preparing it the first time. The lock is not
// held while preparing (a round trip to a database server that may hang): two
// callers may prepare the same query at once, and the second statement is closed.
func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	s, ok := c.m[query]
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	s, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if first, ok := c.m[query]; ok {
		s.Close()
		return first, nil
	}
	c.m[query] = s
	return s, nil
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, s := range c.m {
		errs = append(errs, s.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}

// Times are stored as unix microseconds in UTC; the zero time as NULL where a column
// allows it.

// micros is t as unix microseconds.
func micros(t time.Time) int64 { return t.UnixMicro() }

// nullMicros is t as unix microseconds, or nil (SQL NULL) for the zero time.
func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// fromMicros is the UTC time of unix microseconds us.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// fromNullMicros is fromMicros, with NULL as the zero time.
func fromNullMicros(us sql.NullInt64) time.Time {
	if !us.Valid {
		return time.Time{}
	}
	return fromMicros(us.Int64)
}

// normalTime is t as the store gives it back: UTC, truncated to microseconds.
func normalTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return fromMicros(t.UnixMicro())
}
