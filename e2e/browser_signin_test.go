package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// The sign-in pages in a real browser (README "Signing in"): what Chromium does
// with their Content-Security-Policy, deputy's CORS answers to a page's fetch(),
// and the sign-out confirmation.

const nativeRedirect = "com.example.app:/callback"

// testApp is a web app of the test's own on 127.0.0.1: every path answers the
// page appPage (the test's page, not deputy's: it runs its own script), and the
// app remembers the URLs it was asked for.
type testApp struct {
	*httptest.Server
	mu   sync.Mutex
	hits []string
}

func newTestApp(t *testing.T) *testApp {
	a := &testApp{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.hits = append(a.hits, r.URL.RequestURI())
		a.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, appPage)
	}))
	t.Cleanup(a.Close)
	return a
}

// visited reports whether the app was asked for a URL starting with prefix.
func (a *testApp) visited(prefix string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range a.hits {
		if strings.HasPrefix(h, prefix) {
			return true
		}
	}
	return false
}

// appPage is a single-page app's script: an ES256 DPoP key made with WebCrypto,
// proofs (RFC 9449 §4.2) with one retry on a use_dpop_nonce challenge, the code
// grant with PKCE and the client credentials grant at /token, and /userinfo with
// the DPoP-bound token (ath). Each function answers {error} when fetch rejects.
const appPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>test app</title></head><body><p>test app</p>
<script>
const b64u = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const utf8 = (s) => new TextEncoder().encode(s);
async function newKey() {
  const pair = await crypto.subtle.generateKey({name: "ECDSA", namedCurve: "P-256"}, false, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", pair.publicKey);
  return {pair, jwk: {kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y}};
}
async function proof(key, htm, htu, nonce, token) {
  const head = {typ: "dpop+jwt", alg: "ES256", jwk: key.jwk};
  const claims = {jti: crypto.randomUUID(), htm, htu, iat: Math.floor(Date.now() / 1000)};
  if (nonce) claims.nonce = nonce;
  if (token) claims.ath = b64u(await crypto.subtle.digest("SHA-256", utf8(token)));
  const input = b64u(utf8(JSON.stringify(head))) + "." + b64u(utf8(JSON.stringify(claims)));
  const sig = await crypto.subtle.sign({name: "ECDSA", hash: "SHA-256"}, key.pair.privateKey, utf8(input));
  return input + "." + b64u(sig);
}
// send makes a DPoP request and asks once more with the server's nonce.
async function send(key, method, url, headers, body, token) {
  let nonce;
  for (let i = 0; ; i++) {
    const h = Object.assign({}, headers, {DPoP: await proof(key, method, url, nonce, token)});
    if (token) h.Authorization = "DPoP " + token;
    const r = await fetch(url, {method, headers: h, body});
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch (e) {}
    const challenged = (json && json.error === "use_dpop_nonce") || (r.headers.get("WWW-Authenticate") || "").includes("use_dpop_nonce");
    if (i === 0 && challenged && r.headers.get("DPoP-Nonce")) { nonce = r.headers.get("DPoP-Nonce"); continue; }
    return {status: r.status, body: json, text, nonced: !!nonce, www: r.headers.get("WWW-Authenticate") || ""};
  }
}
const form = {"Content-Type": "application/x-www-form-urlencoded"};
async function guarded(f) {
  try { return await f(); } catch (e) { return {error: String(e)}; }
}
window.clientCredentials = (tokenURL, userinfoURL, id, secret) => guarded(async () => {
  const key = await newKey();
  const token = await send(key, "POST", tokenURL, Object.assign({Authorization: "Basic " + btoa(id + ":" + secret)}, form),
    new URLSearchParams({grant_type: "client_credentials"}));
  const userinfo = token.body && token.body.access_token ? await send(key, "GET", userinfoURL, {}, undefined, token.body.access_token) : null;
  return {token, userinfo};
});
window.codeFlow = (tokenURL, userinfoURL, clientID, redirectURI, verifier) => guarded(async () => {
  const key = await newKey();
  const code = new URLSearchParams(location.search).get("code");
  const token = await send(key, "POST", tokenURL, form, new URLSearchParams({grant_type: "authorization_code", code,
    redirect_uri: redirectURI, client_id: clientID, code_verifier: verifier}));
  const userinfo = token.body && token.body.access_token ? await send(key, "GET", userinfoURL, {}, undefined, token.body.access_token) : null;
  return {token, userinfo};
});
</script></body></html>`

// browserSigninConfig is the sign-in bank with a native app on a private-use
// URI scheme (RFC 8252 §7.1) and a single-page app at spa's origin, DPoP nonces
// required, and listed as a CORS origin besides the clients' own.
func browserSigninConfig(spa, listed string) string {
	clients := `
  - id: native
    auth_method: none
    grant_types: [authorization_code]
    redirect_uris: ["` + nativeRedirect + `"]
    scopes: [openid, payments:read]
    audiences: ["https://api1.example"]
  - id: webspa
    name: Web SPA
    auth_method: none
    grant_types: [authorization_code]
    redirect_uris: ["` + spa + `/callback"]
    post_logout_redirect_uris: ["` + spa + `/signed-out"]
    scopes: [openid, email, payments:read]
    audiences: ["https://api1.example"]
`
	cfg := strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+clients, 1)
	return cfg + "dpop: {max_age: 30s, require_nonce: true}\ncors:\n  allowed_origins: [\"" + listed + "\"]\n"
}

// authorizeURL is an authorization request of client with PKCE (S256).
func authorizeURL(s *server, client, redirect, state, verifier, scope string) string {
	return s.endpoint("authorization_endpoint") + "?" + url.Values{"response_type": {"code"}, "client_id": {client},
		"redirect_uri": {redirect}, "scope": {scope}, "state": {state},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}.Encode()
}

// signInPage fills the login page the tab shows and waits for the next page.
func (c *chrome) signInPage(username, password string) {
	c.t.Helper()
	if !c.has("#password") {
		c.t.Fatalf("expected the login page at %s:\n%s", c.location(), c.text("body"))
	}
	c.fill("#username", username)
	c.fill("#password", password)
	c.click(`button[type=submit]:not([name])`)
}

// submitInjectedForm adds a GET form to target with fields to the page and
// submits it, after recording the page's CSP violations in
// window.cspViolations.
func (c *chrome) submitInjectedForm(target string, fields url.Values) {
	c.t.Helper()
	js := fmt.Sprintf(`(() => {
		window.cspViolations = [];
		document.addEventListener("securitypolicyviolation", (e) => window.cspViolations.push(e.violatedDirective));
		const f = document.createElement("form");
		f.method = "get";
		f.action = %q;
		for (const [k, v] of new URLSearchParams(%q)) {
			const i = document.createElement("input");
			i.type = "hidden"; i.name = k; i.value = v;
			f.appendChild(i);
		}
		document.body.appendChild(f);
		f.submit();
		return true;
	})()`, target, fields.Encode())
	eval[bool](c, js)
}

// TestBrowserFormActionNativeApp: Chromium follows the consent form's redirect to
// a native app's private-use scheme (the page's form-action lists it, and
// Chromium checks form-action on every redirect after a form post), and the code
// it carries works; a redirect the page's form-action does not list is blocked,
// with a CSP violation, and the target never sees the request, while the same
// form on a page that lists that target gets there.
func TestBrowserFormActionNativeApp(t *testing.T) {
	app := newTestApp(t)
	s := start(t, browserSigninConfig(app.URL, "http://127.0.0.1:1"))
	c := newChrome(t)

	verifier := oauth2.GenerateVerifier()
	c.navigate(authorizeURL(s, "native", nativeRedirect, "st", verifier, "openid payments:read"))
	c.signInPage("alice", "alice-password")
	if !c.has(`button[value=allow]`) {
		t.Fatalf("expected the consent page at %s:\n%s", c.location(), c.text("body"))
	}
	c.clickStay(`button[value=allow]`)
	arrived := c.waitDocumentRequest(nativeRedirect + "?")
	if arrived.RedirectStatus != http.StatusSeeOther {
		t.Fatalf("Chromium did not follow the redirect to %s: %+v\nrequests %+v\nconsole:\n%s", nativeRedirect, arrived, c.documentRequests(), c.consoleText())
	}
	for _, l := range c.consoleLines() {
		if strings.Contains(l, "Content Security Policy") {
			t.Errorf("CSP violation on the way to the native app: %s", l)
		}
	}
	back, err := url.Parse(arrived.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := back.Query()
	if q.Get("state") != "st" || q.Get("iss") != s.issuer || q.Get("code") == "" {
		t.Fatalf("redirect to the app %s", arrived.URL)
	}
	tok := s.post("token_endpoint", "", "", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {nativeRedirect}, "client_id": {"native"}, "code_verifier": {verifier}})
	if tok.Status != 200 || tok.str("access_token") == "" {
		t.Fatalf("the code the browser carried to the app: %d %s", tok.Status, tok.Raw)
	}

	// The native app's consent page lists com.example.app: only: a form sent to
	// deputy that ends in a redirect to the web app (an error answer of a request
	// without PKCE) is stopped at that redirect.
	spaError := url.Values{"response_type": {"code"}, "client_id": {"webspa"}, "redirect_uri": {app.URL + "/callback"}, "scope": {"openid"}, "state": {"x"}}
	c.navigate(authorizeURL(s, "native", nativeRedirect, "st2", oauth2.GenerateVerifier(), "openid"))
	if !c.has(`button[value=allow]`) {
		t.Fatalf("expected the consent page at %s:\n%s", c.location(), c.text("body"))
	}
	c.submitInjectedForm(s.endpoint("authorization_endpoint"), spaError)
	line := c.waitConsole("the blocked redirect", "violates the following Content Security Policy directive", `"form-action 'self' com.example.app:"`)
	if !strings.Contains(line, "blocked") {
		t.Errorf("console: %s", line)
	}
	if got := eval[[]string](c, "window.cspViolations"); len(got) != 1 || got[0] != "form-action" {
		t.Errorf("securitypolicyviolation events %v, want [form-action]", got)
	}
	if app.visited("/callback") {
		t.Error("the blocked redirect reached the web app")
	}

	// The same form on the web app's own login page, whose form-action lists the
	// app's origin, reaches the app: the block above was the page's policy.
	c.navigate(authorizeURL(s, "webspa", app.URL+"/callback", "st3", oauth2.GenerateVerifier(), "openid"))
	c.submitInjectedForm(s.endpoint("authorization_endpoint"), spaError)
	c.waitFor(fmt.Sprintf("location.href.startsWith(%q)", app.URL+"/callback?error=invalid_request"), "the web app's error redirect")
	if !app.visited("/callback?error=invalid_request") {
		t.Error("the web app did not get the redirect its own page allows")
	}
}

// fetchResult is what the app page's clientCredentials and codeFlow answer.
type fetchResult struct {
	Error    string       `json:"error"`
	Token    *fetchAnswer `json:"token"`
	Userinfo *fetchAnswer `json:"userinfo"`
}

type fetchAnswer struct {
	Status int            `json:"status"`
	Body   map[string]any `json:"body"`
	Text   string         `json:"text"`
	Nonced bool           `json:"nonced"`
	// WWW is the WWW-Authenticate header, as the page can read it.
	WWW string `json:"www"`
}

// TestBrowserCORSFetchDPoP: a page's fetch() with a DPoP proof reaches /token and
// /userinfo and reads the answers (DPoP-Nonce included) from the origin of a
// client's redirect URI and from cors.allowed_origins; from any other origin the
// browser keeps the answer from the page (fetch rejects).
func TestBrowserCORSFetchDPoP(t *testing.T) {
	spa, listed, other := newTestApp(t), newTestApp(t), newTestApp(t)
	s := start(t, browserSigninConfig(spa.URL, listed.URL))
	tokenURL, userinfoURL := s.endpoint("token_endpoint"), s.endpointOIDC("userinfo_endpoint")
	c := newChrome(t)

	t.Run("ok/redirect-uri-origin", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		c.navigate(authorizeURL(s, "webspa", spa.URL+"/callback", "st", verifier, "openid email payments:read"))
		c.signInPage("alice", "alice-password")
		c.click(`button[value=allow]`)
		if !strings.HasPrefix(c.location(), spa.URL+"/callback?code=") {
			t.Fatalf("not back at the app: %s", c.location())
		}
		r := eval[fetchResult](c, fmt.Sprintf("codeFlow(%q, %q, %q, %q, %q)", tokenURL, userinfoURL, "webspa", spa.URL+"/callback", verifier))
		if r.Error != "" || r.Token == nil || r.Token.Status != 200 || r.Token.Body["token_type"] != "DPoP" || !r.Token.Nonced {
			t.Fatalf("code grant from the app's origin: %+v %+v", r, r.Token)
		}
		if r.Userinfo == nil || r.Userinfo.Status != 200 || r.Userinfo.Body["sub"] != "alice" || r.Userinfo.Body["email"] != "alice@example.com" {
			t.Fatalf("userinfo from the app's origin: %+v", r.Userinfo)
		}
	})
	t.Run("ok/allowed-origin", func(t *testing.T) {
		c.navigate(listed.URL + "/app")
		r := eval[fetchResult](c, fmt.Sprintf("clientCredentials(%q, %q, %q, %q)", tokenURL, userinfoURL, "batch", "batch-secret"))
		if r.Error != "" || r.Token == nil || r.Token.Status != 200 || r.Token.Body["token_type"] != "DPoP" || !r.Token.Nonced {
			t.Fatalf("client credentials from cors.allowed_origins: %+v %+v", r, r.Token)
		}
		// A client's token has no openid scope: userinfo refuses it, and the page
		// can read that answer, its challenge included (RFC 6750 §3.1).
		if r.Userinfo == nil || r.Userinfo.Status != 403 || !r.Userinfo.Nonced || !strings.Contains(r.Userinfo.WWW, `error="insufficient_scope"`) {
			t.Fatalf("userinfo from cors.allowed_origins: %+v", r.Userinfo)
		}
	})
	t.Run("fail/unlisted-origin", func(t *testing.T) {
		c.navigate(other.URL + "/app")
		r := eval[fetchResult](c, fmt.Sprintf("clientCredentials(%q, %q, %q, %q)", tokenURL, userinfoURL, "batch", "batch-secret"))
		if r.Error == "" || !strings.Contains(r.Error, "TypeError") || r.Token != nil {
			t.Fatalf("fetch from an unlisted origin: %+v", r)
		}
		c.waitConsole("the CORS refusal", "from origin '"+other.URL+"' has been blocked by CORS policy")
	})
}

// TestBrowserSignOutConfirmation: end_session without id_token_hint shows the
// confirmation page; confirming ends the session (the next authorization asks to
// sign in again) and goes back to the client's post-logout redirect URI with its
// state, through the page's form-action.
func TestBrowserSignOutConfirmation(t *testing.T) {
	app := newTestApp(t)
	s := start(t, browserSigninConfig(app.URL, "http://127.0.0.1:1"))
	c := newChrome(t)

	c.navigate(authorizeURL(s, "webspa", app.URL+"/callback", "st", oauth2.GenerateVerifier(), "openid"))
	c.noHorizontalScroll(390) // the login page fits a phone
	c.viewport(1280, 900)
	c.signInPage("alice", "alice-password")
	c.noHorizontalScroll(390) // and so does the consent page
	c.viewport(1280, 900)
	c.click(`button[value=allow]`)
	if !strings.HasPrefix(c.location(), app.URL+"/callback?code=") {
		t.Fatalf("not back at the app: %s", c.location())
	}
	// Signed in: the next authorization asks only for consent.
	c.navigate(authorizeURL(s, "webspa", app.URL+"/callback", "st2", oauth2.GenerateVerifier(), "openid"))
	if c.has("#password") || !c.has(`button[value=allow]`) {
		t.Fatalf("a signed-in user was not sent to consent: %s\n%s", c.location(), c.text("body"))
	}

	c.navigate(s.endpointOIDC("end_session_endpoint") + "?" + url.Values{"client_id": {"webspa"},
		"post_logout_redirect_uri": {app.URL + "/signed-out"}, "state": {"bye"}}.Encode())
	if h := c.text("h1"); h != "Sign out?" {
		t.Fatalf("confirmation page heading %q at %s", h, c.location())
	}
	if body := c.text("body"); !strings.Contains(body, "Web SPA asks to sign you out") || !strings.Contains(body, "signed in as alice") {
		t.Errorf("confirmation page text:\n%s", body)
	}
	if href := run(c, chromedp.AttributeValue(chromedp.CSS("a.button"), "href")); href.Value != app.URL+"/signed-out?state=bye" {
		t.Errorf("cancel link %+v", href)
	}
	c.noHorizontalScroll(390)
	c.viewport(1280, 900)
	if app.visited("/signed-out") {
		t.Fatal("the app's sign-out page was visited before confirming")
	}
	c.click(`button[type=submit]`)
	if got := c.location(); got != app.URL+"/signed-out?state=bye" {
		t.Fatalf("after confirming: at %s\nconsole:\n%s", got, c.consoleText())
	}

	// Signed out: the next authorization asks to sign in again.
	c.navigate(authorizeURL(s, "webspa", app.URL+"/callback", "st3", oauth2.GenerateVerifier(), "openid"))
	if !c.has("#password") {
		t.Fatalf("no login page after signing out: %s\n%s", c.location(), c.text("body"))
	}
}
