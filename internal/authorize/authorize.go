package authorize

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/oauth"
)

// Request is a validated authorization request.
type Request struct {
	Client      *client.Client
	RedirectURI string
	// RedirectURISent tells whether the request named its redirect_uri; only then
	// must the token request repeat it (RFC 6749 §4.1.3).
	RedirectURISent bool
	State           string
	Nonce           string
	Scopes          []string
	CodeChallenge   string // S256 challenge, "" when the client sent none
	Prompt          []string
	MaxAge          time.Duration // -1 when absent
	LoginHint       string
	// DPoPJKT is dpop_jkt (RFC 9449 §10): the thumbprint of the DPoP key the code
	// is bound to, "" when the client sent none.
	DPoPJKT string
}

// OpenID reports whether this is an OpenID Connect request (scope openid).
func (r *Request) OpenID() bool { return slices.Contains(r.Scopes, "openid") }

// HasPrompt reports whether prompt includes p.
func (r *Request) HasPrompt(p string) bool { return slices.Contains(r.Prompt, p) }

// IdentityAssured reports whether the client's identity is assured well enough that
// a consent the user gave it before may be reused without asking again (RFC 8252
// §8.6): a confidential client authenticates when it redeems the code; a public
// client only through its redirect URI, which proves who it is when it is an https
// URI off this machine. A loopback or private-use-scheme redirect URI can be
// listened on or claimed by any app, so such a client is asked every time, and
// prompt=none gets consent_required.
func (r *Request) IdentityAssured() bool {
	if !r.Client.Public() {
		return true
	}
	u, err := url.Parse(r.RedirectURI)
	if err != nil || !strings.EqualFold(u.Scheme, "https") {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return !loopback(h) && h != "localhost" && !strings.HasSuffix(h, ".localhost") && !strings.HasPrefix(h, "127.")
}

// Error is a refused authorization request. When Redirect is true the error is sent
// to RedirectURI (with State); otherwise it is shown to the user, because the client
// or its redirect URI could not be trusted.
type Error struct {
	Err         *oauth.Error
	Redirect    bool
	RedirectURI string
	State       string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Additional error codes of the authorization endpoint (RFC 6749 §4.1.2.1, OIDC Core
// §3.1.2.6).
const (
	CodeUnsupportedResponseType oauth.Code = "unsupported_response_type"
	CodeLoginRequired           oauth.Code = "login_required"
	CodeConsentRequired         oauth.Code = "consent_required"
	CodeRequestNotSupported     oauth.Code = "request_not_supported"
	CodeRequestURINotSupported  oauth.Code = "request_uri_not_supported"
)

// single-valued parameters of the request; each may appear at most once.
var singles = []string{"response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
	"code_challenge", "code_challenge_method", "prompt", "max_age", "response_mode", "login_hint",
	"request", "request_uri", "display", "ui_locales", "id_token_hint", "acr_values", "dpop_jkt"}

// Clients looks up registered clients.
type Clients interface {
	Lookup(id string) (*client.Client, bool)
}

// Parse validates the parameters of an authorization request.
func Parse(params url.Values, clients Clients) (*Request, error) {
	show := func(desc string) error { return &Error{Err: oauth.InvalidRequest(desc, nil)} }
	for _, name := range []string{"client_id", "redirect_uri"} {
		if len(params[name]) > 1 {
			return nil, show("parameter " + name + " is repeated")
		}
	}
	id := params.Get("client_id")
	if id == "" {
		return nil, show("missing parameter client_id")
	}
	c, ok := clients.Lookup(id)
	if !ok {
		return nil, &Error{Err: oauth.InvalidRequest("unknown client", errors.New("client_id "+id+" is not registered"))}
	}
	redirect := params.Get("redirect_uri")
	// An OpenID Connect request, which must name its redirect_uri (OIDC Core §3.1.2.1),
	// is one whose scopes as resolved below hold openid: split as they are split, or
	// the client's when scope is absent.
	scope := params.Get("scope")
	openID := slices.Contains(strings.Fields(scope), "openid") || scope == "" && slices.Contains(c.Scopes, "openid")
	sent := redirect != ""
	switch {
	case redirect == "" && len(c.RedirectURIs) == 1 && !openID:
		redirect = c.RedirectURIs[0] // OAuth 2.0 allows omitting it when only one is registered
	case redirect == "":
		return nil, show("missing parameter redirect_uri")
	case !registered(c.RedirectURIs, redirect):
		// Exact match only (RFC 9700 §2.1): no prefix, no wildcard, no normalisation.
		return nil, &Error{Err: oauth.InvalidRequest("redirect_uri is not registered for this client",
			errors.New("redirect_uri "+redirect+" is not one of client "+id+"'s"))}
	}

	// From here on errors go back to the client.
	state := ""
	if vs := params["state"]; len(vs) == 1 {
		state = vs[0]
	}
	fail := func(code oauth.Code, desc string) error {
		return &Error{Err: &oauth.Error{Code: code, Description: desc}, Redirect: true, RedirectURI: redirect, State: state}
	}
	for _, name := range singles {
		if len(params[name]) > 1 {
			return nil, fail(oauth.CodeInvalidRequest, "parameter "+name+" is repeated")
		}
	}
	if params.Get("request") != "" {
		return nil, fail(CodeRequestNotSupported, "request objects are not supported")
	}
	if params.Get("request_uri") != "" {
		return nil, fail(CodeRequestURINotSupported, "request_uri is not supported")
	}
	switch rt := params.Get("response_type"); rt {
	case "code":
	case "":
		return nil, fail(oauth.CodeInvalidRequest, "missing parameter response_type")
	default:
		return nil, fail(CodeUnsupportedResponseType, "response_type "+rt+" is not supported; use code")
	}
	if rm := params.Get("response_mode"); rm != "" && rm != "query" {
		return nil, fail(oauth.CodeInvalidRequest, "response_mode "+rm+" is not supported; use query")
	}
	if !c.HasGrant(oauth.GrantAuthorizationCode) {
		return nil, fail(oauth.CodeUnauthorizedClient, "client may not use the authorization code flow")
	}

	r := &Request{Client: c, RedirectURI: redirect, RedirectURISent: sent, State: state, Nonce: params.Get("nonce"),
		LoginHint: params.Get("login_hint"), MaxAge: -1}
	if s := params.Get("scope"); s != "" {
		r.Scopes = dedupe(strings.Fields(s))
		for _, sc := range r.Scopes {
			if !slices.Contains(c.Scopes, sc) {
				return nil, fail(oauth.CodeInvalidScope, "scope "+sc+" is not allowed for this client")
			}
		}
	} else {
		r.Scopes = slices.Clone(c.Scopes)
	}

	challenge, method := params.Get("code_challenge"), params.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return nil, fail(oauth.CodeInvalidRequest, "code_challenge_method without code_challenge")
	case challenge == "" && c.Public():
		return nil, fail(oauth.CodeInvalidRequest, "PKCE is required for public clients (code_challenge with S256)")
	case challenge != "" && method != "S256":
		// A missing method means "plain" (RFC 7636 §4.3), which is refused too.
		return nil, fail(oauth.CodeInvalidRequest, "code_challenge_method must be S256")
	case challenge != "" && !validChallenge(challenge):
		return nil, fail(oauth.CodeInvalidRequest, "code_challenge is not a base64url SHA-256 value")
	}
	r.CodeChallenge = challenge
	if jkt := params.Get("dpop_jkt"); jkt != "" {
		// An RFC 7638 SHA-256 thumbprint, base64url like an S256 challenge.
		if !validChallenge(jkt) {
			return nil, fail(oauth.CodeInvalidRequest, "dpop_jkt is not a base64url SHA-256 JWK thumbprint")
		}
		r.DPoPJKT = jkt
	}

	if p := params.Get("prompt"); p != "" {
		r.Prompt = dedupe(strings.Fields(p))
		for _, v := range r.Prompt {
			switch v {
			case "none", "login", "consent", "select_account":
			default:
				return nil, fail(oauth.CodeInvalidRequest, "prompt "+v+" is not supported")
			}
		}
		if r.HasPrompt("none") && len(r.Prompt) > 1 {
			return nil, fail(oauth.CodeInvalidRequest, "prompt none cannot be combined with other values")
		}
	}
	if ma := params.Get("max_age"); ma != "" {
		n, err := strconv.ParseUint(ma, 10, 31)
		if err != nil {
			return nil, fail(oauth.CodeInvalidRequest, "max_age must be a non-negative number of seconds")
		}
		r.MaxAge = time.Duration(n) * time.Second
	}
	return r, nil
}

// registered reports whether uri is one of the registered redirect URIs: exactly,
// except that the port of a loopback IP literal (http://127.0.0.1, http://[::1]) may
// differ, since native apps listen on whatever port is free (RFC 8252 §7.3,
// RFC 9700 §2.1).
func registered(uris []string, uri string) bool {
	if slices.Contains(uris, uri) {
		return true
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || !loopback(u.Hostname()) || u.User != nil || u.Fragment != "" {
		return false
	}
	for _, reg := range uris {
		r, err := url.Parse(reg)
		if err != nil || r.Scheme != "http" || !loopback(r.Hostname()) {
			continue
		}
		if r.Hostname() == u.Hostname() && r.EscapedPath() == u.EscapedPath() && r.RawQuery == u.RawQuery && r.User == nil {
			return true
		}
	}
	return false
}

func loopback(host string) bool { return host == "127.0.0.1" || host == "::1" }

// validChallenge: an S256 challenge is the unpadded base64url encoding of 32 bytes.
// Go's decoder skips CR and LF and, unless strict, accepts nonzero padding bits; such
// a challenge decodes to 32 bytes yet never equals a computed one.
func validChallenge(c string) bool {
	b, err := base64.RawURLEncoding.Strict().DecodeString(c)
	return err == nil && len(c) == 43 && len(b) == sha256.Size
}

// VerifyPKCE checks a code_verifier against an S256 code_challenge (RFC 7636 §4.6).
// The verifier must be 43–128 unreserved characters (§4.1).
func VerifyPKCE(challenge, verifier string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for i := 0; i < len(verifier); i++ {
		c := verifier[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// ErrorRedirect is the URI an error is sent to (RFC 6749 §4.1.2.1, RFC 9207 iss).
func ErrorRedirect(e *Error, issuer string) string {
	q := url.Values{"error": {string(e.Err.Code)}, "iss": {issuer}}
	if e.Err.Description != "" {
		q.Set("error_description", descriptionText(e.Err.Description))
	}
	if e.State != "" {
		q.Set("state", e.State)
	}
	return withQuery(e.RedirectURI, q)
}

// CodeRedirect is the URI a code is sent to (RFC 6749 §4.1.2, RFC 9207 iss).
func CodeRedirect(r *Request, code, issuer string) string {
	q := url.Values{"code": {code}, "iss": {issuer}}
	if r.State != "" {
		q.Set("state", r.State)
	}
	return withQuery(r.RedirectURI, q)
}

// withQuery adds q to uri's query, keeping the query a registered URI has
// (RFC 6749 §3.1.2).
func withQuery(uri string, q url.Values) string {
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
	}
	return uri + sep + q.Encode()
}

// descriptionText replaces with '?' the characters error_description may not hold
// (RFC 6749 §4.1.2.1: only %x20-21 / %x23-5B / %x5D-7E); descriptions quote request
// parameters, which may hold anything.
func descriptionText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '?'
		}
		return r
	}, s)
}

func dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	for _, v := range in {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
