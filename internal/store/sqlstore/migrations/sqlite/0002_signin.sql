-- deputy schema, version 2 (SQLite): sign-in state. The conventions of
-- 0001_init.sql hold (times as unix microseconds, NULL for the zero time where a
-- column allows it, '' for absent text, lists as ' a b c ').
--
-- Secrets are never stored: a session cookie, an authorization code and a refresh
-- token are kept as the SHA-256 of their value (a BLOB of 32 bytes), and looked up
-- by it. Their id columns name them in the audit trail (parent_jti/token_jti).
--
-- There are no foreign keys between these tables: a refresh token may outlive the
-- session it descends from, and each table is purged by its own expires_at.

CREATE TABLE users (
    username      TEXT    NOT NULL PRIMARY KEY,   -- the local user's sub; exact, case-sensitive
    password_hash TEXT    NOT NULL,               -- argon2id PHC string
    claims        TEXT    NOT NULL DEFAULT '{}'   -- JSON object of string values
                  CHECK (json_valid(claims)),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    id         TEXT    NOT NULL PRIMARY KEY,      -- the OIDC sid
    token_hash BLOB    NOT NULL UNIQUE,           -- SHA-256 of the cookie's value
    subject    TEXT    NOT NULL,
    idp        TEXT    NOT NULL DEFAULT '',       -- 'local' or an upstream IdP's name
    amr        TEXT    NOT NULL DEFAULT '',       -- list
    acr        TEXT    NOT NULL DEFAULT '',
    auth_time  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at   INTEGER                            -- NULL: not ended
) STRICT;

CREATE INDEX sessions_subject    ON sessions (subject);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE auth_codes (
    hash           BLOB    NOT NULL PRIMARY KEY,  -- SHA-256 of the code
    id             TEXT    NOT NULL UNIQUE,
    client_id      TEXT    NOT NULL,
    session_id     TEXT    NOT NULL DEFAULT '',
    subject        TEXT    NOT NULL,
    redirect_uri   TEXT    NOT NULL DEFAULT '',
    scopes         TEXT    NOT NULL DEFAULT '',   -- list
    nonce          TEXT    NOT NULL DEFAULT '',
    code_challenge TEXT    NOT NULL DEFAULT '',   -- PKCE S256; '' when none
    idp            TEXT    NOT NULL DEFAULT '',
    amr            TEXT    NOT NULL DEFAULT '',   -- list
    acr            TEXT    NOT NULL DEFAULT '',
    auth_time      INTEGER,                       -- NULL: unknown
    expires_at     INTEGER NOT NULL,
    redeemed_at    INTEGER                        -- NULL: not redeemed; set once
) STRICT;

CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE refresh_tokens (
    hash       BLOB    NOT NULL PRIMARY KEY,      -- SHA-256 of the token
    id         TEXT    NOT NULL UNIQUE,
    family_id  TEXT    NOT NULL,                  -- lineage root of the rotation family
    client_id  TEXT    NOT NULL,
    session_id TEXT    NOT NULL DEFAULT '',
    subject    TEXT    NOT NULL,
    scopes     TEXT    NOT NULL DEFAULT '',       -- list
    audiences  TEXT    NOT NULL DEFAULT '',       -- list
    idp        TEXT    NOT NULL DEFAULT '',
    amr        TEXT    NOT NULL DEFAULT '',       -- list
    acr        TEXT    NOT NULL DEFAULT '',
    auth_time  INTEGER,                           -- NULL: unknown
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER                            -- NULL: not used (rotated); set once
) STRICT;

CREATE INDEX refresh_tokens_family_id  ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
