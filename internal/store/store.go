package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Implementations wrap them; callers test with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	ErrConflict = errors.New("store: conflict")
	// ErrUnavailable means the backing database could not be reached.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrRevoked means a token is revoked. token.ErrRevoked is this error.
	ErrRevoked = errors.New("token is revoked")
)

// ParentRevokedError is what AuditLog.Append returns, storing nothing, when an
// allowed event that issues a token (TokenJTI set) names a revoked ParentJTI: the
// token must not be issued. The check runs inside the transaction that holds the
// tail of the chain, serialised with Revoke on every node, so a token exchanged
// from a revoked one is either refused here or found and revoked by Revoke.
type ParentRevokedError struct {
	Index     int    // of the event in the slice given to Append
	ParentJTI string // the revoked token
}

func (e *ParentRevokedError) Error() string {
	return fmt.Sprintf("store: event %d: its parent token %s is revoked", e.Index, e.ParentJTI)
}

// Unwrap makes errors.Is(err, ErrRevoked) hold.
func (e *ParentRevokedError) Unwrap() error { return ErrRevoked }

// IssuesFromParent reports whether Append checks e's parent for revocation: an
// allowed event that issues a token from a parent token — the events Revoke follows
// down the lineage (not revocations, denials, call reports, key or sign-in events).
func IssuesFromParent(e *AuditEvent) bool {
	if e.Decision != DecisionAllow || e.ParentJTI == "" || e.TokenJTI == "" {
		return false
	}
	switch e.Type {
	case EventTokenRevoked, EventCallReported, EventDenied, EventKeyRotated, EventSignIn:
		return false
	}
	return true
}

// Key is a signing key. Private is the private key as a JSON Web Key (it includes
// the public part), or that JWK encrypted by internal/keys when a key-encryption
// key is configured; the store keeps it as given. A key is published in the JWKS from CreatedAt, signs from
// ActiveAt, and is withdrawn from the JWKS after RetiredAt (zero: never).
type Key struct {
	ID        string // the JWK "kid"
	Algorithm string // ES256, EdDSA, RS256, PS256
	Private   []byte // JWK JSON of the private key, or its encrypted form
	CreatedAt time.Time
	ActiveAt  time.Time
	RetiredAt time.Time
}

// Keys stores signing keys.
type Keys interface {
	// InsertKey adds a key; ErrConflict if its ID exists.
	InsertKey(ctx context.Context, k Key) error
	// ListKeys returns every key, oldest first.
	ListKeys(ctx context.Context) ([]Key, error)
	// RetireKey sets RetiredAt of the key; ErrNotFound if absent.
	RetireKey(ctx context.Context, id string, at time.Time) error
	// ReplaceKeyPrivate sets the key's Private to next if it is still old (to
	// encrypt a stored key in place); ErrConflict if it is not, or there is no
	// such key.
	ReplaceKeyPrivate(ctx context.Context, id string, old, next []byte) error
	// EraseFreed overwrites what replaced or deleted rows left behind in the
	// database's own files — after private keys stored in the clear were
	// encrypted, their old bytes — as far as the engine allows: SQLite rewrites
	// its file and empties its WAL; PostgreSQL cannot (dead rows stay until
	// VACUUM, and backups keep them: the README advises a rotation).
	EraseFreed(ctx context.Context) error
	// RotateKeys inserts r.Add, sets the RetiredAt of every key in r.Retire to
	// r.RetireAt and appends events at the end of the chain (sealed with seal),
	// in one transaction: all of it or nothing, also across a crash. ErrConflict
	// if a key to add exists (or an event's id does), ErrNotFound if a key to
	// retire does not.
	RotateKeys(ctx context.Context, r KeyRotation, events []*AuditEvent, seal SealFunc) error
}

// KeyRotation is what one `deputy keys rotate` changes in the key table.
type KeyRotation struct {
	Add      []Key     // the new keys
	Retire   []string  // ids of keys to retire
	RetireAt time.Time // when they retire
}

// Revocation marks one token as revoked. ExpiresAt is the token's own expiry, after
// which the row may be purged (an expired token is refused anyway).
type Revocation struct {
	Seq       int64 // assigned by the store: revocations are numbered in the order they were recorded
	JTI       string
	ExpiresAt time.Time
	RevokedAt time.Time
	Reason    string
}

// Nonces remembers single-use values (private_key_jwt jti, SAML assertion IDs) until
// they expire.
type Nonces interface {
	// UseNonce records key as used until expiresAt; ErrConflict if it is already
	// recorded and not expired.
	UseNonce(ctx context.Context, key string, expiresAt time.Time) error
	// PurgeNonces deletes nonces expired before t.
	PurgeNonces(ctx context.Context, t time.Time) error
}

// NonceUse is one nonce for AuditNonces.AppendNonces: Key used until ExpiresAt,
// as in Nonces.UseNonce.
type NonceUse struct {
	Key       string
	ExpiresAt time.Time
	// At is when the nonce was presented: a record of Key is live, and Key a
	// conflict, unless it expired by At — however long the commit took after
	// it. Zero means the time of the commit.
	At time.Time
}

// AuditNonces is an AuditLog that records nonces in the transaction of an
// Append, so that the DPoP proofs of requests and their audit events share one
// durable commit (audit.Writer.UseNonce).
type AuditNonces interface {
	// AppendNonces records nonces as Nonces.UseNonce does, in order, and appends
	// events as Append does (events may be empty), in one atomic, durable commit.
	// It returns the outcome of each nonce (nil, or ErrConflict for one recorded
	// before and not expired, or earlier in nonces) when the commit succeeded; on
	// an error nothing is stored, and the error is Append's.
	AppendNonces(ctx context.Context, nonces []NonceUse, events []*AuditEvent, seal SealFunc) ([]error, error)
}

// Decision values of an audit event.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
)

// Event types recorded in the audit trail.
const (
	EventTokenIssued    = "token.issued"    // a grant other than exchange issued a token
	EventTokenExchanged = "token.exchanged" // RFC 8693 exchange issued a token
	EventTokenRevoked   = "token.revoked"   // a token and its descendants were revoked
	EventDenied         = "request.denied"  // any refused request, with its reason
	EventKeyRotated     = "key.rotated"
	EventSignIn         = "signin"      // a user signed in; TokenJTI is the session id, root of what follows
	EventSignOut        = "signout"     // a session ended (its lineage is revoked)
	EventCodeIssued     = "code.issued" // an authorization code; ParentJTI is the session
	EventCallReported   = "call.reported"
	EventUserChanged    = "user.changed" // a local account was added, disabled, enabled or deleted, or its roles changed
	// EventAuditRecovered: the audit trail was written again after a commit failed
	// for the database's sake (full disk, unreachable server); Reason names the
	// failure. Between the failure and this event the node issued nothing.
	EventAuditRecovered = "audit.recovered"
	// EventRateLimited: requests of a client, or from an address, were refused by
	// limits.rate; recorded once a minute per client (per address and claimed
	// client for the others), the rest summed up (audit.Aggregator).
	EventRateLimited = "rate_limited"
	// EventConfigReloaded: SIGHUP reloaded the configuration file (decision
	// allow) or refused it and kept the running configuration (deny). Detail
	// holds the file, its SHA-256 (hex), and what was added, removed and changed
	// or why it was refused (internal/server reload.go).
	EventConfigReloaded = "config.reloaded"
	// EventAuditViewed: an auditor viewed a page of the audit explorer (or
	// exported a search); Subject is the viewer, Detail the page and its
	// criteria or id ({"page": …, "query": {…}}).
	EventAuditViewed = "audit.viewed"
)

// AuditEvent is one record of the audit trail. Seq, PrevHash and Hash are assigned
// when the event is appended; everything else is set by the caller.
type AuditEvent struct {
	Seq           int64     // position in the chain, from 1
	ID            string    // unique event id
	Time          time.Time // UTC, microsecond precision
	Type          string    // one of the Event… constants
	ClientID      string    // authenticated client, if any
	Subject       string    // the subject the event is about
	SubjectIssuer string    // issuer of the subject ("" = deputy itself)
	Actors        []string  // actor chain, current actor first
	Audiences     []string
	Scopes        []string
	ParentJTI     string    // jti of the subject token of an exchange
	TokenJTI      string    // jti of the issued (or revoked) token
	TokenExpires  time.Time // expiry of the issued token (zero if none)
	Decision      string    // DecisionAllow or DecisionDeny
	Reason        string    // error code and reason of a denial; note otherwise
	Rule          string    // policy rule that decided, if any
	RequestID     string
	RemoteAddr    string
	TraceID       string // W3C trace-id of the request: 32 lowercase hex, "" if none
	Detail        string // JSON object with event-specific data (may be "")
	PrevHash      []byte // Hash of the previous event (nil for the first)
	Hash          []byte // hash of this event, chained over PrevHash
}

// SealFunc fills e.PrevHash and e.Hash given the hash of the event before it. It is
// called by AuditLog.Append for each event in order, inside the transaction that
// holds the tail of the chain, with e.Seq already set.
type SealFunc func(prevHash []byte, e *AuditEvent)

// AuditFilter selects audit events. Empty fields match everything. Actor matches
// any member of the actor chain.
type AuditFilter struct {
	Subject  string
	Actor    string
	ClientID string
	Audience string
	Type     string
	TraceID  string // the W3C trace-id of the request (AuditEvent.TraceID)
	Since    time.Time
	Until    time.Time
	AfterSeq int64 // only events with Seq > AfterSeq
	Limit    int   // 0 = no limit
}

// AuditLog is the append-only, hash-chained audit trail.
type AuditLog interface {
	// Append stores events at the end of the chain in one atomic, durable commit.
	// It assigns Seq and calls seal for each event in order. If an event that issues
	// a token from a parent (IssuesFromParent) names a revoked parent, nothing is
	// stored and the error is a *ParentRevokedError.
	Append(ctx context.Context, events []*AuditEvent, seal SealFunc) error
	// Scan calls fn for every event with Seq > afterSeq in chain order, stopping at
	// the first error fn returns.
	Scan(ctx context.Context, afterSeq int64, fn func(AuditEvent) error) error
	// Query returns the events matching f in chain order.
	Query(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
	// EventByID returns the event with that id; ErrNotFound if none.
	EventByID(ctx context.Context, id string) (AuditEvent, error)
	// EventsByToken returns the events whose TokenJTI is jti, in chain order.
	EventsByToken(ctx context.Context, jti string) ([]AuditEvent, error)
	// EventsByParent returns the events whose ParentJTI is jti, in chain order.
	EventsByParent(ctx context.Context, jti string) ([]AuditEvent, error)
}

// RevocationEvent returns the audit event that records revs, the revocations one
// Revoke recorded (the root first). Revoke calls it inside its transaction; an
// error aborts the revocation.
type RevocationEvent func(revs []Revocation) (*AuditEvent, error)

// Revocations stores revoked tokens. Descendants are found through the audit
// trail's lineage (ParentJTI → TokenJTI of allow events).
type Revocations interface {
	// Revoke records the revocation of jti and of every token derived from it
	// (transitively through the audit lineage, however deep), and returns every
	// revocation it recorded, the root first. Revoking an already revoked token is
	// not an error. In the same transaction it appends, at the end of the chain
	// (sealed with seal), the audit event that event returns for those
	// revocations: the revocations and their record are stored together or not at
	// all, also across a crash.
	Revoke(ctx context.Context, r Revocation, event RevocationEvent, seal SealFunc) ([]Revocation, error)
	// ListRevocations returns revocations of tokens that expire after t.
	ListRevocations(ctx context.Context, t time.Time) ([]Revocation, error)
	// RevocationsAfter returns at most limit revocations with Seq > afterSeq, in
	// Seq order: how a node learns of revocations recorded by others. Seq grows
	// with commit order: a revocation committed later never has a smaller Seq.
	RevocationsAfter(ctx context.Context, afterSeq int64, limit int) ([]Revocation, error)
}

// Store is every aggregate together, as one backend provides them.
type Store interface {
	Keys
	Nonces
	AuditLog
	AuditNonces
	Revocations
	Users
	Sessions
	Codes
	RefreshTokens
	Expiring
	// Migrate applies the embedded schema migrations; safe to call repeatedly.
	Migrate(ctx context.Context) error
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	Close() error
}
