package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/dpop"
)

// FuzzTokenEndpoint feeds arbitrary form bodies, Authorization and DPoP headers to
// the token endpoint. Whatever arrives, the answer is a token or a well-formed RFC 6749
// §5.2 error with a 400 or 401 status: never a 500, never a panic, never a token for
// a request that failed.
func FuzzTokenEndpoint(f *testing.F) {
	s := node(f)
	t0 := accessToken(f, post(s.Handler, "web-app", "web-app-secret", url.Values{"grant_type": {"client_credentials"}}))
	basic := "Basic YXBpMTphcGkxLXNlY3JldA==" // api1:api1-secret
	proof, err := dpop.NewProof(newKey(f), jose.ES256, "POST", s.Config.Issuer+"/token", "", "")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(exchangeForm(t0, "https://api2.example").Encode(), basic, "")
	f.Add(exchangeForm(t0, "https://api2.example").Encode()+"&audience=https%3A%2F%2Fapi3.example&scope=ledger:read", basic, "")
	f.Add("grant_type=client_credentials&scope=a%20b", basic, "")
	f.Add("grant_type=client_credentials&client_id=api1&client_secret=api1-secret", "", "")
	f.Add("grant_type="+url.QueryEscape(oauth.GrantTokenExchange)+"&subject_token=a.b.c&subject_token_type=x", basic, "")
	f.Add("%zz&&==;", "Basic !!", "")
	f.Add("grant_type=client_credentials", "Bearer abc", "")
	f.Add("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=e30.e30.&grant_type=client_credentials", "", "")
	f.Add("grant_type=client_credentials", basic, proof)
	f.Add("grant_type=client_credentials", basic, "e30.e30.")
	f.Fuzz(func(t *testing.T, body, authorization, dpopHeader string) {
		r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		if dpopHeader != "" {
			r.Header.Set("DPoP", dpopHeader)
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
			// A DPoP header is a proof that binds the token, or the request fails.
			if form, _ := url.ParseQuery(body); dpopHeader != "" && form.Get("grant_type") == oauth.GrantClientCredentials && m["token_type"] != oauth.TokenTypeDPoP {
				t.Fatalf("200 with a DPoP header but token_type %v", m["token_type"])
			}
		case 400, 401, 413: // 413: a body over limits.max_body_bytes
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
