package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// policyConfig has a conditional policy: the ledger reaches fraud-check only on
// behalf of payments, for a subject of tenant bank.
const policyConfig = `issuer: http://127.0.0.1:8080
storage: {driver: sqlite, dsn: "%DIR%/deputy.db"}
audiences:
  - {id: https://ledger.example, client: ledger, scopes: ["ledger:write", "fraud:check"]}
  - {id: https://fraud.example, client: fraud, scopes: ["fraud:check"]}
clients:
  - {id: payments, secret: s, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
  - {id: ledger, secret: s, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
  - {id: fraud, secret: s, grant_types: [client_credentials]}
  - {id: teller, secret: s, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
  - {id: treasury, secret: s, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
  - {id: vault, secret: s, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
trusted_issuers:
  - {name: entra, issuer: https://login.example/tenant, jwks_uri: https://login.example/keys, audiences: [api://payments]}
exchange:
  policies:
    - name: payments-to-ledger
      client: payments
      audiences: [https://ledger.example]
      scopes: ["ledger:write", "fraud:check"]
    - name: ledger-to-fraud
      client: ledger
      audiences: [https://fraud.example]
      condition: size(subject.act) > 0 && subject.act[0].sub == "payments" && subject.claims.tenant == "bank"
    - name: business-hours
      client: teller
      audiences: [https://ledger.example]
      condition: now.getDayOfWeek("UTC") >= 1 && now.getDayOfWeek("UTC") <= 5 && now.getHours("UTC") >= 9 && now.getHours("UTC") < 17
    - name: recent-sign-in
      client: treasury
      audiences: [https://ledger.example]
      condition: now - timestamp(subject.claims.auth_time) < duration("1h")
    - name: bound-only
      client: vault
      audiences: [https://ledger.example]
      require_binding: true
`

// Monday 10:00 and Sunday 10:00 UTC, and thumbprints of a DPoP key and a
// client certificate.
const (
	monday  = "2026-12-07T10:00:00Z"
	sunday  = "2026-12-06T10:00:00Z"
	dpopJKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	certX5T = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"
)

// writePolicyConfig writes policyConfig (or text) into a new directory.
func writePolicyConfig(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "deputy.yaml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(text, "%DIR%", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// runDeputy runs the command line and returns its exit status and output.
func runDeputy(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(t.Context(), args, &out, &errb)
	switch e := err.(type) {
	case nil:
	case exitError:
		code = int(e)
	default:
		code = 1
		errb.WriteString("deputy: " + err.Error() + "\n")
	}
	return code, out.String(), errb.String()
}

type cliCase struct {
	name      string
	args      []string
	code      int
	stdout    []string // each must be in the output
	stderr    []string
	notStdout []string
}

func (tt cliCase) check(t *testing.T, code int, stdout, stderr string) {
	t.Helper()
	if code != tt.code {
		t.Errorf("exit %d, want %d", code, tt.code)
	}
	for _, w := range tt.stdout {
		if !strings.Contains(stdout, w) {
			t.Errorf("stdout lacks %q", w)
		}
	}
	for _, w := range tt.notStdout {
		if strings.Contains(stdout, w) {
			t.Errorf("stdout has %q", w)
		}
	}
	for _, w := range tt.stderr {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
}

func TestPolicyExplain(t *testing.T) {
	cfg := writePolicyConfig(t, policyConfig)
	bad := writePolicyConfig(t, "issuer: [\n")
	const (
		alice      = `{"sub":"alice","scope":"ledger:write fraud:check"}`
		viaPayment = `{"sub":"alice","tenant":"bank","scope":"fraud:check","act":{"sub":"payments"}}`
		noTenant   = `{"sub":"alice","scope":"fraud:check","act":{"sub":"payments"}}`
	)
	tests := []cliCase{
		{name: "ok/allowed", code: 0,
			args: []string{"--client", "payments", "--subject-claims", alice, "--audience", "https://ledger.example"},
			stdout: []string{
				"allowed: policy payments-to-ledger decides (delegation)\n",
				"  subject    alice (issuer self, access_token)\n",
				"  audiences  https://ledger.example\n",
				"  scopes     fraud:check ledger:write\n",
				"  act        {sub: payments}\n",
				"  issues     access_token, token_type Bearer\n",
				"  lifetime   expires_in 300 (exp ",
				"policies of client payments, in order:\n  payments-to-ledger  —  decides\n",
			}},
		{name: "ok/default-audience-and-narrowed-scope", code: 0,
			args:   []string{"--client", "payments", "--subject-claims", alice, "--scope", "ledger:write"},
			stdout: []string{"audiences  https://ledger.example\n", "scopes     ledger:write\n"}},
		{name: "ok/condition-holds", code: 0,
			args:   []string{"--client", "ledger", "--subject-claims", viaPayment, "--actor", "ledger"},
			stdout: []string{"allowed: policy ledger-to-fraud decides", "act        {sub: ledger, act: {sub: payments}}\n"}},
		{name: "fail/condition-false", code: 1,
			args: []string{"--client", "ledger", "--subject-claims", `{"sub":"alice","tenant":"bank"}`, "--audience", "https://fraud.example"},
			stdout: []string{
				"denied: invalid_request\n",
				"  error_description  the subject token is not acceptable to the client's policies: no policy's condition holds\n",
				"  reason             policy ledger-to-fraud condition is false\n",
				"policies of client ledger, in order:\n  ledger-to-fraud  condition  condition is false\n",
			}},
		{name: "fail/condition-cannot-be-evaluated", code: 1,
			args: []string{"--client", "ledger", "--subject-claims", noTenant},
			stdout: []string{
				"denied: invalid_request\n",
				"a condition of the client's policies cannot be evaluated for this request",
				"  policy             ledger-to-fraud\n",
				"ledger-to-fraud  condition  condition cannot be evaluated: ",
				"tenant",
			}},
		{name: "fail/scope-beyond-the-policy", code: 1,
			args:   []string{"--client", "payments", "--subject-claims", `{"sub":"alice","scope":"payments:write"}`, "--scope", "payments:write"},
			stdout: []string{"denied: invalid_scope\n", `scope "payments:write" is beyond what may be granted`, "payments-to-ledger  scope"}},
		{name: "fail/not-addressed-to-the-client", code: 1,
			args:   []string{"--client", "payments", "--subject-claims", `{"sub":"alice","aud":"https://fraud.example"}`},
			stdout: []string{"denied: invalid_request\n", "subject token is not addressed to the client"}},
		{name: "fail/client-without-policy", code: 1,
			args:   []string{"--client", "fraud", "--subject-claims", alice},
			stdout: []string{"denied: unauthorized_client\n", "client fraud has no exchange policy\n"}},
		{name: "fail/unknown-client", code: 2,
			args:   []string{"--client", "nobody", "--subject-claims", alice},
			stderr: []string{`deputy policy explain: unknown client "nobody": it is not in clients`}},
		{name: "fail/unknown-audience", code: 2,
			args:   []string{"--client", "payments", "--subject-claims", alice, "--audience", "https://treasury.example"},
			stderr: []string{`unknown audience "https://treasury.example": it is not in audiences`}},
		{name: "fail/unknown-resource", code: 2,
			args:   []string{"--client", "payments", "--subject-claims", alice, "--resource", "https://treasury.example"},
			stderr: []string{`unknown audience "https://treasury.example"`}},
		{name: "fail/malformed-claims", code: 2,
			args:   []string{"--client", "payments", "--subject-claims", `{"sub":`},
			stderr: []string{"subject claims are not a JSON object"}},
		{name: "fail/unknown-subject-issuer", code: 2,
			args:   []string{"--client", "payments", "--subject-claims", alice, "--subject-issuer", "okta"},
			stderr: []string{`subject issuer "okta" is neither self nor`}},
		{name: "fail/unknown-subject-type", code: 2,
			args:   []string{"--client", "payments", "--subject-claims", alice, "--subject-type", "opaque"},
			stderr: []string{`subject type "opaque" is not one of`}},
		{name: "fail/unknown-requested-token-type", code: 2,
			args:   []string{"--client", "payments", "--subject-claims", alice, "--requested-token-type", "cookie"},
			stderr: []string{`requested token type "cookie"`}},
		{name: "fail/no-client", code: 2,
			args:   []string{"--subject-claims", alice},
			stderr: []string{"--client is required"}},
		{name: "fail/no-subject", code: 2,
			args:   []string{"--client", "payments"},
			stderr: []string{"give the subject as either --subject-token or --subject-claims"}},
		{name: "fail/two-subjects", code: 2,
			args:   []string{"--client", "payments", "--subject-claims", alice, "--subject-token", "x.y.z"},
			stderr: []string{"give the subject as either --subject-token or --subject-claims"}},
		{name: "fail/issuer-of-a-token", code: 2,
			args:   []string{"--client", "payments", "--subject-token", "x.y.z", "--subject-issuer", "entra"},
			stderr: []string{"--subject-issuer goes with --subject-claims"}},
		{name: "fail/unknown-flag", code: 2,
			args:   []string{"--client", "payments", "--subject", alice},
			stderr: []string{"flag provided but not defined: -subject"}},
		{name: "fail/argument", code: 2,
			args:   []string{"--client", "payments", "--subject-claims", alice, "extra"},
			stderr: []string{`unexpected argument "extra"`}},

		// --now: conditions see it, and the lifetime and expiry count from it.
		{name: "ok/business-hours-on-monday", code: 0,
			args:   []string{"--client", "teller", "--subject-claims", alice, "--now", monday},
			stdout: []string{"allowed: policy business-hours decides", "lifetime   expires_in 300 (exp 2026-12-07T10:05:00Z)\n"}},
		{name: "fail/business-hours-on-sunday", code: 1,
			args:   []string{"--client", "teller", "--subject-claims", alice, "--now", sunday},
			stdout: []string{"denied: invalid_request\n", "business-hours  condition  condition is false\n"}},
		{name: "fail/expired-at-that-time", code: 1,
			args:   []string{"--client", "teller", "--subject-claims", `{"sub":"alice","exp":1796637600}`, "--now", monday},
			stdout: []string{"denied: invalid_request\n", "subject token expired at 2026-12-07T10:00:00Z"}},
		{name: "fail/now-not-rfc3339", code: 2,
			args:   []string{"--client", "teller", "--subject-claims", alice, "--now", "monday"},
			stderr: []string{`--now "monday" is not an RFC 3339 time`}},

		// auth_time is an int, as in the server's tokens: timestamp() takes it.
		{name: "ok/recent-sign-in", code: 0,
			args:   []string{"--client", "treasury", "--subject-claims", `{"sub":"alice","auth_time":1796636400}`, "--now", monday},
			stdout: []string{"allowed: policy recent-sign-in decides"}},
		{name: "fail/sign-in-too-old", code: 1,
			args:   []string{"--client", "treasury", "--subject-claims", `{"sub":"alice","auth_time":1796630000}`, "--now", monday},
			stdout: []string{"recent-sign-in  condition  condition is false\n"}},

		// A request that proves a key.
		{name: "ok/dpop-bound", code: 0,
			args:   []string{"--client", "vault", "--subject-claims", alice, "--binding-jkt", dpopJKT},
			stdout: []string{"allowed: policy bound-only decides", "issues     access_token, token_type DPoP\n", "bound to   jkt " + dpopJKT + " (the request's DPoP key)\n"}},
		{name: "ok/certificate-bound", code: 0,
			args:   []string{"--client", "vault", "--subject-claims", alice, "--binding-x5t", certX5T},
			stdout: []string{"issues     access_token, token_type Bearer\n", "bound to   x5t#S256 " + certX5T + " (the request's client certificate)\n"}},
		{name: "fail/bearer-request", code: 1,
			args:   []string{"--client", "vault", "--subject-claims", alice},
			stdout: []string{"denied: invalid_request\n", "bound-only  binding  policy bound-only requires a sender-constrained request"}},
		{name: "ok/bound-subject-bound-request", code: 0,
			args:   []string{"--client", "payments", "--subject-claims", `{"sub":"alice","cnf":{"jkt":"` + dpopJKT + `"}}`, "--binding-jkt", dpopJKT},
			stdout: []string{"allowed: policy payments-to-ledger decides"}},
		{name: "fail/bound-subject-bearer-request", code: 1,
			args:   []string{"--client", "payments", "--subject-claims", `{"sub":"alice","cnf":{"jkt":"` + dpopJKT + `"}}`},
			stdout: []string{"the subject token is sender-constrained; the exchange must be too"}},
		{name: "fail/two-bindings", code: 2,
			args:   []string{"--client", "vault", "--subject-claims", alice, "--binding-jkt", dpopJKT, "--binding-x5t", certX5T},
			stderr: []string{"give --binding-jkt or --binding-x5t, not both"}},
		{name: "fail/binding-not-a-thumbprint", code: 2,
			args:   []string{"--client", "vault", "--subject-claims", alice, "--binding-jkt", "a+b/c="},
			stderr: []string{`binding jkt "a+b/c=" is not a base64url thumbprint`}},

		// What the server's verifiers would never produce.
		{name: "fail/id-token-with-scope", code: 2,
			args:   []string{"--client", "payments", "--subject-claims", alice, "--subject-type", "id_token"},
			stderr: []string{"an ID token has no client_id or scope"}},
		{name: "fail/trusted-issuer-unmapped-claim", code: 2,
			args:   []string{"--client", "payments", "--subject-claims", `{"sub":"alice","tenant":"bank"}`, "--subject-issuer", "entra"},
			stderr: []string{"the server never shows tenant from trusted issuer entra: subject.claims holds only what trusted_issuers[].claims maps (nothing)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runDeputy(t, append([]string{"policy", "explain", "--config", cfg}, tt.args...)...)
			tt.check(t, code, stdout, stderr)
		})
	}
	t.Run("fail/config-does-not-load", func(t *testing.T) {
		code, _, stderr := runDeputy(t, "policy", "explain", "--config", bad, "--client", "payments", "--subject-claims", alice)
		cliCase{code: 2, stderr: []string{"deputy policy explain: " + bad + ":1:"}}.check(t, code, "", stderr)
	})
}

func TestPolicyExplainJSON(t *testing.T) {
	cfg := writePolicyConfig(t, policyConfig)
	code, stdout, stderr := runDeputy(t, "policy", "explain", "--config", cfg, "--json", "--client", "ledger",
		"--subject-claims", `{"sub":"alice","tenant":"bank","act":{"sub":"payments"},"scope":"fraud:check"}`, "--audience", "https://fraud.example")
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	want := map[string]any{
		"allowed": true, "client": "ledger", "subject": "alice", "subject_issuer": "self", "rule": "ledger-to-fraud",
		"mode": "delegation", "audiences": []any{"https://fraud.example"}, "scopes": []any{"fraud:check"},
		"act":               map[string]any{"sub": "ledger", "act": map[string]any{"sub": "payments"}},
		"issued_token_type": "access_token", "token_type": "Bearer", "expires_in": float64(300),
		"policies": []any{map[string]any{"policy": "ledger-to-fraud", "reason": "decides"}},
	}
	for k, v := range want {
		if g, _ := json.Marshal(got[k]); string(g) != mustJSON(t, v) {
			t.Errorf("%s = %s, want %s", k, g, mustJSON(t, v))
		}
	}
	if exp, _ := got["exp"].(float64); time.Until(time.Unix(int64(exp), 0)) > 301*time.Second || exp == 0 {
		t.Errorf("exp %v", got["exp"])
	}

	code, stdout, _ = runDeputy(t, "policy", "explain", "--config", cfg, "--json", "--client", "vault", "--subject-claims", `{"sub":"alice"}`, "--binding-x5t", certX5T)
	if code != 0 || !strings.Contains(stdout, `"token_type": "Bearer",`) || !strings.Contains(stdout, `"cnf": {
    "x5t#S256": "`+certX5T+`"
  },`) {
		t.Errorf("bound: exit %d\n%s", code, stdout)
	}

	code, stdout, _ = runDeputy(t, "policy", "explain", "--config", cfg, "--json", "--client", "ledger", "--subject-claims", `{"sub":"alice","act":{"sub":"payments"}}`)
	if code != 1 {
		t.Fatalf("exit %d: %s", code, stdout)
	}
	var den explainJSON
	if err := json.Unmarshal([]byte(stdout), &den); err != nil {
		t.Fatal(err)
	}
	if den.Allowed || den.Error != oauth.CodeInvalidRequest || den.Rule != "ledger-to-fraud" || !strings.Contains(den.Reason, "tenant") ||
		len(den.Policies) != 1 || den.Policies[0].Check != "condition" {
		t.Errorf("denial %+v", den)
	}
}

// TestPolicyExplainPrintable: names and claims from a token reach the terminal
// escaped, in text and in JSON.
func TestPolicyExplainPrintable(t *testing.T) {
	cfg := writePolicyConfig(t, policyConfig)
	sub := "al\u202eice\u001b[2J\u0085\u007f"
	claims := mustJSON(t, map[string]string{"sub": sub, "scope": "ledger:write"})
	code, stdout, _ := runDeputy(t, "policy", "explain", "--config", cfg, "--client", "payments", "--subject-claims", claims)
	if code != 0 || !strings.Contains(stdout, `  subject    "al\u202eice\x1b[2J\u0085\x7f" (issuer self`) {
		t.Errorf("exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runDeputy(t, "policy", "explain", "--json", "--config", cfg, "--client", "payments", "--subject-claims", claims)
	if code != 0 || !strings.Contains(stdout, `"subject": "al\u202eice\u001b[2J\u0085\u007f"`) {
		t.Errorf("exit %d\n%s", code, stdout)
	}
	var got struct{ Subject string }
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || got.Subject != "al\u202eice\x1b[2J\u0085\x7f" {
		t.Errorf("subject %q, %v", got.Subject, err)
	}
	if b := printableJSON([]byte("\"\U0001F600 \U000E0001\"")); string(b) != "\"\U0001F600 \\udb40\\udc01\"" {
		t.Errorf("printableJSON = %s", b)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPolicyExplainToken: a real token is verified with the server's verifier
// and the keys in the database, and decided as --subject-claims would be; a
// token that cannot be verified offline is bad usage (exit 2), with advice.
func TestPolicyExplainToken(t *testing.T) {
	cfgFile := writePolicyConfig(t, policyConfig)
	if code, _, stderr := runDeputy(t, "policy", "explain", "--config", cfgFile, "--client", "payments", "--subject-token", "a.b.c"); code != 2 || !strings.Contains(stderr, "no database at") {
		t.Fatalf("without a database: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runDeputy(t, "migrate", "--config", cfgFile); code != 0 {
		t.Fatal(stderr)
	}
	mint := func(c *token.Claims) string {
		cfg, err := config.Load(cfgFile, nil)
		if err != nil {
			t.Fatal(err)
		}
		st, err := sqlstore.Open(t.Context(), cfg.Storage.Driver, cfg.Storage.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		kopts, err := server.KeyOptions(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ks, err := keys.Open(t.Context(), st, kopts)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := token.NewService(cfg.Issuer, ks, token.NewRevoked(), 1<<16).Mint(oauth.JWTTypeAccessToken, c)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	now := time.Now()
	good := mint(&token.Claims{Subject: "alice", Audience: token.Audience{"payments"}, ClientID: "web-app", Scope: "ledger:write",
		IssuedAt: now.Unix(), NotBef: now.Unix(), Expiry: now.Add(time.Minute).Unix(), ID: "jti-1"})
	expired := mint(&token.Claims{Subject: "alice", Audience: token.Audience{"payments"}, IssuedAt: now.Add(-time.Hour).Unix(),
		NotBef: now.Add(-time.Hour).Unix(), Expiry: now.Add(-time.Minute).Unix(), ID: "jti-2"})
	foreign := "eyJhbGciOiJSUzI1NiJ9." + b64(`{"iss":"https://login.example/tenant","sub":"x"}`) + ".c2ln"
	tests := []cliCase{
		{name: "ok/verified", code: 0, args: []string{"--client", "payments", "--subject-token", good},
			stdout: []string{"allowed: policy payments-to-ledger decides", "scopes     ledger:write\n", "lifetime   expires_in "}},
		{name: "fail/addressed-to-another-client", code: 1, args: []string{"--client", "ledger", "--subject-token", good},
			stdout: []string{"denied: invalid_request\n", "subject token is not addressed to the client"}},
		{name: "fail/malformed-token", code: 2, args: []string{"--client", "payments", "--subject-token", "not-a-token"},
			stderr: []string{"deputy policy explain: subject_token is invalid (", "the server would refuse it with invalid_request before any policy"}},
		{name: "fail/expired-token", code: 2, args: []string{"--client", "payments", "--subject-token", expired},
			stderr: []string{"subject_token is expired"}},
		{name: "ok/not-yet-expired-at-now", code: 0, args: []string{"--client", "payments", "--subject-token", expired, "--now", now.Add(-2 * time.Minute).UTC().Format(time.RFC3339)},
			stdout: []string{"allowed: policy payments-to-ledger decides", "lifetime   expires_in 60 (exp "}},
		{name: "fail/needs-the-network", code: 2, args: []string{"--client", "payments", "--subject-token", foreign},
			stderr: []string{"from trusted issuer entra, whose keys are fetched from https://login.example/keys", "--subject-claims JSON --subject-issuer entra"}},
		{name: "fail/saml-assertion", code: 2, args: []string{"--client", "payments", "--subject-token", "PEFzc2VydGlvbi8-", "--subject-type", "saml2"},
			stderr: []string{"a saml2 subject token cannot be verified offline", "--subject-claims JSON --subject-type saml2"}},
	}
	db := filepath.Join(filepath.Dir(cfgFile), "deputy.db")
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runDeputy(t, append([]string{"policy", "explain", "--config", cfgFile}, tt.args...)...)
			tt.check(t, code, stdout, stderr)
		})
	}
	if after, err := os.ReadFile(db); err != nil || !bytes.Equal(after, before) {
		t.Errorf("explain changed the database file (%v)", err)
	}
	if fi, err := os.Stat(db + "-wal"); err == nil && fi.Size() > 0 {
		t.Errorf("explain wrote %d bytes to the WAL", fi.Size())
	}
}

// TestReadOnlySQLite: explain opens a SQLite database read-only, whichever way
// its dsn names the file, keeping the dsn's other parameters.
func TestReadOnlySQLite(t *testing.T) {
	for _, tt := range []struct{ name, dsn, want string }{
		{"ok/path", "/var/lib/deputy/deputy.db", "file:/var/lib/deputy/deputy.db?mode=ro"},
		{"ok/relative-path", "deputy.db", "file:deputy.db?mode=ro"},
		{"ok/path-to-escape", "/tmp/a b#c%.db", "file:/tmp/a%20b%23c%25.db?mode=ro"},
		{"ok/parameters-kept", "deputy.db?_busy_timeout=100", "file:deputy.db?_busy_timeout=100&mode=ro"},
		{"ok/uri", "file:/var/lib/deputy.db?mode=rwc&cache=shared", "file:/var/lib/deputy.db?cache=shared&mode=ro"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readOnlySQLite(tt.dsn)
			if err != nil || got != tt.want {
				t.Errorf("readOnlySQLite(%q) = %q, %v; want %q", tt.dsn, got, err, tt.want)
			}
		})
	}
	if _, err := readOnlySQLite("deputy.db?a=%zz"); err == nil {
		t.Error("fail/bad-parameters: no error")
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestPolicyTest(t *testing.T) {
	cfg := writePolicyConfig(t, policyConfig)
	dir := t.TempDir()
	write := func(name, text string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	pass := write("pass.yaml", `
- name: payments reaches the ledger
  client: payments
  subject: {claims: {sub: alice, scope: "ledger:write fraud:check"}}
  audience: [https://ledger.example]
  expect: {allow: true, rule: payments-to-ledger, scopes: ["ledger:write", "fraud:check"]}
- name: the ledger reaches fraud for a payment
  client: ledger
  subject: {claims: {sub: alice, tenant: bank, act: {sub: payments}}}
  expect: {allow: true, rule: ledger-to-fraud}
- name: not on its own
  client: ledger
  subject: {claims: {sub: alice, tenant: bank}}
  expect: {error: invalid_request}
- name: a missing claim denies
  client: ledger
  subject: {claims: {sub: alice, act: {sub: payments}}}
  expect: {error: invalid_request}
`)
	fail := write("fail.yaml", `
- name: wrongly expected
  client: ledger
  subject: {claims: {sub: alice, tenant: bank}}
  expect: {allow: true}
- name: right
  client: payments
  subject: {claims: {sub: alice}}
  audience: [https://nowhere.example]
  expect: {error: invalid_target}
`)
	unknownKey := write("key.yaml", "- name: a\n  client: payments\n  expect: {error: invalid_request}\n  audiences: [x]\n")
	unknownClient := write("client.yaml", "- name: a\n  client: payments\n  expect: {error: invalid_request}\n- name: b\n  client: nobody\n  expect: {error: invalid_request}\n")
	unknownIssuer := write("issuer.yaml", "- name: a\n  client: payments\n  subject: {issuer: okta}\n  expect: {error: invalid_request}\n")
	pinned := write("pinned.yaml", `
- name: a teller on a Monday at 10
  client: teller
  now: `+monday+`
  subject: {claims: {sub: alice}}
  expect: {allow: true, rule: business-hours}
- name: no teller on a Sunday
  client: teller
  now: `+sunday+`
  subject: {claims: {sub: alice}}
  expect: {error: invalid_request}
- name: a recent sign-in
  client: treasury
  now: `+monday+`
  subject: {claims: {sub: alice, auth_time: 1796636400}}
  expect: {allow: true}
- name: a DPoP-bound request
  client: vault
  binding: {jkt: `+dpopJKT+`}
  subject: {claims: {sub: alice}}
  expect: {allow: true, rule: bound-only}
- name: a certificate-bound request
  client: vault
  binding: {x5t#S256: `+certX5T+`}
  subject: {claims: {sub: alice}}
  expect: {allow: true, rule: bound-only}
- name: a bearer request
  client: vault
  subject: {claims: {sub: alice}}
  expect: {error: invalid_request}
`)
	sundayWrong := write("sunday.yaml", "- name: a teller on a Sunday\n  client: teller\n  now: "+sunday+"\n  subject: {claims: {sub: alice}}\n  expect: {allow: true}\n")
	unmapped := write("unmapped.yaml", "- name: a\n  client: payments\n  subject: {issuer: entra, claims: {sub: alice, tid: t1}}\n  expect: {allow: true}\n")
	tests := []cliCase{
		{name: "ok/pass", args: []string{pass}, code: 0, stdout: []string{
			"PASS payments reaches the ledger\nPASS the ledger reaches fraud for a payment\nPASS not on its own\nPASS a missing claim denies\n4 passed, 0 failed\n"}},
		{name: "fail/a-case-fails", args: []string{pass, fail}, code: 1, stdout: []string{
			"FAIL wrongly expected: want allowed, got invalid_request: the subject token is not acceptable to the client's policies: no policy's condition holds (policy ledger-to-fraud condition is false)\n",
			"PASS right\n", "5 passed, 1 failed\n"}},
		{name: "fail/unknown-key", args: []string{unknownKey}, code: 2, stderr: []string{unknownKey + `:4:3: unknown key "audiences"`}},
		{name: "fail/unknown-client", args: []string{unknownClient}, code: 2, stderr: []string{unknownClient + `:5: client "nobody" is not configured`}},
		{name: "fail/unknown-issuer", args: []string{unknownIssuer}, code: 2, stderr: []string{unknownIssuer + `:1: case a: subject issuer "okta" is neither self`}},
		{name: "ok/pinned-time-and-binding", args: []string{pinned}, code: 0, stdout: []string{"6 passed, 0 failed\n"}},
		{name: "fail/sunday", args: []string{sundayWrong}, code: 1, stdout: []string{
			"FAIL a teller on a Sunday: want allowed, got invalid_request: the subject token is not acceptable to the client's policies: no policy's condition holds (policy business-hours condition is false)\n"}},
		{name: "fail/claim-the-server-never-shows", args: []string{unmapped}, code: 2, stderr: []string{unmapped + ":1: case a: subject claims: the server never shows tid from trusted issuer entra"}},
		{name: "fail/nothing-runs-when-a-file-is-bad", args: []string{pass, unknownKey}, code: 2, notStdout: []string{"PASS"}},
		{name: "fail/missing-file", args: []string{filepath.Join(dir, "none.yaml")}, code: 2, stderr: []string{"none.yaml: no such file"}},
		{name: "fail/no-file", args: nil, code: 2, stderr: []string{"name at least one test file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runDeputy(t, append(append([]string{"policy", "test"}, tt.args...), "--config", cfg)...)
			tt.check(t, code, stdout, stderr)
		})
	}
}

func TestPolicyLint(t *testing.T) {
	clean := writePolicyConfig(t, policyConfig)
	findings := writePolicyConfig(t, `issuer: http://127.0.0.1:8080
storage: {driver: sqlite, dsn: "%DIR%/deputy.db"}
audiences:
  - {id: https://ledger.example, scopes: ["ledger:write"]}
  - {id: https://fraud.example, scopes: ["fraud:check"]}
clients:
  - {id: payments, secret: s, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
  - id: idle
    secret: s
    grant_types: [client_credentials, "urn:ietf:params:oauth:grant-type:token-exchange"]
    may_act: [ghost]
exchange:
  policies:
    - name: broad
      client: payments
      subject_issuers: [self, okta]
      audiences: [https://ledger.example, https://fraud.example]
    - name: narrow
      client: payments
      audiences: [https://fraud.example]
      condition: request.scopes.size() > 0
    - name: become
      client: payments
      mode: impersonation
      audiences: [https://treasury.example]
      scopes: ["ledger:write"]
`)
	tests := []cliCase{
		{name: "ok/clean", args: []string{"--config", clean}, code: 0, stdout: []string{"no findings\n"}},
		{name: "ok/findings-exit-0", args: []string{"--config", findings}, code: 0, stdout: []string{
			findings + `:11:15: clients[1].may_act[0]: "ghost" is not the id of a configured client` + "\n",
			findings + `:10:39: clients[1].grant_types[1]: client idle holds the token-exchange grant, but no exchange policy names it`,
			findings + `:16:31: exchange.policies[0].subject_issuers[1]: "okta" is neither self nor the name of a trusted_issuers or saml_idps entry`,
			findings + `:18:7: exchange.policies[1]: policy narrow can never decide: policy broad (exchange.policies[0]) comes first`,
			findings + `:25:19: exchange.policies[2].audiences[0]: "https://treasury.example" is not the id of a configured audience`,
			findings + `:24:13: exchange.policies[2].mode: policy become impersonates without require_may_act`,
			"6 findings\n",
		}},
		{name: "ok/on-behalf-of-client-without-policy", args: []string{"--config", writePolicyConfig(t, `issuer: http://127.0.0.1:8080
storage: {driver: sqlite, dsn: "%DIR%/deputy.db"}
audiences:
  - {id: https://ledger.example, scopes: ["ledger:write"]}
clients:
  - {id: mid, secret: s, grant_types: ["urn:ietf:params:oauth:grant-type:jwt-bearer"]}
  - {id: payments, secret: s, grant_types: ["urn:ietf:params:oauth:grant-type:jwt-bearer"]}
exchange:
  policies:
    - {name: payments-obo, client: payments, audiences: [https://ledger.example]}
`)}, code: 0, stdout: []string{
			`clients[0].grant_types[0]: client mid holds the jwt-bearer (on-behalf-of) grant, but no exchange policy names it: every on-behalf-of request it asks for is refused (unauthorized_client)`,
			"1 finding\n",
		}},
		{name: "fail/strict", args: []string{"--config", findings, "--strict"}, code: 1, stdout: []string{"6 findings\n"}},
		{name: "ok/strict-and-clean", args: []string{"--config", clean, "--strict"}, code: 0, stdout: []string{"no findings\n"}},
		{name: "fail/argument", args: []string{"--config", clean, "x"}, code: 2, stderr: []string{`unexpected argument "x"`}},
		{name: "fail/config-does-not-parse", args: []string{"--config", writePolicyConfig(t, "exchange: {policies: [{nme: x}]}\n")}, code: 2,
			stderr: []string{`deputy policy lint: `, `exchange.policies[0].nme`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runDeputy(t, append([]string{"policy", "lint"}, tt.args...)...)
			tt.check(t, code, stdout, stderr)
		})
	}
}

// TestShadows: only a policy an earlier one surely decides for is shadowed.
func TestShadows(t *testing.T) {
	base := config.Policy{Client: "api1", SubjectIssuers: []string{"self", "entra"}, SubjectTokenTypes: []string{"access_token", "jwt"},
		Audiences: []string{"https://a", "https://b"}}
	with := func(f func(p *config.Policy)) config.Policy {
		p := base
		f(&p)
		return p
	}
	tests := []struct {
		name         string
		first, later config.Policy
		want         bool
	}{
		{"ok/same", base, base, true},
		{"ok/narrower", base, with(func(p *config.Policy) {
			p.SubjectIssuers, p.SubjectTokenTypes, p.Audiences = []string{"entra"}, []string{"jwt"}, []string{"https://b"}
			p.Condition, p.Mode, p.Scopes = "true", "impersonation", []string{"x"}
		}), true},
		{"fail/first-has-a-condition", with(func(p *config.Policy) { p.Condition = "true" }), base, false},
		{"fail/other-client", base, with(func(p *config.Policy) { p.Client = "api2" }), false},
		{"fail/another-issuer", base, with(func(p *config.Policy) { p.SubjectIssuers = []string{"okta"} }), false},
		{"fail/another-type", base, with(func(p *config.Policy) { p.SubjectTokenTypes = []string{"id_token"} }), false},
		{"fail/another-audience", base, with(func(p *config.Policy) { p.Audiences = []string{"https://a", "https://c"} }), false},
		{"fail/no-audience", base, with(func(p *config.Policy) { p.Audiences = nil }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shadows(tt.first, tt.later); got != tt.want {
				t.Errorf("shadows = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPolicyUsage(t *testing.T) {
	for _, args := range [][]string{{"policy"}, {"policy", "simulate"}} {
		code, _, stderr := runDeputy(t, args...)
		cliCase{code: 2, stderr: []string{"deputy policy explain --client C"}}.check(t, code, "", stderr)
	}
}
