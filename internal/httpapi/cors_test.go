package httpapi_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/config"
)

// TestCORS: the endpoints a single-page app calls answer CORS (preflight and actual
// requests) for the origins of registered redirect URIs and cors.allowed_origins,
// never with credentials; discovery and the JWKS are open to every origin; the
// cookie endpoints and introspection are not CORS endpoints at all; an origin not
// allowed gets no CORS header.
func TestCORS(t *testing.T) {
	_, ts := webNode(t, func(c *config.Config) { c.CORS.AllowedOrigins = []string{"https://Admin.example:443"} })
	const (
		spa     = "https://spa.example" // origin of the spa client's redirect URI
		admin   = "https://admin.example"
		portal  = "http://127.0.0.1:9000" // origin of web-app's redirect URI
		evil    = "https://evil.example"
		noCORS  = ""
		anyOrig = "*"
	)
	for _, tt := range []struct {
		name, method, path, origin string
		preflight                  string // Access-Control-Request-Method, for OPTIONS
		wantOrigin                 string // Access-Control-Allow-Origin expected ("" none)
		wantMethods                string // Access-Control-Allow-Methods expected on a preflight
	}{
		{"ok/token-preflight", http.MethodOptions, "/token", spa, "POST", spa, "POST"},
		{"ok/token-post", http.MethodPost, "/token", spa, "", spa, ""},
		{"ok/token-configured-origin", http.MethodPost, "/token", admin, "", admin, ""},
		{"ok/token-redirect-origin-of-confidential-client", http.MethodOptions, "/token", portal, "POST", portal, "POST"},
		{"ok/userinfo-preflight", http.MethodOptions, "/userinfo", spa, "GET", spa, "GET, POST"},
		{"ok/userinfo-get", http.MethodGet, "/userinfo", spa, "", spa, ""},
		{"ok/revoke-preflight", http.MethodOptions, "/revoke", spa, "POST", spa, "POST"},
		{"ok/discovery-any-origin", http.MethodGet, "/.well-known/openid-configuration", evil, "", anyOrig, ""},
		{"ok/oauth-discovery-preflight", http.MethodOptions, "/.well-known/oauth-authorization-server", evil, "GET", anyOrig, "GET"},
		{"ok/jwks-any-origin", http.MethodGet, "/jwks", evil, "", anyOrig, ""},
		{"fail/token-unlisted-origin", http.MethodPost, "/token", evil, "", noCORS, ""},
		{"fail/token-preflight-unlisted-origin", http.MethodOptions, "/token", evil, "POST", noCORS, ""},
		{"fail/token-null-origin", http.MethodOptions, "/token", "null", "POST", noCORS, ""},
		{"fail/token-origin-with-other-port", http.MethodOptions, "/token", "https://spa.example:8443", "POST", noCORS, ""},
		{"fail/introspection-not-cors", http.MethodOptions, "/introspect", spa, "POST", noCORS, ""},
		{"fail/authorize-not-cors", http.MethodGet, "/authorize", spa, "", noCORS, ""},
		{"fail/login-not-cors", http.MethodGet, "/login", spa, "", noCORS, ""},
		{"fail/end-session-not-cors", http.MethodGet, "/end-session", spa, "", noCORS, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var body *strings.Reader
			if tt.method == http.MethodPost {
				body = strings.NewReader(url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "client_id": {"spa"}}.Encode())
			} else {
				body = strings.NewReader("")
			}
			r, _ := http.NewRequest(tt.method, ts.URL+tt.path, body)
			r.Header.Set("Origin", tt.origin)
			if tt.method == http.MethodPost {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tt.preflight != "" {
				r.Header.Set("Access-Control-Request-Method", tt.preflight)
				r.Header.Set("Access-Control-Request-Headers", "authorization, dpop")
			}
			res, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			h := res.Header
			if got := h.Get("Access-Control-Allow-Origin"); got != tt.wantOrigin {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tt.wantOrigin)
			}
			if got := h.Get("Access-Control-Allow-Credentials"); got != "" {
				t.Errorf("Access-Control-Allow-Credentials %q on %s", got, tt.path)
			}
			if tt.wantOrigin == noCORS {
				for k := range h {
					if strings.HasPrefix(k, "Access-Control-") {
						t.Errorf("%s sent to a refused origin", k)
					}
				}
			}
			// The answer of /token, /userinfo and /revoke depends on Origin, for a
			// refused origin too: a shared cache must not give one origin's answer
			// to another.
			perOrigin := tt.path == "/token" || tt.path == "/userinfo" || tt.path == "/revoke"
			if perOrigin && !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
				t.Errorf("Vary %q lacks Origin", h.Values("Vary"))
			}
			if tt.preflight == "" || tt.wantOrigin == noCORS {
				return
			}
			if res.StatusCode != http.StatusNoContent {
				t.Errorf("preflight status %d", res.StatusCode)
			}
			if got := h.Get("Access-Control-Allow-Methods"); got != tt.wantMethods {
				t.Errorf("Access-Control-Allow-Methods %q, want %q", got, tt.wantMethods)
			}
			allowed := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
			for _, want := range []string{"authorization", "content-type", "dpop"} {
				if !strings.Contains(allowed, want) {
					t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, want)
				}
			}
		})
	}
}
