package e2e

import (
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDevelopmentSetup runs `deputy serve` without a configuration, as the README's
// first command does, and walks the README tour's chain on it.
func TestDevelopmentSetup(t *testing.T) {
	addr := freePort(t)
	dir := t.TempDir()
	cmd := exec.Command(binary, "serve")
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), "DEPUTY_LISTEN="+addr, "DEPUTY_ISSUER=http://"+addr)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, dir: dir, issuer: "http://" + addr, cmd: cmd, logs: logs, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.stop)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := httpClient.Get(s.issuer + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready:\n%s", logs.String())
		}
	}
	s.meta = s.getJSON("/.well-known/oauth-authorization-server")
	for _, want := range []string{"DEVELOPMENT", "web-app-secret", "api1-secret", "alice", `when size(subject.act) > 0 && subject.act[0].sub == "api1"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("start-up output lacks %q:\n%s", want, logs.String())
		}
	}
	if _, err := os.Stat(dir + "/deputy-dev.db"); err != nil {
		t.Errorf("no development database in the working directory: %v", err)
	}

	t0 := s.token("web-app", "web-app-secret", clientCredentials("")).str("access_token")
	t1 := s.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example", "scope", "ledger:read fraud:check")).str("access_token")
	r := s.token("api2", "api2-secret", exchangeForm(t1, "resource", "https://api3.example"))
	c := claims(t, r.str("access_token"))
	if c["sub"] != "web-app" || c["scope"] != "fraud:check" || actJSON(t, c["act"]) != `{"act":{"sub":"api1"},"sub":"api2"}` {
		t.Errorf("T2 %v", c)
	}
	wantError(t, s.post("token_endpoint", "api2", "api2-secret", exchangeForm(t1, "audience", "https://api3.example", "scope", "ledger:write")), 400, "invalid_scope")
	if r := s.post("revocation_endpoint", "web-app", "web-app-secret", url.Values{"token": {t0}}); r.Status != 200 {
		t.Fatal(r.Raw)
	}
	if in := s.post("introspection_endpoint", "api3", "api3-secret", url.Values{"token": {r.str("access_token")}}); in.Raw != `{"active":false}` {
		t.Errorf("T2 after revoking T0: %s", in.Raw)
	}
	// The tools find the development database from the same directory.
	verify := exec.Command(binary, "audit", "verify")
	verify.Dir, verify.Env = dir, cleanEnv()
	if out, err := verify.CombinedOutput(); err != nil || !strings.Contains(string(out), "intact") {
		t.Errorf("audit verify: %v %s", err, out)
	}
	// No file, nothing to reload: SIGHUP says so, and deputy serves on.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.waitFor("SIGHUP answer", func() bool { return strings.Contains(logs.String(), "nothing to reload") })
	s.token("web-app", "web-app-secret", clientCredentials(""))
}
