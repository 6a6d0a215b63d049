package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	zclient "github.com/zitadel/oidc/v3/pkg/client"
	"golang.org/x/oauth2"
)

// logsConfig is the sign-in bank with a SAML IdP, a private_key_jwt client, and
// the log in JSON at debug: every request, probes included, has its line.
func logsConfig(pemFile, jwksFile string) string {
	cfg := strings.ReplaceAll(samlExchangeConfig, "%DIR%/corp-idp.pem", pemFile)
	cfg = strings.Replace(cfg, "\nclients:\n", "\nclients:"+signinClients+`
  - id: signer-svc
    auth_method: private_key_jwt
    jwks_file: "`+jwksFile+`"
    grant_types: [client_credentials]
    audiences: ["https://api1.example"]
`, 1)
	return cfg + `
users:
  - username: alice
    password: alice-password
log:
  format: json
  level: debug
`
}

// sent is one request the test sent and the status it got.
type sent struct {
	id, method, path string
	status           int
}

// recorder is a RoundTripper that gives every request an X-Request-Id (the id
// its access-log line and audit events carry), remembers each answered request,
// and collects every secret that crossed the wire either way: credentials,
// passwords, codes, verifiers, tokens (and each JWT's payload and signature),
// assertions, DPoP proofs and cookies.
type recorder struct {
	mu      sync.Mutex
	n       int
	sent    []sent
	secrets map[string]string // value → where it was seen
}

// formSecrets are the form (and query) parameters whose values are secrets.
var formSecrets = []string{"client_secret", "client_assertion", "code", "code_verifier", "refresh_token", "subject_token",
	"actor_token", "token", "password", "access_token", "id_token_hint", "assertion"}

// minSecret is the length below which a value is not collected: a short value
// could appear in a log line by chance (and no secret of the test is shorter).
const minSecret = 8

func (rc *recorder) add(v, where string) {
	if len(v) < minSecret {
		return
	}
	if rc.secrets == nil {
		rc.secrets = map[string]string{}
	}
	rc.secrets[v] = where
	if p := strings.Split(v, "."); len(p) == 3 && strings.HasPrefix(v, "eyJ") {
		// A JWT (a token, a client assertion, a DPoP proof): its claims and its
		// signature are each secret on their own.
		rc.add(p[1], where+" (JWT payload)")
		rc.add(p[2], where+" (JWT signature)")
	}
}

func (rc *recorder) addForm(vs url.Values, where string) {
	for _, k := range formSecrets {
		for _, v := range vs[k] {
			rc.add(v, where+" "+k)
			if k == "subject_token" || k == "actor_token" {
				// A SAML assertion travels base64url-encoded; its signature is
				// secret in any form.
				if xml, err := base64.RawURLEncoding.DecodeString(v); err == nil {
					for _, m := range samlSignatureValue.FindAllStringSubmatch(string(xml), -1) {
						rc.add(m[1], where+" SAML SignatureValue")
					}
				}
			}
		}
	}
}

var samlSignatureValue = regexp.MustCompile(`<ds:SignatureValue>([^<]+)</ds:SignatureValue>`)

func (rc *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rc.mu.Lock()
	rc.n++
	id := fmt.Sprintf("logs-test-%04d", rc.n)
	req = req.Clone(req.Context())
	req.Header.Set("X-Request-Id", id)
	where := id + " " + req.Method + " " + req.URL.Path
	for _, h := range []string{"Authorization", "DPoP", "Cookie"} {
		for _, v := range req.Header.Values(h) {
			rc.add(v, where+" "+h)
			if scheme, cred, ok := strings.Cut(v, " "); ok {
				rc.add(cred, where+" "+h+" credentials")
				if strings.EqualFold(scheme, "Basic") {
					if raw, err := base64.StdEncoding.DecodeString(cred); err == nil {
						_, secret, _ := strings.Cut(string(raw), ":")
						s, _ := url.QueryUnescape(secret)
						rc.add(s, where+" Basic secret")
					}
				}
			}
		}
	}
	for _, c := range req.Cookies() {
		rc.add(c.Value, where+" cookie "+c.Name)
	}
	rc.addForm(req.URL.Query(), where+" query")
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			rc.mu.Unlock()
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		if form, err := url.ParseQuery(string(body)); err == nil {
			rc.addForm(form, where+" form")
		}
	}
	rc.mu.Unlock()

	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))

	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.sent = append(rc.sent, sent{id: id, method: req.Method, path: req.URL.Path, status: resp.StatusCode})
	var m map[string]any
	if json.Unmarshal(body, &m) == nil {
		for _, k := range []string{"access_token", "refresh_token", "id_token"} {
			if v, ok := m[k].(string); ok {
				rc.add(v, where+" response "+k)
			}
		}
	}
	for _, c := range resp.Cookies() {
		rc.add(c.Value, where+" Set-Cookie "+c.Name)
	}
	if loc, err := url.Parse(resp.Header.Get("Location")); err == nil {
		rc.addForm(loc.Query(), where+" Location")
	}
	return resp, nil
}

func (rc *recorder) last() sent {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.sent[len(rc.sent)-1]
}

// TestLogsHoldNoSecrets (issue 14): with log.format json at debug, the test
// drives every grant — client credentials (a secret, a private_key_jwt
// assertion), token exchange (with an actor token, with DPoP, of a SAML
// assertion), the code flow with PKCE through the login and consent forms,
// refresh — and introspection, revocation, userinfo and call reports, and the
// error paths around them. Every line of the log is JSON; every request has
// exactly one access line, with its status, route, outcome, error, client and
// grant; and no secret the test sent or received — not even a JWT's signature —
// appears anywhere in the log.
func TestLogsHoldNoSecrets(t *testing.T) {
	dir := t.TempDir()
	samlKey, samlDER := samlKeyPair(t)
	pemFile := filepath.Join(dir, "corp-idp.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: samlDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	signerKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: signerKey.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(dir, "signer.jwks")
	if err := os.WriteFile(jwksFile, set, 0o600); err != nil {
		t.Fatal(err)
	}

	// Every request of the test, the harness's included, goes through rec.
	rec := &recorder{}
	saved := httpClient.Transport
	httpClient.Transport = rec
	t.Cleanup(func() { httpClient.Transport = saved })

	s := start(t, logsConfig(pemFile, jwksFile))
	// The configured secrets and passwords, whether or not a request sent them.
	for _, m := range regexp.MustCompile(`(?m)(?:secret|password): ([^\s,}]+)`).FindAllStringSubmatch(logsConfig("", ""), -1) {
		rec.add(m[1], "configuration")
	}

	// want holds the fields expected on the access line of a request, by id.
	want := map[string]map[string]any{}
	expect := func(fields map[string]any) {
		t.Helper()
		want[rec.last().id] = fields
	}
	deny := func(r reply, status int, code string, fields map[string]any) {
		t.Helper()
		wantError(t, r, status, code)
		fields["status"], fields["outcome"], fields["error"] = status, "denied", code
		expect(fields)
	}
	const typeAT = "urn:ietf:params:oauth:token-type:access_token"
	const cc, tx, ac, rt = "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange", "authorization_code", "refresh_token"

	// Client credentials, and client authentication failing.
	t0 := s.token("web-app", "web-secret", clientCredentials("")).str("access_token")
	expect(map[string]any{"status": 200, "outcome": "ok", "client": "web-app", "client_verified": true, "grant": cc})
	deny(s.post("token_endpoint", "web-app", "web-secret-but-wrong", clientCredentials("")), 401, "invalid_client",
		map[string]any{"client": "web-app", "client_verified": false, "grant": cc})
	deny(s.post("token_endpoint", "nobody-client", "nobody-secret", clientCredentials("")), 401, "invalid_client",
		map[string]any{"client": "nobody-client", "client_verified": false, "grant": cc})
	deny(s.post("token_endpoint", "web-app", "web-secret", clientCredentials("ledger:write")), 400, "invalid_scope",
		map[string]any{"client": "web-app", "client_verified": true, "grant": cc})
	deny(s.post("token_endpoint", "mallory", "mallory-secret", clientCredentials("")), 400, "unauthorized_client",
		map[string]any{"client": "mallory", "client_verified": true, "grant": cc})
	big := clientCredentials("")
	big.Set("scope", strings.Repeat("s", 70000))
	deny(s.post("token_endpoint", "web-app", "web-secret", big), 413, "invalid_request",
		map[string]any{"client": "web-app", "client_verified": false, "grant": "other"})

	// private_key_jwt.
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: signerKey, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	assertion, err := zclient.SignedJWTProfileAssertion("signer-svc", []string{s.issuer}, time.Minute, signer)
	if err != nil {
		t.Fatal(err)
	}
	withAssertion := func(a string) url.Values {
		f := clientCredentials("")
		f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		f.Set("client_assertion", a)
		return f
	}
	s.token("", "", withAssertion(assertion))
	expect(map[string]any{"status": 200, "outcome": "ok", "client": "signer-svc", "client_verified": true, "grant": cc})
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherSigner, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: otherKey, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	forged, err := zclient.SignedJWTProfileAssertion("signer-svc", []string{s.issuer}, time.Minute, otherSigner)
	if err != nil {
		t.Fatal(err)
	}
	deny(s.post("token_endpoint", "", "", withAssertion(forged)), 401, "invalid_client", map[string]any{"grant": cc})

	// Token exchange: with an actor token, with DPoP, and refused.
	own := s.token("api1", "api1-secret", clientCredentials("")).str("access_token")
	expect(map[string]any{"status": 200, "outcome": "ok", "client": "api1", "client_verified": true, "grant": cc})
	t1 := s.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example", "actor_token", own, "actor_token_type", typeAT)).str("access_token")
	expect(map[string]any{"status": 200, "outcome": "ok", "client": "api1", "client_verified": true, "grant": tx})
	dp := newDPoPClient(t)
	if r, _ := dp.token(s, "api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example")); r.Status != 200 || r.str("token_type") != "DPoP" {
		t.Fatalf("DPoP exchange: %d %s", r.Status, r.Raw)
	}
	expect(map[string]any{"status": 200, "outcome": "ok", "client": "api1", "client_verified": true, "grant": tx})
	badProof := dp.proof("POST", s.issuer+"/elsewhere", "")
	deny(s.dpopPost("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example"), badProof), 400, "invalid_dpop_proof",
		map[string]any{"client": "api1", "client_verified": true, "grant": tx})
	deny(s.post("token_endpoint", "api1", "api1-secret", exchangeForm(t0, "audience", "https://api3.example")), 400, "invalid_target",
		map[string]any{"client": "api1", "client_verified": true, "grant": tx})
	deny(s.post("token_endpoint", "api1", "api1-secret", exchangeForm("not-a-token-at-all-secret")), 400, "invalid_request",
		map[string]any{"client": "api1", "client_verified": true, "grant": tx})
	deny(s.post("token_endpoint", "api1", "api1-secret", exchangeForm(tamper(t0))), 400, "invalid_request",
		map[string]any{"client": "api1", "client_verified": true, "grant": tx})
	deny(s.post("token_endpoint", "api1", "api1-secret", exchangeForm(t0, "actor_token", own)), 400, "invalid_request",
		map[string]any{"client": "api1", "client_verified": true, "grant": tx})

	// A SAML assertion exchanged, then replayed; one expired.
	doc := signAssertion(t, corpAssertion{id: fmt.Sprintf("_logs-%d", time.Now().UnixNano()), issuer: "https://idp.corp.test",
		nameID: "alice@corp.test", audience: s.issuer, notOnOrAfter: time.Now().Add(5 * time.Minute)}.xml(s.issuer), samlKey, samlDER)
	samlForm := exchangeForm(base64.RawURLEncoding.EncodeToString(doc), "audience", "https://api2.example")
	samlForm.Set("subject_token_type", typeSAML2)
	s.token("api1", "api1-secret", samlForm)
	expect(map[string]any{"status": 200, "outcome": "ok", "client": "api1", "client_verified": true, "grant": tx})
	deny(s.post("token_endpoint", "api1", "api1-secret", samlForm), 400, "invalid_request",
		map[string]any{"client": "api1", "client_verified": true, "grant": tx})
	expired := signAssertion(t, corpAssertion{id: fmt.Sprintf("_logs-expired-%d", time.Now().UnixNano()), issuer: "https://idp.corp.test",
		nameID: "alice@corp.test", audience: s.issuer, notOnOrAfter: time.Now().Add(-5 * time.Minute)}.xml(s.issuer), samlKey, samlDER)
	expiredForm := exchangeForm(base64.RawURLEncoding.EncodeToString(expired), "audience", "https://api2.example")
	expiredForm.Set("subject_token_type", typeSAML2)
	deny(s.post("token_endpoint", "api1", "api1-secret", expiredForm), 400, "invalid_request",
		map[string]any{"client": "api1", "client_verified": true, "grant": tx})

	// The code flow with PKCE: a wrong password first, then the right one.
	b := newBrowser(t, "https://portal.example/cb")
	b.client.Transport = rec
	authURL := func(verifier string) string {
		return s.endpointOIDC("authorization_endpoint") + "?" + url.Values{
			"response_type": {"code"}, "client_id": {"portal"}, "redirect_uri": {"https://portal.example/cb"},
			"scope": {"openid email payments:read"}, "state": {randomString()}, "nonce": {randomString()},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
		}.Encode()
	}
	code := func(verifier string) string {
		t.Helper()
		p := b.get(authURL(verifier))
		if strings.Contains(p.body, `name="password"`) {
			expect(map[string]any{"method": "GET", "status": 200, "outcome": "ok", "client": "portal", "client_verified": false})
			p = b.submit(s.issuer, p, url.Values{"username": {"alice"}, "password": {"alice-wrong-password"}})
			if p.status != http.StatusUnauthorized {
				t.Fatalf("a wrong password: %d, want 401", p.status)
			}
			expect(map[string]any{"status": 401, "outcome": "denied", "error": "access_denied", "client": "portal", "client_verified": false})
			p = b.submit(s.issuer, p, url.Values{"username": {"alice"}, "password": {"alice-password"}})
		}
		if strings.Contains(p.body, `name="decision"`) {
			p = b.submit(s.issuer, p, url.Values{"decision": {"allow"}})
		}
		u, err := url.Parse(p.url)
		if err != nil || !strings.HasPrefix(p.url, "https://portal.example/cb?") || u.Query().Get("code") == "" {
			t.Fatalf("no code: %d %s\n%s", p.status, p.url, p.body)
		}
		return u.Query().Get("code")
	}
	verifier := oauth2.GenerateVerifier()
	c1 := code(verifier)
	deny(s.post("token_endpoint", "portal", "portal-secret", redeemForm(c1, oauth2.GenerateVerifier())), 400, "invalid_grant",
		map[string]any{"client": "portal", "client_verified": true, "grant": ac})
	verifier = oauth2.GenerateVerifier()
	c2 := code(verifier)
	signedIn := s.token("portal", "portal-secret", redeemForm(c2, verifier))
	expect(map[string]any{"status": 200, "outcome": "ok", "client": "portal", "client_verified": true, "grant": ac})
	userAT, rt0 := signedIn.str("access_token"), signedIn.str("refresh_token")
	if userAT == "" || rt0 == "" || signedIn.str("id_token") == "" {
		t.Fatalf("code redemption %s", signedIn.Raw)
	}

	// Userinfo, with the user's token and with a forged one.
	get := func(u, authorization string) reply {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		return doReply(t, req)
	}
	userinfo := s.endpointOIDC("userinfo_endpoint")
	if r := get(userinfo, "Bearer "+userAT); r.Status != 200 || r.str("sub") != "alice" {
		t.Fatalf("userinfo %d %s", r.Status, r.Raw)
	}
	expect(map[string]any{"method": "GET", "status": 200, "outcome": "ok", "client": "portal", "client_verified": true})
	if r := get(userinfo, "Bearer "+tamper(userAT)); r.Status != 401 {
		t.Fatalf("userinfo with a forged token: %d", r.Status)
	}
	expect(map[string]any{"method": "GET", "status": 401, "outcome": "denied", "error": "invalid_token"})

	// Refresh: rotated, then the spent token reused, then one that never was.
	s.token("portal", "portal-secret", refreshForm(rt0))
	expect(map[string]any{"status": 200, "outcome": "ok", "client": "portal", "client_verified": true, "grant": rt})
	deny(s.post("token_endpoint", "portal", "portal-secret", refreshForm(rt0)), 400, "invalid_grant",
		map[string]any{"client": "portal", "client_verified": true, "grant": rt})
	deny(s.post("token_endpoint", "portal", "portal-secret", refreshForm("drt_never-issued-refresh-token")), 400, "invalid_grant",
		map[string]any{"client": "portal", "client_verified": true, "grant": rt})

	// The code replayed: refused, and what it gave is revoked (RFC 6749 §4.1.2).
	deny(s.post("token_endpoint", "portal", "portal-secret", redeemForm(c2, verifier)), 400, "invalid_grant",
		map[string]any{"client": "portal", "client_verified": true, "grant": ac})

	// Introspection, call reports, revocation.
	if r := s.post("introspection_endpoint", "api2", "api2-secret", url.Values{"token": {t1}}); r.Status != 200 || r.Body["active"] != true {
		t.Fatalf("introspection %d %s", r.Status, r.Raw)
	}
	expect(map[string]any{"status": 200, "outcome": "ok", "client": "api2", "client_verified": true})
	deny(s.post("introspection_endpoint", "api2", "api2-secret-wrong", url.Values{"token": {t1}}), 401, "invalid_client",
		map[string]any{"client": "api2", "client_verified": false})
	report := fmt.Sprintf(`{"calls":[{"token_jti":%q,"action":"read","resource":"account/42","outcome":"ok"}]}`, claims(t, t1)["jti"])
	if r := s.postRaw(s.endpoint("call_report_endpoint"), basic("api2", "api2-secret"), "application/json", report); r.Status != 200 {
		t.Fatalf("call report %d %s", r.Status, r.Raw)
	}
	expect(map[string]any{"status": 200, "outcome": "ok", "client": "api2", "client_verified": true})
	deny(s.postRaw(s.endpoint("call_report_endpoint"), basic("api2", "api2-secret"), "application/json", `{"calls":[`), 400, "invalid_request",
		map[string]any{"client": "api2", "client_verified": true})
	if r := s.post("revocation_endpoint", "web-app", "web-secret", url.Values{"token": {t0}}); r.Status != 200 {
		t.Fatalf("revocation %d %s", r.Status, r.Raw)
	}
	expect(map[string]any{"status": 200, "outcome": "ok", "client": "web-app", "client_verified": true})
	deny(s.post("token_endpoint", "api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example")), 400, "invalid_request",
		map[string]any{"client": "api1", "client_verified": true, "grant": tx})
	deny(s.post("revocation_endpoint", "api1", "api1-secret", url.Values{"token": {own, own}}), 400, "invalid_request",
		map[string]any{"client": "api1", "client_verified": true})

	// The public documents, and the probes (at fixed paths, not in discovery).
	for _, u := range []string{s.endpoint("jwks_uri"), s.issuer + "/.well-known/openid-configuration", s.issuer + "/healthz", s.issuer + "/readyz", s.issuer + "/metrics"} {
		if r := get(u, ""); r.Status != 200 {
			t.Fatalf("GET %s: %d", u, r.Status)
		}
		level := "INFO"
		if strings.HasSuffix(u, "/healthz") || strings.HasSuffix(u, "/readyz") || strings.HasSuffix(u, "/metrics") {
			level = "DEBUG"
		}
		expect(map[string]any{"method": "GET", "status": 200, "outcome": "ok", "level": level})
	}

	// The request id on a line is the one the audit trail records.
	auditIDs := map[string]bool{}
	for _, typ := range []string{"token.issued", "request.denied", "token.exchanged"} {
		for _, e := range auditEvents(t, s, typ) {
			if id, _ := e["request_id"].(string); id != "" {
				auditIDs[id] = true
			}
		}
	}
	s.stop()
	logs := s.logs.String()

	// Every line is JSON; the access lines are keyed by request id.
	lines := map[string][]map[string]any{}
	for i, l := range strings.Split(strings.TrimRight(logs, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("log line %d is not JSON: %q", i+1, l)
			continue
		}
		if m["msg"] == "request" {
			id, _ := m["request_id"].(string)
			lines[id] = append(lines[id], m)
		}
	}
	seen := map[string]bool{}
	for _, r := range rec.sent {
		seen[r.id] = true
		ls := lines[r.id]
		if len(ls) != 1 {
			t.Errorf("%s %s %s: %d access lines, want 1", r.id, r.method, r.path, len(ls))
			continue
		}
		l := ls[0]
		fields := map[string]any{"method": r.method, "route": r.path, "status": r.status}
		for k, v := range want[r.id] {
			fields[k] = v
		}
		for k, v := range fields {
			if n, ok := v.(int); ok {
				v = float64(n)
			}
			if l[k] != v {
				t.Errorf("%s %s %s: %s = %v, want %v\n%v", r.id, r.method, r.path, k, l[k], v, l)
			}
		}
		for _, k := range []string{"error", "client", "client_verified", "grant"} {
			if _, expected := fields[k]; want[r.id] != nil && !expected && l[k] != nil {
				t.Errorf("%s %s %s: %s = %v, want none\n%v", r.id, r.method, r.path, k, l[k], l)
			}
		}
		for _, k := range []string{"time", "level", "request_id", "outcome", "duration_ms", "remote"} {
			if l[k] == nil {
				t.Errorf("%s %s %s: no %s\n%v", r.id, r.method, r.path, k, l)
			}
		}
		if auditIDs[r.id] {
			delete(auditIDs, r.id)
		}
	}
	for id, ls := range lines {
		if !seen[id] {
			t.Errorf("access line of a request the test did not send: %v", ls)
		}
	}
	if len(want) < 40 {
		t.Errorf("only %d requests checked", len(want))
	}
	for id := range auditIDs {
		t.Errorf("audit events carry request id %s, which no request of the test had", id)
	}

	// No secret, anywhere in the log.
	if len(rec.secrets) < 50 {
		t.Errorf("only %d secrets collected", len(rec.secrets))
	}
	var leaked []string
	for v, where := range rec.secrets {
		if strings.Contains(logs, v) {
			leaked = append(leaked, fmt.Sprintf("%s (%.40s…)", where, v))
		}
	}
	sort.Strings(leaked)
	if len(leaked) > 0 {
		t.Errorf("the log holds %d secrets:\n%s", len(leaked), strings.Join(slices.Compact(leaked), "\n"))
	}
	t.Logf("%d requests, %d with expected fields, %d secrets checked", len(rec.sent), len(want), len(rec.secrets))
	if t.Failed() {
		t.Logf("log:\n%s", logs)
	}
}
