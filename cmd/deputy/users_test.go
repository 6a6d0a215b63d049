package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/account"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
)

// usersFixture writes a configuration whose database is in a temporary directory,
// and returns a function running deputy in-process with it.
func usersFixture(t *testing.T) (cfgFile string, deputy func(stdin string, args ...string) (string, error)) {
	t.Helper()
	dir := t.TempDir()
	cfgFile = filepath.Join(dir, "deputy.yaml")
	yaml := `issuer: http://127.0.0.1:8080
storage:
  dsn: ` + filepath.Join(dir, "deputy.db") + `
clients:
  - id: web-app
    secret: web-app-secret
    grant_types: [client_credentials]
users:
  - username: alice
    password: alice-password
`
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// The users commands need the database to exist.
	if err := run(t.Context(), []string{"migrate", "--config", cfgFile}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	return cfgFile, func(stdin string, args ...string) (string, error) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args = append(args, "--config", cfgFile)
		var err error
		if stdin != "" {
			err = cmdUsers(t.Context(), args[1:], strings.NewReader(stdin), &stdout, &stderr)
		} else {
			err = run(t.Context(), args, &stdout, &stderr)
		}
		return stdout.String(), err
	}
}

func passwordFile(t *testing.T, password string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(f, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestUsersCommands(t *testing.T) {
	cfgFile, deputy := usersFixture(t)
	if out, err := deputy("", "users", "add", "bob", "--password-file", passwordFile(t, "bob-password\n"),
		"--claim", "email=bob@example", "--claim", "name=Bob Builder"); err != nil {
		t.Fatalf("add bob: %v", err)
	} else if out != "user bob added\n" {
		t.Errorf("add bob printed %q", out)
	}
	if _, err := deputy("carol-password\r\n", "users", "add", "carol", "--password-stdin"); err != nil {
		t.Fatalf("add carol: %v", err)
	}

	out, err := deputy("", "users", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "USERNAME") ||
		!strings.HasPrefix(lines[1], "bob ") || !strings.Contains(lines[1], `email=bob@example name="Bob Builder"`) ||
		!strings.HasPrefix(lines[2], "carol ") || !strings.Contains(lines[1], "false") {
		t.Errorf("list:\n%s", out)
	}

	if out, err := deputy("", "users", "disable", "bob"); err != nil || out != "user bob disabled (0 sessions and tokens revoked)\n" {
		t.Fatalf("disable bob: %q, %v", out, err)
	}
	got := listJSON(t, deputy)
	if len(got) != 2 || got[0].Username != "bob" || !got[0].Disabled || got[1].Username != "carol" || got[1].Disabled {
		t.Fatalf("list --json after disable: %+v", got)
	}
	if got[0].Claims["name"] != "Bob Builder" || got[1].Claims == nil || got[0].CreatedAt.IsZero() {
		t.Errorf("list --json: %+v", got)
	}
	if out, err := deputy("", "audit", "query", "--type", "user.changed", "--subject", "bob"); err != nil ||
		!strings.Contains(out, "user added") || !strings.Contains(out, "user disabled") {
		t.Errorf("account changes not audited: %q %v", out, err)
	}

	// What the server will see: bob disabled, carol signs in with the password as
	// read (without its line break), alice is the configured one.
	dir := directory(t, cfgFile)
	if _, err := dir.Authenticate(t.Context(), "bob", "bob-password", "", got[0].CreatedAt); !errors.Is(err, account.ErrDisabled) {
		t.Errorf("bob after disable: %v; want ErrDisabled", err)
	}
	if _, err := dir.Authenticate(t.Context(), "carol", "carol-password", "", got[0].CreatedAt); err != nil {
		t.Errorf("carol: %v", err)
	}

	if _, err := deputy("", "users", "enable", "bob"); err != nil {
		t.Fatal(err)
	}
	if got := listJSON(t, deputy); got[0].Disabled {
		t.Errorf("bob still disabled after enable: %+v", got[0])
	}
}

func listJSON(t *testing.T, deputy func(string, ...string) (string, error)) []userJSON {
	t.Helper()
	out, err := deputy("", "users", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var us []userJSON
	for line := range strings.Lines(out) {
		var u userJSON
		if err := json.Unmarshal([]byte(line), &u); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		us = append(us, u)
	}
	return us
}

func directory(t *testing.T, cfgFile string) *account.Directory {
	t.Helper()
	cfg, err := config.Load(cfgFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := server.OpenStore(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d, err := account.NewDirectory(cfg.Users, st, account.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestUsersCommandsRefuse(t *testing.T) {
	_, deputy := usersFixture(t)
	if _, err := deputy("", "users", "add", "bob", "--password-file", passwordFile(t, "pw")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"fail/duplicate", "", []string{"users", "add", "bob", "--password-file", passwordFile(t, "other")}, "exists already"},
		{"fail/empty-password-file", "", []string{"users", "add", "dave", "--password-file", passwordFile(t, "")}, "password is empty"},
		{"fail/empty-password-line", "", []string{"users", "add", "dave", "--password-file", passwordFile(t, "\n")}, "password is empty"},
		{"fail/two-lines", "", []string{"users", "add", "dave", "--password-file", passwordFile(t, "a\nb\n")}, "line break"},
		{"fail/no-password", "", []string{"users", "add", "dave"}, "--password-stdin or --password-file"},
		{"fail/both-passwords", "pw", []string{"users", "add", "dave", "--password-stdin", "--password-file", passwordFile(t, "pw")}, "not both"},
		{"fail/configured-user", "", []string{"users", "add", "alice", "--password-file", passwordFile(t, "pw")}, "configuration file"},
		{"fail/client-id", "", []string{"users", "add", "web-app", "--password-file", passwordFile(t, "pw")}, "client id"},
		{"fail/reserved-claim", "", []string{"users", "add", "dave", "--claim", "sub=root", "--password-file", passwordFile(t, "pw")}, "claims.sub"},
		{"fail/no-username", "", []string{"users", "add", "--password-file", passwordFile(t, "pw")}, "one USERNAME"},
		{"fail/disable-unknown", "", []string{"users", "disable", "zoe"}, `no stored user "zoe"`},
		{"fail/disable-configured", "", []string{"users", "disable", "alice"}, "configuration file"},
		{"fail/unknown-subcommand", "", []string{"users", "remove", "bob"}, "exit status 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := deputy(tt.stdin, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want one saying %q", err, tt.want)
			}
		})
	}
	if got := listJSON(t, deputy); len(got) != 1 || got[0].Username != "bob" || got[0].Disabled {
		t.Errorf("after the refusals: %+v", got)
	}
}

// TestFormatClaimsEscapes: `deputy users list` printed claim values with C1
// controls and bidi overrides raw; they are quoted now, like control characters.
func TestFormatClaimsEscapes(t *testing.T) {
	for _, tc := range []struct{ v, want string }{
		{"Alice", "name=Alice"},
		{"José", "name=José"},
		{"a\u202eb", `name="a\u202eb"`},
		{"a\u009bb", `name="a\u009bb"`},
		{"a\x1bb", `name="a\x1bb"`},
		{"a\xffb", `name="a\xffb"`},
	} {
		if got := formatClaims(map[string]string{"name": tc.v}); got != tc.want {
			t.Errorf("formatClaims(%q) = %s, want %s", tc.v, got, tc.want)
		}
	}
}
