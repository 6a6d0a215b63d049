// Package testdeputy starts a real deputy node in-process on a loopback port, for
// tests of code that talks to deputy over HTTP (the sdk packages, the examples).
// It is the product itself — config, SQLite store, keys, audit writer, handlers —
// not a fake.
package testdeputy

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/oauth"
)

// Deputy is a running node.
type Deputy struct {
	URL    string // the issuer, http://127.0.0.1:<port>
	Server *server.Server
	t      testing.TB
}

// Start runs deputy on the development configuration (config.Dev: clients web-app,
// api1, api2, api3, support; users alice and bob) with its database in a temporary
// directory, after edit (which may be nil) has changed the configuration. The
// issuer is the node's URL. It stops when the test ends.
func Start(t testing.TB, edit func(*config.Config)) *Deputy {
	t.Helper()
	hs := httptest.NewUnstartedServer(nil)
	url := "http://" + hs.Listener.Addr().String()
	cfg := config.Dev(t.TempDir())
	cfg.Issuer = url
	if edit != nil {
		edit(cfg)
	}
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("testdeputy: %v", err)
	}
	hs.Config.Handler = s.Handler
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	return &Deputy{URL: url, Server: s, t: t}
}

// Token posts form to the token endpoint as client id and returns the response; it
// fails the test unless the request succeeds.
func (d *Deputy) Token(id, secret string, form url.Values) oauth.TokenResponse {
	d.t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.URL+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		d.t.Fatalf("testdeputy: token request by %s: %d %s", id, resp.StatusCode, body)
	}
	var tr oauth.TokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		d.t.Fatal(err)
	}
	return tr
}

// ClientCredentials returns an access token of client id (the development setup's
// secret is id+"-secret", web-app's "web-app-secret").
func (d *Deputy) ClientCredentials(id, scope string) string {
	d.t.Helper()
	f := url.Values{"grant_type": {oauth.GrantClientCredentials}}
	if scope != "" {
		f.Set("scope", scope)
	}
	return d.Token(id, id+"-secret", f).AccessToken
}
