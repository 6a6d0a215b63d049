package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/oauth"
)

func basic(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }

// TestCredentials: HTTP Basic client credentials (RFC 6749 §2.3.1, RFC 7617).
func TestCredentials(t *testing.T) {
	tests := []struct {
		name   string
		header []string // Authorization values
		want   client.Credentials
	}{
		{name: "ok/no-header"},
		{name: "ok/basic", header: []string{basic("web-app:web-app-secret")},
			want: client.Credentials{Basic: true, BasicID: "web-app", BasicSecret: "web-app-secret"}},
		{name: "ok/form-urlencoded", header: []string{basic("a%3Ab:s%3As%25x")},
			want: client.Credentials{Basic: true, BasicID: "a:b", BasicSecret: "s:s%x"}},
		{name: "ok/plus-is-space", header: []string{basic("my+client:a+b%2Bc")},
			want: client.Credentials{Basic: true, BasicID: "my client", BasicSecret: "a b+c"}},
		{name: "ok/utf8", header: []string{basic("%C3%A9t%C3%A9:%E2%82%AC")},
			want: client.Credentials{Basic: true, BasicID: "été", BasicSecret: "€"}},
		{name: "ok/lower-case-scheme", header: []string{"basic " + base64.StdEncoding.EncodeToString([]byte("id:secret"))},
			want: client.Credentials{Basic: true, BasicID: "id", BasicSecret: "secret"}},
		{name: "ok/upper-case-scheme", header: []string{"BASIC " + base64.StdEncoding.EncodeToString([]byte("id:secret"))},
			want: client.Credentials{Basic: true, BasicID: "id", BasicSecret: "secret"}},
		{name: "ok/extra-spaces", header: []string{"Basic   " + base64.StdEncoding.EncodeToString([]byte("id:secret")) + " "},
			want: client.Credentials{Basic: true, BasicID: "id", BasicSecret: "secret"}},
		{name: "ok/empty-secret", header: []string{basic("id:")},
			want: client.Credentials{Basic: true, BasicID: "id"}},
		{name: "ok/raw-colon-in-secret", header: []string{basic("id:a:b")},
			want: client.Credentials{Basic: true, BasicID: "id", BasicSecret: "a:b"}},
		{name: "fail/bearer-scheme", header: []string{"Bearer " + base64.StdEncoding.EncodeToString([]byte("id:secret"))},
			want: client.Credentials{Basic: true, BasicMalformed: true}},
		{name: "fail/two-headers", header: []string{basic("id:secret"), basic("id:secret")},
			want: client.Credentials{Basic: true, BasicMalformed: true}},
		{name: "fail/bad-base64", header: []string{"Basic !!not-base64!!"},
			want: client.Credentials{Basic: true, BasicMalformed: true}},
		{name: "fail/url-safe-base64", header: []string{"Basic " + base64.URLEncoding.EncodeToString([]byte("id:s\xfb\xff"))},
			want: client.Credentials{Basic: true, BasicMalformed: true}},
		{name: "fail/no-colon", header: []string{basic("id-and-secret")},
			want: client.Credentials{Basic: true, BasicMalformed: true}},
		{name: "fail/empty-id", header: []string{basic(":secret")},
			want: client.Credentials{Basic: true, BasicMalformed: true}},
		{name: "fail/scheme-only", header: []string{"Basic"},
			want: client.Credentials{Basic: true, BasicMalformed: true}},
		{name: "fail/empty-value", header: []string{""},
			want: client.Credentials{Basic: true, BasicMalformed: true}},
		{name: "fail/bad-percent-in-id", header: []string{basic("a%zz:secret")},
			want: client.Credentials{Basic: true, BasicMalformed: true}},
		{name: "fail/bad-percent-in-secret", header: []string{basic("id:50%")},
			want: client.Credentials{Basic: true, BasicMalformed: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.header {
				h.Add("Authorization", v)
			}
			got := credentials(h)
			if got.BasicMalformed {
				// What was decoded before the fault is not part of the contract.
				got.BasicID, got.BasicSecret = "", ""
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("credentials(%q) = %+v, want %+v", tt.header, got, tt.want)
			}
		})
	}
}

// FuzzCredentials: whatever the Authorization header holds, credentials never panics;
// without a header nothing is set; credentials that are not malformed name a client
// and survive being encoded again.
func FuzzCredentials(f *testing.F) {
	for _, s := range []string{
		basic("web-app:web-app-secret"), basic("a%3Ab:c+d"), basic(":x"), basic("x"), basic("a%zz:b"),
		"basic YTpi", "Bearer abc", "Basic", "Basic ", "Basic !!", "", "Basic YTpi\x00", "Digest username=a",
	} {
		f.Add(s, false)
	}
	f.Add(basic("a:b"), true)
	f.Fuzz(func(t *testing.T, value string, twice bool) {
		h := http.Header{}
		h.Add("Authorization", value)
		if twice {
			h.Add("Authorization", value)
		}
		cr := credentials(h)
		if !cr.Basic {
			t.Fatalf("an Authorization header was ignored: %+v", cr)
		}
		if cr.FormID != "" || cr.FormSecret != "" || cr.Assertion != "" || cr.AssertionType != "" {
			t.Fatalf("header parsing set form fields: %+v", cr)
		}
		if twice && !cr.BasicMalformed {
			t.Fatalf("two Authorization headers accepted: %+v", cr)
		}
		if cr.BasicMalformed {
			return
		}
		if cr.BasicID == "" {
			t.Fatalf("well-formed credentials without a client id: %q", value)
		}
		again := credentials(http.Header{"Authorization": {basic(url.QueryEscape(cr.BasicID) + ":" + url.QueryEscape(cr.BasicSecret))}})
		if again.BasicMalformed || again.BasicID != cr.BasicID || again.BasicSecret != cr.BasicSecret {
			t.Fatalf("re-encoded %+v reads as %+v", cr, again)
		}
	})
}

// FuzzCredentialsRoundTrip: any id and secret, encoded as RFC 6749 §2.3.1 says, read
// back exactly (an empty id is malformed).
func FuzzCredentialsRoundTrip(f *testing.F) {
	f.Add("web-app", "web-app-secret")
	f.Add("a:b", "c d+e%f")
	f.Add("", "x")
	f.Add("été", "")
	f.Fuzz(func(t *testing.T, id, secret string) {
		cr := credentials(http.Header{"Authorization": {basic(url.QueryEscape(id) + ":" + url.QueryEscape(secret))}})
		if id == "" {
			if !cr.BasicMalformed {
				t.Fatalf("empty id accepted: %+v", cr)
			}
			return
		}
		if cr.BasicMalformed || cr.BasicID != id || cr.BasicSecret != secret {
			t.Fatalf("(%q, %q) read as %+v", id, secret, cr)
		}
	})
}

// TestNoHeaderNoCredentials: without an Authorization header nothing is claimed.
func TestNoHeaderNoCredentials(t *testing.T) {
	if cr := credentials(http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}); !reflect.DeepEqual(cr, client.Credentials{}) {
		t.Fatalf("credentials = %+v", cr)
	}
}

// TestWriteError: the one renderer (style rule 1) answers RFC 6749 §5.2 JSON with the
// right status, never shows an error's cause, and marks every answer no-store.
func TestWriteError(t *testing.T) {
	const secretCause = "dsn=postgres://deputy:hunter2@db"
	cause := errors.New(secretCause)
	tests := []struct {
		name      string
		err       error
		status    int
		code      oauth.Code
		challenge bool   // WWW-Authenticate expected
		allow     string // Allow expected
	}{
		{name: "invalid_client", err: oauth.InvalidClient("client authentication failed", cause),
			status: 401, code: oauth.CodeInvalidClient, challenge: true},
		{name: "invalid_client-wrapped", err: fmt.Errorf("token endpoint: %w", oauth.InvalidClient("client authentication failed", cause)),
			status: 401, code: oauth.CodeInvalidClient, challenge: true},
		{name: "invalid_request", err: oauth.InvalidRequest("missing parameter token", cause),
			status: 400, code: oauth.CodeInvalidRequest},
		{name: "invalid_target", err: oauth.InvalidTarget("audience not allowed", cause),
			status: 400, code: oauth.CodeInvalidTarget},
		{name: "unauthorized_client", err: oauth.UnauthorizedClient("no", cause),
			status: 400, code: oauth.CodeUnauthorizedClient},
		{name: "invalid_scope-wrapped", err: fmt.Errorf("grant: %w", oauth.InvalidScope("too much", cause)),
			status: 400, code: oauth.CodeInvalidScope},
		{name: "temporarily_unavailable", err: oauth.TemporarilyUnavailable("storage down", cause),
			status: 503, code: oauth.CodeTemporarilyUnavail},
		{name: "server_error", err: oauth.ServerError(cause),
			status: 500, code: oauth.CodeServerError},
		{name: "non-protocol-error", err: fmt.Errorf("sqlstore: open: %w", cause),
			status: 500, code: oauth.CodeServerError},
		{name: "method-not-allowed", err: &methodError{allow: http.MethodPost},
			status: 405, code: oauth.CodeInvalidRequest, allow: http.MethodPost},
		{name: "method-not-allowed-as-invalid_request", err: oauth.InvalidRequest("method not allowed", &methodError{allow: http.MethodPost}),
			status: 405, code: oauth.CodeInvalidRequest, allow: http.MethodPost},
		{name: "method-not-allowed-inside-protocol-error", err: oauth.ServerError(&methodError{allow: http.MethodPost}),
			status: 405, code: oauth.CodeInvalidRequest, allow: http.MethodPost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			writeError(w, httptest.NewRequest(http.MethodPost, PathToken, nil), tt.err)
			if w.Code != tt.status {
				t.Errorf("status %d, want %d", w.Code, tt.status)
			}
			h := w.Header()
			if got := h.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q", got)
			}
			if got := h.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
			chal := h.Get("WWW-Authenticate")
			if tt.challenge != (chal != "") {
				t.Errorf("WWW-Authenticate %q", chal)
			}
			if tt.challenge && (!strings.HasPrefix(chal, "Basic ") || !strings.Contains(chal, `error="invalid_client"`)) {
				t.Errorf("WWW-Authenticate %q: want a Basic challenge naming invalid_client", chal)
			}
			if got := h.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
			body := w.Body.String()
			if strings.Contains(body, secretCause) || strings.Contains(body, "hunter2") || strings.Contains(body, "sqlstore") {
				t.Errorf("body leaks the cause: %s", body)
			}
			var m map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
				t.Fatalf("body is not JSON: %q", body)
			}
			if m["error"] != string(tt.code) {
				t.Errorf("error %v, want %s", m["error"], tt.code)
			}
			for k := range m {
				if k != "error" && k != "error_description" {
					t.Errorf("unexpected member %q in %s", k, body)
				}
			}
		})
	}
}
