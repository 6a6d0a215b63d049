package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
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
		{"fail/add-unknown-role", "", []string{"users", "add", "dave", "--role", "admin", "--password-file", passwordFile(t, "pw")}, "exit status 2"},
		{"fail/add-role-twice", "", []string{"users", "add", "dave", "--role", "auditor", "--role", "auditor", "--password-file", passwordFile(t, "pw")}, "exit status 2"},
		{"fail/roles-unknown-role", "", []string{"users", "roles", "bob", "--add", "root"}, "exit status 2"},
		{"fail/roles-unknown-remove", "", []string{"users", "roles", "bob", "--remove", "Auditor"}, "exit status 2"},
		{"fail/roles-add-and-remove", "", []string{"users", "roles", "bob", "--add", "auditor", "--remove", "auditor"}, "exit status 2"},
		{"fail/roles-unknown-user", "", []string{"users", "roles", "zoe", "--add", "auditor"}, `no stored user "zoe"`},
		{"fail/roles-configured", "", []string{"users", "roles", "alice", "--add", "auditor"}, "configuration file"},
		{"fail/roles-no-username", "", []string{"users", "roles", "--add", "auditor"}, "one USERNAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := deputy(tt.stdin, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want one saying %q", err, tt.want)
			}
		})
	}
	if got := listJSON(t, deputy); len(got) != 1 || got[0].Username != "bob" || got[0].Disabled || len(got[0].Roles) != 0 {
		t.Errorf("after the refusals: %+v", got)
	}
}

// TestUsersRoles: roles given at add, changed with users roles, shown by list
// (a column, and an array in JSON), each change on the trail with its event, and
// what the server's directory answers.
func TestUsersRoles(t *testing.T) {
	cfgFile, deputy := usersFixture(t)
	pw := passwordFile(t, "pw")
	if out, err := deputy("", "users", "add", "bob", "--role", "auditor", "--password-file", pw); err != nil || out != "user bob added\n" {
		t.Fatalf("add bob --role auditor: %q, %v", out, err)
	}
	if _, err := deputy("", "users", "add", "carol", "--password-file", pw); err != nil {
		t.Fatal(err)
	}
	out, err := deputy("", "users", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Fields(lines[0])[3] != "ROLES" ||
		strings.Fields(lines[1])[3] != "auditor" || strings.Fields(lines[2])[3] != "-" {
		t.Errorf("list:\n%s", out)
	}
	roles := func() map[string][]string {
		t.Helper()
		m := map[string][]string{}
		for _, u := range listJSON(t, deputy) {
			if u.Roles == nil {
				t.Errorf("list --json: %s's roles are null, not []", u.Username)
			}
			m[u.Username] = u.Roles
		}
		return m
	}
	if got := roles(); !slices.Equal(got["bob"], []string{"auditor"}) || len(got["carol"]) != 0 {
		t.Errorf("list --json roles: %q", got)
	}

	dir := directory(t, cfgFile)
	steps := []struct {
		name     string
		args     []string
		out      string
		bob      []string
		carol    []string
		recorded bool
	}{
		{"ok/show", []string{"bob"}, "user bob roles: auditor\n", []string{"auditor"}, nil, false},
		{"ok/add", []string{"carol", "--add", "auditor"}, "user carol roles: auditor\n", []string{"auditor"}, []string{"auditor"}, true},
		{"ok/add-again", []string{"carol", "--add", "auditor"}, "user carol roles unchanged: auditor\n", []string{"auditor"}, []string{"auditor"}, false},
		{"ok/remove", []string{"--remove", "auditor", "bob"}, "user bob roles: -\n", nil, []string{"auditor"}, true},
		{"ok/remove-again", []string{"bob", "--remove", "auditor"}, "user bob roles unchanged: -\n", nil, []string{"auditor"}, false},
	}
	for _, st := range steps {
		before := auditCount(t, deputy)
		out, err := deputy("", append([]string{"users", "roles"}, st.args...)...)
		if err != nil || out != st.out {
			t.Fatalf("%s: users roles %q: %q, %v; want %q", st.name, st.args, out, err, st.out)
		}
		got := roles()
		if !slices.Equal(got["bob"], st.bob) || !slices.Equal(got["carol"], st.carol) {
			t.Errorf("%s: roles %q", st.name, got)
		}
		for user, want := range map[string][]string{"bob": st.bob, "carol": st.carol} {
			if r, err := dir.Roles(t.Context(), user); err != nil || !slices.Equal(r, want) {
				t.Errorf("%s: the directory's Roles(%s) = %q, %v; want %q", st.name, user, r, err, want)
			}
		}
		if n := auditCount(t, deputy); (n > before) != st.recorded {
			t.Errorf("%s: %d audit events before, %d after", st.name, before, n)
		}
	}
	out, err = deputy("", "audit", "query", "--type", "user.changed", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for line := range strings.Lines(out) {
		var e struct {
			Subject, Reason string
			Detail          json.RawMessage
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		changes = append(changes, e.Subject+": "+e.Reason+" "+string(e.Detail))
	}
	if want := []string{
		`bob: user added as auditor with deputy users {"roles":["auditor"]}`,
		`carol: user added with deputy users null`,
		`carol: roles set to auditor with deputy users {"roles":["auditor"]}`,
		`bob: roles removed with deputy users {"roles":[]}`,
	}; !slices.Equal(changes, want) {
		t.Errorf("user.changed events:\n%s\nwant\n%s", strings.Join(changes, "\n"), strings.Join(want, "\n"))
	}
	if out, err := deputy("", "audit", "verify"); err != nil {
		t.Errorf("audit verify: %q, %v", out, err)
	}
	// A disabled account keeps its stored roles, but holds none while disabled.
	if _, err := deputy("", "users", "disable", "carol"); err != nil {
		t.Fatal(err)
	}
	if r, err := dir.Roles(t.Context(), "carol"); err != nil || r != nil {
		t.Errorf("Roles(carol) when disabled = %q, %v; want none", r, err)
	}
	if got := roles(); !slices.Equal(got["carol"], []string{"auditor"}) {
		t.Errorf("list --json after disable: %q", got)
	}
}

// auditCount is the number of events on the trail.
func auditCount(t *testing.T, deputy func(string, ...string) (string, error)) int {
	t.Helper()
	out, err := deputy("", "audit", "query", "--json", "--limit", "1000")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(out, "\n")
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
