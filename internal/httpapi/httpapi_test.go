package httpapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites that file under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// node is a deputy on the development configuration, its database in a temporary
// directory, assembled exactly as deputy serve does.
type node struct {
	t *testing.T
	s *server.Server
	// paths of the endpoints, found through discovery (design §4)
	token, introspection, revocation, jwks string
}

func newNode(t *testing.T) *node {
	t.Helper()
	s, err := server.New(t.Context(), config.Dev(t.TempDir()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	n := &node{t: t, s: s}
	w := n.do(httptest.NewRequest(http.MethodGet, "/.well-known/oauth-authorization-server", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("discovery: %d %s", w.Code, w.Body)
	}
	var doc map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for key, dst := range map[string]*string{
		"token_endpoint": &n.token, "introspection_endpoint": &n.introspection,
		"revocation_endpoint": &n.revocation, "jwks_uri": &n.jwks,
	} {
		v := s0(doc[key])
		if !strings.HasPrefix(v, s0(doc["issuer"])+"/") {
			t.Fatalf("discovery %s = %q, not under the issuer", key, v)
		}
		u, err := url.Parse(v)
		if err != nil {
			t.Fatal(err)
		}
		*dst = u.Path
	}
	return n
}

func s0(v any) string { s, _ := v.(string); return s }

func (n *node) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	n.s.Handler.ServeHTTP(w, r)
	return w
}

func (n *node) get(path string) *httptest.ResponseRecorder {
	return n.do(httptest.NewRequest(http.MethodGet, path, nil))
}

// post sends form to path, authenticated with client_secret_basic as id (none if "").
func (n *node) post(path, id string, form url.Values) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+id+"-secret")))
	}
	return n.do(r)
}

// clientToken is an access token of client id by client credentials.
func (n *node) clientToken(id string) string {
	n.t.Helper()
	w := n.post(n.token, id, url.Values{"grant_type": {oauth.GrantClientCredentials}})
	if w.Code != http.StatusOK {
		n.t.Fatalf("client_credentials for %s: %d %s", id, w.Code, w.Body)
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		n.t.Errorf("token response Cache-Control %q", got)
	}
	var resp oauth.TokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.AccessToken == "" {
		n.t.Fatalf("token response %s: %v", w.Body, err)
	}
	return resp.AccessToken
}

// oauthError checks an RFC 6749 §5.2 error answer and returns its code.
func oauthError(t *testing.T, w *httptest.ResponseRecorder, status int) oauth.Code {
	t.Helper()
	if w.Code != status {
		t.Errorf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q", got)
	}
	if got := w.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	var e oauth.Error
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q: %v", w.Body, err)
	}
	return e.Code
}

// TestDiscoveryGolden: both discovery documents (RFC 8414, OpenID Connect Discovery)
// as served, pretty-printed, against testdata/*.golden.json.
func TestDiscoveryGolden(t *testing.T) {
	n := newNode(t)
	for _, tt := range []struct{ path, file string }{
		{"/.well-known/oauth-authorization-server", "oauth-authorization-server.golden.json"},
		{"/.well-known/openid-configuration", "openid-configuration.golden.json"},
	} {
		t.Run(tt.file, func(t *testing.T) {
			w := n.get(tt.path)
			if w.Code != http.StatusOK {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			if got := w.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
			var doc map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			if doc["issuer"] != n.s.Config.Issuer {
				t.Errorf("issuer %v, want %s", doc["issuer"], n.s.Config.Issuer)
			}
			grants, _ := doc["grant_types_supported"].([]any)
			if !slices.Contains(grants, any(oauth.GrantTokenExchange)) {
				t.Errorf("grant_types_supported %v lacks token exchange", grants)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, w.Body.Bytes(), "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			golden(t, tt.file, pretty.Bytes())
		})
	}
}

// TestJWKS: the published key set holds the signing keys of the development
// setup, public parts only: ES256 for access tokens and RS256 for ID tokens (OpenID
// Connect Core §15.1).
func TestJWKS(t *testing.T) {
	n := newNode(t)
	w := n.get(n.jwks)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Keys) != 2 {
		t.Fatalf("%d keys, want 2: %s", len(raw.Keys), w.Body)
	}
	byAlg := map[string]map[string]any{}
	for _, k := range raw.Keys {
		byAlg[s0(k["alg"])] = k
		if s0(k["kid"]) == "" || k["use"] != "sig" {
			t.Errorf("key %v: want a kid and use sig", k)
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Errorf("the JWKS publishes private member %q", private)
			}
		}
	}
	if k := byAlg["ES256"]; k == nil || k["kty"] != "EC" || k["crv"] != "P-256" {
		t.Errorf("no EC P-256 ES256 key: %s", w.Body)
	}
	if k := byAlg["RS256"]; k == nil || k["kty"] != "RSA" {
		t.Errorf("no RSA RS256 key: %s", w.Body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(w.Body.Bytes(), &set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || !k.Valid() {
			t.Errorf("key %s is not a valid public key", k.KeyID)
		}
	}
}

// TestTokenEndpointRequests: what the token endpoint refuses before any grant runs.
func TestTokenEndpointRequests(t *testing.T) {
	n := newNode(t)

	t.Run("fail/get", func(t *testing.T) {
		w := n.get(n.token + "?grant_type=client_credentials")
		if code := oauthError(t, w, http.StatusMethodNotAllowed); code != oauth.CodeInvalidRequest {
			t.Errorf("error %q", code)
		}
		if got := w.Header().Get("Allow"); got != http.MethodPost {
			t.Errorf("Allow %q", got)
		}
	})
	t.Run("fail/json-body", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, n.token, strings.NewReader(`{"grant_type":"client_credentials"}`))
		r.Header.Set("Content-Type", "application/json")
		r.SetBasicAuth("web-app", "web-app-secret")
		if code := oauthError(t, n.do(r), http.StatusBadRequest); code != oauth.CodeInvalidRequest {
			t.Errorf("error %q", code)
		}
	})
	t.Run("fail/no-content-type", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, n.token, strings.NewReader("grant_type=client_credentials"))
		r.SetBasicAuth("web-app", "web-app-secret")
		if code := oauthError(t, n.do(r), http.StatusBadRequest); code != oauth.CodeInvalidRequest {
			t.Errorf("error %q", code)
		}
	})
	t.Run("ok/content-type-with-charset", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, n.token, strings.NewReader("grant_type=client_credentials"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
		r.SetBasicAuth("web-app", "web-app-secret")
		if w := n.do(r); w.Code != http.StatusOK {
			t.Errorf("%d %s", w.Code, w.Body)
		}
	})
	t.Run("fail/wrong-secret", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, n.token, strings.NewReader("grant_type=client_credentials"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("web-app", "nope")
		w := n.do(r)
		if code := oauthError(t, w, http.StatusUnauthorized); code != oauth.CodeInvalidClient {
			t.Errorf("error %q", code)
		}
		if w.Header().Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
	})
	t.Run("fail/bearer-authorization", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, n.token, strings.NewReader("grant_type=client_credentials&client_id=web-app&client_secret=web-app-secret"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Authorization", "Bearer abc")
		w := n.do(r)
		if code := oauthError(t, w, http.StatusUnauthorized); code != oauth.CodeInvalidClient {
			t.Errorf("error %q", code)
		}
	})
	t.Run("fail/repeated-client_id", func(t *testing.T) {
		w := n.post(n.token, "web-app", url.Values{"grant_type": {oauth.GrantClientCredentials}, "client_id": {"web-app", "web-app"}})
		if code := oauthError(t, w, http.StatusBadRequest); code != oauth.CodeInvalidRequest {
			t.Errorf("error %q", code)
		}
	})
}

// TestRequestID: X-Request-Id is echoed when it is short and printable, and made up
// otherwise, on success and on error alike.
func TestRequestID(t *testing.T) {
	n := newNode(t)
	send := func(method, id string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, n.token, strings.NewReader("grant_type=client_credentials"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("web-app", "web-app-secret")
		if id != "" {
			r.Header.Set("X-Request-Id", id)
		}
		return n.do(r)
	}
	generated := regexp.MustCompile(`^[0-9a-f]{24}$`)
	for _, tt := range []struct {
		name, method, sent string
		echoed             bool
	}{
		{"ok/echoed", http.MethodPost, "req-7f3a", true},
		{"ok/echoed-on-error", http.MethodGet, "req-7f3b", true},
		{"ok/echoed-64-chars", http.MethodPost, strings.Repeat("r", 64), true},
		{"fail/too-long", http.MethodPost, strings.Repeat("r", 65), false},
		{"fail/space", http.MethodPost, "req 7f3a", false},
		{"fail/control-character", http.MethodPost, "req\x017f3a", false},
		{"ok/none-sent", http.MethodPost, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := send(tt.method, tt.sent).Header().Get("X-Request-Id")
			if tt.echoed {
				if got != tt.sent {
					t.Errorf("X-Request-Id %q, want %q echoed", got, tt.sent)
				}
			} else if !generated.MatchString(got) {
				t.Errorf("X-Request-Id %q, want a generated id", got)
			}
		})
	}
}

// TestHealthAndReadiness: /healthz and /readyz answer 200 on a working node.
func TestHealthAndReadiness(t *testing.T) {
	n := newNode(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if w := n.get(p); w.Code != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, w.Code, w.Body)
		}
	}
}

// TestMetrics: /metrics counts token requests by grant type and outcome, with unknown
// grant types folded into "other" and refused methods counted as client errors.
func TestMetrics(t *testing.T) {
	n := newNode(t)
	scrape := func() string {
		w := n.get("/metrics")
		if w.Code != http.StatusOK {
			t.Fatalf("GET /metrics: %d", w.Code)
		}
		return w.Body.String()
	}
	if m := scrape(); strings.Contains(m, "deputy_token_requests_total{") {
		t.Fatalf("a counter before any token request:\n%s", m)
	}
	n.clientToken("web-app")
	n.post(n.token, "web-app", url.Values{"grant_type": {"made-up-" + strings.Repeat("x", 40)}})
	n.get(n.token)
	m := scrape()
	for _, want := range []string{
		`deputy_token_requests_total{error="",grant_type="client_credentials",outcome="ok"} 1`,
		`deputy_token_requests_total{error="unsupported_grant_type",grant_type="other",outcome="denied"} 1`,
		`deputy_token_requests_total{error="invalid_request",grant_type="other",outcome="denied"} 1`,
		`deputy_token_request_duration_seconds_count{grant_type="client_credentials"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(m, "made-up") {
		t.Error("a client-chosen grant_type became a label value")
	}
	if strings.Contains(m, `error="server_error"`) {
		t.Errorf("a client's mistake was counted as server_error:\n%s", grep(m, "deputy_token_requests_total"))
	}
}

// TestWrongMethodAudit: a request refused for its HTTP method is a client error in
// the audit trail too (design §7: every denial with its reason), not a server error.
func TestWrongMethodAudit(t *testing.T) {
	n := newNode(t)
	for _, path := range []string{n.token, n.introspection, n.revocation} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPut, path, nil)
			id := "wrong-method" + strings.ReplaceAll(path, "/", "-")
			r.Header.Set("X-Request-Id", id)
			// An address of its own: unauthenticated denials from one address are
			// recorded once a minute, then summed up.
			r.RemoteAddr = "192.0.2." + strconv.Itoa(10+len(path)) + ":1234"
			if w := n.do(r); w.Code != http.StatusMethodNotAllowed {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			events, err := n.s.Store.Query(t.Context(), store.AuditFilter{Type: store.EventDenied})
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, e := range events {
				if e.RequestID != id {
					continue
				}
				found = true
				if e.Decision != store.DecisionDeny || !strings.HasPrefix(e.Reason, string(oauth.CodeInvalidRequest)+":") {
					t.Errorf("audited as %s %q; want a denial for invalid_request", e.Decision, e.Reason)
				}
			}
			if !found {
				t.Fatalf("no denial recorded for request %s", id)
			}
		})
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestIntrospection (RFC 7662, design §6): a client may introspect tokens issued to it
// or addressed to it; anything else is exactly {"active":false}.
func TestIntrospection(t *testing.T) {
	n := newNode(t)
	tok := n.clientToken("web-app") // sub and client_id web-app, aud https://api1.example (client api1)

	active := func(t *testing.T, w *httptest.ResponseRecorder) oauth.IntrospectionResponse {
		t.Helper()
		if w.Code != http.StatusOK {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		if got := w.Header().Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control %q", got)
		}
		var resp oauth.IntrospectionResponse
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	inactive := func(t *testing.T, w *httptest.ResponseRecorder) {
		t.Helper()
		if w.Code != http.StatusOK || w.Body.String() != `{"active":false}` {
			t.Fatalf(`got %d %q, want exactly {"active":false}`, w.Code, w.Body)
		}
	}

	t.Run("ok/issued-to-client", func(t *testing.T) {
		r := active(t, n.post(n.introspection, "web-app", url.Values{"token": {tok}}))
		if !r.Active || r.ClientID != "web-app" || r.Sub != "web-app" || r.TokenType != oauth.TokenTypeBearer ||
			!slices.Equal(r.Aud, []string{"https://api1.example"}) || r.Jti == "" || r.Exp == 0 || r.Iss != n.s.Config.Issuer {
			t.Errorf("introspection %+v", r)
		}
	})
	t.Run("ok/addressed-to-client", func(t *testing.T) {
		if r := active(t, n.post(n.introspection, "api1", url.Values{"token": {tok}, "token_type_hint": {"access_token"}})); !r.Active {
			t.Errorf("introspection %+v", r)
		}
	})
	t.Run("fail/neither-issued-nor-addressed", func(t *testing.T) {
		inactive(t, n.post(n.introspection, "api3", url.Values{"token": {tok}}))
	})
	t.Run("fail/malformed-token", func(t *testing.T) {
		inactive(t, n.post(n.introspection, "web-app", url.Values{"token": {"not-a-token"}}))
	})
	t.Run("fail/tampered-token", func(t *testing.T) {
		inactive(t, n.post(n.introspection, "web-app", url.Values{"token": {tok[:len(tok)-4] + "AAAA"}}))
	})
	t.Run("fail/missing-token", func(t *testing.T) {
		if code := oauthError(t, n.post(n.introspection, "web-app", url.Values{}), http.StatusBadRequest); code != oauth.CodeInvalidRequest {
			t.Errorf("error %q", code)
		}
	})
	t.Run("fail/empty-token", func(t *testing.T) {
		if code := oauthError(t, n.post(n.introspection, "web-app", url.Values{"token": {""}}), http.StatusBadRequest); code != oauth.CodeInvalidRequest {
			t.Errorf("error %q", code)
		}
	})
	t.Run("fail/repeated-token", func(t *testing.T) {
		if code := oauthError(t, n.post(n.introspection, "web-app", url.Values{"token": {tok, tok}}), http.StatusBadRequest); code != oauth.CodeInvalidRequest {
			t.Errorf("error %q", code)
		}
	})
	t.Run("fail/unauthenticated", func(t *testing.T) {
		w := n.post(n.introspection, "", url.Values{"token": {tok}})
		if code := oauthError(t, w, http.StatusUnauthorized); code != oauth.CodeInvalidClient {
			t.Errorf("error %q", code)
		}
		if w.Header().Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
	})
	t.Run("fail/get", func(t *testing.T) {
		w := n.get(n.introspection + "?token=" + url.QueryEscape(tok))
		oauthError(t, w, http.StatusMethodNotAllowed)
		if got := w.Header().Get("Allow"); got != http.MethodPost {
			t.Errorf("Allow %q", got)
		}
	})
}

// TestRevocation (RFC 7009, design §6): a client revokes only tokens issued to it;
// tokens that are not deputy's answer 200.
func TestRevocation(t *testing.T) {
	n := newNode(t)
	tok := n.clientToken("web-app")
	isActive := func(t *testing.T) bool {
		t.Helper()
		w := n.post(n.introspection, "web-app", url.Values{"token": {tok}})
		var r oauth.IntrospectionResponse
		if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		return r.Active
	}

	t.Run("fail/issued-to-another-client", func(t *testing.T) {
		// api1 is the token's audience, but it was issued to web-app.
		for _, id := range []string{"api3", "api1"} {
			if code := oauthError(t, n.post(n.revocation, id, url.Values{"token": {tok}}), http.StatusBadRequest); code != oauth.CodeUnauthorizedClient {
				t.Errorf("%s: error %q", id, code)
			}
		}
		if !isActive(t) {
			t.Fatal("a refused revocation revoked the token")
		}
	})
	t.Run("ok/malformed-token", func(t *testing.T) {
		if w := n.post(n.revocation, "api3", url.Values{"token": {"not-a-token"}}); w.Code != http.StatusOK {
			t.Errorf("%d %s", w.Code, w.Body)
		}
	})
	t.Run("ok/opaque-unknown-token", func(t *testing.T) {
		if w := n.post(n.revocation, "web-app", url.Values{"token": {"a.b.c"}, "token_type_hint": {"refresh_token"}}); w.Code != http.StatusOK {
			t.Errorf("%d %s", w.Code, w.Body)
		}
	})
	t.Run("fail/missing-token", func(t *testing.T) {
		if code := oauthError(t, n.post(n.revocation, "web-app", url.Values{}), http.StatusBadRequest); code != oauth.CodeInvalidRequest {
			t.Errorf("error %q", code)
		}
	})
	t.Run("fail/unauthenticated", func(t *testing.T) {
		if code := oauthError(t, n.post(n.revocation, "", url.Values{"token": {tok}}), http.StatusUnauthorized); code != oauth.CodeInvalidClient {
			t.Errorf("error %q", code)
		}
		if !isActive(t) {
			t.Fatal("an unauthenticated revocation revoked the token")
		}
	})
	t.Run("ok/own-token", func(t *testing.T) {
		w := n.post(n.revocation, "web-app", url.Values{"token": {tok}})
		if w.Code != http.StatusOK {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		if isActive(t) {
			t.Fatal("the revoked token is still active")
		}
		// Revoking it again is not an error.
		if w := n.post(n.revocation, "web-app", url.Values{"token": {tok}}); w.Code != http.StatusOK {
			t.Errorf("second revocation: %d %s", w.Code, w.Body)
		}
	})
}

// TestBrokenForwardedHeaderRefused: with trusted_proxy_header Forwarded, a request
// from a trusted proxy whose Forwarded header cannot be read (a client's
// unterminated quote swallowed the proxy's element) is refused with 400, rather
// than taken to come from the proxy; from any other peer the header is not read.
func TestBrokenForwardedHeaderRefused(t *testing.T) {
	cfg := config.Dev(t.TempDir())
	cfg.TrustedProxies, cfg.TrustedProxyHeader = []string{"10.0.0.0/8"}, config.ProxyHeaderForwarded
	s, err := server.New(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, tt := range []struct {
		name, peer string
		want       int
	}{
		{"fail/from-the-proxy", "10.0.0.1:5555", http.StatusBadRequest},
		{"ok/from-elsewhere", "192.0.2.1:5555", http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/.well-known/openid-configuration", nil)
			r.RemoteAddr = tt.peer
			r.Header.Set("Forwarded", `for="198.51.100.66, for=203.0.113.7`)
			w := httptest.NewRecorder()
			s.Handler.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("%d %s, want %d", w.Code, w.Body, tt.want)
			}
		})
	}
}

// TestWrongProxyHeaderWarned: a trusted proxy that sends only the forwarding
// header deputy does not read (trusted_proxy_header names the other) leaves
// every client with the proxy's address; deputy says so in its log, once, naming
// the setting. Headers from an untrusted peer say nothing about the proxies and
// are not reported.
func TestWrongProxyHeaderWarned(t *testing.T) {
	cfg := config.Dev(t.TempDir())
	cfg.TrustedProxies = []string{"10.0.0.0/8"} // trusted_proxy_header: X-Forwarded-For
	var logs bytes.Buffer
	s, err := server.New(t.Context(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	send := func(peer string) {
		r := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		r.RemoteAddr = peer
		r.Header.Set("Forwarded", "for=203.0.113.7")
		s.Handler.ServeHTTP(httptest.NewRecorder(), r)
	}
	send("192.0.2.1:5555")
	if strings.Contains(logs.String(), "trusted_proxy_header") {
		t.Fatalf("warned for an untrusted peer:\n%s", logs.String())
	}
	send("10.0.0.1:5555")
	send("10.0.0.1:5555")
	if n := strings.Count(logs.String(), "set trusted_proxy_header"); n != 1 {
		t.Fatalf("%d warnings naming trusted_proxy_header, want 1:\n%s", n, logs.String())
	}
}
