package e2e

import (
	"net/url"
	"os"
	"path/filepath"
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
