package httpapi_test

import (
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// PKCE pair of RFC 7636 Appendix B.
const (
	pkceVerifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	pkceChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

// Redirect URIs of the browser clients webNode adds.
const (
	portalCB  = "http://127.0.0.1:9000/callback" // web-app, the development setup's
	portalBye = "http://127.0.0.1:9000/signed-out"
	nativeCB  = "http://127.0.0.1:9100/callback"
	appCB     = "com.example.app:/callback"
	spaCB     = "https://spa.example/cb"
)

// webNode is a deputy on the development setup plus browser clients, behind a
// real HTTP listener:
//   - web-app (confidential), named "Example Portal", signs out to portalBye;
//   - native (public), loopback and private-use-scheme redirect URIs;
//   - spa (public), https redirect URI at https://spa.example;
//   - scopes payments:read described.
func webNode(t *testing.T, mod func(c *config.Config)) (*server.Server, *httptest.Server) {
	t.Helper()
	c := config.Dev(t.TempDir())
	c.Clients[0].Name = "Example Portal"
	c.Clients[0].PostLogoutRedirectURIs = []string{portalBye}
	c.Clients = append(c.Clients,
		config.Client{ID: "native", AuthMethod: oauth.AuthNone, GrantTypes: []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken},
			RedirectURIs: []string{nativeCB, appCB}, Scopes: []string{"openid", "payments:read"}, Audiences: []string{"https://api1.example"},
			PostLogoutRedirectURIs: []string{"com.example.app:/signed-out"}},
		config.Client{ID: "spa", AuthMethod: oauth.AuthNone, GrantTypes: []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken},
			RedirectURIs: []string{spaCB}, Scopes: []string{"openid", "payments:read"}, Audiences: []string{"https://api1.example"}},
	)
	c.Scopes = []config.Scope{{Name: "payments:read", Description: "See your <payments>"}}
	if mod != nil {
		mod(c)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := server.New(t.Context(), c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ts := httptest.NewServer(s.Handler)
	t.Cleanup(ts.Close)
	return s, ts
}

// browser is a user agent with cookies that follows redirects within deputy and
// stops at the first one that leaves it.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, ts *httptest.Server) *browser {
	jar, _ := cookiejar.New(nil)
	base := ts.URL
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if !strings.HasPrefix(req.URL.String(), base+"/") {
				return http.ErrUseLastResponse
			}
			return nil
		}}}
}

// resp is one answer the browser got.
type resp struct {
	status   int
	header   http.Header
	body     string
	location string // where it stopped: a redirect out of deputy
}

func (b *browser) do(r *http.Request) resp {
	b.t.Helper()
	res, err := b.c.Do(r)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: string(body), location: res.Header.Get("Location")}
}

func (b *browser) get(pathQuery string) resp {
	r, _ := http.NewRequest(http.MethodGet, b.base+pathQuery, nil)
	return b.do(r)
}

func (b *browser) post(path string, form url.Values) resp {
	r, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(r)
}

var (
	formRe   = regexp.MustCompile(`(?s)<form method="post" action="([^"]+)">(.*?)</form>`)
	hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// submit posts the page's first form with its hidden fields plus fields.
func (b *browser) submit(p resp, fields url.Values) resp {
	b.t.Helper()
	m := formRe.FindStringSubmatch(p.body)
	if m == nil {
		b.t.Fatalf("no form in the page (%d):\n%s", p.status, p.body)
	}
	form := url.Values{}
	for _, h := range hiddenRe.FindAllStringSubmatch(m[2], -1) {
		form.Add(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
	}
	for k, vs := range fields {
		form[k] = vs
	}
	return b.post(html.UnescapeString(m[1]), form)
}

func authURL(clientID, redirect, state string, extra ...string) string {
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"scope": {"openid payments:read"}, "state": {state}, "code_challenge": {pkceChallenge}, "code_challenge_method": {"S256"}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return "/authorize?" + q.Encode()
}

// signIn signs alice in from the authorization request and returns the page after
// the login form (consent, or the redirect to the client).
func (b *browser) signIn(auth string) resp {
	b.t.Helper()
	login := b.get(auth)
	if !strings.Contains(login.body, `name="password"`) {
		b.t.Fatalf("expected the login page, got %d %s", login.status, login.body)
	}
	return b.submit(login, url.Values{"username": {"alice"}, "password": {"alice-password"}})
}

func query(t *testing.T, loc string) url.Values {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// formAction is the form-action directive of the response's CSP.
func formAction(t *testing.T, r resp) []string {
	t.Helper()
	for _, d := range strings.Split(r.header.Get("Content-Security-Policy"), ";") {
		f := strings.Fields(d)
		if len(f) > 0 && f[0] == "form-action" {
			return f[1:]
		}
	}
	t.Fatalf("no form-action in CSP %q", r.header.Get("Content-Security-Policy"))
	return nil
}

// TestPageCSPAllowsTheRedirectTarget: every page whose form ends in a redirect to
// the client lets exactly that target through form-action (Chromium checks it on
// each redirect after a form post), and no other origin: a native app's private-use
// scheme (RFC 8252 §7.1) is not stuck on the consent page, and a page cannot be
// made to post elsewhere.
func TestPageCSPAllowsTheRedirectTarget(t *testing.T) {
	_, ts := webNode(t, nil)
	for _, tt := range []struct {
		name, client, redirect, want string
	}{
		{"ok/private-use-scheme", "native", appCB, "com.example.app:"},
		{"ok/loopback", "native", nativeCB, "http://127.0.0.1:9100"},
		{"ok/confidential-web", "web-app", portalCB, "http://127.0.0.1:9000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBrowser(t, ts)
			login := b.get(authURL(tt.client, tt.redirect, "st"))
			if got, want := formAction(t, login), []string{"'self'", tt.want}; !equal(got, want) {
				t.Errorf("login page form-action %v, want %v", got, want)
			}
			consent := b.submit(login, url.Values{"username": {"alice"}, "password": {"alice-password"}})
			if !strings.Contains(consent.body, `value="allow"`) {
				t.Fatalf("expected the consent page: %d %s", consent.status, consent.body)
			}
			if got, want := formAction(t, consent), []string{"'self'", tt.want}; !equal(got, want) {
				t.Errorf("consent page form-action %v, want %v", got, want)
			}
			back := b.submit(consent, url.Values{"decision": {"allow"}})
			if !strings.HasPrefix(back.location, tt.redirect+"?") || query(t, back.location).Get("code") == "" {
				t.Errorf("after consent: %d %q", back.status, back.location)
			}
		})
	}
	t.Run("ok/plain-login-self-only", func(t *testing.T) {
		r := newBrowser(t, ts).get("/login")
		if got := formAction(t, r); !equal(got, []string{"'self'"}) {
			t.Errorf("form-action %v, want only 'self'", got)
		}
		csp := r.header.Get("Content-Security-Policy")
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("CSP %q allows inline code", csp)
		}
		// The page's own style sheet is allowed by its hash, as a browser computes it.
		_, rest, _ := strings.Cut(r.body, "<style>")
		css, _, _ := strings.Cut(rest, "</style>")
		sum := sha256.Sum256([]byte(css))
		if want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; css == "" || !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %s", csp, want)
		}
	})
}

func equal(a, b []string) bool { return strings.Join(a, " ") == strings.Join(b, " ") }

// TestLoopbackPublicClientAskedAgain: a public client on a loopback or private-use
// redirect URI cannot prove who it is (RFC 8252 §8.6): a consent given before is not
// reused, prompt=none answers consent_required and the user is asked again; a
// confidential client's consent is remembered.
func TestLoopbackPublicClientAskedAgain(t *testing.T) {
	_, ts := webNode(t, nil)
	for _, tt := range []struct {
		name, client, redirect string
		remembered             bool
	}{
		{"fail/public-loopback", "native", nativeCB, false},
		{"fail/public-private-scheme", "native", appCB, false},
		{"ok/public-https", "spa", spaCB, true},
		{"ok/confidential", "web-app", portalCB, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBrowser(t, ts)
			consent := b.signIn(authURL(tt.client, tt.redirect, "s1"))
			back := b.submit(consent, url.Values{"decision": {"allow"}})
			if query(t, back.location).Get("code") == "" {
				t.Fatalf("first consent: %d %q %s", back.status, back.location, back.body)
			}
			silent := b.get(authURL(tt.client, tt.redirect, "s2", "prompt", "none"))
			q := query(t, silent.location)
			if tt.remembered {
				if q.Get("code") == "" || q.Get("state") != "s2" {
					t.Errorf("prompt=none after consent: %d %q", silent.status, silent.location)
				}
				return
			}
			if q.Get("code") != "" || q.Get("error") != "consent_required" || q.Get("state") != "s2" {
				t.Errorf("prompt=none: %d %q; want consent_required with the state", silent.status, silent.location)
			}
			again := b.get(authURL(tt.client, tt.redirect, "s3"))
			if again.location != "" || !strings.Contains(again.body, `value="allow"`) {
				t.Errorf("second request: %d %q; want the consent page", again.status, again.location)
			}
		})
	}
}

// TestConsentPageShowsNamesAndDescriptions: the consent page names the client by its
// name and each scope by its description (escaped), and the login page offers a
// way back to the application: cancel answers access_denied with the state
// (RFC 6749 §4.1.2.1).
func TestConsentPageShowsNamesAndDescriptions(t *testing.T) {
	_, ts := webNode(t, nil)
	b := newBrowser(t, ts)
	login := b.get(authURL("web-app", portalCB, "st-1"))
	if !strings.Contains(login.body, "Example Portal") {
		t.Errorf("login page does not name the client:\n%s", login.body)
	}
	consent := b.submit(login, url.Values{"username": {"alice"}, "password": {"alice-password"}})
	for _, want := range []string{"Example Portal", "See your &lt;payments&gt;", config.BuiltinScopeDescriptions["openid"]} {
		if !strings.Contains(consent.body, want) {
			t.Errorf("consent page lacks %q:\n%s", want, consent.body)
		}
	}
	if strings.Contains(consent.body, "<payments>") {
		t.Errorf("scope description not escaped")
	}

	t.Run("ok/login-cancel", func(t *testing.T) {
		b := newBrowser(t, ts)
		login := b.get(authURL("web-app", portalCB, "st-2"))
		back := b.submit(login, url.Values{"cancel": {"1"}})
		q := query(t, back.location)
		if !strings.HasPrefix(back.location, portalCB+"?") || q.Get("error") != "access_denied" || q.Get("state") != "st-2" {
			t.Errorf("cancel: %d %q; want access_denied with the state at the redirect URI", back.status, back.location)
		}
	})
}

// TestEndSession follows OIDC RP-Initiated Logout 1.0: an id_token_hint must be an
// ID token deputy issued (an expired one will do, §2; an access token will not);
// without one the user confirms; a parameter that fails validation is treated as
// absent (§4), never an error page that signs no one out; post-logout redirection
// only to the client's own post_logout_redirect_uris (§3), with state.
func TestEndSession(t *testing.T) {
	s, ts := webNode(t, nil)
	// signedIn signs alice in to the portal and returns the browser and the tokens.
	signedIn := func(t *testing.T) (*browser, oauth.TokenResponse) {
		b := newBrowser(t, ts)
		consent := b.signIn(authURL("web-app", portalCB, "st"))
		back := b.submit(consent, url.Values{"decision": {"allow"}})
		code := query(t, back.location).Get("code")
		r, _ := http.NewRequest(http.MethodPost, ts.URL+"/token", strings.NewReader(url.Values{
			"grant_type": {oauth.GrantAuthorizationCode}, "code": {code}, "redirect_uri": {portalCB}, "code_verifier": {pkceVerifier},
		}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("web-app", "web-app-secret")
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var tok oauth.TokenResponse
		if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || tok.IDToken == "" {
			t.Fatalf("token: %d %v", res.StatusCode, err)
		}
		return b, tok
	}
	stillSignedIn := func(b *browser) bool {
		r := b.get(authURL("web-app", portalCB, "again"))
		return r.location != "" && query(b.t, r.location).Get("code") != ""
	}
	end := func(q url.Values) string { return "/end-session?" + q.Encode() }

	t.Run("ok/id-token-hint-signs-out-at-once", func(t *testing.T) {
		b, tok := signedIn(t)
		r := b.get(end(url.Values{"id_token_hint": {tok.IDToken}, "post_logout_redirect_uri": {portalBye}, "state": {"bye"}}))
		if r.location != portalBye+"?state=bye" {
			t.Fatalf("%d %q %s", r.status, r.location, r.body)
		}
		if stillSignedIn(b) {
			t.Error("still signed in")
		}
	})
	t.Run("ok/no-hint-no-client-confirms", func(t *testing.T) {
		b, _ := signedIn(t)
		// post_logout_redirect_uri without a client that names it is ignored (§3).
		r := b.get(end(url.Values{"post_logout_redirect_uri": {portalBye}}))
		if r.status != http.StatusOK || !strings.Contains(r.body, "Sign out") || !stillSignedIn(b) {
			t.Fatalf("want a confirmation page, still signed in: %d %q %s", r.status, r.location, r.body)
		}
		done := b.submit(r, nil)
		if done.status != http.StatusOK || done.location != "" || !strings.Contains(done.body, "signed out") {
			t.Errorf("after confirming: %d %q %s", done.status, done.location, done.body)
		}
		if stillSignedIn(b) {
			t.Error("still signed in after confirming")
		}
	})
	t.Run("fail/access-token-is-no-hint", func(t *testing.T) {
		b, tok := signedIn(t)
		r := b.get(end(url.Values{"id_token_hint": {tok.AccessToken}, "post_logout_redirect_uri": {portalBye}, "state": {"x"}}))
		if r.location != "" || !strings.Contains(r.body, "Sign out") || !stillSignedIn(b) {
			t.Fatalf("an access token as id_token_hint: %d %q; want the confirmation page", r.status, r.location)
		}
	})
	t.Run("ok/client-id-redirects-after-confirmation", func(t *testing.T) {
		b, _ := signedIn(t)
		r := b.get(end(url.Values{"client_id": {"web-app"}, "post_logout_redirect_uri": {portalBye}, "state": {"s"}, "logout_hint": {"alice"}}))
		if r.location != "" || !strings.Contains(r.body, "Example Portal") {
			t.Fatalf("want a confirmation naming the client: %d %q %s", r.status, r.location, r.body)
		}
		if !strings.Contains(r.body, `href="`+html.EscapeString(portalBye+"?state=s")+`"`) {
			t.Errorf("no cancel link back to the application:\n%s", r.body)
		}
		if got := formAction(t, r); !equal(got, []string{"'self'", "http://127.0.0.1:9000"}) {
			t.Errorf("form-action %v", got)
		}
		done := b.submit(r, nil)
		if done.location != portalBye+"?state=s" {
			t.Errorf("after confirming: %d %q", done.status, done.location)
		}
	})
	t.Run("fail/redirect-uri-is-no-post-logout-uri", func(t *testing.T) {
		b, tok := signedIn(t)
		r := b.get(end(url.Values{"id_token_hint": {tok.IDToken}, "post_logout_redirect_uri": {portalCB}}))
		if r.location != "" || r.status != http.StatusOK || stillSignedIn(b) {
			t.Errorf("redirect_uris entry as post_logout_redirect_uri: %d %q; want signed out, not redirected", r.status, r.location)
		}
	})
	t.Run("fail/hint-of-another-client", func(t *testing.T) {
		b, tok := signedIn(t)
		r := b.get(end(url.Values{"id_token_hint": {tok.IDToken}, "client_id": {"native"}, "post_logout_redirect_uri": {"com.example.app:/signed-out"}}))
		if r.location != "" || !stillSignedIn(b) {
			t.Errorf("client_id not the hint's audience: %d %q; want a confirmation without redirect", r.status, r.location)
		}
	})
	t.Run("ok/expired-id-token-hint", func(t *testing.T) {
		b, tok := signedIn(t)
		// An ID token of the same session, signed by deputy, expired an hour ago.
		var c token.IDClaims
		parts := strings.Split(tok.IDToken, ".")
		raw, _ := base64URL(parts[1])
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		c.IssuedAt, c.Expiry = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
		tokens := token.NewService(s.Config.Issuer, s.Keys, token.NewRevoked(), 1<<14)
		var hdr struct{ Alg string }
		rawHdr, _ := base64URL(parts[0])
		if err := json.Unmarshal(rawHdr, &hdr); err != nil {
			t.Fatal(err)
		}
		expired, err := tokens.MintIDToken(hdr.Alg, &c)
		if err != nil {
			t.Fatal(err)
		}
		r := b.get(end(url.Values{"id_token_hint": {expired}, "post_logout_redirect_uri": {portalBye}}))
		if r.location != portalBye || stillSignedIn(b) {
			t.Errorf("expired ID token hint: %d %q %s", r.status, r.location, r.body)
		}
	})
	t.Run("fail/hint-of-another-session-confirms", func(t *testing.T) {
		// A link carrying an ID token of some other session (the attacker's own,
		// say) must not sign this browser out without asking (§2: a cross-site
		// link alone signs no one out).
		victim, _ := signedIn(t)
		_, other := signedIn(t)
		r := victim.get(end(url.Values{"id_token_hint": {other.IDToken}, "post_logout_redirect_uri": {portalBye}}))
		if r.location != "" || !strings.Contains(r.body, "Sign out") || !stillSignedIn(victim) {
			t.Fatalf("another session's ID token as the hint: %d %q; want the confirmation page", r.status, r.location)
		}
	})
	t.Run("ok/not-signed-in-still-redirects", func(t *testing.T) {
		b := newBrowser(t, ts)
		r := b.get(end(url.Values{"client_id": {"web-app"}, "post_logout_redirect_uri": {portalBye}, "state": {"z"}}))
		if r.location != portalBye+"?state=z" {
			t.Errorf("%d %q %s", r.status, r.location, r.body)
		}
	})
}

func base64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// TestCodeFailureGoesBackToTheClient: when a valid request's code cannot be issued
// (here SQLite refuses the insert), the client hears temporarily_unavailable with
// its state (RFC 6749 §4.1.2.1), instead of the user being left on a JSON error.
func TestCodeFailureGoesBackToTheClient(t *testing.T) {
	s, ts := webNode(t, nil)
	b := newBrowser(t, ts)
	consent := b.signIn(authURL("web-app", portalCB, "s1"))
	if back := b.submit(consent, url.Values{"decision": {"allow"}}); query(t, back.location).Get("code") == "" {
		t.Fatalf("first consent: %d %q", back.status, back.location)
	}
	db, err := sql.Open("sqlite", s.Config.Storage.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER refuse_codes BEFORE INSERT ON auth_codes BEGIN SELECT RAISE(ABORT, 'disk full'); END`); err != nil {
		t.Fatal(err)
	}
	r := b.get(authURL("web-app", portalCB, "s2"))
	q := query(t, r.location)
	if !strings.HasPrefix(r.location, portalCB+"?") || q.Get("error") != "temporarily_unavailable" || q.Get("state") != "s2" || q.Get("code") != "" {
		t.Errorf("code issuance failed: %d %q %s; want temporarily_unavailable with the state at the redirect URI", r.status, r.location, r.body)
	}
}
