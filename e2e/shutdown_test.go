package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

const shutdownConfig = `
issuer: %ISSUER%
listen: %LISTEN%
` + sqliteStorage + `
audiences:
  - id: https://api1.example
    scopes: [payments:read]
clients:
  - id: web-app
    secret: web-secret
    grant_types: [client_credentials]
    scopes: [payments:read]
    audiences: ["https://api1.example"]
`

// TestShutdownDrainsAndExitsZero: on SIGTERM, /readyz answers 503 at once while
// requests are still served (shutdown.drain, default 5s); then new connections are
// refused, and a request a slow client was sending all along still completes; the
// process exits 0.
func TestShutdownDrainsAndExitsZero(t *testing.T) {
	addr := freePort(t)
	s, wait := startWaiting(t, addr, shutdownConfig) // the default drain

	// A slow client: the headers and half of the body now, the rest after the
	// listener has closed.
	body := "grant_type=client_credentials&scope=payments%3Aread"
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /token HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
		addr, basic("web-app", "web-secret"), len(body), body[:10])

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Draining: not ready, but still serving.
	for {
		resp, err := httpClient.Get(s.issuer + "/readyz")
		if err != nil {
			t.Fatalf("/readyz during the drain: %v\n%s", err, s.logs.String())
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/readyz: %d", resp.StatusCode)
		}
	}
	if r := s.token("web-app", "web-secret", clientCredentials("payments:read")); r.str("access_token") == "" {
		t.Fatalf("token request during the drain: %d %s", r.Status, r.Raw)
	}
	// Then the listener closes.
	for {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			break
		}
		c.Close()
		select {
		case <-s.exited:
			t.Fatalf("deputy exited while a request was in flight:\n%s", s.logs.String())
		default:
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The request in flight completes.
	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the slow request was cut: %v\n%s", err, s.logs.String())
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "access_token") {
		t.Fatalf("the slow request: %d %s", resp.StatusCode, b)
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("deputy still running after its requests completed:\n%s", s.logs.String())
	}
	if err := wait(); err != nil {
		t.Fatalf("deputy exited with %v, want 0:\n%s", err, s.logs.String())
	}
	if !strings.Contains(s.logs.String(), "draining") {
		t.Errorf("the log does not say the node drains:\n%s", s.logs.String())
	}
}

// TestShutdownCutsRequestsPastTheTimeout: a request still running when
// shutdown.timeout ends (here: waiting on a trusted issuer's JWKS that never
// answers) is cut, the cut is logged, and the process still exits 0.
func TestShutdownCutsRequestsPastTheTimeout(t *testing.T) {
	entra := startEntraIssuer(t)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	}))
	t.Cleanup(jwks.Close)
	t.Cleanup(func() { close(release) }) // before jwks.Close, which waits for the handler

	cfg := strings.ReplaceAll(entraConfig, "%JWKS%", jwks.URL+"/keys") + `
http: {read_header_timeout: 1s, read_timeout: 1s}
shutdown: {drain: 10ms, timeout: 1s}
`
	addr := freePort(t)
	s, wait := startWaiting(t, addr, cfg)

	answered := make(chan reply, 1)
	go func() {
		form := exchangeForm(entra.sign(t, entra.key, entra.claims(), nil), "audience", "https://api2.example")
		r, err := tryPost(httpClient, s.endpoint("token_endpoint"), basic("api1", "api1-secret"), "application/x-www-form-urlencoded", form.Encode())
		if err != nil {
			r = reply{Status: -1, Raw: err.Error()}
		}
		answered <- r
	}()
	<-entered // the exchange waits for the issuer's keys
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("deputy still running:\n%s", s.logs.String())
	}
	if err := wait(); err != nil {
		t.Fatalf("deputy exited with %v, want 0:\n%s", err, s.logs.String())
	}
	if r := <-answered; r.Status == http.StatusOK {
		t.Errorf("the request that was still running got %d %s", r.Status, r.Raw)
	}
	if !strings.Contains(s.logs.String(), "were cut") {
		t.Errorf("the cut is not logged:\n%s", s.logs.String())
	}
}

// TestShutdownDuringStartUp: SIGTERM while deputy serve is still starting (here:
// its database accepts the connection and never answers) stops it with exit 0, at
// once: a supervisor that stops a starting node sees a clean exit.
func TestShutdownDuringStartUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c // held open, never answered
		}
	}()
	cfg := strings.Replace(shutdownConfig, sqliteStorage,
		`storage: {driver: postgres, dsn: "postgres://deputy:pw@`+ln.Addr().String()+`/deputy?sslmode=disable&connect_timeout=60"}`, 1)
	addr := freePort(t)
	s := &server{t: t, dir: t.TempDir(), issuer: "http://" + addr, logs: &syncBuffer{}, exited: make(chan struct{})}
	s.writeConfig(cfg, addr)
	s.cmd = exec.Command(binary, "serve", "--config", s.config)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	s.cmd.Env = cleanEnv()
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	go func() { waitErr = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.stop)
	select {
	case c := <-accepted:
		defer c.Close()
	case <-s.exited:
		t.Fatalf("deputy exited before reaching its database:\n%s", s.logs.String())
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second): // a watchdog: the connect timeout is 60s
		t.Fatalf("deputy still starting after SIGTERM:\n%s", s.logs.String())
	}
	if waitErr != nil {
		t.Fatalf("deputy exited with %v, want 0:\n%s", waitErr, s.logs.String())
	}
}
