package sqlstore

import (
	"context"
	"database/sql"
	"io/fs"
	"strings"
)

// dialect is everything that differs between database engines. The aggregate code
// (keys.go, nonces.go, audit.go, revocations.go, users.go, sessions.go, codes.go,
// refreshtokens.go, expiring.go) uses only this and database/sql, so a new engine is
// a new dialect value and a migrations directory. sqlite.go and postgres.go hold
// the two there are.
type dialect struct {
	name string
	// connect turns a dsn into the pool writes go through and the pool reads go
	// through (they may be the same), and, where the engine has one, a way to
	// listen for other nodes' changes. Errors wrap store.ErrUnavailable when the
	// database cannot be reached.
	connect func(ctx context.Context, dsn string) (connection, error)
	// migrations holds NNNN_name.sql files at its root.
	migrations fs.FS
	q          queries
	// placeholder is the text of the n-th (from 1) bind parameter in a statement.
	placeholder func(n int) string
	// contains is a condition that text column col contains the bind parameter
	// param as a substring, case-sensitively and without wildcards.
	contains func(col, param string) string
	// isConflict reports a uniqueness violation.
	isConflict func(error) bool
	// isUnavailable reports that the database could not be reached or used
	// (cannot open, I/O error, locked beyond the busy timeout).
	isUnavailable func(error) bool
}

// connection is what a dialect's connect opens.
type connection struct {
	w, r *sql.DB
	// watch, when set, listens for the notifications the store's writes send (see
	// DB.Watch) until ctx ends; nil where the engine has none.
	watch func(ctx context.Context, notify func(topic string)) error
	// background, when set, runs in a goroutine of its own from Open until stop is
	// closed by Close, which waits for it to return.
	background func(stop <-chan struct{})
}

// queries is the fixed SQL text of one dialect. Statements take their parameters in
// the order the comments give.
type queries struct {
	// lockMigrations and lockChain, where set, are run first in the transaction of
	// Migrate and of Append and Revoke: they serialise these across every process
	// on the database until the transaction ends, or fail (unavailable) when the
	// lock cannot be had in a few seconds. SQLite needs neither (its one writer
	// serialises everything).
	lockMigrations []string
	lockChain      []string
	// notifyRevocations and notifyKeys, where set, tell other nodes listening (see
	// DB.Watch) that revocations or keys changed: run after the change committed,
	// best effort (nodes poll as well).
	notifyRevocations string
	notifyKeys        string

	// schema_migrations
	createMigrations string // no parameters
	appliedMigration string // → version
	recordMigration  string // version, name, applied_at

	// signing_keys
	insertKey string // id, algorithm, private_jwk, created_at, active_at, retired_at
	listKeys  string // → id, algorithm, private_jwk, created_at, active_at, retired_at
	retireKey string // retired_at, id
	// replaceKeyPrivate: private_jwk (new), id, private_jwk (old)
	replaceKeyPrivate string

	// nonces
	useNonce    string // nonce, expires_at, now; affects no row when a live nonce exists
	purgeNonces string // t

	// audit_events; eventColumns lists the columns every select returns, in order.
	auditTail   string // → seq, hash of the last event
	insertEvent string // every column of eventColumns, in order
	// insertEvents[n] inserts n events in one statement (n ≥ 1): insertEvent's
	// parameters n times over. Filled by withInsertEvents.
	insertEvents   [maxInsertEvents + 1]string
	selectEvents   string // "SELECT <eventColumns> FROM audit_events", for Query
	eventByID      string // id
	eventsByToken  string // token_jti
	eventsByParent string // parent_jti
	scanEvents     string // after seq, limit

	// revocations
	lineage          string // root jti, decision allow → jti, expires_at, first seq; every depth
	insertRevocation string // jti, expires_at, revoked_at, reason; ignores an existing jti;
	// numbers the new row one above the largest seq
	revocationByJTI  string // jti → seq, jti, expires_at, revoked_at, reason
	listRevocations  string // t → seq, jti, expires_at, revoked_at, reason
	revocationsAfter string // seq, limit → seq, jti, expires_at, revoked_at, reason in seq order
	isRevoked        string // jti → a row when the jti is revoked

	// users; userColumns lists the columns every select returns, in order.
	insertUser      string // every column of userColumns, in order
	userByName      string // username
	listUsers       string // no parameters; ordered by username, byte-wise
	setUserDisabled string // disabled, username
	setUserRoles    string // roles, username
	deleteUser      string // username

	// sessions; sessionColumns likewise.
	insertSession      string // every column of sessionColumns, in order
	sessionByTokenHash string // token_hash
	endSession         string // ended_at, id; keeps an ended_at already set, yet
	// affects the row whenever it exists

	// auth_codes; codeColumns likewise.
	insertCode  string // every column of codeColumns, in order
	redeemCode  string // redeemed_at, hash; affects no row when redeemed_at is set
	releaseCode string // hash, redeemed_at; clears redeemed_at where it is that
	codeByHash  string // hash

	// refresh_tokens; refreshTokenColumns likewise.
	insertRefreshToken  string // every column of refreshTokenColumns, in order
	useRefreshToken     string // used_at, hash; affects no row when used_at is set
	releaseRefreshToken string // hash, used_at; clears used_at where it is that
	refreshTokenByHash  string // hash

	// PurgeExpired, one statement a table; each takes t and deletes expires_at < t.
	purgeCodes         string
	purgeRefreshTokens string
	purgeSessions      string
}

// maxInsertEvents is the most events one INSERT statement stores: a batch of the
// audit writer is inserted in statements of this many rows and one of the
// remainder, so that the per-statement cost of the driver and database/sql is paid
// once per chunk, not per event. 32 rows of 22 columns stay well under SQLite's
// and PostgreSQL's limits on parameters.
const maxInsertEvents = 32

// withInsertEvents fills q.insertEvents from q.insertEvent, whose parameters are
// bare "?"; placeholders converts each statement to the dialect's.
func withInsertEvents(q queries, placeholders func(string) string) queries {
	head, row, ok := strings.Cut(q.insertEvent, "VALUES")
	if !ok {
		panic("sqlstore: insertEvent has no VALUES")
	}
	row = strings.TrimSpace(row)
	for n := 1; n <= maxInsertEvents; n++ {
		var b strings.Builder
		b.WriteString(head)
		b.WriteString("VALUES ")
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(row)
		}
		q.insertEvents[n] = placeholders(b.String())
	}
	return q
}

// eventColumns are the columns of audit_events in the order scanEvent reads them.
const eventColumns = `seq, id, time, type, client_id, subject, subject_issuer, actors,
	audiences, scopes, parent_jti, token_jti, token_expires, decision, reason, rule,
	request_id, remote_addr, detail, prev_hash, hash, trace_id`

// userColumns are the columns of users in the order scanUser reads them.
const userColumns = `username, password_hash, claims, disabled, created_at, roles`

// sessionColumns are the columns of sessions in the order scanSession reads them.
const sessionColumns = `id, token_hash, subject, idp, amr, acr, auth_time, expires_at, ended_at`

// codeColumns are the columns of auth_codes in the order scanCode reads them.
const codeColumns = `hash, id, client_id, session_id, subject, redirect_uri, scopes, nonce,
	code_challenge, idp, amr, acr, auth_time, expires_at, redeemed_at, dpop_jkt`

// refreshTokenColumns are the columns of refresh_tokens in the order
// scanRefreshToken reads them.
const refreshTokenColumns = `hash, id, family_id, client_id, session_id, subject, scopes,
	audiences, idp, amr, acr, auth_time, issued_at, expires_at, used_at, rule, act, claims, jkt`
