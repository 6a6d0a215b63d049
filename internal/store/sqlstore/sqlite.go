package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/deputy-auth/deputy/internal/store"
)

//go:embed migrations/sqlite/*.sql
var sqliteMigrationFiles embed.FS

// sqliteBusyTimeoutMS is how long a connection waits for another process's write
// lock before failing with SQLITE_BUSY (reported as store.ErrUnavailable).
const sqliteBusyTimeoutMS = "5000"

func sqliteDialect() dialect {
	migrations, err := fs.Sub(sqliteMigrationFiles, "migrations/sqlite")
	if err != nil {
		panic(err) // the embedded path is a constant
	}
	return dialect{
		name:          "sqlite",
		connect:       sqliteConnect,
		migrations:    migrations,
		q:             sqliteQueries,
		placeholder:   func(int) string { return "?" },
		contains:      func(col, param string) string { return "instr(" + col + ", " + param + ") > 0" },
		isConflict:    sqliteIsConflict,
		isUnavailable: sqliteIsUnavailable,
	}
}

// sqliteConnect opens the writer (one connection, BEGIN IMMEDIATE) and the reader
// pool (query_only) on the same file. An in-memory database exists only inside its
// one connection, so it gets a single pool of one connection for both.
//
// dsn is a file path ("deputy.db") or a SQLite URI ("file:deputy.db?mode=rwc"),
// either optionally followed by '?' and parameters, which are passed on to the
// driver (see modernc.org/sqlite). The settings the audit trail's durability rests
// on (WAL, synchronous=FULL, foreign keys, immediate transactions) are always set
// and replace any given for the same pragma; busy_timeout is a default.
func sqliteConnect(ctx context.Context, dsn string) (connection, error) {
	w, r, cp, err := sqliteOpen(ctx, dsn)
	if err != nil {
		return connection{}, err
	}
	c := connection{w: w, r: r}
	if cp != nil {
		c.background = func(stop <-chan struct{}) { sqliteCheckpoints(cp, stop) }
	}
	return c, nil
}

// sqliteCheckpointEvery is how often the checkpointer copies committed WAL frames
// into the database file.
const sqliteCheckpointEvery = 200 * time.Millisecond

// sqliteCheckpoints runs passive WAL checkpoints on their own connection until
// stop is closed, then closes it. A checkpoint copies and fsyncs up to thousands of
// pages, which inside a commit would hold every request waiting for the audit
// writer for milliseconds: these run beside the writer and readers, never waiting
// for them, so that the writer's own checkpoint (every
// sqliteWriterCheckpointFrames) finds little left to copy.
func sqliteCheckpoints(cp *sql.DB, stop <-chan struct{}) {
	defer cp.Close()
	tick := time.NewTicker(sqliteCheckpointEvery)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			sqliteCheckpoint(cp)
		}
	}
}

// sqliteWriterCheckpointFrames is the WAL length (in frames, pages of 4 KiB) at
// which the writer checkpoints after a commit (wal_autocheckpoint). Passive
// checkpoints beside it copy almost everything before, so the writer's own has
// only the frames of the last moments to copy — and being the only writer, it
// completes, which lets the next commit start the WAL over. Without it the WAL
// grows without end under steady load (a background checkpoint never catches a
// writer that keeps appending).
const sqliteWriterCheckpointFrames = 4096

// sqliteCheckpoint runs one passive checkpoint; errors are left to the next tick.
func sqliteCheckpoint(cp *sql.DB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = cp.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
}

func sqliteOpen(ctx context.Context, dsn string) (w, r, checkpointer *sql.DB, err error) {
	if dsn == "" {
		return nil, nil, nil, errors.New("sqlstore: empty sqlite dsn")
	}
	name, query, _ := strings.Cut(dsn, "?")
	params, err := url.ParseQuery(query)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("sqlstore: sqlite dsn parameters: %w", err)
	}
	for _, k := range []string{"_journal_mode", "_journal", "_synchronous", "_sync", "_foreign_keys", "_fk", "_txlock", "_query_only"} {
		params.Del(k)
	}
	if params.Get("_busy_timeout") == "" && params.Get("_timeout") == "" {
		params.Set("_busy_timeout", sqliteBusyTimeoutMS)
	}
	params.Set("_foreign_keys", "1")
	params.Add("_pragma", "fullfsync(1)") // F_FULLFSYNC on macOS; no effect elsewhere
	memory := name == ":memory:" || strings.HasPrefix(name, "file::memory:") || params.Get("mode") == "memory"

	if !memory {
		ownerOnly(name, params.Get("mode"))
	}

	wp := cloneValues(params)
	wp.Set("_journal_mode", "WAL")         // persistent; the readers inherit it
	wp.Set("_synchronous", "FULL")         // fsync the WAL on every commit
	wp.Set("_txlock", "immediate")         // take the write lock at BEGIN: no upgrade deadlocks
	wp.Add("_pragma", "cache_size(-8192)") // 8 MiB: ids are time-ordered, so the pages appends touch are the indexes' last ones
	// What a write frees (a replaced row, a deleted one, a page) is overwritten
	// with zeros, not left in the file: a private key once stored in the clear,
	// then encrypted, must not stay readable in free space (see EraseFreed).
	wp.Add("_pragma", "secure_delete(1)")
	if !memory {
		wp.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", sqliteWriterCheckpointFrames)) // see sqliteCheckpoints
	}
	if w, err = sqliteOpenPool(ctx, name+"?"+wp.Encode(), 1); err != nil {
		return nil, nil, nil, err
	}
	if memory {
		return w, w, nil, nil
	}

	rp := cloneValues(params)
	rp.Set("_query_only", "1")
	n := max(4, runtime.GOMAXPROCS(0))
	if r, err = sqliteOpenPool(ctx, name+"?"+rp.Encode(), n); err != nil {
		w.Close()
		return nil, nil, nil, err
	}
	cp := cloneValues(params)
	cp.Set("_synchronous", "FULL")
	if checkpointer, err = sqliteOpenPool(ctx, name+"?"+cp.Encode(), 1); err != nil {
		r.Close()
		w.Close()
		return nil, nil, nil, err
	}
	return w, r, checkpointer, nil
}

// ownerOnly keeps the database file, which holds the private signing keys, from
// other users: a new one is created with mode 0600 (SQLite gives its -wal and -shm
// files the database file's mode), and an existing one — or its -wal, -shm or
// -journal — with any group or other permission loses them. name is the path or
// "file:" URI of the database; a database opened without create (mode=ro or rw)
// is not created. Failures are left to SQLite to report when it opens the file.
func ownerOnly(name, mode string) {
	path := name
	if strings.HasPrefix(name, "file:") {
		u, err := url.Parse(name)
		if err != nil {
			return
		}
		if path = u.Path; path == "" {
			path = u.Opaque
		}
	}
	if path == "" {
		return
	}
	if mode == "" || mode == "rwc" {
		if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			f.Close()
		}
	}
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
			_ = os.Chmod(p, fi.Mode().Perm()&^0o077)
		}
	}
}

func sqliteOpenPool(ctx context.Context, dsn string, conns int) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: sqlite dsn: %w", err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		if _, fromSQLite := sqliteCode(err); !fromSQLite {
			return nil, fmt.Errorf("sqlstore: sqlite dsn: %w", err) // rejected by the driver
		}
		return nil, fmt.Errorf("sqlstore: open sqlite database: %w: %w", store.ErrUnavailable, err)
	}
	return db, nil
}

func cloneValues(v url.Values) url.Values {
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

func sqliteCode(err error) (int, bool) {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return 0, false
	}
	return e.Code(), true
}

func sqliteIsConflict(err error) bool {
	code, ok := sqliteCode(err)
	return ok && (code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || code == sqlite3.SQLITE_CONSTRAINT_UNIQUE)
}

func sqliteIsUnavailable(err error) bool {
	code, ok := sqliteCode(err)
	if !ok {
		return false
	}
	switch code & 0xff { // the primary result code
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY,
		sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_NOTADB,
		sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_READONLY:
		return true
	}
	return false
}

// sqliteLineage finds the descendants of a token: the tokens issued by allowed
// issuance events (not revocations, denials, call reports, key or sign-in events)
// whose parent is the root or one of its descendants, at any depth. Each step
// looks up the children of the tokens found by the previous one (the partial
// index on parent_jti). UNION (not UNION ALL) keeps each event once, so a damaged
// trail with a cycle ends too. A token issued by several events is listed once,
// at its first issuance; its expiry is NULL (never) if any event says so.
const sqliteLineage = `
WITH RECURSIVE lineage(jti, expires_at, seq) AS (
	SELECT e.token_jti, e.token_expires, e.seq
	FROM audit_events e
	WHERE e.parent_jti = ?1 AND e.parent_jti <> '' AND e.decision = ?2 AND e.token_jti <> ''
		AND e.type NOT IN ('token.revoked', 'call.reported', 'request.denied', 'key.rotated', 'signin')
	UNION
	SELECT e.token_jti, e.token_expires, e.seq
	FROM lineage l JOIN audit_events e ON e.parent_jti = l.jti
	WHERE e.parent_jti <> '' AND e.decision = ?2 AND e.token_jti <> ''
		AND e.type NOT IN ('token.revoked', 'call.reported', 'request.denied', 'key.rotated', 'signin')
)
SELECT jti,
	CASE WHEN count(*) = count(expires_at) THEN max(expires_at) END,
	min(seq) AS s
FROM lineage
WHERE jti <> ?1
GROUP BY jti
ORDER BY s`

var sqliteQueries = withInsertEvents(queries{
	createMigrations: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`,
	appliedMigration: `SELECT version FROM schema_migrations ORDER BY version`,
	recordMigration:  `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,

	insertKey: `INSERT INTO signing_keys (id, algorithm, private_jwk, created_at, active_at, retired_at)
		VALUES (?, ?, ?, ?, ?, ?)`,
	listKeys: `SELECT id, algorithm, private_jwk, created_at, active_at, retired_at
		FROM signing_keys ORDER BY created_at, id`,
	retireKey:         `UPDATE signing_keys SET retired_at = ? WHERE id = ?`,
	replaceKeyPrivate: `UPDATE signing_keys SET private_jwk = ? WHERE id = ? AND private_jwk = ?`,

	useNonce: `INSERT INTO nonces (nonce, expires_at) VALUES (?1, ?2)
		ON CONFLICT (nonce) DO UPDATE SET expires_at = excluded.expires_at
		WHERE nonces.expires_at <= ?3`,
	purgeNonces: `DELETE FROM nonces WHERE expires_at <= ?`,

	auditTail: `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`,
	insertEvent: `INSERT INTO audit_events (` + eventColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	selectEvents: `SELECT ` + eventColumns + ` FROM audit_events`,
	eventByID:    `SELECT ` + eventColumns + ` FROM audit_events WHERE id = ?`,
	eventsByToken: `SELECT ` + eventColumns + ` FROM audit_events
		WHERE token_jti = ? AND token_jti <> '' ORDER BY seq`,
	eventsByParent: `SELECT ` + eventColumns + ` FROM audit_events
		WHERE parent_jti = ? AND parent_jti <> '' ORDER BY seq`,
	scanEvents: `SELECT ` + eventColumns + ` FROM audit_events
		WHERE seq > ? ORDER BY seq LIMIT ?`,

	lineage: sqliteLineage,
	insertRevocation: `INSERT INTO revocations (jti, expires_at, revoked_at, reason, seq)
		VALUES (?, ?, ?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM revocations))
		ON CONFLICT (jti) DO NOTHING`,
	revocationByJTI: `SELECT seq, jti, expires_at, revoked_at, reason FROM revocations WHERE jti = ?`,
	listRevocations: `SELECT seq, jti, expires_at, revoked_at, reason FROM revocations
		WHERE expires_at IS NULL OR expires_at > ? ORDER BY revoked_at, jti`,
	revocationsAfter: `SELECT seq, jti, expires_at, revoked_at, reason FROM revocations
		WHERE seq > ? ORDER BY seq LIMIT ?`,
	isRevoked: `SELECT 1 FROM revocations WHERE jti = ?`,

	insertUser:      `INSERT INTO users (` + userColumns + `) VALUES (?, ?, ?, ?, ?, ?)`,
	userByName:      `SELECT ` + userColumns + ` FROM users WHERE username = ?`,
	listUsers:       `SELECT ` + userColumns + ` FROM users ORDER BY username`,
	setUserDisabled: `UPDATE users SET disabled = ? WHERE username = ?`,
	setUserRoles:    `UPDATE users SET roles = ? WHERE username = ?`,
	deleteUser:      `DELETE FROM users WHERE username = ?`,

	insertSession:      `INSERT INTO sessions (` + sessionColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	sessionByTokenHash: `SELECT ` + sessionColumns + ` FROM sessions WHERE token_hash = ?`,
	endSession:         `UPDATE sessions SET ended_at = coalesce(ended_at, ?) WHERE id = ?`,

	insertCode: `INSERT INTO auth_codes (` + codeColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	redeemCode:  `UPDATE auth_codes SET redeemed_at = ? WHERE hash = ? AND redeemed_at IS NULL`,
	releaseCode: `UPDATE auth_codes SET redeemed_at = NULL WHERE hash = ? AND redeemed_at = ?`,
	codeByHash:  `SELECT ` + codeColumns + ` FROM auth_codes WHERE hash = ?`,

	insertRefreshToken: `INSERT INTO refresh_tokens (` + refreshTokenColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	useRefreshToken:     `UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL`,
	releaseRefreshToken: `UPDATE refresh_tokens SET used_at = NULL WHERE hash = ? AND used_at = ?`,
	refreshTokenByHash:  `SELECT ` + refreshTokenColumns + ` FROM refresh_tokens WHERE hash = ?`,

	purgeCodes:         `DELETE FROM auth_codes WHERE expires_at < ?`,
	purgeRefreshTokens: `DELETE FROM refresh_tokens WHERE expires_at < ?`,
	purgeSessions:      `DELETE FROM sessions WHERE expires_at < ?`,
}, func(q string) string { return q })
