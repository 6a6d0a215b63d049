package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// signinConfig adds people and browser clients to the bank: alice signs in to the
// portal (confidential) or the spa (public, PKCE), whose tokens are for api1.
const signinConfig = bankConfig + `
users:
  - username: alice
    password: alice-password
    claims: {email: alice@example.com, name: Alice Liddell}
`

const signinClients = `
  - id: portal
    secret: portal-secret
    grant_types: [authorization_code, refresh_token]
    redirect_uris: ["https://portal.example/cb"]
    scopes: [openid, profile, email, payments:read, ledger:read]
    audiences: ["https://api1.example"]
    may_act: [api1]
  - id: spa
    auth_method: none
    grant_types: [authorization_code, refresh_token]
    redirect_uris: ["http://127.0.0.1:9000/callback"]
    post_logout_redirect_uris: ["http://127.0.0.1:9000/callback/signed-out"]
    scopes: [openid, payments:read]
    audiences: ["https://api1.example"]
`

func startSignin(t *testing.T) *server {
	cfg := strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+signinClients, 1)
	return start(t, cfg)
}

// browser is a user agent with cookies that stops at the client's redirect URI.
type browser struct {
	t      *testing.T
	client *http.Client
}

var errArrived = errors.New("arrived at the client")

func newBrowser(t *testing.T, stopAt string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, client: &http.Client{
		Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), stopAt) {
				return errArrived
			}
			return nil
		},
	}}
}

// page is one response the browser got: its final URL (or the redirect that
// stopped it), status and body.
type page struct {
	url    string
	status int
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil && !errors.Is(err, errArrived) {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := page{url: resp.Request.URL.String(), status: resp.StatusCode, body: string(body)}
	if loc := resp.Header.Get("Location"); loc != "" && errors.Is(err, errArrived) {
		p.url = loc
	}
	return p
}

func (b *browser) get(u string) page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
var formAction = regexp.MustCompile(`<form method="post" action="([^"]+)">`)

// submit fills the page's first form (hidden fields, plus fields) and posts it.
func (b *browser) submit(issuer string, p page, fields url.Values) page {
	b.t.Helper()
	m := formAction.FindStringSubmatch(p.body)
	if m == nil {
		b.t.Fatalf("no form on %s (%d):\n%s", p.url, p.status, p.body)
	}
	form := url.Values{}
	for _, h := range hiddenField.FindAllStringSubmatch(p.body, -1) {
		form.Add(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
	}
	for k, vs := range fields {
		form[k] = vs
	}
	return b.post(issuer+html.UnescapeString(m[1]), form)
}

// signIn runs the code flow up to the redirect back to the client and returns
// the redirect's query.
func (b *browser) signIn(s *server, authURL, password string) url.Values {
	b.t.Helper()
	login := b.get(authURL)
	if !strings.Contains(login.body, `name="password"`) {
		b.t.Fatalf("expected the login page, got %d %s", login.status, login.body)
	}
	consent := b.submit(s.issuer, login, url.Values{"username": {"alice"}, "password": {password}})
	if !strings.Contains(consent.body, "Allow") {
		b.t.Fatalf("expected the consent page, got %d %s", consent.status, consent.body)
	}
	back := b.submit(s.issuer, consent, url.Values{"decision": {"allow"}})
	u, err := url.Parse(back.url)
	if err != nil {
		b.t.Fatal(err)
	}
	return u.Query()
}

func randomString() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestBrowserSignIn: golang.org/x/oauth2 runs the code flow with PKCE against the
// binary (the test fills the login and consent forms), coreos/go-oidc discovers
// deputy and verifies its ID token; the access token starts a delegation chain.
func TestBrowserSignIn(t *testing.T) {
	s := startSignin(t)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, s.issuer)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	conf := &oauth2.Config{ClientID: "portal", ClientSecret: "portal-secret", Endpoint: provider.Endpoint(),
		RedirectURL: "https://portal.example/cb", Scopes: []string{"openid", "email", "payments:read", "ledger:read"}}
	state, nonce, verifier := randomString(), randomString(), oauth2.GenerateVerifier()

	b := newBrowser(t, "https://portal.example/cb")
	q := b.signIn(s, conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), "alice-password")
	if q.Get("state") != state || q.Get("iss") != s.issuer || q.Get("code") == "" {
		t.Fatalf("redirect back %v", q)
	}
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: "portal"}).Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("go-oidc ID token verification: %v", err)
	}
	if idt.Subject != "alice" || idt.Nonce != nonce || idt.AccessTokenHash == "" {
		t.Errorf("ID token sub %q nonce %q at_hash %q", idt.Subject, idt.Nonce, idt.AccessTokenHash)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}
	var idc struct {
		Email    string   `json:"email"`
		AuthTime int64    `json:"auth_time"`
		AMR      []string `json:"amr"`
		SID      string   `json:"sid"`
	}
	if err := idt.Claims(&idc); err != nil || idc.Email != "alice@example.com" || idc.AuthTime == 0 || len(idc.AMR) == 0 || idc.SID == "" {
		t.Errorf("ID token claims %+v (%v)", idc, err)
	}
	ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || ui.Subject != "alice" || ui.Email != "alice@example.com" {
		t.Errorf("userinfo %+v %v", ui, err)
	}
	at := claims(t, tok.AccessToken)
	if at["sub"] != "alice" || at["aud"] != "https://api1.example" || actJSON(t, at["may_act"]) != `{"sub":"api1"}` || at["sid"] != idc.SID || at["idp"] != "local" {
		t.Errorf("access token %v", at)
	}

	// The user's token starts the chain of design §1.
	t1 := s.token("api1", "api1-secret", exchangeForm(tok.AccessToken, "audience", "https://api2.example")).str("access_token")
	c1 := claims(t, t1)
	if c1["sub"] != "alice" || actJSON(t, c1["act"]) != `{"sub":"api1"}` || c1["auth_time"] == nil || c1["idp"] != "local" || c1["amr"] == nil {
		t.Errorf("T1 %v", c1)
	}
	out, code := s.deputy("audit", "trace", c1["jti"].(string))
	if code != 0 || !strings.Contains(out, "signin") || !strings.Contains(out, idc.SID) || !strings.Contains(out, "api1-to-api2") {
		t.Errorf("trace does not start at the sign-in:\n%s", out)
	}

	// A second visit reuses the session and the consent: straight back with a code.
	again := b.get(conf.AuthCodeURL(randomString(), oauth2.S256ChallengeOption(verifier)))
	if !strings.HasPrefix(again.url, "https://portal.example/cb?code=") {
		t.Errorf("second authorization did not reuse the session: %s %s", again.url, again.body)
	}

	// Refresh rotates; reusing the old refresh token revokes the family and what
	// was exchanged from it.
	refreshed, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil || refreshed.RefreshToken == "" || refreshed.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %v %+v", err, refreshed)
	}
	t2 := s.token("api1", "api1-secret", exchangeForm(refreshed.AccessToken, "audience", "https://api2.example")).str("access_token")
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("reused refresh token: %v", err)
	}
	for name, tk := range map[string]string{"first access token": tok.AccessToken, "refreshed access token": refreshed.AccessToken} {
		if in := s.post("introspection_endpoint", "portal", "portal-secret", url.Values{"token": {tk}}); in.Raw != `{"active":false}` {
			t.Errorf("%s active after refresh reuse: %s", name, in.Raw)
		}
	}
	for name, tk := range map[string]string{"T1": t1, "T2": t2} {
		if in := s.post("introspection_endpoint", "api2", "api2-secret", url.Values{"token": {tk}}); in.Raw != `{"active":false}` {
			t.Errorf("exchanged %s active after refresh reuse: %s", name, in.Raw)
		}
	}
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshed.RefreshToken}).Token(); err == nil {
		t.Error("the rotated refresh token still works after its family was revoked")
	}
}

func TestCodeReplayRevokesLineage(t *testing.T) {
	s := startSignin(t)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, s.issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: "portal", ClientSecret: "portal-secret", Endpoint: provider.Endpoint(),
		RedirectURL: "https://portal.example/cb", Scopes: []string{"openid", "payments:read", "ledger:read"}}
	verifier := oauth2.GenerateVerifier()
	b := newBrowser(t, "https://portal.example/cb")
	q := b.signIn(s, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "alice-password")
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	t1 := s.token("api1", "api1-secret", exchangeForm(tok.AccessToken, "audience", "https://api2.example")).str("access_token")
	if _, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier)); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("replayed code: %v", err)
	}
	if in := s.post("introspection_endpoint", "portal", "portal-secret", url.Values{"token": {tok.AccessToken}}); in.Raw != `{"active":false}` {
		t.Errorf("access token of a replayed code still active: %s", in.Raw)
	}
	if in := s.post("introspection_endpoint", "api2", "api2-secret", url.Values{"token": {t1}}); in.Raw != `{"active":false}` {
		t.Errorf("token exchanged from a replayed code's token still active: %s", in.Raw)
	}
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Error("refresh token of a replayed code still works")
	}
}

func TestPublicClientPKCEAndLogout(t *testing.T) {
	s := startSignin(t)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, s.issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: "spa", Endpoint: provider.Endpoint(), RedirectURL: "http://127.0.0.1:9000/callback",
		Scopes: []string{"openid", "payments:read"}}
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	b := newBrowser(t, "http://127.0.0.1:9000/callback")

	// Without PKCE a public client is refused, back at its redirect URI.
	r := b.get(conf.AuthCodeURL("s1"))
	if u, _ := url.Parse(r.url); u.Query().Get("error") != "invalid_request" || u.Query().Get("state") != "s1" {
		t.Errorf("no PKCE: %s", r.url)
	}
	// plain is refused too.
	r = b.get(conf.AuthCodeURL("s2", oauth2.SetAuthURLParam("code_challenge", strings.Repeat("a", 43)), oauth2.SetAuthURLParam("code_challenge_method", "plain")))
	if u, _ := url.Parse(r.url); u.Query().Get("error") != "invalid_request" {
		t.Errorf("plain PKCE: %s", r.url)
	}
	// An unregistered redirect URI is never redirected to.
	bad := *conf
	bad.RedirectURL = "http://127.0.0.1:9000/callback/evil"
	if r = b.get(bad.AuthCodeURL("s3", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); r.status != 400 || strings.Contains(r.url, "/evil") {
		t.Errorf("unregistered redirect_uri: %d %s", r.status, r.url)
	}
	// A wrong password is refused (and audited), the right one works.
	verifier := oauth2.GenerateVerifier()
	login := b.get(conf.AuthCodeURL("s4", oauth2.S256ChallengeOption(verifier)))
	wrong := b.submit(s.issuer, login, url.Values{"username": {"alice"}, "password": {"nope"}})
	if wrong.status != 401 || !strings.Contains(wrong.body, "Invalid username or password") {
		t.Fatalf("wrong password: %d %s", wrong.status, wrong.body)
	}
	consent := b.submit(s.issuer, wrong, url.Values{"username": {"alice"}, "password": {"alice-password"}})
	back := b.submit(s.issuer, consent, url.Values{"decision": {"allow"}})
	u, _ := url.Parse(back.url)
	code := u.Query().Get("code")
	if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("wrong code_verifier: %v", err)
	}
	// The code was burnt by that attempt; a fresh one with the right verifier works.
	// A public client on a loopback redirect URI is asked for consent every time
	// (RFC 8252 §8.6).
	again := b.get(conf.AuthCodeURL("s5", oauth2.S256ChallengeOption(verifier)))
	if !strings.Contains(again.body, `value="allow"`) {
		t.Fatalf("a loopback public client got no consent page the second time: %d %s", again.status, again.url)
	}
	back = b.submit(s.issuer, again, url.Values{"decision": {"allow"}})
	u, _ = url.Parse(back.url)
	tok, err := conf.Exchange(ctx, u.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("public client code exchange: %v", err)
	}

	// Logout with id_token_hint ends the session and revokes what it issued; the
	// browser goes back to one of the client's post_logout_redirect_uris only.
	hint, _ := tok.Extra("id_token").(string)
	end := b.get(s.endpointOIDC("end_session_endpoint") + "?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"http://127.0.0.1:9000/callback/signed-out"}, "state": {"bye"}}.Encode())
	if end.url != "http://127.0.0.1:9000/callback/signed-out?state=bye" {
		t.Fatalf("end-session: %d %s %s", end.status, end.url, end.body)
	}
	if in := s.post("introspection_endpoint", "api1", "api1-secret", url.Values{"token": {tok.AccessToken}}); in.Raw != `{"active":false}` {
		t.Errorf("access token active after logout: %s", in.Raw)
	}
	if r := b.get(conf.AuthCodeURL("s6", oauth2.S256ChallengeOption(verifier))); !strings.Contains(r.body, `name="password"`) {
		t.Errorf("no login page after logout: %s", r.url)
	}
	out, _ := s.deputy("audit", "query", "--type", "request.denied", "--json")
	if !strings.Contains(out, "sign-in failed") || !strings.Contains(out, "code_verifier") {
		t.Errorf("denials not audited:\n%s", out)
	}
}

// endpointOIDC reads an endpoint from the OpenID Connect discovery document.
func (s *server) endpointOIDC(name string) string {
	s.t.Helper()
	m := s.getJSON("/.well-known/openid-configuration")
	v, _ := m[name].(string)
	if v == "" {
		s.t.Fatalf("no %s in openid-configuration", name)
	}
	return s.local(v)
}

// TestRefreshTokenIntrospectionAndRevocation: refresh tokens are opaque; their
// client may introspect them and revoke them (RFC 7009 §2.1: with the whole grant).
func TestRefreshTokenIntrospectionAndRevocation(t *testing.T) {
	s := startSignin(t)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, s.issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: "portal", ClientSecret: "portal-secret", Endpoint: provider.Endpoint(),
		RedirectURL: "https://portal.example/cb", Scopes: []string{"openid", "payments:read"}}
	verifier := oauth2.GenerateVerifier()
	b := newBrowser(t, "https://portal.example/cb")
	q := b.signIn(s, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "alice-password")
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	in := s.post("introspection_endpoint", "portal", "portal-secret", url.Values{"token": {tok.RefreshToken}})
	if in.Body["active"] != true || in.str("sub") != "alice" || in.str("client_id") != "portal" {
		t.Fatalf("refresh token introspection: %s", in.Raw)
	}
	if in := s.post("introspection_endpoint", "api1", "api1-secret", url.Values{"token": {tok.RefreshToken}}); in.Raw != `{"active":false}` {
		t.Errorf("another client sees the refresh token: %s", in.Raw)
	}
	wantError(t, s.post("revocation_endpoint", "api1", "api1-secret", url.Values{"token": {tok.RefreshToken}}), 400, "unauthorized_client")
	if r := s.post("revocation_endpoint", "portal", "portal-secret", url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"access_token"}}); r.Status != 200 {
		t.Fatalf("revocation: %d %s", r.Status, r.Raw)
	}
	if in := s.post("introspection_endpoint", "portal", "portal-secret", url.Values{"token": {tok.AccessToken}}); in.Raw != `{"active":false}` {
		t.Errorf("access token of the same grant still active: %s", in.Raw)
	}
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Error("revoked refresh token still refreshes")
	}
}

// TestLoginThrottled: after five wrong passwords the account is locked for a while;
// the login page says so (429, Retry-After) without checking the password.
func TestLoginThrottled(t *testing.T) {
	s := startSignin(t)
	b := newBrowser(t, "https://portal.example/cb")
	authURL := s.endpointOIDC("authorization_endpoint") + "?" + url.Values{"response_type": {"code"}, "client_id": {"portal"},
		"redirect_uri": {"https://portal.example/cb"}, "scope": {"openid"}, "state": {"s"}}.Encode()
	p := b.get(authURL)
	for i := 0; i < 5; i++ {
		p = b.submit(s.issuer, p, url.Values{"username": {"alice"}, "password": {"wrong"}})
		if p.status != 401 {
			t.Fatalf("attempt %d: %d", i+1, p.status)
		}
	}
	p = b.submit(s.issuer, p, url.Values{"username": {"alice"}, "password": {"alice-password"}})
	if p.status != 429 || !strings.Contains(p.body, "Too many attempts") {
		t.Fatalf("sixth attempt (right password, account locked): %d %s", p.status, p.body)
	}
	out, _ := s.deputy("audit", "query", "--type", "request.denied", "--subject", "alice")
	if strings.Count(out, "sign-in failed") != 6 || !strings.Contains(out, "too many failed sign-ins") {
		t.Errorf("denials of the throttled sign-ins:\n%s", out)
	}
}

// TestBrowserCORS: the binary answers a browser's CORS preflight for the token
// endpoint from the origin of a registered redirect URI and from
// cors.allowed_origins, never with credentials, and gives an unknown origin no
// CORS header; the authorization endpoint is never a CORS endpoint.
func TestBrowserCORS(t *testing.T) {
	cfg := strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+signinClients, 1) + `
cors:
  allowed_origins: ["https://admin.example"]
`
	s := start(t, cfg)
	for _, tt := range []struct {
		name, path, origin, want string
	}{
		{"ok/redirect-uri-origin", s.endpoint("token_endpoint"), "https://portal.example", "https://portal.example"},
		{"ok/configured-origin", s.endpoint("token_endpoint"), "https://admin.example", "https://admin.example"},
		{"ok/jwks-any-origin", s.endpoint("jwks_uri"), "https://evil.example", "*"},
		{"fail/unknown-origin", s.endpoint("token_endpoint"), "https://evil.example", ""},
		{"fail/authorize", s.endpoint("authorization_endpoint"), "https://portal.example", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodOptions, tt.path, nil)
			req.Header.Set("Origin", tt.origin)
			req.Header.Set("Access-Control-Request-Method", http.MethodPost)
			req.Header.Set("Access-Control-Request-Headers", "content-type, dpop")
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.want {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tt.want)
			}
			if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "" {
				t.Errorf("Access-Control-Allow-Credentials %q", got)
			}
			if tt.want != "" && !strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "dpop") {
				t.Errorf("Access-Control-Allow-Headers %q", resp.Header.Get("Access-Control-Allow-Headers"))
			}
		})
	}
}
