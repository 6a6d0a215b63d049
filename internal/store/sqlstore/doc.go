// Package sqlstore implements store.Store on SQL databases: the signing keys, nonces,
// audit trail and revocations of one deployment, and its sign-in state (local users,
// sessions, authorization codes, refresh tokens).
//
// It owns the schema (embedded migrations under migrations/<dialect>/NNNN_name.sql,
// applied in order and recorded in schema_migrations), the SQL text, the encoding of
// values into columns (times as unix microseconds UTC, lists as space-separated
// text; see migrations/sqlite/0001_init.sql) and the mapping of database errors onto
// store.ErrNotFound, store.ErrConflict and store.ErrUnavailable. Secrets (session
// cookies, authorization codes, refresh tokens) exist in it only as their hashes.
//
// Single use (RedeemCode, UseRefreshToken) is one conditional UPDATE, which only a
// row not used yet passes, and a read of the row, in one write transaction: it
// holds across processes and nodes on the same database, not only within one.
// ReleaseCode and ReleaseRefreshToken undo it only where the mark is still the one
// a given use set (a request whose tokens could not be recorded gives it back).
//
// Everything that differs between database engines is kept in one dialect value per
// engine (see dialect.go): how a dsn becomes connection pools, every SQL statement,
// placeholders, locks and error classification. There are two: SQLite
// (modernc.org/sqlite, no cgo; one node) and PostgreSQL (jackc/pgx v5; any number of
// nodes on one database).
//
// On PostgreSQL, what SQLite's single writer gives for free is made explicit:
// Append and Revoke take one transaction-scoped advisory lock (the chain lock), so
// the audit chain has one tail, revocations are numbered in commit order
// (RevocationsAfter), and a token exchanged from a parent revoked on another node
// is refused by Append (store.ParentRevokedError) or found and revoked by Revoke;
// Migrate takes another, so that nodes starting at once take turns. Revocations and
// key changes are announced with NOTIFY; Watch listens on a connection of its own.
//
// SQLite runs in WAL mode with synchronous=FULL, so an audit event is on disk when
// Append returns. Writes go through a single connection (SQLite has one writer);
// reads use a separate pool and never wait behind a write; a third connection
// checkpoints the WAL beside the writer, so that the writer's own checkpoint (every
// few thousand frames, which keeps the WAL bounded) finds little left to copy.
// The writer runs with secure_delete, so what a write frees is zeroed; EraseFreed
// rewrites the file (VACUUM) and empties the WAL, for what was freed before.
//
// The package imports no other deputy package than store; the conformance suite in
// store/storetest is what it is tested against.
package sqlstore
