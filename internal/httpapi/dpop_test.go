package httpapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/dpop"
)

// dpopCall is one request with optional DPoP header and Authorization.
type dpopCall struct {
	method, url string
	form        url.Values
	auth        string // Authorization header value, "" none
	proof       string // DPoP header, "" none
}

func (c dpopCall) do(t *testing.T) (int, http.Header, []byte) {
	t.Helper()
	var body io.Reader
	if c.form != nil {
		body = strings.NewReader(c.form.Encode())
	}
	r, err := http.NewRequest(c.method, c.url, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.auth != "" {
		r.Header.Set("Authorization", c.auth)
	}
	if c.proof != "" {
		r.Header.Set("DPoP", c.proof)
	}
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b
}

func jwtClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// TestDPoPPublicClient: a public client's sign-in bound to a DPoP key end to end —
// dpop_jkt binds the code (RFC 9449 §10), the tokens are bound (cnf.jkt, token_type
// DPoP), the refresh token is used only with a proof of the key (§5), userinfo
// takes the token only as "DPoP" with a proof of the key and ath (§7), and
// introspection reports the binding.
func TestDPoPPublicClient(t *testing.T) {
	s, ts := webNode(t, nil)
	iss := s.Config.Issuer
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	thief, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jkt, _ := dpop.Thumbprint(k.Public())
	proof := func(key *ecdsa.PrivateKey, method, path, token string) string {
		p, err := dpop.NewProof(key, jose.ES256, method, iss+path, "", token)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	oauthCode := func(b []byte) oauth.Code {
		var e oauth.Error
		_ = json.Unmarshal(b, &e)
		return e.Code
	}

	b := newBrowser(t, ts)
	consent := b.signIn(authURL("spa", spaCB, "s1", "dpop_jkt", jkt))
	back := b.submit(consent, url.Values{"decision": {"allow"}})
	code := query(t, back.location).Get("code")
	if code == "" {
		t.Fatalf("no code: %d %q %s", back.status, back.location, back.body)
	}
	redeem := url.Values{"grant_type": {oauth.GrantAuthorizationCode}, "client_id": {"spa"}, "code": {code},
		"redirect_uri": {spaCB}, "code_verifier": {pkceVerifier}}
	tokenURL := ts.URL + "/token"
	for _, tt := range []struct{ name, proof string }{
		{"fail/code-without-proof", ""},
		{"fail/code-with-another-key", proof(thief, "POST", "/token", "")},
	} {
		if st, _, body := (dpopCall{"POST", tokenURL, redeem, "", tt.proof}).do(t); st != 400 || oauthCode(body) != oauth.CodeInvalidGrant {
			t.Errorf("%s: %d %s, want 400 invalid_grant", tt.name, st, body)
		}
	}
	st, _, body := dpopCall{"POST", tokenURL, redeem, "", proof(k, "POST", "/token", "")}.do(t)
	var tr oauth.TokenResponse
	_ = json.Unmarshal(body, &tr)
	cnf, _ := jwtClaims(t, tr.AccessToken)["cnf"].(map[string]any)
	if st != 200 || tr.TokenType != "DPoP" || cnf["jkt"] != jkt || tr.RefreshToken == "" {
		t.Fatalf("ok/code-with-its-key: %d %s", st, body)
	}

	refresh := url.Values{"grant_type": {oauth.GrantRefreshToken}, "client_id": {"spa"}, "refresh_token": {tr.RefreshToken}}
	for _, tt := range []struct{ name, proof string }{
		{"fail/refresh-without-proof", ""},
		{"fail/refresh-with-another-key", proof(thief, "POST", "/token", "")},
	} {
		if st, _, body := (dpopCall{"POST", tokenURL, refresh, "", tt.proof}).do(t); st != 400 || oauthCode(body) != oauth.CodeInvalidGrant {
			t.Errorf("%s: %d %s, want 400 invalid_grant", tt.name, st, body)
		}
	}
	st, _, body = dpopCall{"POST", tokenURL, refresh, "", proof(k, "POST", "/token", "")}.do(t)
	var rr oauth.TokenResponse
	_ = json.Unmarshal(body, &rr)
	if st != 200 || rr.TokenType != "DPoP" || rr.RefreshToken == "" {
		t.Fatalf("ok/refresh-with-its-key: %d %s", st, body)
	}
	// The rotated refresh token is bound too.
	refresh.Set("refresh_token", rr.RefreshToken)
	if st, _, body := (dpopCall{"POST", tokenURL, refresh, "", proof(thief, "POST", "/token", "")}).do(t); st != 400 || oauthCode(body) != oauth.CodeInvalidGrant {
		t.Errorf("fail/rotated-refresh-with-another-key: %d %s", st, body)
	}

	at := rr.AccessToken
	userinfo := ts.URL + "/userinfo"
	for _, tt := range []struct {
		name, auth, proof, want string // want: the error in WWW-Authenticate, "" = 200
	}{
		{"fail/bound-token-as-bearer", "Bearer " + at, "", `DPoP realm="deputy"`},
		{"fail/bound-token-as-bearer-with-proof", "Bearer " + at, proof(k, "GET", "/userinfo", at), `error="invalid_token"`},
		{"fail/dpop-without-proof", "DPoP " + at, "", `error="invalid_dpop_proof"`},
		{"fail/proof-of-another-key", "DPoP " + at, proof(thief, "GET", "/userinfo", at), `error="invalid_dpop_proof"`},
		{"fail/ath-of-another-token", "DPoP " + at, proof(k, "GET", "/userinfo", tr.AccessToken), `error="invalid_dpop_proof"`},
		{"fail/htu-of-the-token-endpoint", "DPoP " + at, proof(k, "GET", "/token", at), `error="invalid_dpop_proof"`},
		{"ok/dpop-with-proof", "DPoP " + at, proof(k, "GET", "/userinfo", at), ""},
	} {
		st, h, body := dpopCall{"GET", userinfo, nil, tt.auth, tt.proof}.do(t)
		www := h.Get("WWW-Authenticate")
		if tt.want == "" {
			if st != 200 || !strings.Contains(string(body), `"sub":"alice"`) {
				t.Errorf("%s: %d %s %s", tt.name, st, www, body)
			}
			continue
		}
		if st != 401 || !strings.HasPrefix(www, "DPoP ") || !strings.Contains(www, tt.want) {
			t.Errorf("%s: %d WWW-Authenticate %q, want 401 DPoP %s", tt.name, st, www, tt.want)
		}
	}

	intro := dpopCall{"POST", ts.URL + "/introspect", url.Values{"token": {at}}, "Basic " + base64.StdEncoding.EncodeToString([]byte("api1:api1-secret")), ""}
	st, _, body = intro.do(t)
	var ir oauth.IntrospectionResponse
	_ = json.Unmarshal(body, &ir)
	if st != 200 || !ir.Active || ir.TokenType != "DPoP" || ir.Cnf == nil || ir.Cnf.JKT != jkt {
		t.Errorf("introspection: %d %s; want active, token_type DPoP, cnf.jkt %s", st, body, jkt)
	}
}
