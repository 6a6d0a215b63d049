package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx database/sql driver, to make a schema
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
		u, err := url.Parse(freshSchema(t, pg))
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

// TestToolsRefuseAnEmptyDatabase: a database without deputy's tables — an empty
// SQLite file, a new PostgreSQL schema — is "no database" for the tools that read
// one; migrate sets it up.
func TestToolsRefuseAnEmptyDatabase(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, driver, dsn, where string }{
		{"fail/empty-sqlite-file", "sqlite", empty, empty},
	}
	if pg := os.Getenv("DEPUTY_TEST_POSTGRES_DSN"); pg != "" {
		dsn := freshSchema(t, pg)
		tests = append(tests, struct{ name, driver, dsn, where string }{"fail/new-postgres-schema", "postgres", dsn, dsn})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfgFile := filepath.Join(t.TempDir(), "deputy.yaml")
			if err := os.WriteFile(cfgFile, []byte("issuer: http://127.0.0.1:8080\nstorage:\n  driver: "+tt.driver+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("DEPUTY_STORAGE_DSN", tt.dsn)
			deputy := func(args ...string) (string, error) {
				var stdout bytes.Buffer
				err := run(t.Context(), append(args, "--config", cfgFile), &stdout, io.Discard)
				return stdout.String(), err
			}
			out, err := deputy("audit", "verify")
			if want := "no database at " + tt.where; err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("audit verify on an empty database: %v %q; want %q", err, out, want)
			}
			if _, err := deputy("migrate"); err != nil {
				t.Fatal(err)
			}
			if out, err := deputy("audit", "verify"); err != nil || !strings.Contains(out, "intact: 0 records") {
				t.Errorf("audit verify after migrate: %v %q", err, out)
			}
		})
	}
}

// TestDevelopmentSetupOverridesChecked: without a configuration file, environment
// overrides are validated as with one (a negative timeout, an empty value that
// resets a key to its default).
func TestDevelopmentSetupOverridesChecked(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("DEPUTY_HTTP_READ_TIMEOUT", "-1s")
	if _, _, err := loadConfig(""); err == nil || !strings.Contains(err.Error(), "http.read_timeout: -1s is not positive") {
		t.Errorf("loadConfig with DEPUTY_HTTP_READ_TIMEOUT=-1s: %v", err)
	}
	t.Setenv("DEPUTY_HTTP_READ_TIMEOUT", "")
	t.Setenv("DEPUTY_SHUTDOWN_DRAIN", "")
	cfg, dev, err := loadConfig("")
	if err != nil || !dev {
		t.Fatalf("loadConfig: %v, dev %v", err, dev)
	}
	if cfg.HTTP.ReadTimeout.D() != 15*time.Second || cfg.Shutdown.Drain.D() != 5*time.Second {
		t.Errorf("emptied keys: read_timeout %v, drain %v; want the defaults", cfg.HTTP.ReadTimeout.D(), cfg.Shutdown.Drain.D())
	}
}

// freshSchema creates an empty PostgreSQL schema, dropped when the test ends, and
// returns pg (a postgres:// URL) with its search_path set to it.
func freshSchema(t *testing.T, pg string) string {
	t.Helper()
	schema := fmt.Sprintf("cmd_test_%d", time.Now().UnixNano())
	db, err := sql.Open("pgx", pg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		db.Close()
	})
	if _, err := db.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(pg)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
