package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/internal/store"
)

// reloadBase is a configuration with every audience the tests address; %DIR% is
// the test's directory, %CLIENTS% and %POLICIES% what each file varies.
const reloadBase = `
issuer: http://127.0.0.1:1
listen: 127.0.0.1:1
storage: {driver: sqlite, dsn: "%DIR%/deputy.db"}
audiences:
  - id: https://x.example
    scopes: [x]
  - id: https://y.example
    scopes: [y]
  - id: https://c.example
    client: c
clients:
  - id: web
    secret: web-secret
    grant_types: [client_credentials]
    audiences: [https://c.example]
%CLIENTS%
exchange:
  policies:
%POLICIES%
`

// reloadFile is a configuration file of reloadBase.
type reloadFile struct {
	dir, path string
}

func newReloadFile(t *testing.T) *reloadFile {
	dir := t.TempDir()
	return &reloadFile{dir: dir, path: filepath.Join(dir, "deputy.yaml")}
}

// write writes the file with clients and policies (YAML list items, indented as
// under clients: and exchange.policies:) and returns its SHA-256 in hex.
func (f *reloadFile) write(t *testing.T, clients, policies string) string {
	t.Helper()
	src := strings.NewReplacer("%DIR%", f.dir, "%CLIENTS%", clients, "%POLICIES%", policies).Replace(reloadBase)
	return f.writeRaw(t, src)
}

func (f *reloadFile) writeRaw(t *testing.T, src string) string {
	t.Helper()
	if err := os.WriteFile(f.path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(src))
	return hex.EncodeToString(sum[:])
}

// start loads the file as deputy serve does and starts a node on it; the log
// goes to logs.
func (f *reloadFile) start(t *testing.T, logs *bytes.Buffer) *server.Server {
	t.Helper()
	cfg, err := config.Load(f.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(&syncWriter{w: logs}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// clientC is client c with secret, which may exchange tokens.
func clientC(secret string) string {
	return `  - id: c
    secret: ` + secret + `
    grant_types: [urn:ietf:params:oauth:grant-type:token-exchange]`
}

// policyC lets client c exchange for audience aud.
func policyC(name, aud string) string {
	return `    - name: ` + name + `
      client: c
      subject_issuers: [self]
      audiences: [` + aud + `]`
}

// reloadEvents returns the config.reloaded events of s.
func reloadEvents(t *testing.T, s *server.Server) []store.AuditEvent {
	t.Helper()
	evs, err := s.Store.Query(context.Background(), store.AuditFilter{Type: store.EventConfigReloaded})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

type detail struct {
	File            string              `json:"file"`
	SHA256          string              `json:"sha256"`
	Added           map[string][]string `json:"added"`
	Removed         map[string][]string `json:"removed"`
	Changed         map[string][]string `json:"changed"`
	RestartRequired []string            `json:"restart_required"`
	Problems        []string            `json:"problems"`
}

func detailOf(t *testing.T, e store.AuditEvent) detail {
	t.Helper()
	var d detail
	if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
		t.Fatalf("detail %q: %v", e.Detail, err)
	}
	return d
}

// TestReloadSwapIsOneSnapshot: while the file flips between two configurations
// in which client c has a different secret and may exchange for a different
// audience, requests run concurrently. Each must see one configuration whole: it
// succeeds with that configuration's secret and audience, or fails client
// authentication with the other's — never passes authentication under one and
// the policy of the other.
func TestReloadSwapIsOneSnapshot(t *testing.T) {
	f := newReloadFile(t)
	x := func() { f.write(t, clientC("x-secret"), policyC("px", "https://x.example")) }
	y := func() { f.write(t, clientC("y-secret"), policyC("py", "https://y.example")) }
	x()
	var logs bytes.Buffer
	s := f.start(t, &logs)
	subject := accessToken(t, post(s.Handler, "web", "web-secret", url.Values{"grant_type": {"client_credentials"}}))

	const reloads = 20
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for w := range 4 {
		wg.Go(func() {
			secret, aud := "x-secret", "https://x.example"
			if w%2 == 1 {
				secret, aud = "y-secret", "https://y.example"
			}
			for {
				select {
				case <-done:
					return
				default:
				}
				r := post(s.Handler, "c", secret, exchangeForm(subject, aud))
				var body struct {
					Error string `json:"error"`
				}
				_ = json.Unmarshal(r.Body.Bytes(), &body)
				mu.Lock()
				outcomes[body.Error]++
				mu.Unlock()
				if r.Code != 200 && body.Error != "invalid_client" {
					t.Errorf("%s for %s: %d %s: a request saw a mixture of two configurations", secret, aud, r.Code, r.Body.String())
				}
			}
		})
	}
	for i := range reloads {
		if i%2 == 0 {
			y()
		} else {
			x()
		}
		if err := s.ReloadFile(context.Background(), f.path, nil); err != nil {
			t.Fatalf("reload %d: %v\n%s", i, err, logs.String())
		}
	}
	close(done)
	wg.Wait()
	if outcomes[""] == 0 || outcomes["invalid_client"] == 0 {
		t.Errorf("outcomes %v: want both successes and invalid_client", outcomes)
	}
	if n := len(reloadEvents(t, s)); n != reloads {
		t.Errorf("%d config.reloaded events, want %d", n, reloads)
	}
}

// TestReloadRefusesBadFile: a file with any problem changes nothing; every
// problem is logged with its key and recorded in a config.reloaded event with
// decision deny.
func TestReloadRefusesBadFile(t *testing.T) {
	good := func(f *reloadFile, t *testing.T) string {
		return f.write(t, clientC("c-secret"), policyC("p", "https://x.example"))
	}
	tests := []struct {
		name  string
		write func(f *reloadFile, t *testing.T) string
		want  []string // each in one problem
	}{
		{"fail/yaml-syntax", func(f *reloadFile, t *testing.T) string {
			return f.writeRaw(t, "issuer: [http://127.0.0.1:1\nclients: {\n")
		}, []string{"deputy.yaml"}},
		{"fail/unknown-key", func(f *reloadFile, t *testing.T) string {
			return f.write(t, clientC("c-secret")+"\n    colour: blue", policyC("p", "https://x.example"))
		}, []string{"clients[1].colour"}},
		{"fail/two-problems", func(f *reloadFile, t *testing.T) string {
			return f.write(t, clientC("c-secret")+"\n    auth_method: telepathy", policyC("p", "https://nowhere.example"))
		}, []string{"clients[1].auth_method", "exchange.policies[0].audiences"}},
		{"fail/unreadable-saml-certificate", func(f *reloadFile, t *testing.T) string {
			return f.write(t, clientC("c-secret"), policyC("p", "https://x.example")+`
saml_idps:
  - name: corp
    entity_id: https://idp.corp.example
    certificate_file: missing.pem
    audience: http://127.0.0.1:1`)
		}, []string{"saml_idps"}},
		{"fail/id-token-algorithm-without-key", func(f *reloadFile, t *testing.T) string {
			return f.write(t, clientC("c-secret")+"\n    id_token_signed_response_alg: PS256", policyC("p", "https://x.example"))
		}, []string{"clients[1].id_token_signed_response_alg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newReloadFile(t)
			good(f, t)
			var logs bytes.Buffer
			s := f.start(t, &logs)
			sum := tt.write(f, t)
			err := s.ReloadFile(context.Background(), f.path, nil)
			if !errors.Is(err, server.ErrReloadRefused) {
				t.Fatalf("reload: %v, want ErrReloadRefused", err)
			}
			// Nothing changed: the old secret and policy still work.
			subject := accessToken(t, post(s.Handler, "web", "web-secret", url.Values{"grant_type": {"client_credentials"}}))
			accessToken(t, post(s.Handler, "c", "c-secret", exchangeForm(subject, "https://x.example")))

			evs := reloadEvents(t, s)
			if len(evs) != 1 || evs[0].Decision != store.DecisionDeny {
				t.Fatalf("events %+v, want one denial", evs)
			}
			d := detailOf(t, evs[0])
			if d.SHA256 != sum {
				t.Errorf("sha256 %q, want %q", d.SHA256, sum)
			}
			for _, w := range tt.want {
				if !slices.ContainsFunc(d.Problems, func(p string) bool { return strings.Contains(p, w) }) {
					t.Errorf("no problem names %q: %q", w, d.Problems)
				}
				if !strings.Contains(logs.String(), w) {
					t.Errorf("the log does not name %q:\n%s", w, logs.String())
				}
			}
			if n := strings.Count(logs.String(), "reload: configuration refused"); n != len(d.Problems) {
				t.Errorf("%d problem lines logged, %d problems recorded", n, len(d.Problems))
			}
		})
	}
}

// TestReloadApplies: a reload that adds a client and a policy, removes one,
// changes a secret and a key that needs a restart applies the reloadable keys at
// once, records what changed by name with the file's SHA-256, and names the key
// that needs a restart.
func TestReloadApplies(t *testing.T) {
	f := newReloadFile(t)
	f.write(t, clientC("c-secret")+`
  - id: gone
    secret: gone-secret
    grant_types: [client_credentials]`, policyC("p", "https://x.example"))
	var logs bytes.Buffer
	s := f.start(t, &logs)
	accessToken(t, post(s.Handler, "gone", "gone-secret", url.Values{"grant_type": {"client_credentials"}}))

	src := strings.NewReplacer("%DIR%", f.dir, "%CLIENTS%", clientC("c-secret-2")+`
  - id: d
    secret: d-secret
    grant_types: [client_credentials, urn:ietf:params:oauth:grant-type:token-exchange]`,
		"%POLICIES%", policyC("p", "https://x.example")+"\n"+strings.ReplaceAll(policyC("pd", "https://y.example"), "client: c", "client: d"),
		"listen: 127.0.0.1:1", "listen: 127.0.0.1:2").Replace(reloadBase)
	sum := f.writeRaw(t, src)
	if err := s.ReloadFile(context.Background(), f.path, nil); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}

	subject := accessToken(t, post(s.Handler, "web", "web-secret", url.Values{"grant_type": {"client_credentials"}}))
	if w := post(s.Handler, "gone", "gone-secret", url.Values{"grant_type": {"client_credentials"}}); w.Code != 401 || !strings.Contains(w.Body.String(), "invalid_client") {
		t.Errorf("removed client: %d %s", w.Code, w.Body.String())
	}
	if w := post(s.Handler, "c", "c-secret", exchangeForm(subject, "https://x.example")); w.Code != 401 {
		t.Errorf("old secret: %d %s", w.Code, w.Body.String())
	}
	accessToken(t, post(s.Handler, "c", "c-secret-2", exchangeForm(subject, "https://x.example")))
	own := accessToken(t, post(s.Handler, "d", "d-secret", url.Values{"grant_type": {"client_credentials"}}))
	accessToken(t, post(s.Handler, "d", "d-secret", exchangeForm(own, "https://y.example")))

	evs := reloadEvents(t, s)
	if len(evs) != 1 || evs[0].Decision != store.DecisionAllow {
		t.Fatalf("events %+v", evs)
	}
	d := detailOf(t, evs[0])
	want := detail{
		File: f.path, SHA256: sum,
		Added:           map[string][]string{"clients": {"d"}, "policies": {"pd"}},
		Removed:         map[string][]string{"clients": {"gone"}},
		Changed:         map[string][]string{"clients": {"c"}},
		RestartRequired: []string{"listen"},
	}
	if got, _ := json.Marshal(d); string(got) != string(must(json.Marshal(want))) {
		t.Errorf("detail\n got %s\nwant %s", got, must(json.Marshal(want)))
	}
	if strings.Contains(evs[0].Detail, "secret") {
		t.Errorf("the event holds a secret: %s", evs[0].Detail)
	}
	if !strings.Contains(logs.String(), "key=listen") {
		t.Errorf("the log does not say listen needs a restart:\n%s", logs.String())
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestReloadRemovedPolicyStopsExchanges: a policy removed by a reload stops the
// exchanges it allowed from the next request; one added allows them.
func TestReloadRemovedPolicyStopsExchanges(t *testing.T) {
	f := newReloadFile(t)
	f.write(t, clientC("c-secret"), policyC("px", "https://x.example"))
	var logs bytes.Buffer
	s := f.start(t, &logs)
	subject := accessToken(t, post(s.Handler, "web", "web-secret", url.Values{"grant_type": {"client_credentials"}}))
	accessToken(t, post(s.Handler, "c", "c-secret", exchangeForm(subject, "https://x.example")))

	f.write(t, clientC("c-secret"), policyC("py", "https://y.example"))
	if err := s.ReloadFile(context.Background(), f.path, nil); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	if w := post(s.Handler, "c", "c-secret", exchangeForm(subject, "https://x.example")); w.Code != 400 || !strings.Contains(w.Body.String(), `"error":"invalid_target"`) {
		t.Errorf("exchange of a removed policy: %d %s, want a refusal", w.Code, w.Body.String())
	}
	accessToken(t, post(s.Handler, "c", "c-secret", exchangeForm(subject, "https://y.example")))
}

// TestReloadWhileDraining: a node that is shutting down stays not ready when a
// reload (SIGHUP) comes during the drain: the configuration it loads is served,
// but /readyz answers 503 until the process exits.
func TestReloadWhileDraining(t *testing.T) {
	f := newReloadFile(t)
	f.write(t, clientC("c-secret"), policyC("p", "https://x.example"))
	var logs bytes.Buffer
	s := f.start(t, &logs)
	ready := func() int {
		w := httptest.NewRecorder()
		s.Handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return w.Code
	}
	if c := ready(); c != http.StatusOK {
		t.Fatalf("/readyz %d before the drain", c)
	}
	s.SetDraining()
	if c := ready(); c != http.StatusServiceUnavailable {
		t.Fatalf("/readyz %d while draining, want 503", c)
	}
	f.write(t, clientC("c-secret-2"), policyC("p", "https://x.example"))
	if err := s.ReloadFile(context.Background(), f.path, nil); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	subject := accessToken(t, post(s.Handler, "web", "web-secret", url.Values{"grant_type": {"client_credentials"}}))
	accessToken(t, post(s.Handler, "c", "c-secret-2", exchangeForm(subject, "https://x.example"))) // the new configuration serves
	if c := ready(); c != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d after a reload during the drain, want 503", c)
	}
}
