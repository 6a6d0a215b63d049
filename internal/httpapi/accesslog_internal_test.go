package httpapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/oauth"
)

func TestAccessOutcomeAndLevel(t *testing.T) {
	tests := []struct {
		name    string
		route   string
		status  int
		code    oauth.Code
		outcome string
		level   slog.Level
	}{
		{"ok/token", PathToken, 200, "", OutcomeOK, slog.LevelInfo},
		{"ok/revoke-unknown-token", PathRevocation, 200, "", OutcomeOK, slog.LevelInfo},
		{"fail/invalid-grant", PathToken, 400, oauth.CodeInvalidGrant, OutcomeDenied, slog.LevelInfo},
		{"fail/invalid-client", PathToken, 401, oauth.CodeInvalidClient, OutcomeDenied, slog.LevelInfo},
		{"fail/rate-limited", PathToken, 429, oauth.CodeTemporarilyUnavail, OutcomeDenied, slog.LevelInfo},
		{"fail/error-redirected-to-client", PathConsent, 303, oauth.CodeAccessDenied, OutcomeDenied, slog.LevelInfo},
		{"fail/server-error-redirected-to-client", PathConsent, 303, oauth.CodeTemporarilyUnavail, OutcomeError, slog.LevelInfo},
		{"fail/unknown-path", "other", 404, "", OutcomeDenied, slog.LevelInfo},
		{"fail/server-error", PathToken, 500, oauth.CodeServerError, OutcomeError, slog.LevelError},
		{"fail/unavailable", PathToken, 503, oauth.CodeTemporarilyUnavail, OutcomeError, slog.LevelWarn},
		{"ok/health-debug", PathHealth, 200, "", OutcomeOK, slog.LevelDebug},
		{"fail/not-ready-still-debug", PathReady, 503, oauth.CodeTemporarilyUnavail, OutcomeError, slog.LevelDebug},
		{"ok/metrics-debug", PathMetrics, 200, "", OutcomeOK, slog.LevelDebug},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := outcome(tt.status, tt.code); got != tt.outcome {
				t.Errorf("outcome(%d, %q) = %s, want %s", tt.status, tt.code, got, tt.outcome)
			}
			if got := accessLevel(tt.route, tt.status); got != tt.level {
				t.Errorf("accessLevel(%s, %d) = %v, want %v", tt.route, tt.status, got, tt.level)
			}
		})
	}
}

func TestAccessLabels(t *testing.T) {
	for _, tt := range []struct{ name, got, want string }{
		{"ok/route-token", route("/token"), "/token"},
		{"ok/route-callback", route("/callback/google"), "/callback/{idp}"},
		{"fail/route-made-up", route("/token/x"), "other"},
		{"fail/route-trailing-slash", route("/token/"), "other"},
		{"ok/method", method("POST"), "POST"},
		{"fail/method-made-up", method("eyJhbGciOi"), "other"},
		{"ok/code", codeLabel(oauth.CodeInvalidGrant), "invalid_grant"},
		{"fail/code-not-a-word", codeLabel("invalid grant: x"), "server_error"},
		{"ok/client", loggedClientID("web-app"), "web-app"},
		{"fail/client-newline", loggedClientID("a\nb"), `"a\nb"`},
		{"fail/client-bidi", loggedClientID("a\u202eb"), `"a\u202eb"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	if got := loggedClientID(string(make([]byte, 1000))); len(got) > maxLoggedClientID {
		t.Errorf("a 1000-byte client id is logged in %d bytes, more than %d", len(got), maxLoggedClientID)
	}
}

// BenchmarkAccessLine is the cost of one request's access-log line in JSON, written
// to a file (a write(2) per line, as to standard error): what every request pays at
// log.level info.
func BenchmarkAccessLine(b *testing.B) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := &Server{cfg: Config{Log: slog.New(slog.NewJSONHandler(f, nil))}}
	req := httptest.NewRequest(http.MethodPost, PathToken, nil)
	for b.Loop() {
		w, r := s.beginAccess(httptest.NewRecorder(), req)
		a := accessOf(r)
		a.grant, a.client, a.verified = oauth.GrantClientCredentials, "api1", true
		w.WriteHeader(http.StatusOK)
		s.endAccess(w, r)
	}
}

// TestAccessLinePanic: a handler that panics is answered server_error, logged
// once as the panic (its route, not the path as sent) and once as the request,
// at error.
func TestAccessLinePanic(t *testing.T) {
	var logs bytes.Buffer
	s := &Server{cfg: Config{Log: slog.New(slog.NewJSONHandler(&logs, nil))}, mux: http.NewServeMux(), node: &node{metrics: newMetrics(NewRegistry())}}
	s.mux.Handle(PathJWKS+"/", handler(func(http.ResponseWriter, *http.Request) error { panic("boom") }))
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, PathJWKS+"/eyJhbGciOiJFUzI1NiJ9.e30.c2ln?code=s3cret", nil)
	r.Header.Set("X-Request-Id", "req-panic")
	s.ServeHTTP(w, r)
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", w.Code)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 || lines[0]["msg"] != "panic serving request" || lines[1]["msg"] != MsgRequest {
		t.Fatalf("lines:\n%s", logs.String())
	}
	for _, l := range lines {
		if l["level"] != "ERROR" || l["request_id"] != "req-panic" || l["route"] != "other" {
			t.Errorf("line %v: want level ERROR, request_id req-panic, route other", l)
		}
	}
	if a := lines[1]; a["status"] != float64(500) || a["outcome"] != OutcomeError || a["error"] != "server_error" {
		t.Errorf("access line %v", a)
	}
	if strings.Contains(logs.String(), "eyJ") || strings.Contains(logs.String(), "s3cret") {
		t.Errorf("the path or query is in the log:\n%s", logs.String())
	}
}

// FuzzLoggedClientID: whatever client id a request claims, the line shows at most
// maxLoggedClientID bytes of text oauth.SafeText accepts — no control, line
// separator or bidirectional character — and an id that is already safe and short
// as it is.
func FuzzLoggedClientID(f *testing.F) {
	for _, s := range []string{"web-app", "", "a\nb", "a\u202eb", "\xff\xfe", strings.Repeat("é", 100), "x\x00y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		got := loggedClientID(id)
		if len(got) > maxLoggedClientID || !oauth.SafeText(got) {
			t.Fatalf("loggedClientID(%q) = %q", id, got)
		}
		if oauth.SafeText(id) && len(id) <= maxLoggedClientID && got != id {
			t.Fatalf("loggedClientID(%q) = %q, want it unchanged", id, got)
		}
	})
}
