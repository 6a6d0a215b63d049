package authorize

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/oauth"
)

const issuer = "https://deputy.example"

// Registered redirect URIs of the test clients.
const (
	webCB    = "https://app.example/cb"
	webCB2   = "https://app.example/cb2?x=1" // a registered URI with its own query
	nativeCB = "http://127.0.0.1:9000/callback"
	svcCB    = "https://svc.example/cb"
	singleCB = "https://single.example/cb"
)

// RFC 7636 Appendix B. The octets are the 32 random bytes of the example; the test
// TestRFC7636AppendixB checks that all three agree, so none is trusted from memory.
var rfcVerifierOctets = []byte{116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173,
	187, 186, 22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121}

const (
	rfcVerifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	rfcChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

// s256 is BASE64URL-ENCODE(SHA256(ASCII(verifier))) (RFC 7636 §4.2), computed here
// independently of the package.
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// registry holds the test clients:
//   - web: confidential, two redirect URIs (one with a query), four scopes;
//   - native: public (auth_method none), one loopback redirect URI;
//   - single: confidential, exactly one redirect URI, openid among its scopes;
//   - service: no authorization_code grant.
func registry(t testing.TB) *client.Registry {
	t.Helper()
	reg, err := client.NewRegistry([]config.Client{
		{
			ID: "web", Secret: "web-secret", AuthMethod: oauth.AuthClientSecretBasic,
			GrantTypes:   []string{oauth.GrantAuthorizationCode},
			RedirectURIs: []string{webCB, webCB2},
			Scopes:       []string{"openid", "profile", "email", "payments:read"},
		},
		{
			ID: "native", AuthMethod: oauth.AuthNone,
			GrantTypes:   []string{oauth.GrantAuthorizationCode},
			RedirectURIs: []string{nativeCB},
			Scopes:       []string{"openid", "profile"},
		},
		{
			ID: "single", Secret: "single-secret", AuthMethod: oauth.AuthClientSecretBasic,
			GrantTypes:   []string{oauth.GrantAuthorizationCode},
			RedirectURIs: []string{singleCB},
			Scopes:       []string{"openid", "profile"},
		},
		{
			ID: "service", Secret: "service-secret", AuthMethod: oauth.AuthClientSecretBasic,
			GrantTypes:   []string{oauth.GrantClientCredentials},
			RedirectURIs: []string{svcCB},
			Scopes:       []string{"payments:read"},
		},
	}, issuer, issuer+"/token", nil)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// absent, as a value in with, removes the parameter.
const absent = "\x00absent"

// with returns base with the pairs kv applied: the first value given for a key
// replaces the base's, a later one for the same key repeats the parameter, and the
// value absent removes it.
func with(base url.Values, kv ...string) url.Values {
	q := url.Values{}
	for k, v := range base {
		q[k] = slices.Clone(v)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(kv); i += 2 {
		k, v := kv[i], kv[i+1]
		if !seen[k] {
			delete(q, k)
			seen[k] = true
		}
		if v != absent {
			q[k] = append(q[k], v)
		}
	}
	return q
}

// Valid requests of each client, which the cases of TestParse vary.
var (
	webReq = url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {webCB},
		"scope": {"openid profile"}, "state": {"xyz"}}
	nativeReq = url.Values{"response_type": {"code"}, "client_id": {"native"}, "redirect_uri": {nativeCB},
		"scope": {"openid"}, "state": {"xyz"}, "code_challenge": {rfcChallenge}, "code_challenge_method": {"S256"}}
	singleReq = url.Values{"response_type": {"code"}, "client_id": {"single"}, "redirect_uri": {singleCB},
		"scope": {"profile"}, "state": {"xyz"}}
	serviceReq = url.Values{"response_type": {"code"}, "client_id": {"service"}, "redirect_uri": {svcCB},
		"scope": {"payments:read"}, "state": {"xyz"}}
)

func TestParse(t *testing.T) {
	reg := registry(t)
	web, _ := reg.Lookup("web")
	native, _ := reg.Lookup("native")
	single, _ := reg.Lookup("single")

	// show: the error is shown to the user, never redirected (RFC 6749 §4.1.2.1).
	type show struct{}
	// redirect: the error goes to uri with state.
	type redirect struct{ uri, state string }

	tests := []struct {
		name   string
		params url.Values
		code   oauth.Code // "" when Parse must succeed
		// exactly one of show or to, for errors
		show  *show
		to    *redirect
		check func(t *testing.T, r *Request)
	}{
		// The client or its redirect URI cannot be trusted: show, never redirect.
		{name: "fail/missing-client-id", params: with(webReq, "client_id", absent), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/empty-client-id", params: with(webReq, "client_id", ""), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/unknown-client-id", params: with(webReq, "client_id", "nobody"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/client-id-case", params: with(webReq, "client_id", "Web"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/repeated-client-id", params: with(webReq, "client_id", "web", "client_id", "web"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/repeated-client-id-different", params: with(webReq, "client_id", "web", "client_id", "native"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/repeated-redirect-uri", params: with(webReq, "redirect_uri", webCB, "redirect_uri", webCB), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/repeated-redirect-uri-single-registered", params: with(singleReq, "redirect_uri", singleCB, "redirect_uri", "https://evil.example/"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/missing-redirect-uri-several-registered", params: with(webReq, "redirect_uri", absent, "scope", "profile"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/empty-redirect-uri-several-registered", params: with(webReq, "redirect_uri", "", "scope", "profile"), code: oauth.CodeInvalidRequest, show: &show{}},
		// OIDC Core §3.1.2.1: redirect_uri is required in an OpenID Connect request,
		// even when the client registered one only.
		{name: "fail/missing-redirect-uri-openid", params: with(singleReq, "redirect_uri", absent, "scope", "openid"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/missing-redirect-uri-openid-among-others", params: with(singleReq, "redirect_uri", absent, "scope", "profile openid"), code: oauth.CodeInvalidRequest, show: &show{}},
		// Parse splits scope on any white space, so openid separated by a tab (or
		// another separator) is openid all the same.
		{name: "fail/missing-redirect-uri-openid-tab-separated", params: with(singleReq, "redirect_uri", absent, "scope", "profile\topenid"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/missing-redirect-uri-openid-newline", params: with(singleReq, "redirect_uri", absent, "scope", "openid\n"), code: oauth.CodeInvalidRequest, show: &show{}},
		// Without scope the client's scopes apply, openid among them: the request is
		// an OpenID Connect request and needs its redirect_uri.
		{name: "fail/missing-redirect-uri-default-scopes-openid", params: with(singleReq, "redirect_uri", absent, "scope", absent), code: oauth.CodeInvalidRequest, show: &show{}},
		// RFC 9700 §2.1: exact string matching, nothing else.
		{name: "fail/redirect-uri-unregistered", params: with(webReq, "redirect_uri", "https://evil.example/cb"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/redirect-uri-of-another-client", params: with(webReq, "redirect_uri", nativeCB), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/redirect-uri-prefix-of-registered", params: with(webReq, "redirect_uri", "https://app.example/c"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/redirect-uri-registered-is-prefix", params: with(webReq, "redirect_uri", webCB+"x"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/redirect-uri-subpath", params: with(webReq, "redirect_uri", webCB+"/../evil"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/redirect-uri-extra-query", params: with(webReq, "redirect_uri", webCB2+"&y=2"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/redirect-uri-query-added", params: with(webReq, "redirect_uri", webCB+"?x=1"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/redirect-uri-query-dropped", params: with(webReq, "redirect_uri", "https://app.example/cb2"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/redirect-uri-path-case", params: with(webReq, "redirect_uri", "https://app.example/CB"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/redirect-uri-host-case", params: with(webReq, "redirect_uri", "https://APP.example/cb"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/redirect-uri-trailing-slash", params: with(webReq, "redirect_uri", webCB+"/"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/redirect-uri-explicit-port", params: with(webReq, "redirect_uri", "https://app.example:443/cb"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/redirect-uri-percent-encoded", params: with(webReq, "redirect_uri", "https://app.example/%63b"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/redirect-uri-fragment", params: with(webReq, "redirect_uri", webCB+"#x"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/redirect-uri-http-for-https", params: with(webReq, "redirect_uri", "http://app.example/cb"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/redirect-uri-localhost-for-loopback-ip", params: with(nativeReq, "redirect_uri", "http://localhost:9000/callback"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/redirect-uri-userinfo", params: with(webReq, "redirect_uri", "https://app.example@evil.example/cb"), code: oauth.CodeInvalidRequest, show: &show{}},
		// Once the redirect URI is refused, nothing goes back to it, whatever else is
		// wrong with the request.
		{name: "fail/unregistered-redirect-uri-before-other-errors", params: with(webReq, "redirect_uri", "https://evil.example/cb", "response_type", "token", "state", "a", "state", "b"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/unknown-client-before-other-errors", params: with(webReq, "client_id", "nobody", "response_type", "token"), code: oauth.CodeInvalidRequest, show: &show{}},

		// From here on the client and its redirect URI are valid: redirect the error.
		{name: "fail/repeated-state", params: with(webReq, "state", "a", "state", "b"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB}},
		{name: "fail/repeated-scope", params: with(webReq, "scope", "openid", "scope", "profile"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/repeated-response-type", params: with(webReq, "response_type", "code", "response_type", "code"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/repeated-nonce", params: with(webReq, "nonce", "n1", "nonce", "n2"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/repeated-code-challenge", params: with(nativeReq, "code_challenge", rfcChallenge, "code_challenge", rfcChallenge), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/repeated-prompt", params: with(webReq, "prompt", "login", "prompt", "consent"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/repeated-max-age", params: with(webReq, "max_age", "1", "max_age", "2"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/repeated-id-token-hint", params: with(webReq, "id_token_hint", "a", "id_token_hint", "a"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/request-object", params: with(webReq, "request", "eyJhbGciOiJub25lIn0.e30."), code: CodeRequestNotSupported, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/request-uri", params: with(webReq, "request_uri", "urn:ietf:params:oauth:request_uri:abc"), code: CodeRequestURINotSupported, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/missing-response-type", params: with(webReq, "response_type", absent), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/empty-response-type", params: with(webReq, "response_type", ""), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/response-type-token", params: with(webReq, "response_type", "token"), code: CodeUnsupportedResponseType, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/response-type-code-id-token", params: with(webReq, "response_type", "code id_token"), code: CodeUnsupportedResponseType, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/response-type-id-token", params: with(webReq, "response_type", "id_token"), code: CodeUnsupportedResponseType, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/response-type-case", params: with(webReq, "response_type", "Code"), code: CodeUnsupportedResponseType, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/response-mode-fragment", params: with(webReq, "response_mode", "fragment"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/response-mode-form-post", params: with(webReq, "response_mode", "form_post"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/client-without-code-grant", params: serviceReq, code: oauth.CodeUnauthorizedClient, to: &redirect{uri: svcCB, state: "xyz"}},
		{name: "fail/unknown-scope", params: with(webReq, "scope", "openid admin"), code: oauth.CodeInvalidScope, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/scope-of-another-client", params: with(nativeReq, "scope", "openid email"), code: oauth.CodeInvalidScope, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/scope-case", params: with(webReq, "scope", "OpenID"), code: oauth.CodeInvalidScope, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/scope-prefix", params: with(webReq, "scope", "payments"), code: oauth.CodeInvalidScope, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/public-client-without-code-challenge", params: with(nativeReq, "code_challenge", absent, "code_challenge_method", absent), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/public-client-empty-code-challenge", params: with(nativeReq, "code_challenge", "", "code_challenge_method", absent), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/public-client-method-without-challenge", params: with(nativeReq, "code_challenge", absent), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/method-without-challenge", params: with(webReq, "code_challenge_method", "S256"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		// RFC 9449 §10: dpop_jkt is a JWK SHA-256 thumbprint, once.
		{name: "fail/dpop-jkt-not-a-thumbprint", params: with(webReq, "dpop_jkt", "abc"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/repeated-dpop-jkt", params: with(webReq, "dpop_jkt", rfcChallenge, "dpop_jkt", rfcChallenge), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		// RFC 7636 §4.3: plain, and a missing method, which means plain, are refused.
		{name: "fail/method-plain", params: with(webReq, "code_challenge", rfcVerifier, "code_challenge_method", "plain"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/method-plain-public-client", params: with(nativeReq, "code_challenge_method", "plain"), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/method-missing-means-plain", params: with(webReq, "code_challenge", rfcChallenge), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/method-missing-public-client", params: with(nativeReq, "code_challenge_method", absent), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/method-lowercase", params: with(nativeReq, "code_challenge_method", "s256"), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/method-unknown", params: with(nativeReq, "code_challenge_method", "S512"), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/challenge-too-short", params: with(nativeReq, "code_challenge", rfcChallenge[:42]), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/challenge-too-long", params: with(nativeReq, "code_challenge", rfcChallenge+"A"), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/challenge-sha512-length", params: with(nativeReq, "code_challenge", strings.Repeat("A", 86)), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/challenge-padded", params: with(nativeReq, "code_challenge", rfcChallenge+"="), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/challenge-standard-alphabet", params: with(nativeReq, "code_challenge", strings.ReplaceAll(rfcChallenge, "-", "+")), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/challenge-unreserved-not-base64", params: with(nativeReq, "code_challenge", strings.ReplaceAll(rfcChallenge, "-", "~")), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/challenge-is-a-verifier", params: with(nativeReq, "code_challenge", rfcVerifier+"abc"), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		// Go's base64 decoder skips CR and LF, and without Strict it accepts nonzero
		// padding bits: such a challenge decodes to 32 bytes, yet no verifier can ever
		// match it, so the client would get a code it can never redeem.
		{name: "fail/challenge-with-newline", params: with(nativeReq, "code_challenge", rfcChallenge[:20]+"\n"+rfcChallenge[20:]), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/challenge-with-crlf", params: with(nativeReq, "code_challenge", "\r\n"+rfcChallenge), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/challenge-nonzero-padding-bits", params: with(nativeReq, "code_challenge", rfcChallenge[:42]+"N"), code: oauth.CodeInvalidRequest, to: &redirect{uri: nativeCB, state: "xyz"}},
		{name: "fail/prompt-unknown", params: with(webReq, "prompt", "login create"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/prompt-case", params: with(webReq, "prompt", "Login"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/prompt-none-login", params: with(webReq, "prompt", "none login"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/prompt-consent-none", params: with(webReq, "prompt", "consent none"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/max-age-negative", params: with(webReq, "max_age", "-1"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/max-age-non-numeric", params: with(webReq, "max_age", "an hour"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/max-age-fraction", params: with(webReq, "max_age", "1.5"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/max-age-plus-sign", params: with(webReq, "max_age", "+60"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/max-age-overflow", params: with(webReq, "max_age", "2147483648"), code: oauth.CodeInvalidRequest, to: &redirect{uri: webCB, state: "xyz"}},
		{name: "fail/error-to-registered-uri-with-query", params: with(webReq, "redirect_uri", webCB2, "response_type", "token"), code: CodeUnsupportedResponseType, to: &redirect{uri: webCB2, state: "xyz"}},
		{name: "fail/error-to-omitted-single-redirect-uri", params: with(singleReq, "redirect_uri", absent, "response_type", "token"), code: CodeUnsupportedResponseType, to: &redirect{uri: singleCB, state: "xyz"}},

		// Valid requests.
		{name: "ok/defaults", params: url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {webCB}}, check: func(t *testing.T, r *Request) {
			if r.Client != web || r.RedirectURI != webCB {
				t.Errorf("client %v, redirect_uri %q", r.Client.ID, r.RedirectURI)
			}
			if !slices.Equal(r.Scopes, web.Scopes) {
				t.Errorf("scopes %q, want the client's %q", r.Scopes, web.Scopes)
			}
			if r.MaxAge != -1 {
				t.Errorf("MaxAge %v, want -1 (absent)", r.MaxAge)
			}
			if r.State != "" || r.Nonce != "" || r.LoginHint != "" || r.CodeChallenge != "" || r.Prompt != nil {
				t.Errorf("unexpected values: %+v", r)
			}
			// The default scopes are a copy: changing them leaves the client alone.
			r.Scopes[0] = "changed"
			if web.Scopes[0] != "openid" {
				t.Fatalf("changing the request's scopes changed the client's: %q", web.Scopes)
			}
		}},
		{name: "ok/omitted-redirect-uri-single-registered", params: with(singleReq, "redirect_uri", absent), check: func(t *testing.T, r *Request) {
			if r.Client != single || r.RedirectURI != singleCB {
				t.Errorf("client %s, redirect_uri %q; want %q", r.Client.ID, r.RedirectURI, singleCB)
			}
			if r.OpenID() {
				t.Errorf("scopes %q: not an OpenID request", r.Scopes)
			}
		}},
		{name: "ok/dpop-jkt", params: with(webReq, "dpop_jkt", rfcChallenge), check: func(t *testing.T, r *Request) {
			if r.DPoPJKT != rfcChallenge {
				t.Errorf("DPoPJKT = %q", r.DPoPJKT)
			}
		}},
		{name: "ok/loopback-any-port", params: with(nativeReq, "redirect_uri", "http://127.0.0.1:53117/callback"), check: func(t *testing.T, r *Request) {
			if r.RedirectURI != "http://127.0.0.1:53117/callback" || !r.RedirectURISent {
				t.Errorf("redirect_uri %q sent %v: RFC 8252 §7.3 allows any loopback port", r.RedirectURI, r.RedirectURISent)
			}
		}},
		{name: "fail/loopback-other-path", params: with(nativeReq, "redirect_uri", "http://127.0.0.1:53117/other"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/loopback-other-host", params: with(nativeReq, "redirect_uri", "http://127.0.0.2:9000/callback"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/localhost-name-is-not-loopback-literal", params: with(nativeReq, "redirect_uri", "http://localhost:9000/callback"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/loopback-https-scheme", params: with(nativeReq, "redirect_uri", "https://127.0.0.1:9000/callback"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "fail/loopback-with-userinfo", params: with(nativeReq, "redirect_uri", "http://evil@127.0.0.1:9000/callback"), code: oauth.CodeInvalidRequest, show: &show{}},
		{name: "ok/omitted-redirect-uri-is-not-sent", params: with(singleReq, "redirect_uri", absent), check: func(t *testing.T, r *Request) {
			if r.RedirectURISent {
				t.Error("RedirectURISent for a request without redirect_uri")
			}
		}},
		{name: "ok/empty-redirect-uri-single-registered", params: with(singleReq, "redirect_uri", ""), check: func(t *testing.T, r *Request) {
			if r.RedirectURI != singleCB {
				t.Errorf("redirect_uri %q, want %q", r.RedirectURI, singleCB)
			}
		}},
		{name: "ok/registered-uri-with-query", params: with(webReq, "redirect_uri", webCB2), check: func(t *testing.T, r *Request) {
			if r.RedirectURI != webCB2 {
				t.Errorf("redirect_uri %q, want %q", r.RedirectURI, webCB2)
			}
		}},
		{name: "ok/scopes-deduplicated", params: with(webReq, "scope", "openid  profile openid email"), check: func(t *testing.T, r *Request) {
			if want := []string{"openid", "profile", "email"}; !slices.Equal(r.Scopes, want) {
				t.Errorf("scopes %q, want %q", r.Scopes, want)
			}
			if !r.OpenID() {
				t.Error("OpenID() false with scope openid")
			}
		}},
		{name: "ok/scope-without-openid", params: with(webReq, "scope", "payments:read"), check: func(t *testing.T, r *Request) {
			if !slices.Equal(r.Scopes, []string{"payments:read"}) || r.OpenID() {
				t.Errorf("scopes %q, OpenID %v", r.Scopes, r.OpenID())
			}
		}},
		{name: "ok/response-mode-query", params: with(webReq, "response_mode", "query")},
		{name: "ok/empty-request-parameters-ignored", params: with(webReq, "request", "", "request_uri", "")},
		{name: "ok/unknown-parameters-ignored", params: with(webReq, "foo", "1", "foo", "2", "claims_locales", "de")},
		{name: "ok/nonce-state-login-hint-kept", params: with(webReq, "nonce", "n-0S6_WzA2Mj", "state", "af0ifjsldkj&x=1", "login_hint", "alice@example.com"), check: func(t *testing.T, r *Request) {
			if r.Nonce != "n-0S6_WzA2Mj" || r.State != "af0ifjsldkj&x=1" || r.LoginHint != "alice@example.com" {
				t.Errorf("nonce %q, state %q, login_hint %q", r.Nonce, r.State, r.LoginHint)
			}
		}},
		{name: "ok/prompt-none", params: with(webReq, "prompt", "none"), check: func(t *testing.T, r *Request) {
			if !slices.Equal(r.Prompt, []string{"none"}) || !r.HasPrompt("none") || r.HasPrompt("login") {
				t.Errorf("prompt %q", r.Prompt)
			}
		}},
		{name: "ok/prompt-several", params: with(webReq, "prompt", "login consent select_account login"), check: func(t *testing.T, r *Request) {
			if want := []string{"login", "consent", "select_account"}; !slices.Equal(r.Prompt, want) {
				t.Errorf("prompt %q, want %q", r.Prompt, want)
			}
			if !r.HasPrompt("consent") || r.HasPrompt("none") {
				t.Errorf("HasPrompt wrong for %q", r.Prompt)
			}
		}},
		{name: "ok/prompt-none-repeated", params: with(webReq, "prompt", "none none"), check: func(t *testing.T, r *Request) {
			if !slices.Equal(r.Prompt, []string{"none"}) {
				t.Errorf("prompt %q", r.Prompt)
			}
		}},
		{name: "ok/max-age-zero", params: with(webReq, "max_age", "0"), check: func(t *testing.T, r *Request) {
			if r.MaxAge != 0 {
				t.Errorf("MaxAge %v, want 0", r.MaxAge)
			}
		}},
		{name: "ok/max-age", params: with(webReq, "max_age", "3600"), check: func(t *testing.T, r *Request) {
			if r.MaxAge != time.Hour {
				t.Errorf("MaxAge %v, want 1h", r.MaxAge)
			}
		}},
		{name: "ok/max-age-largest", params: with(webReq, "max_age", "2147483647"), check: func(t *testing.T, r *Request) {
			if r.MaxAge != 2147483647*time.Second {
				t.Errorf("MaxAge %v", r.MaxAge)
			}
		}},
		{name: "ok/s256-confidential-client", params: with(webReq, "code_challenge", rfcChallenge, "code_challenge_method", "S256"), check: func(t *testing.T, r *Request) {
			if r.CodeChallenge != rfcChallenge {
				t.Errorf("code_challenge %q, want %q", r.CodeChallenge, rfcChallenge)
			}
		}},
		{name: "ok/s256-public-client", params: nativeReq, check: func(t *testing.T, r *Request) {
			if r.Client != native || r.RedirectURI != nativeCB || r.CodeChallenge != rfcChallenge {
				t.Errorf("client %s, redirect_uri %q, code_challenge %q", r.Client.ID, r.RedirectURI, r.CodeChallenge)
			}
		}},
		{name: "ok/confidential-client-without-pkce", params: webReq, check: func(t *testing.T, r *Request) {
			if r.CodeChallenge != "" {
				t.Errorf("code_challenge %q, want none", r.CodeChallenge)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if (tt.code == "") == (tt.show != nil || tt.to != nil) || (tt.show != nil && tt.to != nil) {
				t.Fatal("bad test case: an error case needs exactly one of show and to, a success neither")
			}
			r, err := Parse(tt.params, reg)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if r == nil || r.Client == nil || !registered(r.Client.RedirectURIs, r.RedirectURI) {
					t.Fatalf("request %+v: no client, or a redirect URI it did not register", r)
				}
				if tt.check != nil {
					tt.check(t, r)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want %s", r, tt.code)
			}
			if r != nil {
				t.Errorf("Parse returned a request with error %v", err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *authorize.Error", err, err)
			}
			var oe *oauth.Error
			if !errors.As(err, &oe) || oe.Code != tt.code {
				t.Fatalf("error %v: want code %s", err, tt.code)
			}
			if oe.Description == "" {
				t.Errorf("error %v has no description", err)
			}
			switch {
			case tt.show != nil:
				if e.Redirect || e.RedirectURI != "" || e.State != "" {
					t.Fatalf("error %v must be shown, not redirected: Redirect %v, RedirectURI %q, State %q", err, e.Redirect, e.RedirectURI, e.State)
				}
			default:
				if !e.Redirect || e.RedirectURI != tt.to.uri || e.State != tt.to.state {
					t.Fatalf("error %v: Redirect %v to %q with state %q; want redirect to %q with state %q",
						err, e.Redirect, e.RedirectURI, e.State, tt.to.uri, tt.to.state)
				}
			}
		})
	}
}

func TestRFC7636AppendixB(t *testing.T) {
	if got := base64.RawURLEncoding.EncodeToString(rfcVerifierOctets); got != rfcVerifier {
		t.Fatalf("verifier of the Appendix B octets is %q, the test says %q", got, rfcVerifier)
	}
	if got := s256(rfcVerifier); got != rfcChallenge {
		t.Fatalf("S256 of %q is %q, the test says %q", rfcVerifier, got, rfcChallenge)
	}
	if !VerifyPKCE(rfcChallenge, rfcVerifier) {
		t.Fatal("VerifyPKCE refuses the RFC 7636 Appendix B example")
	}
}

func TestVerifyPKCE(t *testing.T) {
	unreserved := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
	long := strings.Repeat(unreserved, 2)[:128]
	tests := []struct {
		name                string
		challenge, verifier string
		want                bool
	}{
		{"ok/rfc7636-appendix-b", rfcChallenge, rfcVerifier, true},
		{"ok/shortest-43", s256(rfcVerifier[:43]), rfcVerifier[:43], true},
		{"ok/longest-128", s256(long), long, true},
		{"ok/every-unreserved-character", s256(unreserved), unreserved, true},
		{"fail/wrong-verifier", rfcChallenge, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl", false},
		{"fail/verifier-of-another-challenge", s256(long), rfcVerifier, false},
		// The bad verifiers below are paired with their own S256 challenge, so only the
		// §4.1 checks can refuse them.
		{"fail/too-short-42", s256(rfcVerifier[:42]), rfcVerifier[:42], false},
		{"fail/too-long-129", s256(long + "a"), long + "a", false},
		{"fail/empty-verifier", s256(""), "", false},
		{"fail/invalid-character-plus", s256(rfcVerifier[:42] + "+"), rfcVerifier[:42] + "+", false},
		{"fail/invalid-character-slash", s256(rfcVerifier[:42] + "/"), rfcVerifier[:42] + "/", false},
		{"fail/invalid-character-equals", s256(rfcVerifier + "="), rfcVerifier + "=", false},
		{"fail/invalid-character-space", s256(rfcVerifier[:42] + " "), rfcVerifier[:42] + " ", false},
		{"fail/invalid-character-non-ascii", s256(rfcVerifier[:41] + "é"), rfcVerifier[:41] + "é", false},
		{"fail/invalid-character-nul", s256(rfcVerifier + "\x00"), rfcVerifier + "\x00", false},
		{"fail/empty-challenge", "", rfcVerifier, false},
		{"fail/padded-challenge", rfcChallenge + "=", rfcVerifier, false},
		{"fail/truncated-challenge", rfcChallenge[:42], rfcVerifier, false},
		{"fail/challenge-with-more", rfcChallenge + "A", rfcVerifier, false},
		{"fail/challenge-case", strings.ToLower(rfcChallenge), rfcVerifier, false},
		{"fail/plain-challenge", rfcVerifier, rfcVerifier, false},
		{"fail/standard-base64-challenge", base64.StdEncoding.EncodeToString(sha256Sum(rfcVerifier)), rfcVerifier, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyPKCE(tt.challenge, tt.verifier); got != tt.want {
				t.Fatalf("VerifyPKCE(%q, %q) = %v, want %v", tt.challenge, tt.verifier, got, tt.want)
			}
		})
	}
}

func sha256Sum(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

func TestCodeRedirect(t *testing.T) {
	tests := []struct {
		name        string
		uri         string
		code, state string
		want        string
	}{
		{"ok/state-and-iss", webCB, "c0de", "xyz",
			"https://app.example/cb?code=c0de&iss=https%3A%2F%2Fdeputy.example&state=xyz"},
		{"ok/no-state", webCB, "c0de", "",
			"https://app.example/cb?code=c0de&iss=https%3A%2F%2Fdeputy.example"},
		{"ok/registered-query-kept", webCB2, "c0de", "xyz",
			"https://app.example/cb2?x=1&code=c0de&iss=https%3A%2F%2Fdeputy.example&state=xyz"},
		{"ok/values-encoded", nativeCB, "a+b/c=&d", "s t&code=evil#frag",
			"http://127.0.0.1:9000/callback?code=a%2Bb%2Fc%3D%26d&iss=https%3A%2F%2Fdeputy.example&state=s+t%26code%3Devil%23frag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CodeRedirect(&Request{RedirectURI: tt.uri, State: tt.state}, tt.code, issuer)
			if got != tt.want {
				t.Fatalf("CodeRedirect = %q\nwant           %q", got, tt.want)
			}
			q := query(t, got, tt.uri)
			if q.Get("code") != tt.code || q.Get("iss") != issuer || q.Get("state") != tt.state {
				t.Fatalf("%q decodes to %v", got, q)
			}
			if len(q["code"]) != 1 || len(q["state"]) > 1 || q.Has("state") != (tt.state != "") {
				t.Fatalf("%q: code or state missing or repeated: %v", got, q)
			}
		})
	}
}

func TestErrorRedirect(t *testing.T) {
	tests := []struct {
		name string
		e    *Error
		want string
	}{
		{"ok/state-and-iss", &Error{Err: &oauth.Error{Code: oauth.CodeInvalidScope, Description: "scope admin is not allowed"}, Redirect: true, RedirectURI: webCB, State: "xyz"},
			"https://app.example/cb?error=invalid_scope&error_description=scope+admin+is+not+allowed&iss=https%3A%2F%2Fdeputy.example&state=xyz"},
		{"ok/no-state-no-description", &Error{Err: &oauth.Error{Code: oauth.CodeAccessDenied}, Redirect: true, RedirectURI: webCB},
			"https://app.example/cb?error=access_denied&iss=https%3A%2F%2Fdeputy.example"},
		{"ok/registered-query-kept", &Error{Err: &oauth.Error{Code: CodeLoginRequired}, Redirect: true, RedirectURI: webCB2, State: "xyz"},
			"https://app.example/cb2?x=1&error=login_required&iss=https%3A%2F%2Fdeputy.example&state=xyz"},
		{"ok/values-encoded", &Error{Err: &oauth.Error{Code: oauth.CodeInvalidRequest, Description: "a&b=c"}, Redirect: true, RedirectURI: nativeCB, State: "s t&error=none#f"},
			"http://127.0.0.1:9000/callback?error=invalid_request&error_description=a%26b%3Dc&iss=https%3A%2F%2Fdeputy.example&state=s+t%26error%3Dnone%23f"},
		// RFC 6749 §4.1.2.1: error_description holds only %x20-21 / %x23-5B / %x5D-7E.
		// Descriptions quote request parameters, which may hold anything.
		{"ok/description-characters-restricted", &Error{Err: &oauth.Error{Code: CodeUnsupportedResponseType, Description: "response_type \"x\\\n\u00e9\" is not supported"}, Redirect: true, RedirectURI: webCB},
			"https://app.example/cb?error=unsupported_response_type&error_description=response_type+%3Fx%3F%3F%3F%3F+is+not+supported&iss=https%3A%2F%2Fdeputy.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ErrorRedirect(tt.e, issuer)
			if got != tt.want {
				t.Fatalf("ErrorRedirect = %q\nwant            %q", got, tt.want)
			}
			q := query(t, got, tt.e.RedirectURI)
			if q.Get("error") != string(tt.e.Err.Code) || q.Get("iss") != issuer || q.Get("state") != tt.e.State {
				t.Fatalf("%q decodes to %v", got, q)
			}
			if !describable(q.Get("error_description")) {
				t.Fatalf("error_description %q has characters RFC 6749 §4.1.2.1 forbids", q.Get("error_description"))
			}
		})
	}
}

// TestErrorRedirectOfParse sends a refusal of Parse back the way the endpoint would.
func TestErrorRedirectOfParse(t *testing.T) {
	_, err := Parse(with(webReq, "redirect_uri", webCB2, "scope", "openid admin"), registry(t))
	var e *Error
	if !errors.As(err, &e) || !e.Redirect {
		t.Fatalf("Parse: %v, want a redirected error", err)
	}
	q := query(t, ErrorRedirect(e, issuer), webCB2)
	if q.Get("x") != "1" || q.Get("error") != string(oauth.CodeInvalidScope) || q.Get("state") != "xyz" || q.Get("iss") != issuer {
		t.Fatalf("redirect query %v", q)
	}
}

// query checks that u is registered followed by a query and returns that query.
func query(t testing.TB, u, registered string) url.Values {
	t.Helper()
	if !strings.HasPrefix(u, registered) {
		t.Fatalf("%q does not start with the registered URI %q", u, registered)
	}
	p, err := url.Parse(u)
	if err != nil {
		t.Fatalf("%q: %v", u, err)
	}
	if p.Fragment != "" || p.RawFragment != "" {
		t.Fatalf("%q has a fragment", u)
	}
	q, err := url.ParseQuery(p.RawQuery)
	if err != nil {
		t.Fatalf("%q: %v", u, err)
	}
	return q
}

// describable reports whether s is a valid error_description (RFC 6749 §4.1.2.1).
func describable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// TestIdentityAssured: a remembered consent is reused only for clients whose
// identity is assured (RFC 8252 §8.6).
func TestIdentityAssured(t *testing.T) {
	pub := &client.Client{ID: "pub", AuthMethod: oauth.AuthNone}
	conf := &client.Client{ID: "conf", AuthMethod: oauth.AuthClientSecretBasic}
	for _, tt := range []struct {
		name     string
		c        *client.Client
		redirect string
		want     bool
	}{
		{"ok/confidential-loopback", conf, nativeCB, true},
		{"ok/confidential-private-scheme", conf, "com.example.app:/cb", true},
		{"ok/public-https", pub, webCB, true},
		{"fail/public-loopback-ipv4", pub, nativeCB, false},
		{"fail/public-loopback-ipv6", pub, "http://[::1]:8000/cb", false},
		{"fail/public-localhost-https", pub, "https://localhost:8443/cb", false},
		{"fail/public-private-scheme", pub, "com.example.app:/cb", false},
		{"fail/public-http", pub, "http://app.example/cb", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &Request{Client: tt.c, RedirectURI: tt.redirect}
			if got := r.IdentityAssured(); got != tt.want {
				t.Errorf("IdentityAssured() = %v, want %v", got, tt.want)
			}
		})
	}
}
