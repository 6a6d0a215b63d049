package verify

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/testdeputy"
	"github.com/deputy-auth/deputy/sdk"
)

// seen records what the protected handler received.
type seen struct {
	called  bool
	subject string
	actors  []string
	token   string
}

func protected(s *seen) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.called = true
		if p, ok := FromContext(r.Context()); ok {
			s.subject, s.actors = p.Subject, p.Actors
		}
		s.token, _ = sdk.TokenFromContext(r.Context())
		fmt.Fprint(w, "ok")
	})
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// TestMiddleware: RFC 6750 — only the Authorization: Bearer header is read; a request
// without a usable one gets a bare challenge, an invalid token an invalid_token
// challenge, a valid one reaches the handler with its Principal and raw token.
func TestMiddleware(t *testing.T) {
	d := testdeputy.Start(t, nil)
	raw := d.ClientCredentials("web-app", "payments:read")
	tampered := raw[:len(raw)-4] + "AAAA"
	if tampered == raw {
		tampered = raw[:len(raw)-4] + "BBBB"
	}
	const realm = `Bearer realm="https://api1.example"`

	for _, tt := range []struct {
		name      string
		request   func() *http.Request
		status    int
		challenge string // exact WWW-Authenticate
		code      string // error in the JSON body; "" for success
		desc      string // in error_description
	}{
		{name: "ok/bearer", status: 200,
			request: func() *http.Request { return get("Bearer " + raw) }},
		{name: "ok/scheme-lower-case", status: 200,
			request: func() *http.Request { return get("bearer " + raw) }},
		{name: "ok/scheme-upper-case", status: 200,
			request: func() *http.Request { return get("BEARER " + raw) }},
		{name: "fail/no-header", status: 401, challenge: realm, code: "invalid_request", desc: "missing bearer token",
			request: func() *http.Request { return get("") }},
		{name: "fail/basic-scheme", status: 401, challenge: realm, code: "invalid_request", desc: "does not carry a bearer or DPoP token",
			request: func() *http.Request { return get("Basic d2ViLWFwcDp3ZWItYXBwLXNlY3JldA==") }},
		{name: "fail/bearer-without-token", status: 401, challenge: realm, code: "invalid_request",
			request: func() *http.Request { return get("Bearer ") }},
		{name: "fail/bearer-two-tokens", status: 401, challenge: realm, code: "invalid_request",
			request: func() *http.Request { return get("Bearer " + raw + " " + raw) }},
		{name: "fail/two-headers", status: 401, challenge: realm, code: "invalid_request", desc: "more than one",
			request: func() *http.Request {
				r := get("Bearer " + raw)
				r.Header.Add("Authorization", "Bearer "+raw)
				return r
			}},
		{name: "fail/query-token-ignored", status: 401, challenge: realm, code: "invalid_request",
			request: func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "/ledger?access_token="+url.QueryEscape(raw), nil)
			}},
		{name: "fail/form-token-ignored", status: 401, challenge: realm, code: "invalid_request",
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "/ledger", strings.NewReader("access_token="+url.QueryEscape(raw)))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				return r
			}},
		{name: "fail/invalid-token", status: 401, code: "invalid_token", desc: "token signature is invalid",
			challenge: `Bearer error="invalid_token", error_description="token signature is invalid"`,
			request:   func() *http.Request { return get("Bearer " + tampered) }},
		{name: "fail/garbage-token", status: 401, code: "invalid_token", desc: "not a compact JWS",
			challenge: `Bearer error="invalid_token", error_description="token is not a compact JWS"`,
			request:   func() *http.Request { return get(`Bearer "quoted"\evil`) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, _, _ := newVerifier(t, d, api1, nil)
			var s seen
			rec := httptest.NewRecorder()
			req := tt.request()
			v.Middleware(protected(&s)).ServeHTTP(rec, req)

			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.challenge)
			}
			if tt.code == "" {
				if !s.called || s.subject != "web-app" || s.token != raw {
					t.Errorf("handler saw %+v, want subject web-app and the raw token", s)
				}
				return
			}
			if s.called {
				t.Error("the handler ran for a refused request")
			}
			checkErrorBody(t, rec, tt.code, tt.desc)
			for _, secret := range []string{raw, strings.Split(raw, ".")[2], strings.Split(raw, ".")[1]} {
				if strings.Contains(rec.Body.String(), secret) || strings.Contains(fmt.Sprint(rec.Header()), secret) {
					t.Error("the response echoes the token")
				}
			}
		})
	}
}

// TestRequire: a valid token must carry every required scope; otherwise 403
// insufficient_scope naming the scopes required (RFC 6750 §3.1).
func TestRequire(t *testing.T) {
	d := testdeputy.Start(t, nil)
	cc := d.ClientCredentials("web-app", "payments:read ledger:read")
	hop := exchange(t, d, "api1", cc, api2, "ledger:read", "")

	for _, tt := range []struct {
		name      string
		scopes    []string
		status    int
		challenge string
	}{
		{name: "ok/no-scope-required", status: 200},
		{name: "ok/held-scope", scopes: []string{"ledger:read"}, status: 200},
		{name: "fail/missing-scope", scopes: []string{"ledger:write"}, status: 403,
			challenge: `Bearer error="insufficient_scope", scope="ledger:write"`},
		{name: "fail/one-of-two-missing", scopes: []string{"ledger:read", "ledger:write"}, status: 403,
			challenge: `Bearer error="insufficient_scope", scope="ledger:read ledger:write"`},
		{name: "fail/scope-of-another-audience", scopes: []string{"payments:read"}, status: 403,
			challenge: `Bearer error="insufficient_scope", scope="payments:read"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, _, _ := newVerifier(t, d, api2, nil)
			var s seen
			rec := httptest.NewRecorder()
			v.Require(tt.scopes...)(protected(&s)).ServeHTTP(rec, get("Bearer "+hop))
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.challenge)
			}
			if tt.status == 200 {
				if !s.called || !slices.Equal(s.actors, []string{"api1"}) {
					t.Errorf("handler saw %+v, want actors [api1]", s)
				}
				return
			}
			if s.called {
				t.Error("the handler ran for a refused request")
			}
			checkErrorBody(t, rec, "insufficient_scope", "lacks a required scope")
		})
	}
}

// TestMiddlewareUnavailable: when deputy's keys cannot be had, the request is refused
// with 503 — never passed on.
func TestMiddlewareUnavailable(t *testing.T) {
	d := testdeputy.Start(t, nil)
	raw := d.ClientCredentials("web-app", "payments:read")
	v, _, _ := newVerifier(t, d, api1, func(c *Config) { c.JWKSURL = closedURL(t) + "/jwks" })
	var s seen
	rec := httptest.NewRecorder()
	v.Require("payments:read")(protected(&s)).ServeHTTP(rec, get("Bearer "+raw))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", rec.Code)
	}
	if s.called {
		t.Error("the handler ran")
	}
	checkErrorBody(t, rec, "temporarily_unavailable", "signing keys cannot be fetched")
	if strings.Contains(rec.Body.String(), "127.0.0.1") {
		t.Errorf("the body shows the cause: %s", rec.Body)
	}
}

// TestQuotable: a challenge attribute never gets a quote, backslash or control.
func TestQuotable(t *testing.T) {
	for in, want := range map[string]string{
		"token is expired":      "token is expired",
		`a "quoted" \ value`:    "a quoted  value",
		"line\r\nbreak\x00\x7f": "linebreak",
		"naïve":                 "nave",
	} {
		if got := quotable(in); got != want {
			t.Errorf("quotable(%q) = %q, want %q", in, got, want)
		}
	}
}

func get(authorization string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/ledger", nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	return r
}

func checkErrorBody(t *testing.T, rec *httptest.ResponseRecorder, code, desc string) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if body.Error != code || !strings.Contains(body.Description, desc) {
		t.Errorf("body %+v, want error %q with description containing %q", body, code, desc)
	}
	var all map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &all)
	if len(all) != 2 {
		t.Errorf("body has members %v, want error and error_description only", all)
	}
}
