package main

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMigrateHidesPassword: deputy migrate reports the database it migrated without
// the password of its dsn, and so does a failure to reach one. The reachable case
// runs where DEPUTY_TEST_POSTGRES_DSN names a PostgreSQL database (a password added
// to it is ignored by a server that trusts the connection).
func TestMigrateHidesPassword(t *testing.T) {
	const password = "hunter2-secret"
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "deputy.yaml")
	if err := os.WriteFile(cfgFile, []byte("issuer: http://127.0.0.1:8080\nstorage:\n  driver: postgres\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, dsn string }{
		{"fail/unreachable", "postgres://deputy:" + password + "@127.0.0.1:1/deputy?connect_timeout=1"},
		{"fail/unparsable", "host=127.0.0.1 password = " + password + " sslmode=sometimes"},
	}
	if pg := os.Getenv("DEPUTY_TEST_POSTGRES_DSN"); pg != "" {
		u, err := url.Parse(pg)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(u.User.Username(), password)
		tests = append(tests, struct{ name, dsn string }{"ok/migrated", u.String()})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DEPUTY_STORAGE_DSN", tt.dsn)
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), []string{"migrate", "--config", cfgFile}, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if err != nil {
				out += err.Error()
			}
			if strings.HasPrefix(tt.name, "ok/") != (err == nil) {
				t.Fatalf("migrate: %v\n%s", err, out)
			}
			if strings.Contains(out, password) {
				t.Errorf("the output shows the password:\n%s", out)
			}
			if err == nil && !strings.Contains(out, "xxxxx@") {
				t.Errorf("the output does not name the database: %s", out)
			}
		})
	}
}
