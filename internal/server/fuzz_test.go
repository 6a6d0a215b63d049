package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/oauth"
)

// FuzzTokenEndpoint feeds arbitrary form bodies and Authorization headers to the
// token endpoint. Whatever arrives, the answer is a token or a well-formed RFC 6749
// §5.2 error with a 400 or 401 status: never a 500, never a panic, never a token for
// a request that failed.
func FuzzTokenEndpoint(f *testing.F) {
	s := node(f)
	t0 := accessToken(f, post(s.Handler, "web-app", "web-app-secret", url.Values{"grant_type": {"client_credentials"}}))
	basic := "Basic YXBpMTphcGkxLXNlY3JldA==" // api1:api1-secret
	f.Add(exchangeForm(t0, "https://api2.example").Encode(), basic)
	f.Add(exchangeForm(t0, "https://api2.example").Encode()+"&audience=https%3A%2F%2Fapi3.example&scope=ledger:read", basic)
	f.Add("grant_type=client_credentials&scope=a%20b", basic)
	f.Add("grant_type=client_credentials&client_id=api1&client_secret=api1-secret", "")
	f.Add("grant_type="+url.QueryEscape(oauth.GrantTokenExchange)+"&subject_token=a.b.c&subject_token_type=x", basic)
	f.Add("%zz&&==;", "Basic !!")
	f.Add("grant_type=client_credentials", "Bearer abc")
	f.Add("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=e30.e30.&grant_type=client_credentials", "")
	f.Fuzz(func(t *testing.T, body, authorization string) {
		r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		w := httptest.NewRecorder()
		s.Handler.ServeHTTP(w, r)
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("%d: body is not JSON: %q", w.Code, w.Body.String())
		}
		switch w.Code {
		case 200:
			if m["access_token"] == nil {
				t.Fatalf("200 without a token: %v", m)
			}
		case 400, 401:
			if m["error"] == nil || m["access_token"] != nil {
				t.Fatalf("%d: %v", w.Code, m)
			}
			if w.Code == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		default:
			t.Fatalf("status %d: %v", w.Code, m)
		}
	})
}
