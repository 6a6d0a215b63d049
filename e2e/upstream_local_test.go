package e2e

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// samlUnprefixedConfig is an upstream SAML IdP whose NameIDs become subjects as
// they are, with link_local_accounts as given.
const samlUnprefixedConfig = `
upstream_idps:
  - name: corp
    type: saml
    issuer: https://idp.test
    sso_url: %s/sso
    certificate_file: %s
    link_local_accounts: %t
`

func startSAMLUnprefixed(t *testing.T, idp *samlIdP, link bool) *server {
	cfg := strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+signinClients, 1) +
		fmt.Sprintf(samlUnprefixedConfig, idp.srv.URL, idp.certificateFile(), link)
	s := start(t, cfg)
	idp.mu.Lock()
	idp.wantACS = s.issuer + "/callback/corp"
	idp.mu.Unlock()
	return s
}

// upstreamSignIn runs the portal's code flow through corp for nameID up to the
// page deputy answers the IdP's response with.
func upstreamSignIn(t *testing.T, s *server, idp *samlIdP, conf *oauth2.Config, verifier, nameID string) (*browser, page) {
	t.Helper()
	idp.mu.Lock()
	idp.nameID = nameID
	idp.mu.Unlock()
	b := newBrowser(t, "https://portal.example/cb")
	login := b.get(conf.AuthCodeURL(randomString(), oauth2.S256ChallengeOption(verifier)))
	atIdP := b.postFormWith(login, `name="idp" value="corp"`, s.issuer)
	return b, b.postFormWith(atIdP, `name="SAMLResponse"`, "")
}

// portalTokens allows consent on p and redeems the code.
func portalTokens(t *testing.T, s *server, b *browser, conf *oauth2.Config, consent page, verifier string) *oauth2.Token {
	t.Helper()
	if !strings.Contains(consent.body, "Allow") {
		t.Fatalf("expected the consent page, got %s %d %s", consent.url, consent.status, consent.body)
	}
	back := b.submit(s.issuer, consent, url.Values{"decision": {"allow"}})
	u, err := url.Parse(back.url)
	if err != nil || u.Query().Get("code") == "" {
		t.Fatalf("redirect back %s (%d %s)", back.url, back.status, back.body)
	}
	tok, err := conf.Exchange(context.Background(), u.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	return tok
}

// idTokenEmail verifies the ID token of tok and returns its sub, email and idp.
func idTokenEmail(t *testing.T, s *server, tok *oauth2.Token) (sub, email, idp string) {
	t.Helper()
	provider, err := oidc.NewProvider(context.Background(), s.issuer)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: "portal"}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var c struct {
		Email string `json:"email"`
		IdP   string `json:"idp"`
	}
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return idt.Subject, c.Email, c.IdP
}

// TestUpstreamNeverBecomesLocalAccount: without link_local_accounts, whoever
// controls an upstream account named like a local one — configured (alice) or
// added with `deputy users add` while deputy runs (bob) — is refused with a page
// that says why, and the refusal is a denied sign-in in the audit trail; no
// session, no signin event. An upstream subject of no local account signs in
// and keeps the upstream's claims, also after a local account of its name is
// added later.
func TestUpstreamNeverBecomesLocalAccount(t *testing.T) {
	idp := startSAMLIdP(t)
	s := startSAMLUnprefixed(t, idp, false)
	conf := &oauth2.Config{ClientID: "portal", ClientSecret: "portal-secret",
		Endpoint:    oauth2.Endpoint{AuthURL: s.endpoint("authorization_endpoint"), TokenURL: s.endpoint("token_endpoint")},
		RedirectURL: "https://portal.example/cb", Scopes: []string{"openid", "email", "payments:read"}}

	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("bob-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := s.deputy("users", "add", "bob", "--password-file", pw, "--claim", "email=bob@bank.example"); code != 0 {
		t.Fatalf("users add bob: %d %s", code, out)
	}

	for _, name := range []string{"alice", "bob"} {
		t.Run("fail/local-"+name, func(t *testing.T) {
			verifier := oauth2.GenerateVerifier()
			b, p := upstreamSignIn(t, s, idp, conf, verifier, name)
			if p.status != 403 || !strings.Contains(p.body, "has the name of an account of this server") || strings.Contains(p.url, "portal.example") {
				t.Fatalf("upstream %s: %d %s\n%s", name, p.status, p.url, p.body)
			}
			if again := b.get(conf.AuthCodeURL(randomString(), oauth2.S256ChallengeOption(verifier))); !strings.Contains(again.body, `name="password"`) {
				t.Errorf("signed in after the refusal: %d %s", again.status, again.url)
			}
			var denied int
			for _, e := range auditEvents(t, s, "request.denied") {
				if field(e, "subject") == name && strings.Contains(field(e, "reason"), "sign-in refused") &&
					strings.Contains(field(e, "detail"), `"idp":"corp"`) {
					denied++
				}
			}
			if denied != 1 {
				t.Errorf("%d denied sign-ins of %s through corp recorded, want 1", denied, name)
			}
			for _, e := range auditEvents(t, s, "signin") {
				if field(e, "subject") == name {
					t.Errorf("signin recorded for %s: %v", name, e)
				}
			}
		})
	}

	t.Run("ok/upstream-subject-keeps-upstream-claims", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		b, consent := upstreamSignIn(t, s, idp, conf, verifier, "dave")
		tok := portalTokens(t, s, b, conf, consent, verifier)
		if sub, email, via := idTokenEmail(t, s, tok); sub != "dave" || email != "alice@corp.example" || via != "corp" {
			t.Fatalf("ID token sub %q email %q idp %q", sub, email, via)
		}
		// A local dave appears afterwards: corp's dave still gets corp's claims.
		if out, code := s.deputy("users", "add", "dave", "--password-file", pw, "--claim", "email=dave@bank.example"); code != 0 {
			t.Fatalf("users add dave: %d %s", code, out)
		}
		refreshed, err := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if sub, email, _ := idTokenEmail(t, s, refreshed); sub != "dave" || email == "dave@bank.example" {
			t.Errorf("refreshed ID token of corp's dave: sub %q email %q (the local dave's claims)", sub, email)
		}
		provider, err := oidc.NewProvider(context.Background(), s.issuer)
		if err != nil {
			t.Fatal(err)
		}
		ui, err := provider.UserInfo(context.Background(), oauth2.StaticTokenSource(refreshed))
		if err != nil || ui.Subject != "dave" || ui.Email == "dave@bank.example" {
			t.Errorf("userinfo of corp's dave: %+v %v (the local dave's claims?)", ui, err)
		}
	})
}

// TestUpstreamLinkedLocalAccount: with link_local_accounts the upstream's alice
// is the local alice, with her claims; a disabled local account is refused.
func TestUpstreamLinkedLocalAccount(t *testing.T) {
	idp := startSAMLIdP(t)
	s := startSAMLUnprefixed(t, idp, true)
	conf := &oauth2.Config{ClientID: "portal", ClientSecret: "portal-secret",
		Endpoint:    oauth2.Endpoint{AuthURL: s.endpoint("authorization_endpoint"), TokenURL: s.endpoint("token_endpoint")},
		RedirectURL: "https://portal.example/cb", Scopes: []string{"openid", "email", "payments:read"}}

	verifier := oauth2.GenerateVerifier()
	b, consent := upstreamSignIn(t, s, idp, conf, verifier, "alice")
	tok := portalTokens(t, s, b, conf, consent, verifier)
	if sub, email, via := idTokenEmail(t, s, tok); sub != "alice" || email != "alice@example.com" || via != "corp" {
		t.Errorf("linked ID token sub %q email %q idp %q, want alice's own claims, through corp", sub, email, via)
	}

	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("erin-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := s.deputy("users", "add", "erin", "--password-file", pw); code != 0 {
		t.Fatalf("users add erin: %d %s", code, out)
	}
	if out, code := s.deputy("users", "disable", "erin"); code != 0 {
		t.Fatalf("users disable erin: %d %s", code, out)
	}
	_, p := upstreamSignIn(t, s, idp, conf, oauth2.GenerateVerifier(), "erin")
	if p.status != 403 || !strings.Contains(p.body, "is disabled") {
		t.Fatalf("linked sign-in to a disabled account: %d %s\n%s", p.status, p.url, p.body)
	}
}

// TestUpstreamOIDCLocalAccount: the same through an upstream OpenID Provider (a
// second deputy): its user alice, without subject_prefix, is not the
// downstream's local alice.
func TestUpstreamOIDCLocalAccount(t *testing.T) {
	upAddr, downAddr := freePort(t), freePort(t)
	_, downPort, _ := net.SplitHostPort(downAddr)
	downIssuer := "http://127.0.0.1:" + downPort
	upCfg := strings.Replace(strings.ReplaceAll(upstreamConfig, "%DOWNSTREAM%", downIssuer),
		"  - username: carol\n", "  - username: alice\n    password: upstream-alice-password\n  - username: carol\n", 1)
	up := startAt(t, upAddr, "localhost", upCfg)
	down := startAt(t, downAddr, "127.0.0.1", strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+signinClients, 1)+
		strings.ReplaceAll(strings.Replace(upstreamIdPs, `    subject_prefix: "up:"`+"\n", "", 1), "%UPSTREAM%", up.issuer))

	conf := &oauth2.Config{ClientID: "portal", ClientSecret: "portal-secret",
		Endpoint:    oauth2.Endpoint{AuthURL: down.endpoint("authorization_endpoint"), TokenURL: down.endpoint("token_endpoint")},
		RedirectURL: "https://portal.example/cb", Scopes: []string{"openid", "email"}}
	b := newBrowser(t, "https://portal.example/cb")
	login := b.get(conf.AuthCodeURL(randomString(), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	upLogin := b.submitForm(down.issuer, login, "Sign in with upstream-idp", nil)
	upConsent := b.submit(up.issuer, upLogin, url.Values{"username": {"alice"}, "password": {"upstream-alice-password"}})
	p := b.submit(up.issuer, upConsent, url.Values{"decision": {"allow"}})
	if p.status != 403 || !strings.HasPrefix(p.url, down.issuer+"/callback/upstream-idp") || !strings.Contains(p.body, "has the name of an account of this server") {
		t.Fatalf("upstream alice at the downstream: %d %s\n%s", p.status, p.url, p.body)
	}
	for _, e := range auditEvents(t, down, "signin") {
		if field(e, "subject") == "alice" {
			t.Errorf("the upstream's alice signed in as the local alice: %v", e)
		}
	}
}
