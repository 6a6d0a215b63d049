package authorize

import (
	"encoding/base64"
	"errors"
	"net/url"
	"slices"
	"testing"

	"github.com/deputy-auth/deputy/oauth"
)

// FuzzParse feeds arbitrary query strings (outside input: the authorization request
// as the user agent sends it) to Parse. It never panics, and:
//   - a refusal is an *Error; one that is redirected goes exactly to one of the
//     client's registered URIs, the one the request named when it named one, with the
//     request's state.
//   - a redirected error_description holds only what RFC 6749 §4.1.2.1 allows.
//   - an accepted request has a registered redirect URI (the one named, if any), a
//     client allowed the code flow, scopes within the client's and without repeats,
//     and a code challenge whenever the client is public.
//   - an accepted code challenge is the canonical base64url form of 32 bytes.
//   - an OpenID Connect request names its redirect_uri (OIDC Core §3.1.2.1).
func FuzzParse(f *testing.F) {
	reg := registry(f)
	for _, q := range []url.Values{webReq, nativeReq, singleReq, serviceReq,
		with(singleReq, "redirect_uri", absent),
		with(singleReq, "redirect_uri", absent, "scope", absent),
		with(singleReq, "redirect_uri", absent, "scope", "profile\topenid"),
		with(webReq, "redirect_uri", webCB2, "prompt", "none", "max_age", "60", "nonce", "n"),
		with(webReq, "redirect_uri", webCB+"/"),
		with(webReq, "response_type", "token", "state", "a", "state", "b"),
		with(webReq, "scope", "openid admin", "prompt", "none login"),
		with(nativeReq, "code_challenge", rfcChallenge[:42]+"N"),
		with(nativeReq, "code_challenge", "\r\n"+rfcChallenge),
		with(nativeReq, "code_challenge_method", "plain"),
		with(webReq, "response_type", "\"\\\x00\u00e9"),
	} {
		f.Add(q.Encode())
	}
	f.Add("client_id=web&client_id=web")
	f.Add("client_id=web&redirect_uri=https%3A%2F%2Fapp.example%2Fcb2%3Fx%3D1&response_type=code")
	f.Add("client_id=native&redirect_uri=http://127.0.0.1:9000/callback&response_type=code&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256")
	f.Add("client_id=single&response_type=code&scope=openid%0bprofile")
	f.Add("%zz")

	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, err := Parse(q, reg)
		named := ""
		if len(q["redirect_uri"]) == 1 {
			named = q["redirect_uri"][0]
		}
		if err != nil {
			if r != nil {
				t.Fatalf("request returned with error %v", err)
			}
			var e *Error
			if !errors.As(err, &e) || e.Err == nil {
				t.Fatalf("error %v (%T) is not an *authorize.Error", err, err)
			}
			if !e.Redirect {
				if e.RedirectURI != "" || e.State != "" || e.Err.Code != oauth.CodeInvalidRequest {
					t.Fatalf("shown error %v: code %s, RedirectURI %q, State %q", err, e.Err.Code, e.RedirectURI, e.State)
				}
				return
			}
			if len(q["client_id"]) != 1 {
				t.Fatalf("error %v redirected for client_id %q", err, q["client_id"])
			}
			c, ok := reg.Lookup(q.Get("client_id"))
			if !ok {
				t.Fatalf("error %v redirected for an unknown client", err)
			}
			if !registered(c.RedirectURIs, e.RedirectURI) {
				t.Fatalf("error %v redirected to %q, not one of client %s's %q", err, e.RedirectURI, c.ID, c.RedirectURIs)
			}
			if named != "" && e.RedirectURI != named {
				t.Fatalf("error %v redirected to %q; the request named %q", err, e.RedirectURI, named)
			}
			if want := singleState(q); e.State != want {
				t.Fatalf("error %v carries state %q; the request's is %q", err, e.State, want)
			}
			switch e.Err.Code {
			case oauth.CodeInvalidRequest, oauth.CodeUnauthorizedClient, oauth.CodeInvalidScope,
				CodeUnsupportedResponseType, CodeRequestNotSupported, CodeRequestURINotSupported:
			default:
				t.Fatalf("error %v: unexpected code %s", err, e.Err.Code)
			}
			back := query(t, ErrorRedirect(e, issuer), e.RedirectURI)
			if back.Get("error") != string(e.Err.Code) || back.Get("state") != e.State || back.Get("iss") != issuer {
				t.Fatalf("ErrorRedirect of %v decodes to %v", err, back)
			}
			if d := back.Get("error_description"); !describable(d) {
				t.Fatalf("error_description %q has characters RFC 6749 §4.1.2.1 forbids", d)
			}
			return
		}

		c := r.Client
		if c == nil || !c.HasGrant(oauth.GrantAuthorizationCode) || q.Get("response_type") != "code" {
			t.Fatalf("accepted %+v for response_type %q", r, q.Get("response_type"))
		}
		if !registered(c.RedirectURIs, r.RedirectURI) {
			t.Fatalf("accepted redirect_uri %q, not one of client %s's %q", r.RedirectURI, c.ID, c.RedirectURIs)
		}
		if named != "" && r.RedirectURI != named {
			t.Fatalf("redirect_uri %q; the request named %q", r.RedirectURI, named)
		}
		if named == "" && r.OpenID() {
			t.Fatalf("OpenID Connect request (scopes %q) accepted without redirect_uri", r.Scopes)
		}
		for i, s := range r.Scopes {
			if !slices.Contains(c.Scopes, s) || slices.Contains(r.Scopes[:i], s) {
				t.Fatalf("scopes %q: %q is not client %s's (%q) or is repeated", r.Scopes, s, c.ID, c.Scopes)
			}
		}
		if c.Public() && r.CodeChallenge == "" {
			t.Fatalf("public client %s accepted without code_challenge", c.ID)
		}
		if r.CodeChallenge != "" {
			b, err := base64.RawURLEncoding.DecodeString(r.CodeChallenge)
			if err != nil || len(b) != 32 || base64.RawURLEncoding.EncodeToString(b) != r.CodeChallenge {
				t.Fatalf("code_challenge %q is not a canonical base64url SHA-256 value", r.CodeChallenge)
			}
		}
		if r.State != singleState(q) || r.MaxAge < -1 || (r.HasPrompt("none") && len(r.Prompt) != 1) {
			t.Fatalf("state %q, max_age %v, prompt %q", r.State, r.MaxAge, r.Prompt)
		}
		back := query(t, CodeRedirect(r, "c0de", issuer), r.RedirectURI)
		if back.Get("code") != "c0de" || back.Get("state") != r.State || back.Get("iss") != issuer {
			t.Fatalf("CodeRedirect decodes to %v", back)
		}
	})
}

// singleState is the request's state when it was sent once, else "".
func singleState(q url.Values) string {
	if len(q["state"]) == 1 {
		return q["state"][0]
	}
	return ""
}
