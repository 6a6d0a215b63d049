-- deputy schema, version 1 (SQLite).
--
-- Conventions, shared by every table:
--   * times are INTEGER unix microseconds, UTC; NULL where the Go value is the zero
--     time ("none" / "never");
--   * text that may be absent is '' rather than NULL;
--   * list columns (audit_events.actors, audiences, scopes) hold the list as
--     ' a b c ': each element with '%' written as '%25' and ' ' as '%20', the
--     elements separated by one space, with one space before the first and after the
--     last; the empty list is ''. An element x is a member exactly when
--     instr(column, ' ' || x_escaped || ' ') > 0 (instr: case-sensitive, no wildcards).
-- Tables are STRICT so that a value of the wrong type is an error, not a surprise.

CREATE TABLE signing_keys (
    id          TEXT    NOT NULL PRIMARY KEY,  -- JWK kid
    algorithm   TEXT    NOT NULL,
    private_jwk BLOB    NOT NULL,              -- JWK JSON of the private key
    created_at  INTEGER NOT NULL,
    active_at   INTEGER NOT NULL,
    retired_at  INTEGER                        -- NULL: not retired
) STRICT;

CREATE TABLE nonces (
    nonce      TEXT    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX nonces_expires_at ON nonces (expires_at);

CREATE TABLE audit_events (
    seq            INTEGER NOT NULL PRIMARY KEY,  -- position in the chain, from 1
    id             TEXT    NOT NULL UNIQUE,
    time           INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    client_id      TEXT    NOT NULL DEFAULT '',
    subject        TEXT    NOT NULL DEFAULT '',
    subject_issuer TEXT    NOT NULL DEFAULT '',
    actors         TEXT    NOT NULL DEFAULT '',   -- list, current actor first
    audiences      TEXT    NOT NULL DEFAULT '',   -- list
    scopes         TEXT    NOT NULL DEFAULT '',   -- list
    parent_jti     TEXT    NOT NULL DEFAULT '',
    token_jti      TEXT    NOT NULL DEFAULT '',
    token_expires  INTEGER,                       -- NULL: no token
    decision       TEXT    NOT NULL DEFAULT '',
    reason         TEXT    NOT NULL DEFAULT '',
    rule           TEXT    NOT NULL DEFAULT '',
    request_id     TEXT    NOT NULL DEFAULT '',
    remote_addr    TEXT    NOT NULL DEFAULT '',
    detail         TEXT    NOT NULL DEFAULT '',   -- JSON object or ''
    prev_hash      BLOB,                          -- NULL for the first event
    hash           BLOB
) STRICT;

-- Lineage lookups (trace, revocation cascade). Partial: most events carry no token
-- or no parent, and queries state the same condition so the planner can use them.
CREATE INDEX audit_events_token_jti  ON audit_events (token_jti)  WHERE token_jti  <> '';
CREATE INDEX audit_events_parent_jti ON audit_events (parent_jti) WHERE parent_jti <> '';
CREATE INDEX audit_events_subject    ON audit_events (subject);
CREATE INDEX audit_events_client_id  ON audit_events (client_id);
CREATE INDEX audit_events_time       ON audit_events (time);

CREATE TABLE revocations (
    jti        TEXT    NOT NULL PRIMARY KEY,
    expires_at INTEGER,                           -- NULL: the token never expires
    revoked_at INTEGER NOT NULL,
    reason     TEXT    NOT NULL DEFAULT ''
) STRICT, WITHOUT ROWID;

CREATE INDEX revocations_expires_at ON revocations (expires_at);
