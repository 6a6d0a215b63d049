package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// binary is the deputy binary built once for the whole package.
var binary string

// httpClient bounds every request, so a server that hangs fails the test that
// found it instead of the whole run.
var httpClient = &http.Client{Timeout: 30 * time.Second}

func TestMain(m *testing.M) {
	if err := checkStorageMode(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "deputy-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "deputy")
	build := exec.Command("go", "build", "-o", binary, "../cmd/deputy")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building deputy:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one running deputy process.
type server struct {
	t      *testing.T
	dir    string
	config string
	issuer string
	// base is where this process is reached when that is not the issuer (a node
	// of a cluster, whose issuer is the load balancer in front of it).
	base   string
	cmd    *exec.Cmd
	logs   *syncBuffer
	meta   map[string]any
	exited chan struct{}
	// env is added to the process's environment (startEnv).
	env []string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	// The port is free when the kernel hands it out, and the listener is closed
	// before deputy binds it: another test of this process asking meanwhile could
	// be handed the same port, and one test's requests would reach the other's
	// deputy. A port is therefore handed out once per test process.
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, taken := handedOut.LoadOrStore(addr, true); !taken {
			return addr
		}
	}
	t.Fatal("no port this process has not handed out already")
	return ""
}

// handedOut holds the addresses freePort returned.
var handedOut sync.Map

// start writes the configuration (with %ISSUER%, %LISTEN% and %DIR% filled in),
// starts deputy serve on it and waits until it is ready. With
// DEPUTY_E2E_STORAGE=postgres its SQLite storage becomes a fresh PostgreSQL schema.
func start(t *testing.T, configYAML string) *server {
	t.Helper()
	return startEnv(t, configYAML)
}

// startEnv is start with env added to deputy's environment.
func startEnv(t *testing.T, configYAML string, env ...string) *server {
	t.Helper()
	addr := freePort(t)
	s := &server{t: t, dir: t.TempDir(), issuer: "http://" + addr, logs: &syncBuffer{}, exited: make(chan struct{}), env: env}
	s.writeConfig(storageForMode(t, configYAML), addr)
	s.run()
	return s
}

// writeConfig fills in %ISSUER% (s.issuer), %LISTEN% and %DIR% and writes the
// configuration file into s.dir.
func (s *server) writeConfig(configYAML, listen string) {
	s.t.Helper()
	cfg := strings.NewReplacer("%ISSUER%", s.issuer, "%LISTEN%", listen, "%DIR%", s.dir).Replace(configYAML)
	s.config = filepath.Join(s.dir, "deputy.yaml")
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// url is where this process answers: its own address for a cluster node, else
// the issuer.
func (s *server) url() string {
	if s.base != "" {
		return s.base
	}
	return s.issuer
}

// local turns a URL under the issuer (from discovery) into the same URL on this
// process.
func (s *server) local(u string) string {
	if s.base != "" && s.base != s.issuer && strings.HasPrefix(u, s.issuer+"/") {
		return s.base + strings.TrimPrefix(u, s.issuer)
	}
	return u
}

func (s *server) run() {
	s.launch()
	s.waitReady()
}

// launch starts deputy serve without waiting for it to be ready.
func (s *server) launch() {
	t := s.t
	s.exited = make(chan struct{})
	s.cmd = exec.Command(binary, "serve", "--config", s.config)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	// No load balancer to drain: stop stops at once (shutdown_test.go tests the drain).
	s.cmd.Env = append(append(cleanEnv(), "DEPUTY_SHUTDOWN_DRAIN=1ms"), s.env...)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.stop)
}

// waitReady waits until /readyz answers 200, then reads discovery.
func (s *server) waitReady() {
	t := s.t
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := httpClient.Get(s.url() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("deputy exited during start-up:\n%s", s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("deputy not ready after 20s:\n%s", s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.meta = s.getJSON("/.well-known/oauth-authorization-server")
	if iss, _ := s.meta["issuer"].(string); iss != s.issuer {
		// Another process answers on our port (ours could not bind it).
		t.Fatalf("the server at %s is not this test's deputy: its issuer is %q, not %q\n%s", s.url(), iss, s.issuer, s.logs.String())
	}
}

func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// cleanEnv is the environment without DEPUTY_ variables that would change the
// configuration under test, nor OTEL_ variables that would export its spans.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEPUTY_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

// deputy runs a deputy tool command against this server's configuration.
func (s *server) deputy(args ...string) (string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append(args, "--config", s.config)...)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return string(out), code
}

func (s *server) endpoint(name string) string {
	s.t.Helper()
	v, ok := s.meta[name].(string)
	if !ok {
		s.t.Fatalf("discovery has no %s: %v", name, s.meta)
	}
	return s.local(v)
}

func (s *server) getJSON(path string) map[string]any {
	s.t.Helper()
	resp, err := httpClient.Get(s.url() + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	return m
}

// reply is an HTTP answer of deputy.
type reply struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

func (r reply) str(k string) string { s, _ := r.Body[k].(string); return s }

// post sends a form to an endpoint (by discovery name) with Basic credentials
// (id "" for none).
func (s *server) post(endpointName, id, secret string, form url.Values) reply {
	s.t.Helper()
	return s.postRaw(s.endpoint(endpointName), basic(id, secret), "application/x-www-form-urlencoded", form.Encode())
}

func basic(id, secret string) string {
	if id == "" {
		return ""
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

func (s *server) postRaw(u, authorization, contentType, body string) reply {
	s.t.Helper()
	r, err := tryPost(httpClient, u, authorization, contentType, body)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

// tryPost is postRaw for goroutines other than the test's: it returns its error.
func tryPost(c *http.Client, u, authorization, contentType, body string) (reply, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("POST %s: reading the answer: %w", u, err)
	}
	r := reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &r.Body)
	}
	return r, nil
}

// token runs a token request and fails the test unless it succeeds.
func (s *server) token(id, secret string, form url.Values) reply {
	s.t.Helper()
	r := s.post("token_endpoint", id, secret, form)
	if r.Status != 200 {
		s.t.Fatalf("token request by %s failed: %d %s", id, r.Status, r.Raw)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		s.t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	return r
}

// wantError asserts an OAuth error answer.
func wantError(t *testing.T, r reply, status int, code string) {
	t.Helper()
	if r.Status != status || r.str("error") != code {
		t.Fatalf("got %d %s, want %d %s", r.Status, r.Raw, status, code)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("error Cache-Control = %q, want no-store", cc)
	}
	if _, ok := r.Body["access_token"]; ok {
		t.Errorf("error answer carries a token: %s", r.Raw)
	}
}

func clientCredentials(scope string) url.Values {
	f := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		f.Set("scope", scope)
	}
	return f
}

const (
	tokenExchange   = "urn:ietf:params:oauth:grant-type:token-exchange"
	typeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	typeJWT         = "urn:ietf:params:oauth:token-type:jwt"
)

func exchangeForm(subjectToken string, kv ...string) url.Values {
	f := url.Values{
		"grant_type":         {tokenExchange},
		"subject_token":      {subjectToken},
		"subject_token_type": {typeAccessToken},
	}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	return f
}

// claims decodes a JWT's payload without verifying it (the tests verify tokens
// through introspection and the JWKS separately).
func claims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func header(t *testing.T, jwt string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// actJSON renders a claim compactly for comparisons.
func actJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
