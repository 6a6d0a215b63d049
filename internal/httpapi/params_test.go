package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/oauth"
)

// TestEmptyParametersAreOmitted: on every endpoint that reads a form or a query, a
// parameter sent without a value is treated as if it were omitted (RFC 6749 §3.1,
// §3.2); a parameter repeated with values is still invalid_request. Real clients send
// empty ones: zitadel/oidc sends actor_token=&actor_token_type= on every token
// exchange, and client_id= beside HTTP Basic credentials.
func TestEmptyParametersAreOmitted(t *testing.T) {
	n := newNode(t)
	tok := n.clientToken("web-app") // aud https://api1.example, whose client is api1
	jti := jwtClaim(t, tok, "jti")

	// send posts a raw form body (empty values survive url.Values.Encode, but the
	// order and repetition are clearer written out) as client id.
	send := func(path, id, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if id != "" {
			r.SetBasicAuth(id, id+"-secret")
		}
		return n.do(r)
	}
	get := func(path, id string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if id != "" {
			r.SetBasicAuth(id, id+"-secret")
		}
		return n.do(r)
	}
	q := url.QueryEscape
	exchange := "grant_type=" + q(oauth.GrantTokenExchange) + "&subject_token=" + tok +
		"&subject_token_type=" + q(string(oauth.TokenTypeAccessToken))
	authorize := "/authorize?response_type=code&redirect_uri=" + q("http://127.0.0.1:9000/callback")

	for _, tc := range []struct {
		name string
		do   func() *httptest.ResponseRecorder
		// status is the answer wanted; code, for errors, the OAuth error code
		status int
		code   oauth.Code
		// contains, if set, must be in the body
		contains string
	}{
		{name: "ok/token-empty-credentials-and-scope-beside-basic", status: http.StatusOK, do: func() *httptest.ResponseRecorder {
			return send(n.token, "web-app", "grant_type=client_credentials&client_id=&client_secret=&client_assertion=&client_assertion_type=&scope=&resource=")
		}},
		{name: "ok/token-empty-client-id-beside-value", status: http.StatusOK, do: func() *httptest.ResponseRecorder {
			return send(n.token, "web-app", "grant_type=client_credentials&client_id=&client_id=web-app")
		}},
		{name: "ok/token-empty-grant-type-beside-value", status: http.StatusOK, do: func() *httptest.ResponseRecorder {
			return send(n.token, "web-app", "grant_type=&grant_type=client_credentials")
		}},
		{name: "ok/exchange-as-zitadel-sends-it", status: http.StatusOK, do: func() *httptest.ResponseRecorder {
			return send(n.token, "api1", exchange+"&actor_token=&actor_token_type=&resource=&audience="+q("https://api2.example")+"&scope=&requested_token_type=")
		}},
		{name: "fail/token-client-id-repeated-values", status: http.StatusBadRequest, code: oauth.CodeInvalidRequest, do: func() *httptest.ResponseRecorder {
			return send(n.token, "web-app", "grant_type=client_credentials&client_id=web-app&client_id=web-app")
		}},
		{name: "fail/exchange-scope-repeated-values", status: http.StatusBadRequest, code: oauth.CodeInvalidRequest, do: func() *httptest.ResponseRecorder {
			return send(n.token, "api1", exchange+"&scope=ledger:read&scope=ledger:read")
		}},
		{name: "fail/token-only-empty-grant-type", status: http.StatusBadRequest, code: oauth.CodeInvalidRequest, do: func() *httptest.ResponseRecorder {
			return send(n.token, "web-app", "grant_type=")
		}},

		{name: "ok/introspection-empty-hint-beside-value", status: http.StatusOK, contains: `"active":true`, do: func() *httptest.ResponseRecorder {
			return send(n.introspection, "web-app", "token="+tok+"&token_type_hint=&token_type_hint=access_token")
		}},
		{name: "ok/introspection-empty-token-beside-value", status: http.StatusOK, contains: `"active":true`, do: func() *httptest.ResponseRecorder {
			return send(n.introspection, "web-app", "token=&token="+tok)
		}},
		{name: "fail/introspection-only-empty-token", status: http.StatusBadRequest, code: oauth.CodeInvalidRequest, do: func() *httptest.ResponseRecorder {
			return send(n.introspection, "web-app", "token=&token_type_hint=")
		}},
		{name: "fail/introspection-hint-repeated-values", status: http.StatusBadRequest, code: oauth.CodeInvalidRequest, do: func() *httptest.ResponseRecorder {
			return send(n.introspection, "web-app", "token="+tok+"&token_type_hint=access_token&token_type_hint=access_token")
		}},
		{name: "ok/revocation-empty-hint-beside-value", status: http.StatusOK, do: func() *httptest.ResponseRecorder {
			return send(n.revocation, "web-app", "token=not-a-token&token_type_hint=&token_type_hint=refresh_token")
		}},

		{name: "ok/audit-events-empty-filters", status: http.StatusOK, do: func() *httptest.ResponseRecorder {
			return get("/audit/events?subject=&since=&until=&after=&limit=&type=", "auditor")
		}},
		{name: "fail/audit-events-filter-repeated-values", status: http.StatusBadRequest, code: oauth.CodeInvalidRequest, do: func() *httptest.ResponseRecorder {
			return get("/audit/events?subject=a&subject=b", "auditor")
		}},
		{name: "ok/audit-trace-empty-extra-parameters", status: http.StatusOK, contains: jti, do: func() *httptest.ResponseRecorder {
			return get("/audit/trace?id=&id="+jti+"&format=", "auditor")
		}},

		{name: "ok/authorize-empty-beside-values", status: http.StatusOK, contains: "<form", do: func() *httptest.ResponseRecorder {
			return get(authorize+"&client_id=&client_id=web-app&scope=&scope=openid&state=&state=s1&nonce=&prompt=&max_age=&code_challenge=&code_challenge_method=&response_mode=", "")
		}},
		{name: "fail/authorize-state-repeated-values", status: http.StatusSeeOther, contains: "invalid_request", do: func() *httptest.ResponseRecorder {
			return get(authorize+"&client_id=web-app&scope=openid&state=a&state=b", "")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.do()
			if tc.code != "" {
				if code := oauthError(t, w, tc.status); code != tc.code {
					t.Errorf("error %q, want %q", code, tc.code)
				}
				return
			}
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			body := w.Body.String() + w.Header().Get("Location")
			if tc.contains != "" && !strings.Contains(body, tc.contains) {
				t.Errorf("answer lacks %q: %s", tc.contains, body)
			}
		})
	}
}

// jwtClaim reads one string claim of a JWT without verifying it.
func jwtClaim(t *testing.T, jwt, name string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[name].(string)
	return s
}
