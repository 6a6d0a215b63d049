package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// policyCLIConfig: api1 → api2 → api3 as in bankConfig, api2 reaching api3 only
// on behalf of api1 (a condition), api3 reaching api2 only for a subject of
// tenant bank (a condition that cannot be evaluated without that claim), and a
// client holding the token-exchange grant with no policy (a lint finding).
const policyCLIConfig = `
issuer: %ISSUER%
listen: %LISTEN%
storage: {driver: sqlite, dsn: "%DIR%/deputy.db"}
audiences:
  - {id: https://api1.example, client: api1, scopes: ["payments:write"]}
  - {id: https://api2.example, client: api2, scopes: ["ledger:read", "ledger:write"]}
  - {id: https://api3.example, client: api3, scopes: ["fraud:check", "ledger:read"]}
clients:
  - id: web-app
    secret: web-secret
    grant_types: [client_credentials]
    scopes: ["payments:write", "ledger:read", "ledger:write", "fraud:check"]
    audiences: ["https://api1.example"]
  - id: batch
    secret: batch-secret
    grant_types: [client_credentials]
    scopes: ["ledger:read"]
    audiences: ["https://api2.example"]
  - {id: api1, secret: api1-secret, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
  - {id: api2, secret: api2-secret, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
  - {id: api3, secret: api3-secret, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
  - {id: idle, secret: idle-secret, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
exchange:
  policies:
    - name: api1-to-api2
      client: api1
      audiences: [https://api2.example]
    - name: api2-to-api3
      client: api2
      audiences: [https://api3.example]
      condition: size(subject.act) > 0 && subject.act[0].sub == "api1"
    - name: api3-to-api2
      client: api3
      audiences: [https://api2.example]
      condition: subject.claims.tenant == "bank"
`

// explained is the --json answer of deputy policy explain.
type explained struct {
	Allowed  bool     `json:"allowed"`
	Rule     string   `json:"rule"`
	Scopes   []string `json:"scopes"`
	Error    string   `json:"error"`
	Policies []struct {
		Policy, Check, Reason string
	} `json:"policies"`
}

// TestPolicyExplainAgreesWithTheServer: for real tokens, deputy policy explain
// gives the answer the running server gives to the same exchange — allowed by
// the same rule with the same scopes, or the same error — and says which check
// of which policy refused it.
func TestPolicyExplainAgreesWithTheServer(t *testing.T) {
	s := start(t, policyCLIConfig)
	t0 := s.token("web-app", "web-secret", clientCredentials("payments:write ledger:read ledger:write fraud:check")).str("access_token")
	batch := s.token("batch", "batch-secret", clientCredentials("ledger:read")).str("access_token")

	explain := func(t *testing.T, wantCode int, args ...string) explained {
		t.Helper()
		out, code := s.deputy(append([]string{"policy", "explain", "--json"}, args...)...)
		if code != wantCode {
			t.Fatalf("explain %v: exit %d, want %d\n%s", args, code, wantCode, out)
		}
		var e explained
		if err := json.Unmarshal([]byte(out), &e); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return e
	}

	// api1 exchanges the web app's token for api2: allowed, as explained.
	e := explain(t, 0, "--client", "api1", "--subject-token", t0, "--audience", "https://api2.example")
	r := s.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example"))
	if !e.Allowed || e.Rule != "api1-to-api2" || strings.Join(e.Scopes, " ") != r.str("scope") {
		t.Errorf("explain %+v, server scope %q", e, r.str("scope"))
	}
	t1 := r.str("access_token")

	// api2 exchanges it for api3 on behalf of api1: the condition holds.
	e = explain(t, 0, "--client", "api2", "--subject-token", t1)
	r = s.token("api2", "api2-secret", exchangeForm(t1))
	if !e.Allowed || e.Rule != "api2-to-api3" || strings.Join(e.Scopes, " ") != r.str("scope") {
		t.Errorf("explain %+v, server scope %q", e, r.str("scope"))
	}
	t2 := r.str("access_token")

	// api2 on its own (batch's token has no act): the condition is false.
	e = explain(t, 1, "--client", "api2", "--subject-token", batch)
	wantError(t, s.post("token_endpoint", "api2", "api2-secret", exchangeForm(batch)), 400, e.Error)
	if e.Error != "invalid_request" || len(e.Policies) != 1 || e.Policies[0].Check != "condition" || e.Policies[0].Reason != "condition is false" {
		t.Errorf("explain %+v", e)
	}
	out, code := s.deputy("policy", "explain", "--client", "api2", "--subject-token", batch)
	if code != 1 || !strings.Contains(out, "denied: invalid_request\n") || !strings.Contains(out, "api2-to-api3  condition  condition is false\n") {
		t.Errorf("explain (text): exit %d\n%s", code, out)
	}

	// api3 for a subject without a tenant claim: the condition cannot be
	// evaluated, and the request is refused with the reason.
	e = explain(t, 1, "--client", "api3", "--subject-token", t2)
	wantError(t, s.post("token_endpoint", "api3", "api3-secret", exchangeForm(t2)), 400, e.Error)
	if e.Error != "invalid_request" || len(e.Policies) != 1 || e.Policies[0].Check != "condition" ||
		!strings.HasPrefix(e.Policies[0].Reason, "condition cannot be evaluated: ") || !strings.Contains(e.Policies[0].Reason, "tenant") {
		t.Errorf("explain %+v", e)
	}
	out, code = s.deputy("policy", "explain", "--client", "api3", "--subject-claims", `{"sub":"alice","tenant":"bank"}`)
	if code != 0 || !strings.Contains(out, "allowed: policy api3-to-api2 decides") {
		t.Errorf("explain with the claim: exit %d\n%s", code, out)
	}
}

// TestPolicyExplainClaimsAgreeWithTheServer: a user's token described by its
// own claims (--subject-claims, as a policy test file has them) is decided as
// the server decides the token itself: auth_time and amr reach a condition with
// the server's types (an int timestamp() takes, a list of strings), not as
// plain JSON would decode them. --now pins the time the condition sees.
func TestPolicyExplainClaimsAgreeWithTheServer(t *testing.T) {
	cfg := strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+signinClients, 1)
	cfg = strings.Replace(cfg, "exchange:\n  policies:\n", `exchange:
  policies:
    - name: api1-recent-sign-in
      client: api1
      audiences: ["https://api3.example"]
      condition: now - timestamp(subject.claims.auth_time) < duration("1h") && "pwd" in subject.claims.amr
`, 1)
	s := start(t, cfg)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, s.issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: "portal", ClientSecret: "portal-secret", Endpoint: provider.Endpoint(),
		RedirectURL: "https://portal.example/cb", Scopes: []string{"openid", "payments:read"}}
	verifier := oauth2.GenerateVerifier()
	q := newBrowser(t, "https://portal.example/cb").signIn(s, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "alice-password")
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	c := claims(t, tok.AccessToken)
	if c["auth_time"] == nil {
		t.Fatalf("the user's token has no auth_time: %v", c)
	}
	described, _ := json.Marshal(c)

	r := s.token("api1", "api1-secret", exchangeForm(tok.AccessToken, "audience", "https://api3.example"))
	for _, subject := range [][]string{{"--subject-token", tok.AccessToken}, {"--subject-claims", string(described)}} {
		out, code := s.deputy(append([]string{"policy", "explain", "--json", "--client", "api1", "--audience", "https://api3.example"}, subject...)...)
		var e explained
		if err := json.Unmarshal([]byte(out), &e); err != nil {
			t.Fatalf("%s: %v\n%s", subject[0], err, out)
		}
		if code != 0 || !e.Allowed || e.Rule != "api1-recent-sign-in" || strings.Join(e.Scopes, " ") != r.str("scope") {
			t.Errorf("%s: exit %d, %+v; the server allowed it (%s)", subject[0], code, e, r.Raw)
		}
	}

	// At the time of the sign-in (--now, while the token is valid), a sign-in
	// two hours earlier makes the condition false.
	authTime := int64(c["auth_time"].(float64))
	c["auth_time"] = authTime - 7200
	old, _ := json.Marshal(c)
	at := time.Unix(authTime, 0).UTC().Format(time.RFC3339)
	out, code := s.deputy("policy", "explain", "--json", "--client", "api1", "--audience", "https://api3.example", "--subject-claims", string(old), "--now", at)
	var e explained
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if code != 1 || e.Allowed || len(e.Policies) != 2 || e.Policies[0].Check != "condition" || e.Policies[0].Reason != "condition is false" {
		t.Errorf("a sign-in two hours before --now: exit %d, %+v", code, e)
	}
}

// TestPolicyExplainBadUsage: what cannot be the subject of a request is exit 2
// with a clear message, before any policy.
func TestPolicyExplainBadUsage(t *testing.T) {
	s := start(t, policyCLIConfig)
	t0 := s.token("web-app", "web-secret", clientCredentials("payments:write")).str("access_token")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"fail/malformed-token", []string{"--client", "api1", "--subject-token", "not.a.token"}, "deputy policy explain: subject_token is invalid ("},
		{"fail/tampered-token", []string{"--client", "api1", "--subject-token", t0[:len(t0)-4] + "AAAA"}, "deputy policy explain: subject_token"},
		{"fail/unknown-client", []string{"--client", "nobody", "--subject-token", t0}, `deputy policy explain: unknown client "nobody"`},
		{"fail/unknown-audience", []string{"--client", "api1", "--subject-token", t0, "--audience", "https://api9.example"}, `deputy policy explain: unknown audience "https://api9.example"`},
		{"fail/malformed-claims", []string{"--client", "api1", "--subject-claims", "{sub: alice}"}, "subject claims are not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := s.deputy(append([]string{"policy", "explain"}, tt.args...)...)
			if code != 2 || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, want 2 and %q:\n%s", code, tt.want, out)
			}
		})
	}
}

// TestPolicyTestAndLint: policy test files run against the configuration (exit
// 1 on a failing case, 2 naming the line of an unknown key), and lint reports a
// client with the token-exchange grant that no policy names.
func TestPolicyTestAndLint(t *testing.T) {
	s := start(t, policyCLIConfig)
	write := func(name, text string) string {
		f := filepath.Join(s.dir, name)
		if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	good := write("good.yaml", `
- name: api2 for api1
  client: api2
  subject: {claims: {sub: web-app, act: {sub: api1}, scope: "ledger:read"}}
  expect: {allow: true, rule: api2-to-api3, scopes: ["ledger:read"]}
- name: api2 on its own
  client: api2
  subject: {claims: {sub: batch, scope: "ledger:read"}}
  expect: {error: invalid_request}
- name: no tenant
  client: api3
  subject: {claims: {sub: alice}}
  expect: {error: invalid_request}
`)
	failing := write("failing.yaml", `
- name: api2 on its own, wrongly expected
  client: api2
  subject: {claims: {sub: batch}}
  expect: {allow: true}
`)
	unknownKey := write("unknown.yaml", `
- name: a
  client: api1
  subject: {claims: {sub: alice}}
  scopes: "payments:write"
  expect: {error: invalid_scope}
`)
	out, code := s.deputy("policy", "test", good)
	if code != 0 || !strings.Contains(out, "PASS api2 for api1\nPASS api2 on its own\nPASS no tenant\n3 passed, 0 failed\n") {
		t.Errorf("good: exit %d\n%s", code, out)
	}
	out, code = s.deputy("policy", "test", good, failing)
	if code != 1 || !strings.Contains(out, "FAIL api2 on its own, wrongly expected: want allowed, got invalid_request") || !strings.Contains(out, "3 passed, 1 failed\n") {
		t.Errorf("failing: exit %d\n%s", code, out)
	}
	out, code = s.deputy("policy", "test", unknownKey)
	if code != 2 || !strings.Contains(out, unknownKey+`:5:3: unknown key "scopes"`) {
		t.Errorf("unknown key: exit %d\n%s", code, out)
	}

	out, code = s.deputy("policy", "lint")
	if code != 0 || !strings.Contains(out, "clients[5].grant_types[0]: client idle holds the token-exchange grant, but no exchange policy names it") || !strings.Contains(out, "1 finding\n") {
		t.Errorf("lint: exit %d\n%s", code, out)
	}
	if _, code = s.deputy("policy", "lint", "--strict"); code != 1 {
		t.Errorf("lint --strict: exit %d, want 1", code)
	}
}

// TestDemoPolicyTests runs the demo bank's policy test file against the demo's
// configuration, as scripts/test does.
func TestDemoPolicyTests(t *testing.T) {
	tmpl, err := os.ReadFile("../examples/bank/demo/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "deputy-demo.yaml")
	text := strings.NewReplacer("%ISSUER%", "http://127.0.0.1:8080", "%DIR%", dir, "%WEBAPP%", "http://127.0.0.1:8081").Replace(string(tmpl))
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "policy", "test", "--config", cfg, "../examples/bank/demo/policy-tests.yaml")
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), " passed, 0 failed\n") ||
		!strings.Contains(string(out), "PASS the ledger cannot reach fraud-check on its own\n") {
		t.Errorf("deputy policy test: %v\n%s", err, out)
	}
}
