package upstream

// OpenID Connect sign-in: deputy is a relying party in the authorization-code
// flow (OIDC Core §3.1) with PKCE (RFC 7636, S256 only) and a nonce. Discovery,
// the JWKS and ID token signature, iss, aud and exp checks are
// github.com/coreos/go-oidc; the token request is golang.org/x/oauth2. This file
// never verifies a signature itself, it only decides what a verified ID token
// must say and what becomes of it.

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/oauth"
)

// Limits of OpenID Connect sign-in.
const (
	// OIDCHTTPTimeout bounds each request deputy makes to the IdP (discovery,
	// JWKS, token endpoint).
	OIDCHTTPTimeout = 10 * time.Second
	// OIDCSkew is the clock difference tolerated with the IdP (and between
	// deputy nodes) on the flow's start time.
	OIDCSkew = time.Minute
	// OIDCFlowTTL bounds the time from Begin to Complete.
	OIDCFlowTTL = 10 * time.Minute

	oidcMaxSubjectBytes = 1024
	oidcMaxClaimBytes   = 1024
	oidcMaxAMR          = 16
)

// oidcSigningAlgs is the allow-list of ID token signature algorithms: asymmetric
// only (an HMAC "signature" keyed with the client secret proves nothing about
// the IdP's key set, and "none" proves nothing at all). The algorithms an IdP
// is trusted with are those it advertises in discovery that are also here.
var oidcSigningAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.EdDSA,
}

// oidcClaims are the identity claims copied from a verified ID token (OIDC Core
// §5.1) into Identity.Claims, when they are strings (email_verified, a boolean,
// as "true" or "false").
var oidcClaims = []string{"email", "email_verified", "name", "given_name", "family_name", "preferred_username"}

// oidcProvider signs people in at an OpenID Provider. It does not change after
// it is built and is safe for concurrent use.
//
// It is built by discovery (dialOIDC), which lazyOIDC runs on first use and
// retries until the IdP answers, so that deputy starts while an IdP is down; a
// typo in an issuer shows as the provider marked unavailable on the login page
// and a warning in the log, naming the entry. The keys are fetched and
// refreshed lazily by go-oidc's remote key set.
//
// Replay: the flow state travels in the browser's cookie, which the browser
// could forge; what makes a response good is the authorization code, which
// only deputy can redeem (client authentication and the PKCE verifier) and the
// IdP redeems once, and the ID token that comes back with it must carry the
// nonce of this flow. The state parameter binds the response to the browser
// that started the flow (CSRF, RFC 6749 §10.12).
type oidcProvider struct {
	name         string
	issuer       string
	clientID     string
	oauth        oauth2.Config // without RedirectURL: that is per call
	verifier     *oidc.IDTokenVerifier
	subjectClaim string
	prefix       string
	issParam     bool // the IdP sends iss in its authorization response (RFC 9207)
	client       *http.Client
	now          func() time.Time
}

// oidcState is what deputy keeps (in the browser's cookie) between Begin and Complete.
type oidcState struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"` // the PKCE code_verifier
	Redirect string `json:"redirect_uri"`
	IssuedAt int64  `json:"iat"`
}

// oidcDiscovery is what deputy reads from the discovery document (OIDC
// Discovery §3, RFC 9207 §3) beyond what go-oidc keeps.
type oidcDiscovery struct {
	JWKSURI           string   `json:"jwks_uri"`
	SigningAlgs       []string `json:"id_token_signing_alg_values_supported"`
	TokenAuthMethods  []string `json:"token_endpoint_auth_methods_supported"`
	CodeChallenge     []string `json:"code_challenge_methods_supported"`
	IssParamSupported bool     `json:"authorization_response_iss_parameter_supported"`
}

func newOIDC(ctx context.Context, cfg config.UpstreamIdP) (Provider, error) {
	return dialOIDC(ctx, cfg, &http.Client{Timeout: OIDCHTTPTimeout}, time.Now)
}

// dialOIDC discovers the IdP and builds the provider; client makes every
// request to the IdP (go-oidc and x/oauth2 take it through their context keys).
func dialOIDC(ctx context.Context, cfg config.UpstreamIdP, client *http.Client, now func() time.Time) (Provider, error) {
	where := "upstream_idps[" + cfg.Name + "]"
	if err := oidcStaticChecks(cfg); err != nil {
		return nil, err
	}
	subjectClaim := cfg.SubjectClaim
	if subjectClaim == "" {
		subjectClaim = config.DefaultSubjectClaim
	}
	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "profile", "email"}
	}

	dctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, client), OIDCHTTPTimeout)
	defer cancel()
	op, err := oidc.NewProvider(dctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%s: OpenID Connect discovery at issuer %s: %w", where, cfg.Issuer, err)
	}
	var disc oidcDiscovery
	if err := op.Claims(&disc); err != nil {
		return nil, fmt.Errorf("%s: discovery document of issuer %s: %w", where, cfg.Issuer, err)
	}
	ep := op.Endpoint()
	if ep.AuthURL == "" || ep.TokenURL == "" || disc.JWKSURI == "" {
		return nil, fmt.Errorf("%s: discovery document of issuer %s lacks authorization_endpoint, token_endpoint or jwks_uri", where, cfg.Issuer)
	}
	if len(disc.CodeChallenge) > 0 && !slices.Contains(disc.CodeChallenge, "S256") {
		return nil, fmt.Errorf("%s: issuer %s does not support PKCE with S256 (code_challenge_methods_supported %q)", where, cfg.Issuer, disc.CodeChallenge)
	}
	algs := disc.SigningAlgs
	if len(algs) == 0 {
		algs = []string{oidc.RS256} // OIDC Discovery §3: the field is required, and RS256 must be in it
	}
	algs = slices.DeleteFunc(slices.Clone(algs), func(a string) bool { return !slices.Contains(oidcSigningAlgs, a) })
	if len(algs) == 0 {
		return nil, fmt.Errorf("%s: issuer %s signs ID tokens with none of %s (id_token_signing_alg_values_supported %q)",
			where, cfg.Issuer, strings.Join(oidcSigningAlgs, ", "), disc.SigningAlgs)
	}
	ep.AuthStyle, err = oidcAuthStyle(cfg.ClientSecret, disc.TokenAuthMethods)
	if err != nil {
		return nil, fmt.Errorf("%s: issuer %s: %w", where, cfg.Issuer, err)
	}
	return &oidcProvider{
		name:     cfg.Name,
		issuer:   cfg.Issuer,
		clientID: cfg.ClientID,
		oauth:    oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: ep, Scopes: scopes},
		// Provider.Verifier fetches the JWKS with the client given to NewProvider.
		verifier:     op.Verifier(&oidc.Config{ClientID: cfg.ClientID, SupportedSigningAlgs: algs, Now: now}),
		subjectClaim: subjectClaim,
		prefix:       cfg.SubjectPrefix,
		issParam:     disc.IssParamSupported,
		client:       client,
		now:          now,
	}, nil
}

// oidcAuthStyle picks how deputy authenticates at the token endpoint, from
// what the IdP advertises (OIDC Discovery §3; client_secret_basic when it
// says nothing), rather than trying one and then the other.
func oidcAuthStyle(secret string, methods []string) (oauth2.AuthStyle, error) {
	switch {
	case secret == "":
		return oauth2.AuthStyleInParams, nil // a public client: client_id in the form, PKCE proves the rest
	case len(methods) == 0 || slices.Contains(methods, "client_secret_basic"):
		return oauth2.AuthStyleInHeader, nil
	case slices.Contains(methods, "client_secret_post"):
		return oauth2.AuthStyleInParams, nil
	}
	return 0, fmt.Errorf("token endpoint supports neither client_secret_basic nor client_secret_post (token_endpoint_auth_methods_supported %q)", methods)
}

func (p *oidcProvider) Name() string { return p.name }

// Unavailable is nil: a discovered provider is available.
func (p *oidcProvider) Unavailable() error { return nil }

// Begin sends the browser to the IdP's authorization endpoint (OIDC Core
// §3.1.2.1) with a random state, a random nonce and a PKCE S256 challenge.
func (p *oidcProvider) Begin(_ context.Context, callbackURL string) (string, []byte, error) {
	st := oidcState{Verifier: oauth2.GenerateVerifier(), Redirect: callbackURL, IssuedAt: p.now().Unix()}
	var err error
	if st.State, err = oidcRandom(); err != nil {
		return "", nil, err
	}
	if st.Nonce, err = oidcRandom(); err != nil {
		return "", nil, err
	}
	conf := p.oauth
	conf.RedirectURL = callbackURL
	redirect := conf.AuthCodeURL(st.State, oauth2.S256ChallengeOption(st.Verifier), oidc.Nonce(st.Nonce))
	state, err := json.Marshal(st)
	if err != nil {
		return "", nil, err
	}
	return redirect, state, nil
}

func oidcRandom() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// errOIDC marks every refusal of an OpenID Connect sign-in.
var errOIDC = errors.New("OpenID Connect sign-in refused")

func oidcRefused(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errOIDC}, args...)...)
}

// Complete reads the authorization response (RFC 6749 §4.1.2, OIDC Core
// §3.1.2.5), redeems the code and validates the ID token (OIDC Core §3.1.3.7).
// The response is checked against the kept state before the code is sent
// anywhere.
func (p *oidcProvider) Complete(ctx context.Context, callbackURL string, params url.Values, state []byte) (Identity, error) {
	st, err := oidcParseState(state)
	if err != nil {
		return Identity{}, err
	}
	now := p.now()
	if st.Redirect != callbackURL {
		return Identity{}, oidcRefused("the sign-in was started for %q, not %q", st.Redirect, callbackURL)
	}
	if age := now.Sub(time.Unix(st.IssuedAt, 0)); age > OIDCFlowTTL || age < -OIDCSkew {
		return Identity{}, oidcRefused("the sign-in started %s ago; it is no longer open", age.Round(time.Second))
	}
	if s := params["state"]; len(s) != 1 || subtle.ConstantTimeCompare([]byte(s[0]), []byte(st.State)) != 1 {
		return Identity{}, oidcRefused("state does not match the sign-in started here")
	}
	// RFC 9207 §2.4: an iss that names another IdP is a mix-up; a missing one is
	// refused only from an IdP that promised to send it.
	if iss := params["iss"]; len(iss) > 1 || (len(iss) == 1 && iss[0] != p.issuer) || (len(iss) == 0 && p.issParam) {
		return Identity{}, oidcRefused("the authorization response's iss %q is not the issuer %q", iss, p.issuer)
	}
	if e := params.Get("error"); e != "" {
		return Identity{}, oidcRefused("the IdP answered error=%q error_description=%q", oidcClip(e), oidcClip(params.Get("error_description")))
	}
	code := params["code"]
	if len(code) != 1 || code[0] == "" {
		return Identity{}, oidcRefused("want exactly one code, got %d", len(code))
	}

	conf := p.oauth
	conf.RedirectURL = callbackURL
	tok, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, p.client), code[0], oauth2.VerifierOption(st.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			return Identity{}, oidcRefused("token endpoint answered error=%q error_description=%q: %w", re.ErrorCode, oidcClip(re.ErrorDescription), err)
		}
		return Identity{}, oidcRefused("token request: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, oidcRefused("the token response has no id_token")
	}
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		return Identity{}, oidcRefused("ID token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		return Identity{}, oidcRefused("ID token nonce does not match the sign-in started here")
	}
	// OIDC Core §3.1.3.8: at_hash is optional in the code flow, but when present
	// it must be the hash of the access token that came with it.
	if tok.AccessToken != "" && idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return Identity{}, oidcRefused("ID token at_hash: %w", err)
		}
	}
	var payload map[string]json.RawMessage
	if err := idt.Claims(&payload); err != nil {
		return Identity{}, oidcRefused("ID token claims: %w", err)
	}
	return p.identity(payload, idt.Audience)
}

// oidcParseState reads the kept flow state (from the browser's cookie).
func oidcParseState(b []byte) (oidcState, error) {
	var st oidcState
	if err := json.Unmarshal(b, &st); err != nil || st.State == "" || st.Nonce == "" || st.Verifier == "" {
		return oidcState{}, oidcRefused("no sign-in was started here")
	}
	return st, nil
}

// identity maps a verified ID token's claims to the local identity.
func (p *oidcProvider) identity(c map[string]json.RawMessage, aud []string) (Identity, error) {
	// OIDC Core §3.1.3.7 (4, 5): with other audiences, azp must name deputy; when
	// present, it must name deputy in any case.
	var azp string
	if raw, ok := c["azp"]; ok && json.Unmarshal(raw, &azp) != nil {
		return Identity{}, oidcRefused("ID token azp is not a string")
	}
	if (azp != "" || len(aud) > 1) && azp != p.clientID {
		return Identity{}, oidcRefused("ID token azp %q is not the client id %q (aud %q)", azp, p.clientID, aud)
	}

	var subject string
	raw, ok := c[p.subjectClaim]
	if !ok {
		return Identity{}, oidcRefused("ID token has no %q claim for the subject", p.subjectClaim)
	}
	if err := json.Unmarshal(raw, &subject); err != nil {
		return Identity{}, oidcRefused("ID token claim %q for the subject is not a string", p.subjectClaim)
	}
	if subject == "" || len(subject) > oidcMaxSubjectBytes || strings.ContainsFunc(subject, oidcControl) {
		return Identity{}, oidcRefused("the subject %q is empty, too long or has control characters", oidcClip(subject))
	}
	ident := Identity{Subject: p.prefix + subject, IdP: p.name, Claims: map[string]string{}}

	amr, err := oidcAMR(c["amr"])
	if err != nil {
		return Identity{}, err
	}
	if len(amr) == 0 {
		amr = []string{"ext"}
	}
	ident.AMR = amr
	if raw, ok := c["acr"]; ok {
		if json.Unmarshal(raw, &ident.ACR) != nil || len(ident.ACR) > oidcMaxClaimBytes || strings.ContainsFunc(ident.ACR, oidcControl) {
			return Identity{}, oidcRefused("ID token acr is not a short string")
		}
	}

	for _, name := range oidcClaims {
		raw, ok := c[name]
		if !ok {
			continue
		}
		var v any
		if json.Unmarshal(raw, &v) != nil {
			continue
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case bool:
			if name == "email_verified" {
				s = fmt.Sprint(v)
			}
		}
		if s != "" && len(s) <= oidcMaxClaimBytes && !strings.ContainsFunc(s, oidcControl) {
			ident.Claims[name] = s
		}
	}
	return ident, nil
}

// oidcAMR reads the amr claim (OIDC Core §2, values per RFC 8176): a list of
// strings; absent or null is nothing.
func oidcAMR(raw json.RawMessage) ([]string, error) {
	if raw == nil {
		return nil, nil
	}
	var amr []string
	if err := json.Unmarshal(raw, &amr); err != nil {
		return nil, oidcRefused("ID token amr is not a list of strings")
	}
	if len(amr) > oidcMaxAMR {
		return nil, oidcRefused("ID token amr has %d values, more than %d", len(amr), oidcMaxAMR)
	}
	for _, m := range amr {
		if m == "" || len(m) > 64 || strings.ContainsFunc(m, oidcControl) {
			return nil, oidcRefused("ID token amr value %q is empty, too long or has control characters", oidcClip(m))
		}
	}
	return amr, nil
}

func oidcControl(r rune) bool { return oauth.UnsafeRune(r) } // the one rule for names from outside

// oidcClip shortens text the IdP or the browser chose before it goes into an
// error (and so the audit trail).
func oidcClip(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "…"
}
