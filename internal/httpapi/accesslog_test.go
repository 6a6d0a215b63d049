package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/oauth"
)

// logNode is a development node whose log (at debug) is in logs, in the format
// handler makes: time removed and duration_ms 0, so lines compare exactly.
func logNode(t *testing.T, handler func(w io.Writer, opts *slog.HandlerOptions) slog.Handler, mods ...func(*config.Config)) (*server.Server, *bytes.Buffer) {
	t.Helper()
	logs := &bytes.Buffer{}
	opts := &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		switch a.Key {
		case slog.TimeKey:
			return slog.Attr{}
		case "duration_ms":
			return slog.Float64("duration_ms", 0)
		}
		return a
	}}
	cfg := config.Dev(t.TempDir())
	for _, mod := range mods {
		mod(cfg)
	}
	s, err := server.New(t.Context(), cfg, slog.New(handler(logs, opts)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	logs.Reset()
	return s, logs
}

func jsonHandler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	return slog.NewJSONHandler(w, opts)
}
func textHandler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	return slog.NewTextHandler(w, opts)
}

// logRequest is one request of the access-log tests.
type logRequest struct {
	method, target, auth, contentType, body string
	header                                  map[string]string
	ctx                                     func(context.Context) context.Context
}

func (lr logRequest) do(t *testing.T, s *server.Server, id string) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if lr.body != "" {
		body = strings.NewReader(lr.body)
	}
	r := httptest.NewRequest(lr.method, lr.target, body)
	r.Header.Set("X-Request-Id", id)
	if lr.contentType != "" {
		r.Header.Set("Content-Type", lr.contentType)
	}
	if lr.auth != "" {
		r.Header.Set("Authorization", lr.auth)
	}
	for k, v := range lr.header {
		r.Header.Set(k, v)
	}
	if lr.ctx != nil {
		r = r.WithContext(lr.ctx(r.Context()))
	}
	w := httptest.NewRecorder()
	s.Handler.ServeHTTP(w, r)
	return w
}

func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

const form = "application/x-www-form-urlencoded"

// A trace context as a traceparent would bring (W3C Trace Context §3.2).
var (
	testTraceID, _ = trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	testSpanID, _  = trace.SpanIDFromHex("00f067aa0ba902b7")
)

func withSpan(ctx context.Context) context.Context {
	return trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: testTraceID, SpanID: testSpanID, TraceFlags: trace.FlagsSampled}))
}

// accessLogCases are requests to every kind of endpoint, with the access-log
// line each must produce (the fields besides request_id, remote and
// duration_ms; a field absent from want must be absent from the line).
func accessLogCases(t *testing.T, s *server.Server) []struct {
	name string
	req  logRequest
	want map[string]any
	// level is the line's level.
	level string
} {
	// A token of web-app, for userinfo and introspection.
	w := logRequest{method: http.MethodPost, target: "/token", auth: basicAuth("web-app", "web-app-secret"), contentType: form,
		body: "grant_type=client_credentials&scope=payments:read"}.do(t, s, "setup")
	var tok oauth.TokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("setup token: %d %s", w.Code, w.Body)
	}
	type tc = struct {
		name  string
		req   logRequest
		want  map[string]any
		level string
	}
	return []tc{
		{"ok/client-credentials", logRequest{method: "POST", target: "/token", auth: basicAuth("web-app", "web-app-secret"), contentType: form,
			body: "grant_type=client_credentials&scope=payments:read"},
			map[string]any{"method": "POST", "route": "/token", "status": 200, "outcome": "ok", "client": "web-app", "client_verified": true, "grant": "client_credentials"}, "INFO"},
		{"fail/bad-secret", logRequest{method: "POST", target: "/token", auth: basicAuth("web-app", "wrong-secret"), contentType: form,
			body: "grant_type=client_credentials"},
			map[string]any{"method": "POST", "route": "/token", "status": 401, "outcome": "denied", "error": "invalid_client", "client": "web-app", "client_verified": false, "grant": "client_credentials"}, "INFO"},
		{"fail/unknown-client", logRequest{method: "POST", target: "/token", auth: basicAuth("nobody", "x"), contentType: form,
			body: "grant_type=client_credentials"},
			map[string]any{"method": "POST", "route": "/token", "status": 401, "outcome": "denied", "error": "invalid_client", "client": "nobody", "client_verified": false, "grant": "client_credentials"}, "INFO"},
		{"fail/claimed-id-with-control-characters", logRequest{method: "POST", target: "/token", contentType: form,
			body: "grant_type=client_credentials&client_id=evil%0Alevel%3DERROR&client_secret=x"},
			map[string]any{"method": "POST", "route": "/token", "status": 401, "outcome": "denied", "error": "invalid_client", "client": `"evil\nlevel=ERROR"`, "client_verified": false, "grant": "client_credentials"}, "INFO"},
		{"fail/unsupported-grant", logRequest{method: "POST", target: "/token", auth: basicAuth("web-app", "web-app-secret"), contentType: form,
			body: "grant_type=password&username=alice&password=alice-password"},
			map[string]any{"method": "POST", "route": "/token", "status": 400, "outcome": "denied", "error": "unsupported_grant_type", "client": "web-app", "client_verified": true, "grant": "other"}, "INFO"},
		{"fail/unauthorized-client", logRequest{method: "POST", target: "/token", auth: basicAuth("auditor", "auditor-secret"), contentType: form,
			body: "grant_type=authorization_code&code=c0de-not-hex&redirect_uri=http://x"},
			map[string]any{"method": "POST", "route": "/token", "status": 400, "outcome": "denied", "error": "unauthorized_client", "client": "auditor", "client_verified": true, "grant": "authorization_code"}, "INFO"},
		{"fail/wrong-method", logRequest{method: "GET", target: "/token?code=c0de-not-hex&client_secret=s3cret"},
			map[string]any{"method": "GET", "route": "/token", "status": 405, "outcome": "denied", "error": "invalid_request", "grant": "other"}, "INFO"},
		{"fail/body-too-large", logRequest{method: "POST", target: "/token", auth: basicAuth("web-app", "web-app-secret"), contentType: form,
			body: "grant_type=client_credentials&scope=" + strings.Repeat("a", 70000)},
			map[string]any{"method": "POST", "route": "/token", "status": 413, "outcome": "denied", "error": "invalid_request", "client": "web-app", "client_verified": false, "grant": "other"}, "INFO"},
		{"ok/introspect", logRequest{method: "POST", target: "/introspect", auth: basicAuth("web-app", "web-app-secret"), contentType: form,
			body: "token=" + tok.AccessToken},
			map[string]any{"method": "POST", "route": "/introspect", "status": 200, "outcome": "ok", "client": "web-app", "client_verified": true}, "INFO"},
		{"fail/revoke-without-token", logRequest{method: "POST", target: "/revoke", auth: basicAuth("web-app", "web-app-secret"), contentType: form},
			map[string]any{"method": "POST", "route": "/revoke", "status": 400, "outcome": "denied", "error": "invalid_request", "client": "web-app", "client_verified": true}, "INFO"},
		{"fail/userinfo-without-openid", logRequest{method: "GET", target: "/userinfo", auth: "Bearer " + tok.AccessToken},
			map[string]any{"method": "GET", "route": "/userinfo", "status": 403, "outcome": "denied", "error": "insufficient_scope", "client": "web-app", "client_verified": true}, "INFO"},
		{"ok/revoke", logRequest{method: "POST", target: "/revoke", auth: basicAuth("web-app", "web-app-secret"), contentType: form,
			body: "token=" + tok.AccessToken},
			map[string]any{"method": "POST", "route": "/revoke", "status": 200, "outcome": "ok", "client": "web-app", "client_verified": true}, "INFO"},
		{"fail/userinfo-bad-token", logRequest{method: "GET", target: "/userinfo", auth: "Bearer not.a.token"},
			map[string]any{"method": "GET", "route": "/userinfo", "status": 401, "outcome": "denied", "error": "invalid_token"}, "INFO"},
		{"ok/authorize-login-page", logRequest{method: "GET", target: "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"web-app"},
			"redirect_uri": {"http://127.0.0.1:9000/callback"}, "scope": {"openid"}, "state": {"st4te"}, "code_challenge": {strings.Repeat("c", 43)},
			"code_challenge_method": {"S256"}}.Encode()},
			map[string]any{"method": "GET", "route": "/authorize", "status": 200, "outcome": "ok", "client": "web-app", "client_verified": false}, "INFO"},
		{"fail/authorize-unknown-client", logRequest{method: "GET", target: "/authorize?response_type=code&client_id=ghost&state=s"},
			map[string]any{"method": "GET", "route": "/authorize", "status": 400, "outcome": "denied", "error": "invalid_request", "client": "ghost", "client_verified": false}, "INFO"},
		{"fail/login-bad-form", logRequest{method: "POST", target: "/login", contentType: form, body: "username=alice&password=alice-password"},
			map[string]any{"method": "POST", "route": "/login", "status": 400, "outcome": "denied", "error": "invalid_request"}, "INFO"},
		{"ok/discovery", logRequest{method: "GET", target: "/.well-known/openid-configuration"},
			map[string]any{"method": "GET", "route": "/.well-known/openid-configuration", "status": 200, "outcome": "ok"}, "INFO"},
		{"ok/jwks-with-trace", logRequest{method: "GET", target: "/jwks", ctx: withSpan},
			map[string]any{"method": "GET", "route": "/jwks", "status": 200, "outcome": "ok", "trace_id": testTraceID.String()}, "INFO"},
		{"ok/health-at-debug", logRequest{method: "GET", target: "/healthz"},
			map[string]any{"method": "GET", "route": "/healthz", "status": 200, "outcome": "ok"}, "DEBUG"},
		{"ok/metrics-at-debug", logRequest{method: "GET", target: "/metrics"},
			map[string]any{"method": "GET", "route": "/metrics", "status": 200, "outcome": "ok"}, "DEBUG"},
		{"fail/unknown-path", logRequest{method: "GET", target: "/token/eyJhbGciOiJFUzI1NiJ9.e30.sig?code=s3cret"},
			map[string]any{"method": "GET", "route": "other", "status": 404, "outcome": "denied"}, "INFO"},
		{"fail/unknown-method", logRequest{method: "BREW", target: "/jwks"},
			map[string]any{"method": "other", "route": "/jwks", "status": 405, "outcome": "denied"}, "INFO"},
		{"fail/calls-unauthenticated", logRequest{method: "POST", target: "/calls", contentType: "application/json", body: `{"calls":[]}`},
			map[string]any{"method": "POST", "route": "/calls", "status": 401, "outcome": "denied", "error": "invalid_client"}, "INFO"},
		{"fail/audit-not-allowed", logRequest{method: "GET", target: "/audit/events?subject=alice", auth: basicAuth("web-app", "web-app-secret")},
			map[string]any{"method": "GET", "route": "/audit/events", "status": 400, "outcome": "denied", "error": "unauthorized_client", "client": "web-app", "client_verified": true}, "INFO"},
	}
}

// TestAccessLog: every request gets exactly one line, with the request id of its
// X-Request-Id, its route (never the path as sent, nor the query), the client
// and whether deputy verified it, the grant, the outcome and the OAuth error.
func TestAccessLog(t *testing.T) {
	s, logs := logNode(t, jsonHandler)
	for i, tt := range accessLogCases(t, s) {
		t.Run(tt.name, func(t *testing.T) {
			logs.Reset()
			id := "req-" + string(rune('a'+i))
			w := tt.req.do(t, s, id)
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			var access []map[string]any
			for _, l := range lines {
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("line is not JSON: %q", l)
				}
				if m["msg"] == "request" {
					access = append(access, m)
				}
			}
			if len(access) != 1 {
				t.Fatalf("%d access lines, want 1:\n%s", len(access), logs)
			}
			got := access[0]
			if got["request_id"] != id || got["remote"] != "192.0.2.1" || got["level"] != tt.level {
				t.Errorf("request_id %v remote %v level %v, want %s 192.0.2.1 %s", got["request_id"], got["remote"], got["level"], id, tt.level)
			}
			if int(got["status"].(float64)) != w.Code {
				t.Errorf("status %v logged, %d answered", got["status"], w.Code)
			}
			for _, k := range []string{"method", "route", "status", "outcome", "error", "client", "client_verified", "grant"} {
				want, ok := tt.want[k]
				if v, ok := want.(int); ok {
					want = float64(v)
				}
				if g, present := got[k]; present != ok || g != want {
					t.Errorf("%s = %v (present %v), want %v (present %v)", k, g, present, want, ok)
				}
			}
			// Every request has a trace id (tracing.go): its caller's when it
			// brought one, else a fresh one.
			if want, ok := tt.want["trace_id"]; ok && got["trace_id"] != want {
				t.Errorf("trace_id = %v, want %v", got["trace_id"], want)
			}
			if tid, _ := got["trace_id"].(string); !audit.ValidTraceID(tid) {
				t.Errorf("trace_id = %v, want a W3C trace id", got["trace_id"])
			}
			// (none of them hex: a random trace id could hold a short hex word)
			for _, secret := range []string{"web-app-secret", "wrong-secret", "alice-password", "s3cret", "c0de-not-hex", "st4te", "eyJ"} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("the log holds %q:\n%s", secret, logs)
				}
			}
		})
	}
}

// TestAccessLogRateLimited: a request limits.rate refuses has its line too: 429,
// temporarily_unavailable, and the client whose allowance is spent — as claimed
// (client_verified false): once a client's bucket is empty its requests are
// refused before their credentials are checked.
func TestAccessLogRateLimited(t *testing.T) {
	s, logs := logNode(t, jsonHandler, func(c *config.Config) { c.Limits.Rate = config.Rate{PerSecond: 1, Burst: 1} })
	req := logRequest{method: "POST", target: "/token", auth: basicAuth("web-app", "web-app-secret"), contentType: form, body: "grant_type=client_credentials"}
	if w := req.do(t, s, "first"); w.Code != http.StatusOK {
		t.Fatalf("first request: %d %s", w.Code, w.Body)
	}
	logs.Reset()
	if w := req.do(t, s, "second"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("second request: %d, want 429", w.Code)
	}
	var got map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line is not JSON: %q", l)
		}
		if m["msg"] == "request" {
			if got != nil {
				t.Fatalf("two access lines:\n%s", logs)
			}
			got = m
		}
	}
	want := map[string]any{"request_id": "second", "route": "/token", "status": float64(429), "outcome": "denied", "error": "temporarily_unavailable", "level": "INFO"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if got["client"] != "web-app" || got["client_verified"] != false {
		t.Errorf("client %v (verified %v), want web-app as claimed, refused before its credentials were checked", got["client"], got["client_verified"])
	}
}

// TestAccessLogMetricsListener: /metrics on metrics.listen, served outside the
// main handler, has its line too (at debug, as on listen).
func TestAccessLogMetricsListener(t *testing.T) {
	s, logs := logNode(t, jsonHandler, func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:9090" })
	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	r.Header.Set("X-Request-Id", "scrape")
	w := httptest.NewRecorder()
	s.Metrics.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", w.Code)
	}
	var m map[string]any
	if err := json.Unmarshal(logs.Bytes(), &m); err != nil {
		t.Fatalf("want one JSON line: %v\n%s", err, logs)
	}
	for k, v := range map[string]any{"msg": "request", "request_id": "scrape", "route": "/metrics", "status": float64(200), "level": "DEBUG"} {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

// TestAccessLogFormat: the line of each request in the text and the JSON format
// (golden files; time removed and duration_ms 0).
func TestAccessLogFormat(t *testing.T) {
	for _, f := range []struct {
		name    string
		handler func(io.Writer, *slog.HandlerOptions) slog.Handler
	}{{"accesslog.txt", textHandler}, {"accesslog.json", jsonHandler}} {
		t.Run(f.name, func(t *testing.T) {
			s, logs := logNode(t, f.handler)
			for _, lr := range []logRequest{
				// Every request gets a trace id (tracing.go): from its traceparent
				// here, or from a span already in its context.
				{method: "POST", target: "/token", auth: basicAuth("web-app", "web-app-secret"), contentType: form, body: "grant_type=client_credentials",
					header: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
				{method: "POST", target: "/token", auth: basicAuth("web-app", "nope"), contentType: form, body: "grant_type=client_credentials",
					header: map[string]string{"traceparent": "00-1bf7651916cd43dd8448eb211c80319d-b7ad6b7169203331-00"}},
				{method: "GET", target: "/jwks", ctx: withSpan},
				{method: "GET", target: "/readyz", header: map[string]string{"traceparent": "00-2cf7651916cd43dd8448eb211c80319e-b7ad6b7169203331-01"}},
			} {
				lr.do(t, s, "req-"+lr.method+"-"+strings.TrimPrefix(lr.target, "/"))
			}
			golden(t, f.name, logs.Bytes())
		})
	}
}
