package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/deputy-auth/deputy/internal/store"
)

//go:embed migrations/postgres/*.sql
var postgresMigrationFiles embed.FS

// Tuning of the PostgreSQL pool. A node's writes are mostly the audit writer's
// batches (one at a time, serialised by the chain lock anyway), so a small pool
// serves it; reads (keys, codes, sessions, trace) share it.
const (
	postgresMaxConns       = 16
	postgresConnectTimeout = 5 * time.Second
	// notifyChannel is the channel of LISTEN/NOTIFY between nodes. Payloads are
	// "<schema> <topic>": deployments in other schemas of the database share the
	// channel and ignore each other.
	notifyChannel = "deputy_changes"
	// lockWait bounds how long Append, Revoke and Migrate wait for their advisory
	// lock: a node that holds it longer is stuck, and waiting for it would stop
	// every node (the error is store.ErrUnavailable, SQLSTATE 55P03).
	lockWait = "5s"
)

// advisoryLock is the statement taking the transaction-scoped advisory lock name
// of this deployment (its schema), within lockWait.
func advisoryLock(name string) []string {
	return []string{
		`SET LOCAL lock_timeout = '` + lockWait + `'`,
		`SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':deputy:` + name + `', 0))`,
	}
}

func postgresDialect() dialect {
	migrations, err := fs.Sub(postgresMigrationFiles, "migrations/postgres")
	if err != nil {
		panic(err) // the embedded path is a constant
	}
	return dialect{
		name:          "postgres",
		connect:       postgresConnect,
		migrations:    migrations,
		q:             postgresQueries(),
		placeholder:   func(n int) string { return "$" + strconv.Itoa(n) },
		contains:      func(col, param string) string { return "strpos(" + col + ", " + param + ") > 0" },
		isConflict:    func(err error) bool { return pgCode(err) == "23505" },
		isUnavailable: postgresIsUnavailable,
	}
}

// postgresConnect opens one pool for reads and writes on dsn, a PostgreSQL URL
// ("postgres://user@host:5432/db?sslmode=disable") or keyword/value string, as pgx
// reads it; parameters pgx does not know are sent as run-time parameters (e.g.
// search_path). It fails within about five seconds (connect_timeout, unless the dsn
// sets one) when the server cannot be reached, naming it. Later outages need no
// action: the pool reconnects by itself.
func postgresConnect(ctx context.Context, dsn string) (connection, error) {
	if dsn == "" {
		return connection{}, errors.New("sqlstore: empty postgres dsn")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return connection{}, fmt.Errorf("sqlstore: postgres dsn: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = postgresConnectTimeout
	}
	// A node that stalls inside a transaction (paused VM, partition) must not hold
	// the chain lock for long: the server ends such sessions, unless the dsn says
	// otherwise.
	for k, v := range map[string]string{"idle_in_transaction_session_timeout": "15s", "tcp_keepalives_idle": "30"} {
		if _, set := cfg.RuntimeParams[k]; !set {
			cfg.RuntimeParams[k] = v
		}
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(postgresMaxConns)
	db.SetMaxIdleConns(postgresMaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 2*postgresConnectTimeout)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return connection{}, fmt.Errorf("sqlstore: postgres at %s is unreachable: %w: %w", pgAddress(cfg), store.ErrUnavailable, err)
	}
	return connection{w: db, r: db, watch: func(ctx context.Context, notify func(string)) error {
		return postgresWatch(ctx, cfg, notify)
	}}, nil
}

// pgAddress names the server of cfg for messages (never the password).
func pgAddress(cfg *pgx.ConnConfig) string {
	host := cfg.Host
	if strings.HasPrefix(host, "/") {
		return host + " (socket) database " + cfg.Database
	}
	return net.JoinHostPort(host, strconv.Itoa(int(cfg.Port))) + " database " + cfg.Database
}

// postgresWatch listens on notifyChannel on a connection of its own, calling
// notify with each payload, and notify("") each time listening starts (anything may
// have been missed before). When the connection fails it reconnects, waiting up to
// a few seconds between attempts, until ctx ends.
func postgresWatch(ctx context.Context, cfg *pgx.ConnConfig, notify func(string)) error {
	backoff := 100 * time.Millisecond
	for {
		err := postgresListen(ctx, cfg, notify, func() { backoff = 100 * time.Millisecond })
		if ctx.Err() != nil {
			return nil
		}
		_ = err // the caller polls meanwhile; the next attempt reports nothing new
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 3*time.Second)
	}
}

func postgresListen(ctx context.Context, cfg *pgx.ConnConfig, notify func(string), listening func()) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var schema string
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	listening()
	notify("")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if s, topic, ok := strings.Cut(n.Payload, " "); ok && s == schema {
			notify(topic)
		}
	}
}

// pgCode is the SQLSTATE of a server error, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// postgresIsUnavailable reports errors of reaching or using the server rather than
// of a statement: connection failures and losses, the server shutting down or
// refusing connections, running out of resources.
func postgresIsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true // whatever the server said (no such database, bad password): not reached
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the caller's own deadline, not the database's state
	}
	if code := pgCode(err); code != "" {
		switch {
		case strings.HasPrefix(code, "08"), // connection exception
			strings.HasPrefix(code, "53"),                     // insufficient resources
			strings.HasPrefix(code, "57P"),                    // admin/crash shutdown, cannot connect now
			code == "25006",                                   // read-only transaction: a standby after failover
			code == "40001", code == "40P01", code == "55P03": // serialization, deadlock, lock not available
			return true
		}
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) ||
		pgconn.Timeout(err) || errors.Is(err, sql.ErrConnDone) ||
		strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "unexpected EOF")
}

// postgresQueries are the SQLite statements with "$n" placeholders, and the
// statements where PostgreSQL differs.
func postgresQueries() queries {
	q := withInsertEvents(sqliteQueries, dollarPlaceholders)
	for _, s := range []*string{
		&q.appliedMigration, &q.recordMigration,
		&q.insertKey, &q.listKeys, &q.retireKey, &q.replaceKeyPrivate,
		&q.useNonce, &q.purgeNonces,
		&q.auditTail, &q.insertEvent, &q.selectEvents, &q.eventByID, &q.eventsByToken, &q.eventsByParent, &q.scanEvents,
		&q.lineage, &q.insertRevocation, &q.revocationByJTI, &q.listRevocations, &q.revocationsAfter, &q.isRevoked,
		&q.insertUser, &q.userByName, &q.setUserDisabled, &q.setUserRoles, &q.deleteUser,
		&q.insertSession, &q.sessionByTokenHash, &q.endSession,
		&q.insertCode, &q.redeemCode, &q.releaseCode, &q.codeByHash,
		&q.insertRefreshToken, &q.useRefreshToken, &q.releaseRefreshToken, &q.refreshTokenByHash,
		&q.purgeCodes, &q.purgeRefreshTokens, &q.purgeSessions,
	} {
		*s = dollarPlaceholders(*s)
	}
	q.createMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    BIGINT NOT NULL PRIMARY KEY,
		name       TEXT   NOT NULL,
		applied_at BIGINT NOT NULL
	)`
	// Byte-wise, as SQLite's BINARY collation and Go's string comparison are.
	q.listUsers = `SELECT ` + userColumns + ` FROM users ORDER BY username COLLATE "C"`
	q.lockMigrations = advisoryLock("migrations")
	q.lockChain = advisoryLock("chain")
	q.notifyRevocations = `SELECT pg_notify('` + notifyChannel + `', current_schema() || ' revocations')`
	q.notifyKeys = `SELECT pg_notify('` + notifyChannel + `', current_schema() || ' keys')`
	return q
}

// dollarPlaceholders rewrites SQLite's placeholders into PostgreSQL's: "?N" is "$N",
// and each bare "?" is the next number after the last one used. The statements
// hold no '?' inside literals.
func dollarPlaceholders(q string) string {
	var b strings.Builder
	next := 1
	for i := 0; i < len(q); i++ {
		if q[i] != '?' {
			b.WriteByte(q[i])
			continue
		}
		j := i + 1
		for j < len(q) && q[j] >= '0' && q[j] <= '9' {
			j++
		}
		if j > i+1 {
			n, _ := strconv.Atoi(q[i+1 : j])
			b.WriteString("$" + q[i+1:j])
			next = n + 1
			i = j - 1
			continue
		}
		b.WriteString("$" + strconv.Itoa(next))
		next++
	}
	return b.String()
}
