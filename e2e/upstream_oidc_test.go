package e2e

import (
	"context"
	"encoding/json"
	"html"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// upstreamConfig is a deputy that acts as the upstream OpenID Provider: carol
// signs in to it, and the downstream deputy is its confidential client.
const upstreamConfig = `
issuer: %ISSUER%
listen: %LISTEN%
storage: {driver: sqlite, dsn: "%DIR%/deputy.db"}
users:
  - username: carol
    password: carol-password
    claims: {email: carol@upstream.example, name: Carol Danvers}
clients:
  - id: downstream-deputy
    secret: downstream-secret
    grant_types: [authorization_code]
    scopes: [openid, profile, email]
    redirect_uris: ["%DOWNSTREAM%/callback/upstream-idp"]
`

// upstreamIdPs delegates the downstream deputy's sign-in to the upstream one.
const upstreamIdPs = `
upstream_idps:
  - name: upstream-idp
    type: oidc
    issuer: %UPSTREAM%
    client_id: downstream-deputy
    client_secret: downstream-secret
    subject_prefix: "up:"
`

// startAt is start on a chosen address, named by host in the issuer: each
// configuration of a pair of deputies names the other's issuer, so both
// addresses are picked before either starts.
func startAt(t *testing.T, addr, host, configYAML string) *server {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, dir: t.TempDir(), issuer: "http://" + net.JoinHostPort(host, port), logs: &syncBuffer{}, exited: make(chan struct{})}
	s.writeConfig(storageForMode(t, configYAML), addr)
	s.run()
	return s
}

// startUpstreamPair starts the upstream deputy, then (so that discovery succeeds at once)
// the downstream one. The two are named by different hosts — localhost and
// 127.0.0.1 — so the browser keeps their cookies apart, as it would for two
// sites (cookies do not tell ports apart).
func startUpstreamPair(t *testing.T) (up, down *server) {
	t.Helper()
	upAddr, downAddr := freePort(t), freePort(t)
	_, downPort, _ := net.SplitHostPort(downAddr)
	downIssuer := "http://127.0.0.1:" + downPort
	up = startAt(t, upAddr, "localhost", strings.ReplaceAll(upstreamConfig, "%DOWNSTREAM%", downIssuer))
	cfg := strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+signinClients, 1) +
		strings.ReplaceAll(upstreamIdPs, "%UPSTREAM%", up.issuer)
	down = startAt(t, downAddr, "127.0.0.1", cfg)
	if down.issuer != downIssuer {
		t.Fatalf("downstream issuer %s, configured upstream for %s", down.issuer, downIssuer)
	}
	return up, down
}

var formBlock = regexp.MustCompile(`(?s)<form method="post" action="([^"]+)">(.*?)</form>`)

// submitForm posts the form of the page whose body contains marker (a button's
// text), with that form's hidden fields only.
func (b *browser) submitForm(issuer string, p page, marker string, fields url.Values) page {
	b.t.Helper()
	for _, m := range formBlock.FindAllStringSubmatch(p.body, -1) {
		if !strings.Contains(m[2], marker) {
			continue
		}
		form := url.Values{}
		for _, h := range hiddenField.FindAllStringSubmatch(m[2], -1) {
			form.Add(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
		}
		for k, vs := range fields {
			form[k] = vs
		}
		return b.post(issuer+html.UnescapeString(m[1]), form)
	}
	b.t.Fatalf("no form with %q on %s (%d):\n%s", marker, p.url, p.status, p.body)
	return page{}
}

// auditEvents runs "deputy audit query --type typ --json" and decodes its lines.
func auditEvents(t *testing.T, s *server, typ string) []map[string]any {
	t.Helper()
	out, code := s.deputy("audit", "query", "--type", typ, "--json")
	if code != 0 {
		t.Fatalf("audit query --type %s: exit %d\n%s", typ, code, out)
	}
	var events []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit query line %q: %v", line, err)
		}
		events = append(events, e)
	}
	return events
}

// field reads an audit event field by its JSON name (an object as JSON).
func field(e map[string]any, name string) string {
	if s, ok := e[name].(string); ok {
		return s
	}
	if v, ok := e[name]; ok {
		b, _ := json.Marshal(v)
		return string(b)
	}
	return ""
}

// TestUpstreamOIDC: a deputy delegates sign-in to a second deputy process acting
// as the upstream OpenID Provider. The portal's user signs in there, comes back
// as "up:carol", and the sign-in is the root of the chain that follows.
func TestUpstreamOIDC(t *testing.T) {
	up, down := startUpstreamPair(t)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, down.issuer)
	if err != nil {
		t.Fatalf("go-oidc discovery of the downstream: %v", err)
	}
	conf := &oauth2.Config{ClientID: "portal", ClientSecret: "portal-secret", Endpoint: provider.Endpoint(),
		RedirectURL: "https://portal.example/cb", Scopes: []string{"openid", "email", "payments:read"}}

	// beginUpstream runs a browser from the portal's authorization request to the
	// upstream's login page.
	beginUpstream := func(t *testing.T, b *browser, authURL string) page {
		t.Helper()
		login := b.get(authURL)
		if !strings.Contains(login.body, "Sign in with upstream-idp") {
			t.Fatalf("the downstream login page offers no upstream sign-in: %d %s\n%s", login.status, login.url, login.body)
		}
		upLogin := b.submitForm(down.issuer, login, "Sign in with upstream-idp", nil)
		if !strings.HasPrefix(upLogin.url, up.issuer+"/") || !strings.Contains(upLogin.body, `name="password"`) {
			t.Fatalf("expected the upstream login page, got %d %s\n%s", upLogin.status, upLogin.url, upLogin.body)
		}
		return upLogin
	}

	t.Run("ok/sign-in-through-upstream", func(t *testing.T) {
		state, nonce, verifier := randomString(), randomString(), oauth2.GenerateVerifier()
		b := newBrowser(t, "https://portal.example/cb")
		upLogin := beginUpstream(t, b, conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)))

		upConsent := b.submit(up.issuer, upLogin, url.Values{"username": {"carol"}, "password": {"carol-password"}})
		if !strings.HasPrefix(upConsent.url, up.issuer+"/") || !strings.Contains(upConsent.body, "downstream-deputy") {
			t.Fatalf("expected the upstream consent page, got %d %s\n%s", upConsent.status, upConsent.url, upConsent.body)
		}
		// Allowing sends the browser back to the downstream's callback, which signs
		// carol in there and resumes the portal's authorization: its consent page.
		consent := b.submit(up.issuer, upConsent, url.Values{"decision": {"allow"}})
		if !strings.HasPrefix(consent.url, down.issuer+"/") || !strings.Contains(consent.body, "up:carol") || !strings.Contains(consent.body, "portal") {
			t.Fatalf("expected the downstream consent page for up:carol, got %d %s\n%s", consent.status, consent.url, consent.body)
		}
		back := b.submit(down.issuer, consent, url.Values{"decision": {"allow"}})
		u, err := url.Parse(back.url)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if !strings.HasPrefix(back.url, "https://portal.example/cb?") || q.Get("state") != state || q.Get("iss") != down.issuer || q.Get("code") == "" {
			t.Fatalf("redirect back to the portal: %s", back.url)
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
		var idc struct {
			Email string   `json:"email"`
			AMR   []string `json:"amr"`
			IdP   string   `json:"idp"`
			SID   string   `json:"sid"`
		}
		if err := idt.Claims(&idc); err != nil {
			t.Fatal(err)
		}
		if idt.Subject != "up:carol" || idt.Nonce != nonce || idc.IdP != "upstream-idp" || !slices.Equal(idc.AMR, []string{"pwd"}) || idc.SID == "" {
			t.Errorf("ID token sub %q nonce ok %v claims %+v", idt.Subject, idt.Nonce == nonce, idc)
		}
		if idc.Email != "carol@upstream.example" {
			t.Errorf("ID token email %q: the upstream's claims did not come through", idc.Email)
		}
		at := claims(t, tok.AccessToken)
		if at["sub"] != "up:carol" || at["idp"] != "upstream-idp" || at["aud"] != "https://api1.example" || actJSON(t, at["amr"]) != `["pwd"]` {
			t.Errorf("access token %v", at)
		}

		// The downstream recorded the sign-in, naming the upstream.
		var signins []map[string]any
		for _, e := range auditEvents(t, down, "signin") {
			if field(e, "subject") == "up:carol" {
				signins = append(signins, e)
			}
		}
		if len(signins) != 1 || !strings.Contains(field(signins[0], "reason"), "upstream-idp") ||
			!strings.Contains(field(signins[0], "detail"), `"idp":"upstream-idp"`) || field(signins[0], "token_jti") != idc.SID {
			t.Fatalf("downstream signin events for up:carol: %v", signins)
		}
		// The upstream recorded carol's own (local) sign-in.
		found := false
		for _, e := range auditEvents(t, up, "signin") {
			found = found || field(e, "subject") == "carol"
		}
		if !found {
			t.Error("the upstream recorded no sign-in for carol")
		}

		// api1 exchanges the token; the chain starts at the upstream sign-in.
		t1 := down.token("api1", "api1-secret", exchangeForm(tok.AccessToken, "audience", "https://api2.example")).str("access_token")
		c1 := claims(t, t1)
		if c1["sub"] != "up:carol" || actJSON(t, c1["act"]) != `{"sub":"api1"}` || c1["idp"] != "upstream-idp" {
			t.Errorf("T1 %v", c1)
		}
		out, code := down.deputy("audit", "trace", c1["jti"].(string))
		lines := strings.SplitN(out, "\n", 4)
		root := strings.Join(lines[:min(3, len(lines))], "\n") // the root token's lines
		if code != 0 || !strings.HasPrefix(out, "token "+idc.SID+" (signin)") || !strings.Contains(root, "event "+field(signins[0], "id")) ||
			!strings.Contains(out, "api1-to-api2") {
			t.Errorf("trace does not start at the upstream sign-in:\n%s", out)
		}
	})

	// signedInUp counts the downstream's sign-ins of up:carol.
	signedInUp := func(t *testing.T) int {
		n := 0
		for _, e := range auditEvents(t, down, "signin") {
			if field(e, "subject") == "up:carol" {
				n++
			}
		}
		return n
	}
	// denied returns the downstream's request.denied events whose text has all of want.
	denied := func(t *testing.T, want ...string) []map[string]any {
		var out []map[string]any
		for _, e := range auditEvents(t, down, "request.denied") {
			b, _ := json.Marshal(e)
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(string(b), w)
			}
			if ok {
				out = append(out, e)
			}
		}
		return out
	}
	// refused asserts an error page at the downstream, and no session there.
	refused := func(t *testing.T, b *browser, p page, want string) {
		t.Helper()
		if p.status < 400 || p.status >= 500 || !strings.HasPrefix(p.url, down.issuer+"/callback/upstream-idp") || !strings.Contains(p.body, want) {
			t.Errorf("callback: %d %s\n%s", p.status, p.url, p.body)
		}
		again := b.get(conf.AuthCodeURL(randomString(), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if !strings.Contains(again.body, `name="password"`) {
			t.Errorf("signed in after a refused callback: %d %s", again.status, again.url)
		}
	}

	t.Run("fail/forged-state", func(t *testing.T) {
		before, upDenied := signedInUp(t), len(auditEvents(t, up, "request.denied"))
		b := newBrowser(t, "https://portal.example/cb")
		beginUpstream(t, b, conf.AuthCodeURL(randomString(), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		// The flow's cookie is in the jar; the response is not the IdP's.
		p := b.get(down.issuer + "/callback/upstream-idp?code=x&state=y")
		refused(t, b, p, "sign-in with upstream-idp failed")
		if n := signedInUp(t); n != before {
			t.Errorf("sign-ins of up:carol went from %d to %d", before, n)
		}
		d := denied(t, "upstream-idp", "state does not match")
		if len(d) != 1 {
			t.Errorf("request.denied records of the forged state: %v", d)
		}
		// The forged code never reached the upstream's token endpoint.
		if n := len(auditEvents(t, up, "request.denied")); n != upDenied {
			t.Errorf("the upstream recorded %d new denials: the forged code was sent to it", n-upDenied)
		}
	})

	t.Run("fail/no-flow-started", func(t *testing.T) {
		before := len(denied(t, "upstream-idp", "not started here"))
		b := newBrowser(t, "https://portal.example/cb")
		p := b.get(down.issuer + "/callback/upstream-idp?code=x&state=y")
		refused(t, b, p, "expired or was not started here")
		if n := len(denied(t, "upstream-idp", "not started here")); n != before+1 {
			t.Errorf("request.denied records of a callback without a flow: %d, want %d", n, before+1)
		}
	})

	t.Run("fail/denied-upstream", func(t *testing.T) {
		before := signedInUp(t)
		b := newBrowser(t, "https://portal.example/cb")
		upLogin := beginUpstream(t, b, conf.AuthCodeURL(randomString(), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		upConsent := b.submit(up.issuer, upLogin, url.Values{"username": {"carol"}, "password": {"carol-password"}})
		p := b.submit(up.issuer, upConsent, url.Values{"decision": {"deny"}})
		refused(t, b, p, "sign-in with upstream-idp failed")
		if n := signedInUp(t); n != before {
			t.Errorf("sign-ins of up:carol went from %d to %d", before, n)
		}
		if d := denied(t, "upstream-idp", "access_denied"); len(d) == 0 {
			t.Error("no request.denied record names the upstream's access_denied")
		}
	})
}

// TestUpstreamOIDCUnreachableAtStart: an upstream OpenID Provider that cannot be
// reached does not keep deputy from starting. Token exchange works; the login
// page shows the provider as unavailable, and starting a sign-in with it is an
// error page. Once the provider answers, sign-in through it works without a
// restart.
func TestUpstreamOIDCUnreachableAtStart(t *testing.T) {
	upAddr, downAddr := freePort(t), freePort(t)
	_, upPort, _ := net.SplitHostPort(upAddr)
	_, downPort, _ := net.SplitHostPort(downAddr)
	downIssuer := "http://127.0.0.1:" + downPort
	cfg := strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+signinClients, 1) +
		strings.ReplaceAll(upstreamIdPs, "%UPSTREAM%", "http://localhost:"+upPort)
	down := startAt(t, downAddr, "127.0.0.1", cfg) // nothing listens at the upstream's address

	// Token exchange does not depend on the upstream.
	t0 := down.token("web-app", "web-secret", clientCredentials("")).str("access_token")
	if t1 := down.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example")).str("access_token"); t1 == "" {
		t.Fatal("no exchanged token")
	}

	// The first discovery fails at once (connection refused); the login page
	// then marks the provider unavailable.
	b := newBrowser(t, "https://portal.example/cb")
	var login page
	for {
		login = b.get(down.issuer + "/login")
		if strings.Contains(login.body, "(unavailable)") {
			break
		}
		if !strings.Contains(login.body, "Sign in with upstream-idp") {
			t.Fatalf("login page without the provider: %d\n%s", login.status, login.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !regexp.MustCompile(`<button type="submit" class="secondary" disabled>Sign in with upstream-idp \(unavailable\)</button>`).MatchString(login.body) {
		t.Errorf("the unavailable provider's button is not disabled:\n%s", login.body)
	}
	// A sign-in started anyway (the form posted by hand) gets an error page.
	p := b.submitForm(down.issuer, login, "Sign in with upstream-idp", nil)
	if p.status != 503 || !strings.Contains(p.body, "unavailable right now") {
		t.Fatalf("sign-in with the unavailable provider: %d %s\n%s", p.status, p.url, p.body)
	}

	// The upstream comes up; sign-in through it works without restarting deputy.
	up := startAt(t, upAddr, "localhost", strings.ReplaceAll(upstreamConfig, "%DOWNSTREAM%", downIssuer))
	conf := &oauth2.Config{ClientID: "portal", ClientSecret: "portal-secret",
		Endpoint:    oauth2.Endpoint{AuthURL: down.endpoint("authorization_endpoint"), TokenURL: down.endpoint("token_endpoint")},
		RedirectURL: "https://portal.example/cb", Scopes: []string{"openid", "email", "payments:read"}}
	verifier := oauth2.GenerateVerifier()
	var upLogin page
	for {
		login := b.get(conf.AuthCodeURL(randomString(), oauth2.S256ChallengeOption(verifier)))
		upLogin = b.submitForm(down.issuer, login, "Sign in with upstream-idp", nil)
		if strings.HasPrefix(upLogin.url, up.issuer+"/") {
			break
		}
		if upLogin.status != 503 {
			t.Fatalf("sign-in while the upstream comes up: %d %s\n%s", upLogin.status, upLogin.url, upLogin.body)
		}
		time.Sleep(100 * time.Millisecond) // discovery is tried again at most once a second
	}
	upConsent := b.submit(up.issuer, upLogin, url.Values{"username": {"carol"}, "password": {"carol-password"}})
	consent := b.submit(up.issuer, upConsent, url.Values{"decision": {"allow"}})
	if !strings.HasPrefix(consent.url, down.issuer+"/") || !strings.Contains(consent.body, "up:carol") {
		t.Fatalf("expected the downstream consent page for up:carol, got %d %s\n%s", consent.status, consent.url, consent.body)
	}
	if again := b.get(down.issuer + "/login"); strings.Contains(again.body, "(unavailable)") {
		t.Error("the provider is still marked unavailable after a sign-in through it")
	}
}
