package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestDisabledUserLosesTokens: `deputy users disable` (and `delete`) takes
// everything the account was issued: its refresh token is refused
// (invalid_grant), its access token and the token a service exchanged from it are
// inactive, and a code issued before cannot be redeemed; each revocation is on
// the trail.
func TestDisabledUserLosesTokens(t *testing.T) {
	for _, verb := range []string{"disable", "delete"} {
		t.Run(verb, func(t *testing.T) { userLosesTokens(t, verb) })
	}
}

func userLosesTokens(t *testing.T, verb string) {
	s := startSignin(t)
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("bob-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, exit := s.deputy("users", "add", "bob", "--password-file", pw); exit != 0 {
		t.Fatalf("users add: %s", out)
	}

	b := newBrowser(t, "https://portal.example/cb")
	code := func(verifier string) string {
		t.Helper()
		p := b.get(s.endpointOIDC("authorization_endpoint") + "?" + url.Values{
			"response_type": {"code"}, "client_id": {"portal"}, "redirect_uri": {"https://portal.example/cb"},
			"scope": {"openid payments:read"}, "state": {randomString()},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
		}.Encode())
		if strings.Contains(p.body, `name="password"`) {
			p = b.submit(s.issuer, p, url.Values{"username": {"bob"}, "password": {"bob-password"}})
		}
		if strings.Contains(p.body, `name="decision"`) {
			p = b.submit(s.issuer, p, url.Values{"decision": {"allow"}})
		}
		u, err := url.Parse(p.url)
		if err != nil || u.Query().Get("code") == "" {
			t.Fatalf("no code: %d %s\n%s", p.status, p.url, p.body)
		}
		return u.Query().Get("code")
	}
	v1, v2 := oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	r := s.token("portal", "portal-secret", redeemForm(code(v1), v1))
	// A refresh, so that the live tokens are a level down.
	r = s.token("portal", "portal-secret", refreshForm(r.str("refresh_token")))
	at, rt := r.str("access_token"), r.str("refresh_token")
	exchanged := s.token("api1", "api1-secret", exchangeForm(at, "audience", "https://api2.example")).str("access_token")
	pending := code(v2) // issued, not yet redeemed
	if !s.active(at) || !s.active(exchanged) {
		t.Fatal("tokens inactive before the account was disabled")
	}

	if out, exit := s.deputy("users", verb, "bob"); exit != 0 || !strings.Contains(out, "user bob "+verb+"d") {
		t.Fatalf("users %s: exit %d %s", verb, exit, out)
	}

	wantError(t, s.post("token_endpoint", "portal", "portal-secret", refreshForm(rt)), 400, "invalid_grant")
	wantError(t, s.post("token_endpoint", "portal", "portal-secret", redeemForm(pending, v2)), 400, "invalid_grant")
	// The node learns of revocations made by another process within a second.
	for name, tok := range map[string]string{"access token": at, "exchanged token": exchanged} {
		if _, ok := eventually(5*time.Second, 50*time.Millisecond, func() bool { return s.inactive(tok) }); !ok {
			t.Errorf("the %s of a disabled user is still active", name)
		}
	}
	if out, exit := s.deputy("audit", "query", "--type", "token.revoked", "--subject", "bob"); exit != 0 || !strings.Contains(out, "user "+verb+"d") {
		t.Errorf("no token.revoked event for the %sd user: %s", verb, out)
	}
	if out, exit := s.deputy("audit", "verify"); exit != 0 {
		t.Errorf("audit verify: %s", out)
	}
}

// TestUserRoles: roles of configured accounts are checked at start and on
// reload (an unknown role refuses the file, naming the key); roles of stored
// accounts are given by `users add --role`, changed by `users roles`, shown by
// `users list`, each change on the trail of the running server.
func TestUserRoles(t *testing.T) {
	const aliceClaims = "    claims: {email: alice@example.com, name: Alice Liddell}\n"
	withRoles := func(roles string) string {
		cfg := strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+signinClients, 1)
		if roles != "" {
			cfg = strings.Replace(cfg, aliceClaims, aliceClaims+"    roles: "+roles+"\n", 1)
		}
		return cfg
	}
	s := start(t, withRoles("[auditor]"))

	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("bob-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, exit := s.deputy("users", "add", "bob", "--role", "auditor", "--password-file", pw); exit != 0 {
		t.Fatalf("users add --role auditor: exit %d %s", exit, out)
	}
	roles := func(user string) []string {
		t.Helper()
		out, exit := s.deputy("users", "list", "--json")
		if exit != 0 {
			t.Fatalf("users list: %s", out)
		}
		for line := range strings.Lines(out) {
			var u struct {
				Username string
				Roles    []string
			}
			if err := json.Unmarshal([]byte(line), &u); err != nil {
				t.Fatalf("users list line %q: %v", line, err)
			}
			if u.Username == user {
				if u.Roles == nil {
					t.Errorf("users list --json: %s's roles are not a list", user)
				}
				return u.Roles
			}
		}
		t.Fatalf("users list has no %s:\n%s", user, out)
		return nil
	}
	if got := roles("bob"); !slices.Equal(got, []string{"auditor"}) {
		t.Errorf("bob's roles after add: %q", got)
	}
	if out, exit := s.deputy("users", "list"); exit != 0 || !regexp.MustCompile(`(?m)^bob +false +\S+ +auditor +`).MatchString(out) {
		t.Errorf("users list: exit %d\n%s", exit, out)
	}

	for _, tc := range []struct {
		name string
		args []string
		exit int
		says string
	}{
		{"fail/add-unknown-role", []string{"users", "add", "carol", "--role", "admin", "--password-file", pw}, 2, `"admin" is not a role (known: auditor)`},
		{"fail/roles-unknown-role", []string{"users", "roles", "bob", "--add", "superuser"}, 2, `"superuser" is not a role`},
		{"fail/roles-configured-user", []string{"users", "roles", "alice", "--remove", "auditor"}, 1, "configuration file"},
		{"fail/roles-unknown-user", []string{"users", "roles", "zoe", "--add", "auditor"}, 1, `no stored user "zoe"`},
	} {
		if out, exit := s.deputy(tc.args...); exit != tc.exit || !strings.Contains(out, tc.says) {
			t.Errorf("%s: exit %d, want %d saying %q:\n%s", tc.name, exit, tc.exit, tc.says, out)
		}
	}
	if out, _ := s.deputy("users", "list"); strings.Contains(out, "carol") {
		t.Errorf("carol was added with an unknown role:\n%s", out)
	}

	if out, exit := s.deputy("users", "roles", "bob", "--remove", "auditor"); exit != 0 || out != "user bob roles: -\n" {
		t.Fatalf("users roles --remove: exit %d %q", exit, out)
	}
	if got := roles("bob"); len(got) != 0 {
		t.Errorf("bob's roles after --remove: %q", got)
	}
	if out, exit := s.deputy("users", "roles", "bob", "--add", "auditor"); exit != 0 || out != "user bob roles: auditor\n" {
		t.Fatalf("users roles --add: exit %d %q", exit, out)
	}
	out, exit := s.deputy("audit", "query", "--type", "user.changed", "--subject", "bob")
	if exit != 0 || !strings.Contains(out, "user added as auditor") || !strings.Contains(out, "roles removed") ||
		!strings.Contains(out, "roles set to auditor") {
		t.Errorf("bob's role changes are not on the trail: exit %d\n%s", exit, out)
	}

	// An unknown role in the file refuses the reload, naming the key; taking the
	// role out of the file applies.
	s.hangup(withRoles("[auditor, admin]"))
	s.waitFor("the refusal in the log", func() bool {
		return strings.Contains(s.logs.String(), "reload: the running configuration is unchanged")
	})
	if !strings.Contains(s.logs.String(), `users[0].roles[1]: \"admin\" is not one of auditor`) {
		t.Errorf("the log does not name the unknown role:\n%s", s.logs.String())
	}
	evs, _ := s.reload(withRoles(""), 1)
	if len(evs) != 2 || evs[1]["decision"] != "allow" {
		t.Fatalf("config.reloaded events: %v", evs)
	}
	if changed, _ := detailOf(t, evs[1])["changed"].(map[string]any); fmt.Sprint(changed["users"]) != "[alice]" {
		t.Errorf("the reload does not say alice changed: %v", detailOf(t, evs[1]))
	}
	if out, exit := s.deputy("audit", "verify"); exit != 0 {
		t.Errorf("audit verify: %s", out)
	}
}
