-- deputy schema, version 1 (PostgreSQL): the tables of SQLite versions 1–4 in one
-- step, with the same columns, encodings and indexes (see
-- migrations/sqlite/0001_init.sql for the conventions):
--   * times are BIGINT unix microseconds, UTC; NULL where the Go value is the zero
--     time ("none" / "never");
--   * text that may be absent is '' rather than NULL;
--   * list columns hold ' a b c ' (elements escaped, space-separated, one space
--     around), and x is a member exactly when strpos(column, ' ' || x || ' ') > 0;
--   * hashes and key material are BYTEA.
-- Every node of a cluster uses these tables; Migrate holds an advisory lock, so
-- nodes that start at once take turns.

CREATE TABLE signing_keys (
    id          TEXT   NOT NULL PRIMARY KEY,  -- JWK kid
    algorithm   TEXT   NOT NULL,
    private_jwk BYTEA  NOT NULL,              -- JWK JSON of the private key
    created_at  BIGINT NOT NULL,
    active_at   BIGINT NOT NULL,
    retired_at  BIGINT                        -- NULL: not retired
);

CREATE TABLE nonces (
    nonce      TEXT   NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

CREATE INDEX nonces_expires_at ON nonces (expires_at);

-- The chain: seq is assigned by Append under the chain lock (one above the tail),
-- not by a sequence, so that it has no gaps.
CREATE TABLE audit_events (
    seq            BIGINT NOT NULL PRIMARY KEY,  -- position in the chain, from 1
    id             TEXT   NOT NULL UNIQUE,
    time           BIGINT NOT NULL,
    type           TEXT   NOT NULL,
    client_id      TEXT   NOT NULL DEFAULT '',
    subject        TEXT   NOT NULL DEFAULT '',
    subject_issuer TEXT   NOT NULL DEFAULT '',
    actors         TEXT   NOT NULL DEFAULT '',   -- list, current actor first
    audiences      TEXT   NOT NULL DEFAULT '',   -- list
    scopes         TEXT   NOT NULL DEFAULT '',   -- list
    parent_jti     TEXT   NOT NULL DEFAULT '',
    token_jti      TEXT   NOT NULL DEFAULT '',
    token_expires  BIGINT,                       -- NULL: no token
    decision       TEXT   NOT NULL DEFAULT '',
    reason         TEXT   NOT NULL DEFAULT '',
    rule           TEXT   NOT NULL DEFAULT '',
    request_id     TEXT   NOT NULL DEFAULT '',
    remote_addr    TEXT   NOT NULL DEFAULT '',
    detail         TEXT   NOT NULL DEFAULT '',   -- JSON object or ''
    prev_hash      BYTEA,                        -- NULL for the first event
    hash           BYTEA
);

CREATE INDEX audit_events_token_jti  ON audit_events (token_jti)  WHERE token_jti  <> '';
CREATE INDEX audit_events_parent_jti ON audit_events (parent_jti) WHERE parent_jti <> '';
CREATE INDEX audit_events_subject    ON audit_events (subject);
CREATE INDEX audit_events_client_id  ON audit_events (client_id);
CREATE INDEX audit_events_time       ON audit_events (time);

-- seq: one above the largest, assigned under the chain lock, so that it grows with
-- commit order and nodes can read what was revoked since the last one they saw.
CREATE TABLE revocations (
    jti        TEXT   NOT NULL PRIMARY KEY,
    expires_at BIGINT,                           -- NULL: the token never expires
    revoked_at BIGINT NOT NULL,
    reason     TEXT   NOT NULL DEFAULT '',
    seq        BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX revocations_expires_at ON revocations (expires_at);
CREATE INDEX revocations_seq        ON revocations (seq);

-- Sign-in state (SQLite version 2, 3). Secrets are kept as their SHA-256 only.

CREATE TABLE users (
    username      TEXT    NOT NULL PRIMARY KEY,  -- the local user's sub; exact, case-sensitive
    password_hash TEXT    NOT NULL,              -- argon2id PHC string
    claims        TEXT    NOT NULL DEFAULT '{}', -- JSON object of string values
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    BIGINT  NOT NULL
);

CREATE TABLE sessions (
    id         TEXT   NOT NULL PRIMARY KEY,      -- the OIDC sid
    token_hash BYTEA  NOT NULL UNIQUE,           -- SHA-256 of the cookie's value
    subject    TEXT   NOT NULL,
    idp        TEXT   NOT NULL DEFAULT '',
    amr        TEXT   NOT NULL DEFAULT '',       -- list
    acr        TEXT   NOT NULL DEFAULT '',
    auth_time  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at   BIGINT                            -- NULL: not ended
);

CREATE INDEX sessions_subject    ON sessions (subject);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE auth_codes (
    hash           BYTEA  NOT NULL PRIMARY KEY,  -- SHA-256 of the code
    id             TEXT   NOT NULL UNIQUE,
    client_id      TEXT   NOT NULL,
    session_id     TEXT   NOT NULL DEFAULT '',
    subject        TEXT   NOT NULL,
    redirect_uri   TEXT   NOT NULL DEFAULT '',
    scopes         TEXT   NOT NULL DEFAULT '',   -- list
    nonce          TEXT   NOT NULL DEFAULT '',
    code_challenge TEXT   NOT NULL DEFAULT '',
    idp            TEXT   NOT NULL DEFAULT '',
    amr            TEXT   NOT NULL DEFAULT '',   -- list
    acr            TEXT   NOT NULL DEFAULT '',
    auth_time      BIGINT,                       -- NULL: unknown
    expires_at     BIGINT NOT NULL,
    redeemed_at    BIGINT                        -- NULL: not redeemed; set once
);

CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE refresh_tokens (
    hash       BYTEA  NOT NULL PRIMARY KEY,      -- SHA-256 of the token
    id         TEXT   NOT NULL UNIQUE,
    family_id  TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    session_id TEXT   NOT NULL DEFAULT '',
    subject    TEXT   NOT NULL,
    scopes     TEXT   NOT NULL DEFAULT '',       -- list
    audiences  TEXT   NOT NULL DEFAULT '',       -- list
    idp        TEXT   NOT NULL DEFAULT '',
    amr        TEXT   NOT NULL DEFAULT '',       -- list
    acr        TEXT   NOT NULL DEFAULT '',
    auth_time  BIGINT,                           -- NULL: unknown
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,                           -- NULL: not used (rotated); set once
    rule       TEXT   NOT NULL DEFAULT '',       -- exchanged refresh tokens: the policy rule,
    act        TEXT   NOT NULL DEFAULT '',       -- the act claim (JSON)
    claims     TEXT   NOT NULL DEFAULT ''        -- and identity claims (JSON object)
);

CREATE INDEX refresh_tokens_family_id  ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
