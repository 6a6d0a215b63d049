package verify

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/deputy-auth/deputy/oauth"
)

// Limits and defaults.
const (
	// MaxTokenBytes is the largest token Verify reads; longer ones are refused
	// before any parsing.
	MaxTokenBytes = 16 << 10
	// DefaultLeeway is Config.Leeway's default.
	DefaultLeeway = 30 * time.Second
	// MaxLeeway is the largest Config.Leeway accepted.
	MaxLeeway = 5 * time.Minute
	// DefaultTimeout is the timeout of the HTTP client used when Config.HTTPClient
	// is nil.
	DefaultTimeout = 10 * time.Second
)

// algorithms is the allow-list of JWS algorithms (RFC 7518 §3.1) a token may be
// signed with: those deputy can sign with, and ES384. Never "none" nor HMAC.
var algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.EdDSA, jose.RS256, jose.PS256}

// refusedHeaders are JOSE header parameters that point at or carry a key (RFC 7515
// §4.1.2-4.1.6), declare extensions (§4.1.11), or leave the payload unencoded
// (RFC 7797). A token's key is deputy's, named by kid in deputy's JWKS, and nothing
// else; deputy signs none of these: a token carrying any of them is refused.
var refusedHeaders = []string{"jku", "jwk", "x5u", "x5c", "crit", "b64"}

// Config configures a Verifier.
type Config struct {
	// Issuer is deputy's issuer URL (required). The metadata at
	// Issuer+"/.well-known/oauth-authorization-server" gives jwks_uri and
	// introspection_endpoint unless they are set below. A token's iss must equal
	// it exactly.
	Issuer string
	// Audience is this service's audience id, e.g. "https://api2.example"
	// (required): a token's aud must contain it.
	Audience string
	// JWKSURL overrides the metadata's jwks_uri.
	JWKSURL string
	// HTTPClient makes the requests to deputy; nil means a client with
	// DefaultTimeout. Every request is also bounded by 10 seconds.
	HTTPClient *http.Client
	// Leeway is the clock skew tolerated on exp, nbf and iat; zero means
	// DefaultLeeway. At most MaxLeeway.
	Leeway time.Duration

	// Introspect turns on introspection mode: every token that passes the JWT
	// checks is also checked at deputy's introspection endpoint (RFC 7662) with
	// ClientID and ClientSecret (client_secret_basic), so a revoked token is
	// refused at once. It costs one request to deputy per Verify.
	Introspect             bool
	ClientID, ClientSecret string
	// IntrospectionURL overrides the metadata's introspection_endpoint.
	IntrospectionURL string

	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time

	// RequireBinding makes the middleware and VerifyRequest refuse every token that
	// is not sender-constrained: only DPoP-bound tokens (cnf.jkt, RFC 9449 §6) with
	// their proof and certificate-bound tokens (cnf["x5t#S256"], RFC 8705 §3) with
	// their TLS client certificate are accepted. Bound tokens are always checked
	// against their key, with or without it.
	RequireBinding bool
	// BaseURL is this service's external URL as its clients call it, e.g.
	// "https://api2.example" or "https://gateway.example/ledger" behind a proxy: a
	// DPoP proof's htu must be BaseURL followed by the request's path (RFC 9449 §4.3
	// step 9). Empty means the scheme (https when the request came over TLS), Host
	// and path of the request itself.
	BaseURL string
	// RequestURL, when set, returns the URL a client used to send r, without query
	// and fragment (the htu a proof must carry); it takes precedence over BaseURL.
	RequestURL func(r *http.Request) string
	// DPoPMaxAge is how old a DPoP proof's iat may be; zero means DefaultDPoPMaxAge.
	// A proof may also be up to DPoPSkew in the future.
	DPoPMaxAge time.Duration
	// DPoPNonces, when set, requires a server-provided nonce in every DPoP proof
	// (RFC 9449 §9): a proof without a valid one is answered 401 use_dpop_nonce with
	// a fresh nonce in the DPoP-Nonce header. NewNonces makes a stateless source
	// that every replica sharing its key accepts.
	DPoPNonces NonceSource
	// DPoPReplayEntries bounds the per-process cache of DPoP proof jti values seen in
	// the last DPoPMaxAge; zero means DefaultDPoPReplayEntries. When it is full the
	// entries nearest their expiry are dropped first.
	DPoPReplayEntries int
}

// Verifier checks deputy's access tokens for one audience. Safe for concurrent use.
type Verifier struct {
	issuer     string
	audience   string
	leeway     time.Duration
	now        func() time.Time
	keys       *keyCache
	introspect *introspector // nil unless Config.Introspect

	requireBinding bool
	baseURL        string                     // without a trailing slash
	externalURL    func(*http.Request) string // Config.RequestURL
	dpopMaxAge     time.Duration
	nonces         NonceSource
	replay         *replayCache
}

// New validates cfg and returns a Verifier. It does no network I/O (ctx is unused):
// deputy's metadata and JWKS are fetched lazily, on the first Verify, so a service
// starts while deputy is down and answers 503 until deputy is back.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: DefaultTimeout}
	}
	v := &Verifier{issuer: cfg.Issuer, audience: cfg.Audience, leeway: cfg.Leeway, now: cfg.Now,
		requireBinding: cfg.RequireBinding, baseURL: strings.TrimSuffix(cfg.BaseURL, "/"),
		externalURL: cfg.RequestURL, dpopMaxAge: cfg.DPoPMaxAge, nonces: cfg.DPoPNonces}
	if v.dpopMaxAge == 0 {
		v.dpopMaxAge = DefaultDPoPMaxAge
	}
	entries := cfg.DPoPReplayEntries
	if entries == 0 {
		entries = DefaultDPoPReplayEntries
	}
	v.replay = newReplayCache(entries)
	if v.leeway == 0 {
		v.leeway = DefaultLeeway
	}
	if v.now == nil {
		v.now = time.Now
	}
	disc := newDiscovery(cfg.Issuer, client)
	v.keys = newKeyCache(client, func(ctx context.Context, now time.Time) (string, error) {
		if cfg.JWKSURL != "" {
			return cfg.JWKSURL, nil
		}
		m, err := disc.get(ctx, now)
		if err != nil {
			return "", err
		}
		if m.JWKSURI == "" {
			return "", errors.New("deputy's metadata has no jwks_uri")
		}
		return m.JWKSURI, nil
	})
	if cfg.Introspect {
		v.introspect = &introspector{client: client, clientID: cfg.ClientID, secret: cfg.ClientSecret,
			url: func(ctx context.Context, now time.Time) (string, error) {
				if cfg.IntrospectionURL != "" {
					return cfg.IntrospectionURL, nil
				}
				m, err := disc.get(ctx, now)
				if err != nil {
					return "", err
				}
				if m.IntrospectionEndpoint == "" {
					return "", errors.New("deputy's metadata has no introspection_endpoint")
				}
				return m.IntrospectionEndpoint, nil
			}}
	}
	return v, nil
}

// validate checks cfg with a table of checks, each naming its field, and reports
// every failure.
func (cfg *Config) validate() error {
	endpoint := func(u string) bool { return u != "" && checkEndpoint(u) != nil }
	checks := []struct {
		bad     bool
		message string
	}{
		{cfg.Issuer == "", "Issuer is required"},
		{endpoint(cfg.Issuer), "Issuer must be an absolute http(s) URL"},
		{cfg.Audience == "", "Audience is required"},
		{endpoint(cfg.JWKSURL), "JWKSURL must be an absolute http(s) URL"},
		{endpoint(cfg.IntrospectionURL), "IntrospectionURL must be an absolute http(s) URL"},
		{cfg.Leeway < 0, "Leeway must not be negative"},
		{cfg.Leeway > MaxLeeway, fmt.Sprintf("Leeway must be at most %s", MaxLeeway)},
		{cfg.Introspect && cfg.ClientID == "", "ClientID is required with Introspect"},
		{cfg.Introspect && cfg.ClientSecret == "", "ClientSecret is required with Introspect"},
		{cfg.BaseURL != "" && !baseURLOK(cfg.BaseURL), "BaseURL must be an absolute http(s) URL without query or fragment"},
		{cfg.DPoPMaxAge < 0, "DPoPMaxAge must not be negative"},
		{cfg.DPoPMaxAge > MaxDPoPMaxAge, fmt.Sprintf("DPoPMaxAge must be at most %s", MaxDPoPMaxAge)},
		{cfg.DPoPReplayEntries < 0, "DPoPReplayEntries must not be negative"},
	}
	var errs []error
	for _, c := range checks {
		if c.bad {
			errs = append(errs, errors.New("verify: config: "+c.message))
		}
	}
	return errors.Join(errs...)
}

// Principal is what a verified token says: who the subject is, which client holds
// the token, and — for a token obtained by exchange — the chain of actors (RFC 8693
// §4.1).
type Principal struct {
	Subject  string
	Issuer   string
	ClientID string // client_id claim: the client the token was issued to (the caller)
	Audience []string
	Scopes   []string
	// Act is the nested act claim; the outermost Actor is the current actor.
	Act *oauth.Actor
	// Actors is the act chain as a list, current actor first (Act.Chain()).
	Actors    []string
	JTI       string
	ExpiresAt time.Time
	// Claims are all the token's claims as encoding/json decodes them.
	Claims map[string]any
	// Cnf is the key the token is bound to (RFC 7800 §3.1), nil for a bearer token.
	// A Principal with Cnf comes only from a request that proved that key: a DPoP
	// proof (RFC 9449 §7) or the TLS client certificate (RFC 8705 §3).
	Cnf *oauth.Confirmation
}

// HasScope reports whether the token grants scope s (exact, case-sensitive match).
func (p *Principal) HasScope(s string) bool {
	return p != nil && slices.Contains(p.Scopes, s)
}

// Verify checks raw, an access token presented to this service, and returns its
// Principal. The checks, in order: size (MaxTokenBytes); compact JWS; header typ
// "at+jwt" or "application/at+jwt" (RFC 9068 §2.1); alg in the allow-list; no
// jku, jwk, x5u, x5c, crit or b64 header; a kid deputy publishes, whose key fits alg;
// the signature; iss equal to Config.Issuer; a sub; aud containing
// Config.Audience; exp in the future and nbf and iat not in it, within Leeway; no
// cnf (a sender-constrained token is not a bearer token, RFC 9449 §7.1: its key is
// proved with the request, which VerifyRequest and the middleware check); and in
// introspection mode, that deputy still calls the token active.
//
// Errors are *oauth.Error values that wrap ErrInvalidToken or ErrUnavailable.
// Verify never returns both a Principal and an error.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Principal, error) {
	now := v.now()
	p, err := v.verifyJWT(ctx, raw, now)
	if err != nil {
		return nil, err
	}
	if p.Cnf != nil {
		return nil, invalidToken("token is sender-constrained (cnf) and is not accepted as a bearer token", nil)
	}
	if v.introspect != nil {
		if err := v.introspect.check(ctx, raw, now); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// header is the part of a token's protected header Verify reads, decoded before any
// key is looked up.
type header struct {
	Algorithm string // alg
	KeyID     string // kid
	Type      string // typ
}

func (v *Verifier) verifyJWT(ctx context.Context, raw string, now time.Time) (*Principal, error) {
	payload, err := v.verifySigned(ctx, raw, now, accessTokenType)
	if err != nil {
		return nil, err
	}
	c, err := parseClaims(payload)
	if err != nil {
		return nil, invalidToken("token claims are malformed", err)
	}
	if err := v.checkClaims(c, now); err != nil {
		return nil, err
	}
	return c.principal(), nil
}

// tokenType is the JWT typ a kind of token must carry (RFC 8725 §3.11): explicit
// typing keeps one kind of deputy's tokens from being accepted as another.
type tokenType struct {
	typ  string // e.g. "at+jwt"; "application/"+typ is accepted too
	what string // how an error names the kind, e.g. "a JWT access token"
}

// accessTokenType is RFC 9068 §2.1's.
var accessTokenType = tokenType{typ: oauth.JWTTypeAccessToken, what: "a JWT access token"}

// verifySigned applies the checks of a token's form, header and signature: size
// (MaxTokenBytes), compact JWS, the header checks of parseHeader for want, a kid
// deputy publishes whose key fits alg, the signature. It returns the verified
// payload.
func (v *Verifier) verifySigned(ctx context.Context, raw string, now time.Time, want tokenType) ([]byte, error) {
	switch {
	case raw == "":
		return nil, invalidToken("token is empty", nil)
	case len(raw) > MaxTokenBytes:
		return nil, invalidToken("token is too large", fmt.Errorf("%d bytes, limit %d", len(raw), MaxTokenBytes))
	case strings.Count(raw, ".") != 2:
		return nil, invalidToken("token is not a compact JWS", nil)
	}
	h, err := parseHeader(raw[:strings.IndexByte(raw, '.')], want)
	if err != nil {
		return nil, err
	}
	alg := jose.SignatureAlgorithm(h.Algorithm)
	jws, err := jose.ParseSignedCompact(raw, algorithms)
	if err != nil {
		return nil, invalidToken("token is malformed", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, invalidToken("token is malformed", errors.New("not exactly one signature"))
	}
	// go-jose read the header on its own: it must have read the same one.
	if ph := jws.Signatures[0].Protected; ph.Algorithm != h.Algorithm || ph.KeyID != h.KeyID || ph.JSONWebKey != nil {
		return nil, invalidToken("token header is ambiguous", nil)
	}
	key, err := v.keys.lookup(ctx, h.KeyID, now)
	if err != nil {
		return nil, err
	}
	if !keyFits(key, alg) {
		return nil, invalidToken("token algorithm does not match its key",
			fmt.Errorf("alg %s, key %q is %T with alg %q", alg, key.KeyID, key.Key, key.Algorithm))
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, invalidToken("token signature is invalid", err)
	}
	return payload, nil
}

// parseHeader decodes the protected header and applies the checks that need no key:
// no refused parameter, the typ of want, an allowed alg, a kid.
func parseHeader(segment string, want tokenType) (*header, error) {
	b, err := base64.RawURLEncoding.DecodeString(segment)
	if err != nil {
		return nil, invalidToken("token header is malformed", err)
	}
	var params map[string]json.RawMessage
	if err := json.Unmarshal(b, &params); err != nil {
		return nil, invalidToken("token header is malformed", err)
	}
	for _, name := range refusedHeaders {
		if _, ok := params[name]; ok {
			return nil, invalidToken("token header carries "+name+", which is refused", nil)
		}
	}
	var h header
	for name, dst := range map[string]*string{"alg": &h.Algorithm, "kid": &h.KeyID, "typ": &h.Type} {
		if p, ok := params[name]; ok {
			if err := json.Unmarshal(p, dst); err != nil {
				return nil, invalidToken("token header is malformed", fmt.Errorf("%s: %v", name, err))
			}
		}
	}
	if !want.is(h.Type) {
		return nil, invalidToken("token is not "+want.what+" (typ must be "+want.typ+")", fmt.Errorf("typ %q", h.Type))
	}
	if !slices.Contains(algorithms, jose.SignatureAlgorithm(h.Algorithm)) {
		return nil, invalidToken("token algorithm is not allowed", fmt.Errorf("alg %q", h.Algorithm))
	}
	if h.KeyID == "" {
		return nil, invalidToken("token names no key (kid)", nil)
	}
	return &h, nil
}

// is reports whether typ is t's typ or its full media type; media types are
// case-insensitive (RFC 7515 §4.1.9).
func (t tokenType) is(typ string) bool {
	return strings.EqualFold(typ, t.typ) || strings.EqualFold(typ, "application/"+t.typ)
}

// claims are the claims Verify checks and maps to a Principal (RFC 9068 §2.2,
// RFC 8693 §4).
type claims struct {
	Issuer    string
	Subject   string
	Audience  jwt.Audience
	Expiry    *jwt.NumericDate
	NotBefore *jwt.NumericDate
	IssuedAt  *jwt.NumericDate
	ID        string
	ClientID  string
	Scope     string
	Act       *oauth.Actor
	Cnf       *oauth.Confirmation
	All       map[string]any
}

// parseClaims decodes a payload. Each claim is read under its exact name
// (encoding/json would match struct fields case-insensitively).
func parseClaims(payload []byte) (*claims, error) {
	var params map[string]json.RawMessage
	if err := json.Unmarshal(payload, &params); err != nil {
		return nil, err
	}
	if params == nil {
		return nil, errors.New("payload is not a JSON object")
	}
	c := &claims{}
	if p, ok := params["cnf"]; ok && string(p) != "null" {
		cnf, err := parseConfirmation(p)
		if err != nil {
			return nil, fmt.Errorf("claim cnf: %w", err)
		}
		c.Cnf = cnf
	}
	for name, dst := range map[string]any{
		"iss": &c.Issuer, "sub": &c.Subject, "aud": &c.Audience, "exp": &c.Expiry, "nbf": &c.NotBefore,
		"iat": &c.IssuedAt, "jti": &c.ID, "client_id": &c.ClientID, "scope": &c.Scope, "act": &c.Act,
	} {
		if p, ok := params[name]; ok {
			if err := json.Unmarshal(p, dst); err != nil {
				return nil, fmt.Errorf("claim %s: %v", name, err)
			}
		}
	}
	if err := json.Unmarshal(payload, &c.All); err != nil {
		return nil, err
	}
	return c, nil
}

// checkClaims applies RFC 9068 §4 to the verified claims.
func (v *Verifier) checkClaims(c *claims, now time.Time) error {
	switch {
	case c.Issuer != v.issuer:
		return invalidToken("token is from another issuer", fmt.Errorf("iss %q, want %q", c.Issuer, v.issuer))
	case c.Subject == "":
		return invalidToken("token has no subject (sub)", nil)
	case !slices.Contains(c.Audience, v.audience):
		return invalidToken("token is not for this audience", fmt.Errorf("aud %q, want %q", []string(c.Audience), v.audience))
	case c.Expiry == nil:
		return invalidToken("token has no expiry (exp)", nil)
	case !now.Before(c.Expiry.Time().Add(v.leeway)):
		return invalidToken("token is expired", fmt.Errorf("exp %s, now %s", c.Expiry.Time().UTC(), now.UTC()))
	case c.NotBefore != nil && c.NotBefore.Time().After(now.Add(v.leeway)):
		return invalidToken("token is not valid yet (nbf)", fmt.Errorf("nbf %s, now %s", c.NotBefore.Time().UTC(), now.UTC()))
	case c.IssuedAt != nil && c.IssuedAt.Time().After(now.Add(v.leeway)):
		return invalidToken("token is issued in the future (iat)", fmt.Errorf("iat %s, now %s", c.IssuedAt.Time().UTC(), now.UTC()))
	}
	for a := c.Act; a != nil; a = a.Actor {
		if a.Subject == "" {
			return invalidToken("token act claim is malformed", errors.New("an actor without sub"))
		}
	}
	return nil
}

func (c *claims) principal() *Principal {
	return &Principal{
		Subject:   c.Subject,
		Issuer:    c.Issuer,
		ClientID:  c.ClientID,
		Audience:  []string(c.Audience),
		Scopes:    strings.Fields(c.Scope),
		Act:       c.Act,
		Actors:    c.Act.Chain(),
		JTI:       c.ID,
		ExpiresAt: c.Expiry.Time(),
		Claims:    c.All,
		Cnf:       c.Cnf,
	}
}
