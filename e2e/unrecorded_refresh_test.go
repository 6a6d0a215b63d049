package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// TestRefreshAfterFullDisk: a refresh that arrives while the disk is full
// fails closed (503: its tokens cannot be recorded) and spends nothing; once
// there is room again, the client's retry of the same refresh token succeeds —
// it is not taken for a reuse, which would revoke the family and sign the user
// out for a fault of the server.
func TestRefreshAfterFullDisk(t *testing.T) {
	skipOnPostgres(t, "fills a SQLite database")
	cfg := strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+signinClients, 1)
	s := start(t, cfg)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, s.issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: "portal", ClientSecret: "portal-secret", Endpoint: provider.Endpoint(),
		RedirectURL: "https://portal.example/cb", Scopes: []string{"openid", "payments:read"}}
	verifier := oauth2.GenerateVerifier()
	b := newBrowser(t, "https://portal.example/cb")
	q := b.signIn(s, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "alice-password")
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	s.stop()

	db, err := sql.Open("sqlite", filepath.Join(s.dir, "deputy.db"))
	if err != nil {
		t.Fatal(err)
	}
	var pages int
	if err := db.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	db.Close()
	full := strings.Replace(cfg, `dsn: "%DIR%/deputy.db"`,
		fmt.Sprintf(`dsn: "%%DIR%%/deputy.db?_pragma=max_page_count(%d)"`, pages+4), 1)
	if full == cfg {
		t.Fatal("bankConfig's storage line changed; update this test")
	}
	listen := strings.TrimPrefix(s.issuer, "http://")
	s.writeConfig(full, listen)
	s.run()
	for i := 0; ; i++ {
		if r := s.post("token_endpoint", "web-app", "web-secret", clientCredentials("")); r.Status != 200 {
			break
		}
		if i == 5000 {
			t.Fatalf("5000 tokens issued into a database of %d pages", pages+4)
		}
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
	wantError(t, s.post("token_endpoint", "portal", "portal-secret", refresh), 503, "temporarily_unavailable")
	s.stop()

	s.writeConfig(cfg, listen) // room again
	s.run()
	r := s.post("token_endpoint", "portal", "portal-secret", refresh)
	if r.Status != 200 {
		t.Fatalf("the retry once the disk has room: %d %s", r.Status, r.Raw)
	}
	if in := s.post("introspection_endpoint", "portal", "portal-secret", url.Values{"token": {tok.AccessToken}}); in.Body["active"] != true {
		t.Errorf("the access token of the sign-in is no longer active after the retry (family revoked?): %s", in.Raw)
	}
	if in := s.post("introspection_endpoint", "portal", "portal-secret", url.Values{"token": {r.str("refresh_token")}}); in.Body["active"] != true {
		t.Errorf("the refresh token of the retry: %s", in.Raw)
	}
}
