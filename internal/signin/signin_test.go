package signin_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/account"
	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/authorize"
	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/signin"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
	"github.com/deputy-auth/deputy/internal/token"
)

const (
	sessionTTL = 8 * time.Hour
	codeTTL    = time.Minute
)

// fixture is a signin.Service wired as internal/server wires it: a SQLite store in a
// temporary directory, the audit writer keeping the revoked set current, and the
// local accounts of a directory.
type fixture struct {
	st      *sqlstore.DB
	revoked *token.Revoked
	audit   *audit.Writer
	svc     *signin.Service
	now     time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, "sqlite", filepath.Join(t.TempDir(), "deputy.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	accounts, err := account.NewDirectory([]config.User{{Username: "alice", Password: "alice-password"}}, st, account.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, revoked: token.NewRevoked(), now: time.Now().UTC().Truncate(time.Second)}
	f.audit = audit.NewWriter(st, st, audit.WriterOptions{OnRevoked: f.revoked.Add})
	t.Cleanup(func() { f.audit.Close() })
	f.svc = &signin.Service{
		Sessions: st, Codes: st, Audit: f.audit, IsRevoked: f.revoked.Contains,
		SessionTTL: sessionTTL, CodeTTL: codeTTL, Accounts: accounts,
		CheckPassword: func(ctx context.Context, username, password, remoteAddr string, now time.Time) error {
			_, err := accounts.Authenticate(ctx, username, password, remoteAddr, now)
			return err
		},
	}
	return f
}

// meta describes a fresh request from the browser, signing in to web.
func (f *fixture) meta() signin.Meta {
	return signin.Meta{RequestID: "req-" + token.NewID(), RemoteAddr: "198.51.100.7:4321", ClientID: "web", Now: f.now}
}

// open starts a session for alice and returns it with its cookie.
func (f *fixture) open(t *testing.T) (store.Session, string) {
	t.Helper()
	sess, cookie, err := f.svc.Open(context.Background(), "alice", "corp", []string{"pwd", "otp"}, "urn:corp:mfa", f.meta())
	if err != nil {
		t.Fatal(err)
	}
	return sess, cookie
}

// events returns the audit events of one request.
func (f *fixture) events(t *testing.T, requestID string) []store.AuditEvent {
	t.Helper()
	all, err := f.st.Query(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []store.AuditEvent
	for _, e := range all {
		if e.RequestID == requestID {
			out = append(out, e)
		}
	}
	return out
}

// one returns the single event of a request.
func (f *fixture) one(t *testing.T, requestID string) store.AuditEvent {
	t.Helper()
	evs := f.events(t, requestID)
	if len(evs) != 1 {
		t.Fatalf("request %s has %d events, want 1: %+v", requestID, len(evs), evs)
	}
	return evs[0]
}

func detail(t *testing.T, e store.AuditEvent) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(e.Detail), &m); err != nil {
		t.Fatalf("detail %q: %v", e.Detail, err)
	}
	return m
}

func sha(v string) []byte {
	sum := sha256.Sum256([]byte(v))
	return sum[:]
}

func TestSignInLocal(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)

	t.Run("ok/opens-a-session", func(t *testing.T) {
		m := f.meta()
		sess, cookie, err := f.svc.SignInLocal(ctx, "alice", "alice-password", m)
		if err != nil {
			t.Fatal(err)
		}
		if cookie == "" || !strings.HasPrefix(sess.ID, "sid-") || sess.Subject != "alice" || sess.IdP != signin.IdPLocal ||
			!slices.Equal(sess.AMR, []string{"pwd"}) || !sess.AuthTime.Equal(f.now) ||
			!sess.ExpiresAt.Equal(f.now.Add(sessionTTL)) || !sess.EndedAt.IsZero() {
			t.Errorf("session %+v", sess)
		}
		// The store holds the cookie's hash, never the cookie.
		if !bytes.Equal(sess.TokenHash, sha(cookie)) {
			t.Errorf("token hash %x, want sha256 of the cookie", sess.TokenHash)
		}
		stored, err := f.st.SessionByTokenHash(ctx, signin.HashCookie(cookie))
		if err != nil {
			t.Fatal(err)
		}
		if stored.ID != sess.ID || bytes.Contains(stored.TokenHash, []byte(cookie)) {
			t.Errorf("stored session %+v", stored)
		}
		if _, err := f.st.SessionByTokenHash(ctx, []byte(cookie)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("session found by the cookie itself: %v", err)
		}
		if got, err := f.svc.Session(ctx, cookie, f.now); err != nil || got.ID != sess.ID {
			t.Errorf("Session(cookie) = %+v, %v", got, err)
		}

		e := f.one(t, m.RequestID)
		if e.Type != store.EventSignIn || e.Decision != store.DecisionAllow || e.TokenJTI != sess.ID ||
			!e.TokenExpires.Equal(sess.ExpiresAt) || e.Subject != "alice" || e.ClientID != "web" ||
			e.RemoteAddr != m.RemoteAddr || e.ParentJTI != "" {
			t.Errorf("sign-in event %+v", e)
		}
		if d := detail(t, e); d["idp"] != signin.IdPLocal || d["amr"] != `["pwd"]` {
			t.Errorf("sign-in detail %v", d)
		}
	})

	for _, tc := range []struct {
		name, username, password string
	}{
		{"fail/wrong-password", "alice", "not-alices-password"},
		{"fail/unknown-user", "mallory", "alice-password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := f.meta()
			sess, cookie, err := f.svc.SignInLocal(ctx, tc.username, tc.password, m)
			if !errors.Is(err, account.ErrInvalidCredentials) {
				t.Errorf("error %v, want %v", err, account.ErrInvalidCredentials)
			}
			if sess.ID != "" || cookie != "" {
				t.Errorf("session %+v and cookie %q for a failed sign-in", sess, cookie)
			}
			e := f.one(t, m.RequestID)
			if e.Type != store.EventDenied || e.Decision != store.DecisionDeny || e.Subject != tc.username ||
				e.ClientID != "web" || e.TokenJTI != "" || e.Reason != "access_denied: sign-in failed: "+err.Error() {
				t.Errorf("denial %+v", e)
			}
			if d := detail(t, e); d["idp"] != signin.IdPLocal || d["endpoint"] != "login" {
				t.Errorf("denial detail %v", d)
			}
		})
	}
}

// Nothing is answered that the audit trail does not hold.
func TestSignInUnrecorded(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	sess, _ := f.open(t)
	f.audit.Close()

	t.Run("fail/sign-in", func(t *testing.T) {
		s, cookie, err := f.svc.SignInLocal(ctx, "alice", "alice-password", f.meta())
		if !errors.Is(err, audit.ErrClosed) || cookie != "" || s.ID != "" {
			t.Errorf("SignInLocal = %+v, %q, %v; want no cookie and %v", s, cookie, err, audit.ErrClosed)
		}
	})
	t.Run("fail/denial", func(t *testing.T) {
		_, _, err := f.svc.SignInLocal(ctx, "alice", "wrong", f.meta())
		if !errors.Is(err, audit.ErrClosed) {
			t.Errorf("error %v, want %v", err, audit.ErrClosed)
		}
	})
	t.Run("fail/code", func(t *testing.T) {
		code, err := f.svc.IssueCode(ctx, sess, &authorize.Request{Client: &client.Client{ID: "web"}, Scopes: []string{"openid"}}, f.meta())
		if !errors.Is(err, audit.ErrClosed) || code != "" {
			t.Errorf("IssueCode = %q, %v; want no code and %v", code, err, audit.ErrClosed)
		}
	})
}

func TestSession(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	long := strings.Repeat("A", 129)
	for _, tc := range []struct {
		name   string
		cookie func(cookie string) string
		before func(t *testing.T, sess store.Session) // changes the session first
		at     time.Duration                          // time of the look-up, after the sign-in
		ok     bool
	}{
		{name: "ok/active", ok: true},
		{name: "ok/just-before-expiry", at: sessionTTL - time.Microsecond, ok: true},
		{name: "fail/empty", cookie: func(string) string { return "" }},
		{name: "fail/unknown", cookie: func(string) string { return "not-a-session-cookie" }},
		// Not even looked up: a session stored under such a cookie is not found.
		{name: "fail/too-long", cookie: func(string) string { return long }, before: func(t *testing.T, sess store.Session) {
			sess.ID, sess.TokenHash = "sid-"+token.NewID(), signin.HashCookie(long)
			if err := f.st.InsertSession(ctx, sess); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "fail/expired", at: sessionTTL},
		{name: "fail/ended", before: func(t *testing.T, sess store.Session) {
			if err := f.st.EndSession(ctx, sess.ID, f.now); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "fail/revoked", before: func(t *testing.T, sess store.Session) {
			if _, err := f.audit.Revoke(ctx, store.Revocation{JTI: sess.ID, RevokedAt: f.now, Reason: "admin"}, nil); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess, cookie := f.open(t)
			if tc.before != nil {
				tc.before(t, sess)
			}
			if tc.cookie != nil {
				cookie = tc.cookie(cookie)
			}
			got, err := f.svc.Session(ctx, cookie, f.now.Add(tc.at))
			switch {
			case tc.ok && (err != nil || got.ID != sess.ID || got.Subject != "alice" || got.IdP != "corp" || got.ACR != "urn:corp:mfa"):
				t.Errorf("Session = %+v, %v; want %s", got, err, sess.ID)
			case !tc.ok && (!errors.Is(err, signin.ErrNoSession) || got.ID != ""):
				t.Errorf("Session = %+v, %v; want %v", got, err, signin.ErrNoSession)
			}
		})
	}
}

func TestIssueCode(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	sess, _ := f.open(t)
	web := &client.Client{ID: "web"}
	for _, tc := range []struct {
		name         string
		req          authorize.Request
		wantRedirect string // recorded in the code
	}{
		{name: "ok/redirect-uri-sent", req: authorize.Request{
			Client: web, RedirectURI: "https://web.example/cb", RedirectURISent: true, Scopes: []string{"openid", "read"},
			Nonce: "n-1", CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		}, wantRedirect: "https://web.example/cb"},
		// RFC 6749 §4.1.3: the token request repeats redirect_uri only if the
		// authorization request named it.
		{name: "ok/redirect-uri-not-sent", req: authorize.Request{
			Client: web, RedirectURI: "https://web.example/cb", Scopes: []string{"openid"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := f.meta()
			code, err := f.svc.IssueCode(ctx, sess, &tc.req, m)
			if err != nil {
				t.Fatal(err)
			}
			// Only the hash is stored: the code itself finds nothing.
			if _, err := f.st.RedeemCode(ctx, []byte(code), f.now); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("code found by its value: %v", err)
			}
			ac, err := f.st.RedeemCode(ctx, sha(code), f.now)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(ac.ID, "code-") || ac.ClientID != "web" || ac.SessionID != sess.ID || ac.Subject != "alice" ||
				ac.RedirectURI != tc.wantRedirect || !slices.Equal(ac.Scopes, tc.req.Scopes) || ac.Nonce != tc.req.Nonce ||
				ac.CodeChallenge != tc.req.CodeChallenge || ac.IdP != "corp" || !slices.Equal(ac.AMR, sess.AMR) ||
				ac.ACR != sess.ACR || !ac.AuthTime.Equal(sess.AuthTime) || !ac.ExpiresAt.Equal(f.now.Add(codeTTL)) {
				t.Errorf("stored code %+v", ac)
			}
			e := f.one(t, m.RequestID)
			if e.Type != store.EventCodeIssued || e.Decision != store.DecisionAllow || e.ParentJTI != sess.ID ||
				e.TokenJTI != ac.ID || !e.TokenExpires.Equal(ac.ExpiresAt) || e.ClientID != "web" || e.Subject != "alice" ||
				!slices.Equal(e.Scopes, tc.req.Scopes) || e.RemoteAddr != m.RemoteAddr {
				t.Errorf("code event %+v", e)
			}
		})
	}
}

func TestSignOut(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	record := func(t *testing.T, parent string) string {
		t.Helper()
		jti := token.NewID()
		if err := f.audit.Record(ctx, &store.AuditEvent{
			Type: store.EventTokenIssued, Decision: store.DecisionAllow, ClientID: "web", Subject: "alice",
			ParentJTI: parent, TokenJTI: jti, TokenExpires: f.now.Add(5 * time.Minute),
		}); err != nil {
			t.Fatal(err)
		}
		return jti
	}
	// issue issues a code in sess and a token for it, and a token exchanged from
	// that; it returns the three ids.
	issue := func(t *testing.T, sess store.Session) []string {
		t.Helper()
		code, err := f.svc.IssueCode(ctx, sess, &authorize.Request{Client: &client.Client{ID: "web"}, Scopes: []string{"openid"}}, f.meta())
		if err != nil {
			t.Fatal(err)
		}
		ac, err := f.st.RedeemCode(ctx, sha(code), f.now)
		if err != nil {
			t.Fatal(err)
		}
		at := record(t, ac.ID)
		return []string{ac.ID, at, record(t, at)}
	}

	sess, cookie := f.open(t)
	lineage := issue(t, sess)
	other, otherCookie := f.open(t)
	untouched := issue(t, other)

	m := f.meta()
	if err := f.svc.SignOut(ctx, sess, m); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Session(ctx, cookie, f.now); !errors.Is(err, signin.ErrNoSession) {
		t.Errorf("session after sign-out: %v", err)
	}
	stored, err := f.st.SessionByTokenHash(ctx, signin.HashCookie(cookie))
	if err != nil || !stored.EndedAt.Equal(f.now) {
		t.Errorf("stored session %+v, %v; want ended at %v", stored, err, f.now)
	}
	for _, jti := range append([]string{sess.ID}, lineage...) {
		if !f.revoked.Contains(jti) {
			t.Errorf("%s not revoked by sign-out", jti)
		}
	}
	for _, jti := range append([]string{other.ID}, untouched...) {
		if f.revoked.Contains(jti) {
			t.Errorf("%s of another session revoked", jti)
		}
	}
	if _, err := f.svc.Session(ctx, otherCookie, f.now); err != nil {
		t.Errorf("other session: %v", err)
	}

	e := f.one(t, m.RequestID)
	if e.Type != store.EventSignOut || e.Decision != store.DecisionAllow || e.TokenJTI != sess.ID ||
		e.Subject != "alice" || e.ClientID != "web" || e.Reason != "signed out" {
		t.Errorf("sign-out event %+v", e)
	}
	var revoked []string
	for _, v := range detail(t, e)["revoked"].([]any) {
		revoked = append(revoked, v.(string))
	}
	if !slices.Equal(revoked, append([]string{sess.ID}, lineage...)) {
		t.Errorf("sign-out records revoked %q, want %q", revoked, append([]string{sess.ID}, lineage...))
	}

	t.Run("ok/again", func(t *testing.T) {
		later := f.meta()
		later.Now = f.now.Add(time.Minute)
		if err := f.svc.SignOut(ctx, sess, later); err != nil {
			t.Fatal(err)
		}
		if s, _ := f.st.SessionByTokenHash(ctx, signin.HashCookie(cookie)); !s.EndedAt.Equal(f.now) {
			t.Errorf("ended at %v after a second sign-out, want the first %v", s.EndedAt, f.now)
		}
	})
}
