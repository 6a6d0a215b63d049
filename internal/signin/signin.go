// Package signin owns browser sign-in: it authenticates a person, opens the session
// (the OIDC "sid", and the root of the audit lineage of everything issued in it),
// finds the session of a cookie, issues authorization codes within a session, and
// ends sessions — revoking every code and token issued in them, down the exchange
// lineage. Every step is an audit event, recorded before the browser is answered.
// It decides whether a person an upstream provider authenticated may sign in
// (SignInUpstream): never as a local account of the same name unless the
// provider is linked to local accounts.
//
// It must not import net/http or database/sql; internal/httpapi speaks HTTP for it.
package signin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/deputy-auth/deputy/internal/account"
	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/authorize"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// IdPLocal names sign-ins with a local account; no upstream provider may take
// the name (config validation).
const IdPLocal = config.UpstreamLocal

// Recorder commits audit events durably (audit.Writer).
type Recorder interface {
	Record(ctx context.Context, e *store.AuditEvent) error
	Revoke(ctx context.Context, r store.Revocation, e *store.AuditEvent) ([]store.Revocation, error)
}

// Service runs sign-in. All fields are required.
type Service struct {
	Sessions store.Sessions
	Codes    store.Codes
	Audit    Recorder
	// CheckPassword authenticates a local account; its error is shown to nobody but
	// the audit trail (the user sees "invalid username or password").
	CheckPassword func(ctx context.Context, username, password, remoteAddr string, now time.Time) error
	// IsRevoked reports whether a session (or anything else) was revoked.
	IsRevoked  func(id string) bool
	SessionTTL time.Duration
	CodeTTL    time.Duration
	// Accounts are the local accounts an upstream sign-in is checked against
	// (SignInUpstream).
	Accounts LocalAccounts
	// Throttled, if set, records in aggregate the failed sign-ins refused by
	// throttling (account.ThrottledError), which cost their sender nothing: the
	// first per address, client and minute at once, the others summed up. Other
	// failures are each recorded.
	Throttled *audit.Aggregator
}

// Meta describes the HTTP request an operation comes from, for the audit trail.
type Meta struct {
	RequestID  string
	RemoteAddr string
	ClientID   string // the client the user is signing in to, when known
	Now        time.Time
}

// ErrNoSession means the cookie names no active session.
var ErrNoSession = errors.New("signin: no active session")

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashCookie is the stored form of a session cookie's value.
func HashCookie(v string) []byte {
	sum := sha256.Sum256([]byte(v))
	return sum[:]
}

func detail(kv ...string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			m[kv[i]] = kv[i+1]
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// SignInLocal checks a local account's password and opens a session. It returns the
// session and the cookie value to set. A failure is recorded as a denial and
// returned; the caller shows a generic message.
func (s *Service) SignInLocal(ctx context.Context, username, password string, m Meta) (store.Session, string, error) {
	if err := s.CheckPassword(ctx, username, password, m.RemoteAddr, m.Now); err != nil {
		ev := &store.AuditEvent{
			Type: store.EventDenied, Decision: store.DecisionDeny, ClientID: m.ClientID, Subject: username,
			Reason: "access_denied: sign-in failed: " + err.Error(), RequestID: m.RequestID, RemoteAddr: m.RemoteAddr,
			Detail: detail("idp", IdPLocal, "endpoint", "login"),
		}
		var te *account.ThrottledError
		if errors.As(err, &te) && s.Throttled != nil {
			if _, rerr := s.Throttled.Deny(ctx, ev, string(oauth.CodeAccessDenied), m.Now); rerr != nil {
				return store.Session{}, "", fmt.Errorf("signin: recording a failed sign-in: %w", rerr)
			}
			return store.Session{}, "", err
		}
		if rerr := s.Audit.Record(ctx, ev); rerr != nil {
			return store.Session{}, "", fmt.Errorf("signin: recording a failed sign-in: %w", rerr)
		}
		return store.Session{}, "", err
	}
	return s.Open(ctx, username, IdPLocal, []string{"pwd"}, "", m)
}

// Open starts a session for a subject authenticated by idp (local or upstream) and
// records the sign-in: the root of every chain that follows.
func (s *Service) Open(ctx context.Context, subject, idp string, amr []string, acr string, m Meta) (store.Session, string, error) {
	cookie := random(32)
	now := m.Now.UTC().Truncate(time.Microsecond)
	sess := store.Session{
		ID: "sid-" + random(16), TokenHash: HashCookie(cookie), Subject: subject, IdP: idp, AMR: amr, ACR: acr,
		AuthTime: now.Truncate(time.Second), ExpiresAt: now.Add(s.SessionTTL),
	}
	if err := s.Sessions.InsertSession(ctx, sess); err != nil {
		return store.Session{}, "", fmt.Errorf("signin: store session: %w", err)
	}
	ev := &store.AuditEvent{
		Type: store.EventSignIn, Decision: store.DecisionAllow, ClientID: m.ClientID, Subject: subject,
		TokenJTI: sess.ID, TokenExpires: sess.ExpiresAt, Reason: "signed in with " + idp,
		RequestID: m.RequestID, RemoteAddr: m.RemoteAddr, Detail: detail("idp", idp, "acr", acr),
	}
	if len(amr) > 0 {
		ev.Detail = detail("idp", idp, "acr", acr, "amr", joinAMR(amr))
	}
	if err := s.Audit.Record(ctx, ev); err != nil {
		return store.Session{}, "", fmt.Errorf("signin: recording the sign-in: %w", err)
	}
	return sess, cookie, nil
}

func joinAMR(amr []string) string {
	b, _ := json.Marshal(amr)
	return string(b)
}

// Session returns the active session a cookie names, or ErrNoSession.
func (s *Service) Session(ctx context.Context, cookie string, now time.Time) (store.Session, error) {
	if cookie == "" || len(cookie) > 128 {
		return store.Session{}, ErrNoSession
	}
	sess, err := s.Sessions.SessionByTokenHash(ctx, HashCookie(cookie))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Session{}, ErrNoSession
	case err != nil:
		return store.Session{}, err
	case !sess.EndedAt.IsZero() || !now.Before(sess.ExpiresAt) || s.IsRevoked(sess.ID):
		return store.Session{}, ErrNoSession
	}
	return sess, nil
}

// IssueCode issues an authorization code for an approved request in a session and
// records it. It returns the code to send to the client.
func (s *Service) IssueCode(ctx context.Context, sess store.Session, r *authorize.Request, m Meta) (string, error) {
	code := random(32)
	now := m.Now.UTC().Truncate(time.Microsecond)
	sum := sha256.Sum256([]byte(code))
	ac := store.AuthCode{
		Hash: sum[:], ID: "code-" + token.NewID(), ClientID: r.Client.ID, SessionID: sess.ID, Subject: sess.Subject,
		RedirectURI: redirectOf(r), Scopes: r.Scopes, Nonce: r.Nonce, CodeChallenge: r.CodeChallenge,
		IdP: sess.IdP, AMR: sess.AMR, ACR: sess.ACR, AuthTime: sess.AuthTime, ExpiresAt: now.Add(s.CodeTTL),
		DPoPJKT: r.DPoPJKT,
	}
	if err := s.Codes.InsertCode(ctx, ac); err != nil {
		return "", fmt.Errorf("signin: store code: %w", err)
	}
	ev := &store.AuditEvent{
		Type: store.EventCodeIssued, Decision: store.DecisionAllow, ClientID: r.Client.ID, Subject: sess.Subject,
		ParentJTI: sess.ID, TokenJTI: ac.ID, TokenExpires: ac.ExpiresAt, Scopes: r.Scopes,
		RequestID: m.RequestID, RemoteAddr: m.RemoteAddr, Detail: detail("redirect_uri", r.RedirectURI),
	}
	if err := s.Audit.Record(ctx, ev); err != nil {
		return "", fmt.Errorf("signin: recording the code: %w", err)
	}
	return code, nil
}

// SignOut ends a session and revokes everything issued in it (codes, access,
// refresh and ID tokens, and every token exchanged from them). The revocation and
// its signout event commit together first: it alone ends the session (Session
// refuses a revoked one), so a crash before EndSession leaves the session ended
// and on record; one before the revocation leaves it untouched.
func (s *Service) SignOut(ctx context.Context, sess store.Session, m Meta) error {
	reason := "signed out"
	_, err := s.Audit.Revoke(ctx, store.Revocation{JTI: sess.ID, ExpiresAt: sess.ExpiresAt, RevokedAt: m.Now, Reason: reason},
		&store.AuditEvent{Type: store.EventSignOut, ClientID: m.ClientID, Subject: sess.Subject, TokenJTI: sess.ID,
			Reason: reason, RequestID: m.RequestID, RemoteAddr: m.RemoteAddr})
	if err != nil {
		return fmt.Errorf("signin: revoke the session's tokens: %w", err)
	}
	if err := s.Sessions.EndSession(ctx, sess.ID, m.Now); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("signin: end session: %w", err)
	}
	return nil
}

// redirectOf is the redirect URI a code records: the one the request named, which
// the token request must repeat; none when the request left it out (RFC 6749 §4.1.3).
func redirectOf(r *authorize.Request) string {
	if r.RedirectURISent {
		return r.RedirectURI
	}
	return ""
}
