package store

import (
	"context"
	"time"
)

// User is a local account kept in the database (`deputy users add`). Accounts
// listed in the configuration file are not stored.
type User struct {
	Username     string
	PasswordHash string            // argon2id, "$argon2id$v=19$m=…,t=…,p=…$salt$hash"
	Claims       map[string]string // identity claims (email, name, …)
	// Roles grant access beyond signing in (config.RoleAuditor: the audit
	// explorer). The store keeps them sorted, without repeats; none is nil.
	Roles     []string
	Disabled  bool
	CreatedAt time.Time
}

// Users stores local accounts. Usernames are compared exactly (case-sensitively):
// a local user's sub is its username.
//
// The methods that change an account take the audit event recording the change:
// when e is not nil it is appended at the end of the chain (sealed with seal) in
// the same transaction as the change, so the change and its record are stored
// together or not at all; a change that fails (ErrConflict, ErrNotFound) stores
// neither. nil records nothing (tests, tools that record otherwise).
type Users interface {
	// InsertUser adds an account; ErrConflict if the username exists.
	InsertUser(ctx context.Context, u User, e *AuditEvent, seal SealFunc) error
	// UserByName returns the account; ErrNotFound if absent.
	UserByName(ctx context.Context, username string) (User, error)
	// ListUsers returns every account, ordered by username byte-wise (as Go
	// compares strings, not by a locale's collation).
	ListUsers(ctx context.Context) ([]User, error)
	// SetUserDisabled disables or enables an account (setting the state it has is
	// not an error); ErrNotFound if absent.
	SetUserDisabled(ctx context.Context, username string, disabled bool, e *AuditEvent, seal SealFunc) error
	// SetUserRoles replaces the account's roles with roles (kept sorted, without
	// repeats; none removes all); ErrNotFound if absent.
	SetUserRoles(ctx context.Context, username string, roles []string, e *AuditEvent, seal SealFunc) error
	// DeleteUser removes an account; ErrNotFound if absent.
	DeleteUser(ctx context.Context, username string, e *AuditEvent, seal SealFunc) error
}

// Session is a browser sign-in session. Its ID is the OIDC "sid" and the root of
// the audit lineage of everything issued in it, so ending it revokes all of that.
type Session struct {
	ID        string
	TokenHash []byte // SHA-256 of the session cookie's value; the value is never stored
	Subject   string
	IdP       string // "local" or the name of the upstream identity provider
	AMR       []string
	ACR       string
	AuthTime  time.Time
	ExpiresAt time.Time
	EndedAt   time.Time // zero while the session is active
}

// Sessions stores sign-in sessions.
type Sessions interface {
	// InsertSession adds a session; ErrConflict if its ID or TokenHash exists.
	InsertSession(ctx context.Context, s Session) error
	// SessionByTokenHash returns the session whose cookie hashes to h (ended and
	// expired ones too: the caller decides); ErrNotFound if none.
	SessionByTokenHash(ctx context.Context, h []byte) (Session, error)
	// EndSession sets EndedAt of the session with that id to at; ErrNotFound if
	// absent. Ending an ended session keeps its first EndedAt and is not an error;
	// an expired session is ended like any other.
	EndSession(ctx context.Context, id string, at time.Time) error
}

// AuthCode is an authorization code (RFC 6749 §4.1.2). Only its hash is stored.
// ID names the code in the audit lineage: tokens issued for it have it as parent.
type AuthCode struct {
	Hash          []byte // SHA-256 of the code
	ID            string
	ClientID      string
	SessionID     string
	Subject       string
	RedirectURI   string
	Scopes        []string
	Nonce         string
	CodeChallenge string // PKCE S256 challenge (RFC 7636 §4.2); "" when none
	IdP           string
	AMR           []string
	ACR           string
	AuthTime      time.Time
	ExpiresAt     time.Time
	RedeemedAt    time.Time // zero until redeemed
	// DPoPJKT is the dpop_jkt of the authorization request (RFC 9449 §10): the
	// token request must carry a DPoP proof of that key; "" when none.
	DPoPJKT string
}

// Codes stores authorization codes; each can be redeemed once, cluster-wide.
type Codes interface {
	// InsertCode adds a code; ErrConflict if its hash or ID exists.
	InsertCode(ctx context.Context, c AuthCode) error
	// RedeemCode atomically (cluster-wide) marks the code redeemed at `at` and
	// returns it, with RedeemedAt = at. ErrNotFound if no code has that hash. If
	// it was redeemed before, it returns the code (with its first RedeemedAt) and
	// ErrConflict, so the caller can revoke what it issued. Expiry is the caller's
	// to check.
	RedeemCode(ctx context.Context, hash []byte, at time.Time) (AuthCode, error)
	// ReleaseCode undoes the RedeemCode that marked the code redeemed at `at`, so
	// that it can be redeemed again: for a redemption whose tokens could not be
	// recorded, and so were never handed out. ErrConflict if the code is not
	// redeemed at `at`; ErrNotFound if no code has that hash.
	ReleaseCode(ctx context.Context, hash []byte, at time.Time) error
	// CodeByHash returns the code whose hash is h, redeemed or not, without
	// redeeming it (so that a request failing the checks of RFC 6749 §4.1.3 does
	// not use it up); ErrNotFound if none.
	CodeByHash(ctx context.Context, h []byte) (AuthCode, error)
}

// RefreshToken is an opaque refresh token. Only its hash is stored. ID names it in
// the audit lineage; FamilyID is the lineage root of its rotation family (the
// authorization code it descends from), which reuse detection revokes.
type RefreshToken struct {
	Hash      []byte // SHA-256 of the token
	ID        string
	FamilyID  string
	ClientID  string
	SessionID string
	Subject   string
	Scopes    []string
	Audiences []string
	IdP       string
	AMR       []string
	ACR       string
	AuthTime  time.Time
	IssuedAt  time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until rotated
	// Exchange facts, for a refresh token issued by a token exchange (RFC 8693);
	// empty for one issued at sign-in. Rule names the policy that allowed it, Act is
	// the act claim (JSON) and Claims the identity claims (a JSON object) that every
	// access token refreshed from it carries.
	Rule, Act, Claims string
	// JKT binds the token to a DPoP key (RFC 9449 §5: a public client's refresh
	// token): it is used only with a proof of the key of that thumbprint; "" when
	// unbound.
	JKT string
}

// Exchanged reports whether the token was issued by a token exchange.
func (t *RefreshToken) Exchanged() bool { return t.Rule != "" }

// RefreshTokens stores refresh tokens; each can be used (rotated) once,
// cluster-wide.
type RefreshTokens interface {
	// InsertRefreshToken adds a token; ErrConflict if its hash or ID exists.
	InsertRefreshToken(ctx context.Context, t RefreshToken) error
	// UseRefreshToken atomically (cluster-wide) marks the token used at `at` and
	// returns it, with UsedAt = at. ErrNotFound if no token has that hash. If it
	// was used before (reuse), it returns the token (with its first UsedAt) and
	// ErrConflict. Expiry is the caller's to check.
	UseRefreshToken(ctx context.Context, hash []byte, at time.Time) (RefreshToken, error)
	// ReleaseRefreshToken undoes the UseRefreshToken that marked the token used at
	// `at`, so that it can be used again: for a rotation whose tokens could not be
	// recorded, and so were never handed out. ErrConflict if the token is not
	// used at `at`; ErrNotFound if no token has that hash.
	ReleaseRefreshToken(ctx context.Context, hash []byte, at time.Time) error
	// RefreshTokenByHash returns the token whose hash is h, used or not, without
	// using it (for introspection and revocation); ErrNotFound if none.
	RefreshTokenByHash(ctx context.Context, h []byte) (RefreshToken, error)
}

// Expiring deletes rows that no longer matter: codes, refresh tokens and sessions
// whose ExpiresAt is before t (ExpiresAt < t: a row expiring at t itself is kept),
// whether used, ended or not; and nothing else. Until then a redeemed code or a
// rotated refresh token stays, so that its replay is detected.
type Expiring interface {
	PurgeExpired(ctx context.Context, t time.Time) error
}
