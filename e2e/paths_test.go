package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runIn runs the deputy binary with args in the working directory dir and returns
// its combined output and exit code.
func runIn(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir, cmd.Env = dir, cleanEnv()
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// TestToolsFromAnotherDirectory: the relative database path of a configuration
// file is relative to that file, whatever directory a tool runs in; a tool other
// than migrate and serve pointed at a database that does not exist says so
// (exit 1) instead of creating an empty one and reporting on it.
func TestToolsFromAnotherDirectory(t *testing.T) {
	if onPostgres() {
		t.Skip("SQLite paths")
	}
	root := t.TempDir()
	etc, work := filepath.Join(root, "etc"), filepath.Join(root, "work")
	for _, d := range []string{etc, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(etc, "deputy.yaml")
	if err := os.WriteFile(cfg, []byte("issuer: http://127.0.0.1:8080\nstorage:\n  dsn: deputy.db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(etc, "deputy.db")

	for _, args := range [][]string{
		{"audit", "verify"}, {"audit", "query"}, {"audit", "trace", "x"}, {"keys", "rotate"}, {"users", "list"},
	} {
		out, code := runIn(t, work, append(args, "--config", cfg)...)
		if want := "no database at " + db + " (run deputy migrate or deputy serve first)"; code != 1 || !strings.Contains(out, want) {
			t.Errorf("%v before migrate: exit %d, %q; want exit 1 and %q", args, code, out, want)
		}
	}
	for _, dir := range []string{etc, work} {
		if _, err := os.Stat(filepath.Join(dir, "deputy.db")); err == nil {
			t.Fatalf("a tool created a database in %s", dir)
		}
	}

	// The configuration named relative to the working directory, too.
	if out, code := runIn(t, work, "migrate", "--config", "../etc/deputy.yaml"); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, out)
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("migrate did not create the database next to the configuration: %v", err)
	}
	if out, code := runIn(t, work, "keys", "rotate", "--config", cfg); code != 0 {
		t.Fatalf("keys rotate: exit %d: %s", code, out)
	}
	if out, code := runIn(t, root, "audit", "verify", "--config", "etc/deputy.yaml"); code != 0 || !strings.Contains(out, "intact: 2 records") {
		t.Errorf("audit verify: exit %d: %s; want the key rotation's records (one per key: ES256 for access tokens, RS256 for ID tokens)", code, out)
	}
	if _, err := os.Stat(filepath.Join(work, "deputy.db")); err == nil {
		t.Error("a database was created in the working directory")
	}
}

// TestKubernetesServiceLinks: deputy starts in a pod of a namespace with a Service
// named deputy, whose service-link variables Kubernetes injects; a misspelt
// DEPUTY_ variable is still refused.
func TestKubernetesServiceLinks(t *testing.T) {
	links := []string{
		"DEPUTY_SERVICE_HOST=10.96.12.34",
		"DEPUTY_SERVICE_PORT=8080",
		"DEPUTY_SERVICE_PORT_HTTP=8080",
		"DEPUTY_PORT=tcp://10.96.12.34:8080",
		"DEPUTY_PORT_8080_TCP=tcp://10.96.12.34:8080",
		"DEPUTY_PORT_8080_TCP_PROTO=tcp",
		"DEPUTY_PORT_8080_TCP_PORT=8080",
		"DEPUTY_PORT_8080_TCP_ADDR=10.96.12.34",
	}
	addr := freePort(t)
	s := &server{t: t, dir: t.TempDir(), issuer: "http://" + addr, logs: &syncBuffer{}, exited: make(chan struct{})}
	s.writeConfig(storageForMode(t, shutdownConfig), addr)
	s.cmd = exec.Command(binary, "serve", "--config", s.config)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	s.cmd.Env = append(append(cleanEnv(), "DEPUTY_SHUTDOWN_DRAIN=1ms"), links...)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.stop)
	s.waitReady()

	typo := exec.Command(binary, "audit", "verify", "--config", s.config)
	typo.Env = append(append(cleanEnv(), links...), "DEPUTY_STORAGE_DSM=x")
	out, err := typo.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "$DEPUTY_STORAGE_DSM: names no configuration key; did you mean DEPUTY_STORAGE_DSN?") {
		t.Errorf("a misspelt variable: %v %s", err, out)
	}
	if strings.Contains(string(out), "DEPUTY_PORT") || strings.Contains(string(out), "DEPUTY_SERVICE") {
		t.Errorf("service links reported: %s", out)
	}
}
