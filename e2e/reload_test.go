package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// reloadConfig is the configuration the reload tests start from; %CLIENTS% and
// %POLICIES% are list items added under clients: and exchange.policies:.
const reloadConfig = `
issuer: %ISSUER%
listen: %LISTEN%
` + sqliteStorage + `
audiences:
  - id: https://api1.example
    scopes: [payments:read]
    client: api1
  - id: https://api2.example
    scopes: [ledger:read]
    client: api2
clients:
  - id: web-app
    secret: web-secret
    grant_types: [client_credentials]
    scopes: [payments:read]
    audiences: [https://api1.example]
  - id: api1
    secret: %API1_SECRET%
    grant_types: [client_credentials, urn:ietf:params:oauth:grant-type:token-exchange]
  - id: api2
    secret: api2-secret
    grant_types: [client_credentials, urn:ietf:params:oauth:grant-type:token-exchange]
%CLIENTS%
exchange:
  policies:
    - name: api1-to-api2
      client: api1
      subject_issuers: [self]
      audiences: [https://api2.example]
      scopes: [ledger:read]
%POLICIES%
`

// reloadFile is reloadConfig with api1's secret and the extra clients and
// policies filled in.
func reloadFile(api1Secret, clients, policies string) string {
	return strings.NewReplacer("%API1_SECRET%", api1Secret, "%CLIENTS%", clients, "%POLICIES%", policies).Replace(reloadConfig)
}

// reload rewrites s's configuration file, sends SIGHUP and waits until the
// reload has been audited: the count of config.reloaded events goes past
// before. It returns the events, one JSON object a line, and the SHA-256 (hex)
// of the file as written.
func (s *server) reload(configYAML string, before int) ([]map[string]any, string) {
	s.t.Helper()
	sum := s.hangup(configYAML)
	var evs []map[string]any
	s.waitFor("a config.reloaded event", func() bool {
		evs = s.reloadEvents()
		return len(evs) > before
	})
	return evs, sum
}

// hangup rewrites s's configuration file and sends SIGHUP; it returns the
// SHA-256 (hex) of the file as written.
func (s *server) hangup(configYAML string) string {
	s.t.Helper()
	// The storage of the running file (a PostgreSQL schema of its own, in that
	// mode) stays.
	old, err := os.ReadFile(s.config)
	if err != nil {
		s.t.Fatal(err)
	}
	for line := range strings.Lines(string(old)) {
		if strings.HasPrefix(line, "storage:") {
			configYAML = strings.Replace(configYAML, sqliteStorage, strings.TrimSpace(line), 1)
		}
	}
	s.writeConfig(configYAML, strings.TrimPrefix(s.issuer, "http://"))
	b, err := os.ReadFile(s.config)
	if err != nil {
		s.t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		s.t.Fatal(err)
	}
	return hex.EncodeToString(sum[:])
}

// waitFor polls done until it holds, failing the test after 20 s or if deputy
// exits.
func (s *server) waitFor(what string, done func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !done() {
		select {
		case <-s.exited:
			s.t.Fatalf("deputy exited:\n%s", s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no %s after 20s:\n%s", what, s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reloadEvents are the config.reloaded events of the audit trail, oldest first.
func (s *server) reloadEvents() []map[string]any {
	s.t.Helper()
	out, code := s.deputy("audit", "query", "--type", "config.reloaded", "--json")
	if code != 0 {
		s.t.Fatalf("audit query: %s", out)
	}
	var evs []map[string]any
	for line := range strings.Lines(out) {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			s.t.Fatalf("audit query line %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

func detailOf(t *testing.T, e map[string]any) map[string]any {
	t.Helper()
	d, ok := e["detail"].(map[string]any)
	if !ok {
		t.Fatalf("event without a detail object: %v", e)
	}
	return d
}

// TestReloadBrokenFileChangesNothing: SIGHUP with a broken file — a YAML syntax
// error, an unknown key, a policy naming an unknown audience — keeps the running
// configuration: a client that existed still gets tokens, one the broken file
// adds does not; the log names each problem; the audit trail records each
// refusal (decision deny) and no reload. A good file afterwards applies.
func TestReloadBrokenFileChangesNothing(t *testing.T) {
	s := start(t, reloadFile("api1-secret", "", ""))
	newcomer := `
  - id: newcomer
    secret: newcomer-secret
    grant_types: [client_credentials]`
	broken := []struct {
		name, file string
		logs       []string // each named in the log
	}{
		{"yaml-syntax", reloadFile("api1-secret", newcomer, "") + "\nclients: [\n", []string{"YAML syntax"}},
		{"unknown-key", reloadFile("api1-secret", newcomer+"\n    colour: blue", ""), []string{"clients[3].colour: unknown key"}},
		{"policy-unknown-audience", reloadFile("api1-secret", newcomer, `
    - client: api1
      subject_issuers: [self]
      audiences: [https://nowhere.example]`), []string{`exchange.policies[1].audiences[0]: \"https://nowhere.example\" is not the id of a configured audience`}},
		{"two-problems", reloadFile("api1-secret", newcomer+"\n    auth_method: telepathy", `
    - client: ghost
      subject_issuers: [self]
      audiences: [https://api2.example]`), []string{"clients[3].auth_method", "exchange.policies[1].client"}},
	}
	const refused = "reload: the running configuration is unchanged"
	for i, b := range broken {
		s.hangup(b.file)
		// The log, not the audit trail: the tools read the same, broken, file.
		s.waitFor("refusal in the log", func() bool { return strings.Count(s.logs.String(), refused) > i })
		for _, w := range b.logs {
			if !strings.Contains(s.logs.String(), w) {
				t.Errorf("%s: the log does not name %q:\n%s", b.name, w, s.logs.String())
			}
		}
		// The old configuration serves on.
		s.token("web-app", "web-secret", clientCredentials("payments:read"))
		wantError(t, s.post("token_endpoint", "newcomer", "newcomer-secret", clientCredentials("")), 401, "invalid_client")
	}
	if n := strings.Count(s.logs.String(), "level=ERROR msg=\"reload: configuration refused\""); n != 5 {
		t.Errorf("%d problems logged, want 5 (one line each):\n%s", n, s.logs.String())
	}

	// Fixed, the same change applies; before it, each broken file was recorded
	// as refused, with its SHA-256, and none as reloaded.
	good := reloadFile("api1-secret", newcomer, "")
	evs, sum := s.reload(good, len(broken))
	if len(evs) != len(broken)+1 {
		t.Fatalf("%d config.reloaded events, want %d", len(evs), len(broken)+1)
	}
	for i, e := range evs[:len(broken)] {
		if e["decision"] != "deny" {
			t.Errorf("%s: a broken file was reloaded: %v", broken[i].name, e)
		}
		d := detailOf(t, e)
		if problems, _ := d["problems"].([]any); d["sha256"] == "" || d["sha256"] == sum || len(problems) == 0 {
			t.Errorf("%s: refusal %v", broken[i].name, d)
		}
	}
	// Fixed, the same change applies.
	if e := evs[len(evs)-1]; e["decision"] != "allow" || detailOf(t, e)["sha256"] != sum {
		t.Fatalf("the fixed file: %v\n%s", e, s.logs.String())
	}
	s.token("newcomer", "newcomer-secret", clientCredentials(""))
}

// TestReloadRemovingClientMakesItInvalid: a reload that removes a client makes
// its next token request invalid_client, while the token it had keeps its
// lifetime: it still introspects active with the same exp, and another client
// may still exchange it. A second reload adds a client and a policy and changes
// a secret, all at once, and its event carries the file's SHA-256 and what
// changed.
func TestReloadRemovingClientMakesItInvalid(t *testing.T) {
	s := start(t, reloadFile("api1-secret", "", ""))
	tok := s.token("web-app", "web-secret", clientCredentials("payments:read")).str("access_token")
	exp := claims(t, tok)["exp"]

	withoutWebApp := strings.Replace(reloadFile("api1-secret", "", ""), `  - id: web-app
    secret: web-secret
    grant_types: [client_credentials]
    scopes: [payments:read]
    audiences: [https://api1.example]
`, "", 1)
	evs, sum := s.reload(withoutWebApp, 0)
	e := evs[len(evs)-1]
	d := detailOf(t, e)
	if e["decision"] != "allow" || d["sha256"] != sum {
		t.Fatalf("event %v, want allow with sha256 %s\n%s", e, sum, s.logs.String())
	}
	if got, _ := json.Marshal(d["removed"]); string(got) != `{"clients":["web-app"]}` {
		t.Errorf("removed %s", got)
	}

	wantError(t, s.post("token_endpoint", "web-app", "web-secret", clientCredentials("payments:read")), 401, "invalid_client")
	in := s.post("introspection_endpoint", "api1", "api1-secret", url.Values{"token": {tok}})
	if in.Body["active"] != true || in.Body["exp"] != exp || in.Body["client_id"] != "web-app" {
		t.Errorf("the removed client's token after the reload: %s, want active with exp %v", in.Raw, exp)
	}
	x := s.token("api1", "api1-secret", exchangeForm(tok, "audience", "https://api2.example"))
	if c := claims(t, x.str("access_token")); c["sub"] != "web-app" {
		t.Errorf("exchanged token %v", c)
	}

	// Add a client and a policy, change api1's secret.
	batch := `
  - id: batch
    secret: batch-secret
    grant_types: [client_credentials]`
	policy := `
    - name: api2-to-api1
      client: api2
      subject_issuers: [self]
      audiences: [https://api1.example]
      scopes: [payments:read]`
	evs, sum = s.reload(strings.Replace(reloadFile("api1-secret-2", batch, policy), `  - id: web-app
    secret: web-secret
    grant_types: [client_credentials]
    scopes: [payments:read]
    audiences: [https://api1.example]
`, "", 1), 1)
	e = evs[len(evs)-1]
	d = detailOf(t, e)
	if e["decision"] != "allow" || d["sha256"] != sum {
		t.Fatalf("event %v, want allow with sha256 %s", e, sum)
	}
	for key, want := range map[string]string{
		"added":   `{"clients":["batch"],"policies":["api2-to-api1"]}`,
		"changed": `{"clients":["api1"]}`,
	} {
		if got, _ := json.Marshal(d[key]); string(got) != want {
			t.Errorf("%s %s, want %s", key, got, want)
		}
	}
	if raw, _ := json.Marshal(e); strings.Contains(string(raw), "api1-secret") || strings.Contains(s.logs.String(), "api1-secret-2") {
		t.Errorf("a secret reached the audit trail or the log: %s", raw)
	}
	s.token("batch", "batch-secret", clientCredentials(""))
	wantError(t, s.post("token_endpoint", "api1", "api1-secret", clientCredentials("")), 401, "invalid_client")
	s.token("api1", "api1-secret-2", clientCredentials(""))
	own := s.token("api2", "api2-secret", clientCredentials("")).str("access_token")
	s.token("api2", "api2-secret", exchangeForm(own, "audience", "https://api1.example"))
}
