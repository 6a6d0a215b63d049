package subject

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/jwks"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/jwk"
)

// maxTrustedTokenBytes bounds a trusted issuer's token (Entra tokens with many
// groups run to a few kilobytes).
const maxTrustedTokenBytes = 64 << 10

// maxActDepth bounds the act chain a trusted issuer may assert.
const maxActDepth = 32

// Bounds of what deputy takes over from a trusted issuer's token into its audit
// trail and the tokens it issues: the subject, the jti and every sub and iss of
// an act chain (as a SAML subject: samlMaxSubjectBytes), and each mapped claim, as
// JSON. Beyond them, or with a character oauth.SafeText refuses (control
// characters, line separators, bidi overrides), the token is refused.
const (
	maxTrustedNameBytes  = samlMaxSubjectBytes
	maxTrustedClaimBytes = 8 << 10
)

// safeName reports whether a subject, jti or actor name from another issuer can
// be taken over as it is.
func safeName(s string) bool { return len(s) <= maxTrustedNameBytes && oauth.SafeText(s) }

// safeClaim reports whether every string in a decoded JSON value — object keys
// included — is safe text.
func safeClaim(x any) bool {
	switch v := x.(type) {
	case string:
		return oauth.SafeText(v)
	case []any:
		for _, e := range v {
			if !safeClaim(e) {
				return false
			}
		}
	case map[string]any:
		for k, e := range v {
			if !oauth.SafeText(k) || !safeClaim(e) {
				return false
			}
		}
	}
	return true
}

// keySource finds an issuer's public key by kid at a time (jwks.Keys from a file,
// jwks.Remote over HTTP). Safe for concurrent use.
type keySource interface {
	Lookup(ctx context.Context, kid string, now time.Time) (jwks.Key, error)
}

// trustedIssuer verifies the JWTs of one configured external issuer (design §3
// trusted_issuers, §5 subject binding).
//
// What a token says about where its key is — the jku, x5u and jwk headers — is
// never followed or trusted: a token carrying jku, x5u or jwk is refused outright,
// since such a header is either redundant (the key is in the configured JWKS) or an
// attempt to choose the key that verifies it. x5c is ignored (go-jose parses it,
// nothing here reads it): keys come from the configured JWKS only.
type trustedIssuer struct {
	cfg config.TrustedIssuer // with defaults filled in
	// given is the configuration as it was given, to tell an unchanged one on
	// reload (Options.Previous).
	given config.TrustedIssuer
	algs  []jose.SignatureAlgorithm
	keys  keySource
	skew  time.Duration
}

// trustedAlgorithms are the asymmetric signature algorithms a trusted issuer may be
// configured with; none and HS* are never among them (RFC 8725 §3.1, §3.2).
var trustedAlgorithms = map[string]jose.SignatureAlgorithm{
	"RS256": jose.RS256, "RS384": jose.RS384, "RS512": jose.RS512,
	"PS256": jose.PS256, "PS384": jose.PS384, "PS512": jose.PS512,
	"ES256": jose.ES256, "ES384": jose.ES384, "ES512": jose.ES512,
	"EdDSA": jose.EdDSA,
}

func newTrustedIssuer(_ context.Context, cfg config.TrustedIssuer, onFetch func(issuer string, err error)) (*trustedIssuer, error) {
	given := cfg
	if cfg.Issuer == "" {
		return nil, errors.New("issuer is not set")
	}
	if len(cfg.Audiences) == 0 {
		return nil, errors.New("audiences is empty: tokens must be bound to an audience")
	}
	if cfg.SubjectClaim == "" {
		cfg.SubjectClaim = config.DefaultSubjectClaim
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{config.DefaultTrustedIssuerAlgorithm}
	}
	ti := &trustedIssuer{cfg: cfg, given: given, skew: cfg.Skew.D()}
	if ti.skew == 0 {
		ti.skew = config.DefaultTrustedIssuerSkew
	}
	for _, a := range cfg.Algorithms {
		alg, ok := trustedAlgorithms[a]
		if !ok {
			return nil, fmt.Errorf("algorithm %q is not an accepted asymmetric signature algorithm", a)
		}
		ti.algs = append(ti.algs, alg)
	}
	switch {
	case cfg.JWKSFile != "" && cfg.JWKSURI != "":
		return nil, errors.New("set either jwks_uri or jwks_file, not both")
	case cfg.JWKSFile != "":
		ks, err := jwks.ReadFile(cfg.JWKSFile)
		if err != nil {
			return nil, err
		}
		ti.keys = ks
	case cfg.JWKSURI != "":
		// Fetched on first use, not here: deputy starts while the issuer is down and
		// refuses its tokens until its keys can be had.
		var opts jwks.Options
		if onFetch != nil {
			name := cfg.Name
			opts.OnFetch = func(err error) { onFetch(name, err) }
		}
		ti.keys = jwks.NewRemote(cfg.JWKSURI, opts)
	default:
		return nil, errors.New("one of jwks_uri or jwks_file must be set")
	}
	return ti, nil
}

// verifyTrusted checks a JWT whose (unverified) issuer is not deputy.
func (v *Verifier) verifyTrusted(ctx context.Context, role, raw string, typ oauth.TokenType, iss string, now time.Time) (exchange.Principal, error) {
	ti := v.trusted[iss]
	if ti == nil {
		return exchange.Principal{}, oauth.InvalidRequest(role+"_token is from an issuer this server does not trust",
			fmt.Errorf("%s token issuer %q is not in trusted_issuers", role, iss))
	}
	p, err := ti.verify(ctx, raw, typ, now)
	if err != nil {
		var u *unavailable
		if errors.As(err, &u) {
			// The issuer's outage, not the client's token: worth a retry (RFC 6749
			// §4.1.2.1 temporarily_unavailable, as deputy answers when its own
			// storage is down).
			return p, oauth.TemporarilyUnavailable(role+"_token cannot be verified now: its issuer's keys are unavailable",
				fmt.Errorf("%s token of trusted issuer %s (%s): %w", role, ti.cfg.Name, ti.cfg.Issuer, u.err))
		}
		var r *refusal
		if !errors.As(err, &r) {
			r = &refusal{"is invalid", err}
		}
		return p, oauth.InvalidRequest(role+"_token "+r.desc,
			fmt.Errorf("%s token of trusted issuer %s (%s): %w", role, ti.cfg.Name, ti.cfg.Issuer, r.cause))
	}
	return p, nil
}

// refusal is why a trusted issuer's token is refused: the end of the client-facing
// sentence (after "subject_token ") and the precise cause, for the audit record.
type refusal struct {
	desc  string
	cause error
}

func (r *refusal) Error() string { return r.cause.Error() }
func (r *refusal) Unwrap() error { return r.cause }

// unavailable is a trusted issuer's key set that cannot be had now
// (jwks.ErrUnavailable): no verdict on the token.
type unavailable struct{ err error }

func (u *unavailable) Error() string { return u.err.Error() }
func (u *unavailable) Unwrap() error { return u.err }

func refuse(desc string, format string, args ...any) error {
	return &refusal{desc, fmt.Errorf(format, args...)}
}

// trustedClaims are the registered claims read from a trusted issuer's token.
type trustedClaims struct {
	Issuer   string         `json:"iss"`
	Audience token.Audience `json:"aud"`
	Expiry   *json.Number   `json:"exp"`
	NotBef   *json.Number   `json:"nbf"`
	IssuedAt *json.Number   `json:"iat"`
	ID       string         `json:"jti"`
}

// verify checks raw, declared as typ, at now. On a refusal after the signature was
// verified the returned principal still names issuer and subject, for the audit.
func (ti *trustedIssuer) verify(ctx context.Context, raw string, typ oauth.TokenType, now time.Time) (exchange.Principal, error) {
	if len(raw) > maxTrustedTokenBytes {
		return exchange.Principal{}, refuse("is too large", "%d bytes, at most %d", len(raw), maxTrustedTokenBytes)
	}
	if strings.Count(raw, ".") != 2 {
		return exchange.Principal{}, refuse("is not a signed JWT", "not a compact JWS")
	}
	jws, err := jose.ParseSignedCompact(raw, ti.algs)
	if err != nil {
		if strings.Contains(err.Error(), "unexpected signature algorithm") {
			return exchange.Principal{}, refuse("is signed with an algorithm this server does not accept from its issuer",
				"%v (allowed: %v)", err, ti.cfg.Algorithms)
		}
		return exchange.Principal{}, refuse("is not a well-formed signed JWT", "%v", err)
	}
	if len(jws.Signatures) != 1 {
		return exchange.Principal{}, refuse("is not a well-formed signed JWT", "%d signatures", len(jws.Signatures))
	}
	h := jws.Signatures[0].Header
	if err := foreignKeyHeaders(h); err != nil {
		return exchange.Principal{}, err
	}
	if typ == oauth.TokenTypeIDToken {
		if t, _ := h.ExtraHeaders[jose.HeaderType].(string); strings.EqualFold(t, oauth.JWTTypeAccessToken) {
			return exchange.Principal{}, refuse("is not of the declared subject_token_type", "typ %q declared as id_token", t)
		}
	}
	key, err := ti.keys.Lookup(ctx, h.KeyID, now)
	if err != nil {
		if errors.Is(err, jwks.ErrUnavailable) {
			return exchange.Principal{}, &unavailable{err}
		}
		return exchange.Principal{}, refuse("is signed by a key its issuer does not publish", "%w", err)
	}
	alg := jose.SignatureAlgorithm(h.Algorithm)
	if err := keyFits(key, alg); err != nil {
		return exchange.Principal{}, refuse("is signed with an algorithm that does not match its key", "kid %q: %v", h.KeyID, err)
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return exchange.Principal{}, refuse("signature is invalid", "kid %q, %s: %v", h.KeyID, alg, err)
	}

	var c trustedClaims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return exchange.Principal{}, refuse("has malformed claims", "%v", err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(payload, &all); err != nil {
		return exchange.Principal{}, refuse("has malformed claims", "%v", err)
	}
	p := exchange.Principal{TokenType: typ, Issuer: ti.cfg.Name, IssuerURL: c.Issuer, Audiences: c.Audience, JTI: c.ID}
	if s, ok := stringClaim(all, ti.cfg.SubjectClaim); ok {
		p.Subject = s // named in the audit record even when refused below
	}
	if c.Issuer != ti.cfg.Issuer {
		return exchange.Principal{}, refuse("is from an issuer this server does not trust", "iss %q, want %q", c.Issuer, ti.cfg.Issuer)
	}
	exp, ok := unixTime(c.Expiry)
	if !ok {
		return p, refuse("has no valid exp claim", "exp missing or not a number")
	}
	p.ExpiresAt = exp
	if !now.Before(exp.Add(ti.skew)) {
		return p, refuse("is expired", "exp %s, now %s, skew %v", exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ti.skew)
	}
	if c.NotBef != nil {
		nbf, ok := unixTime(c.NotBef)
		if !ok {
			return p, refuse("has a malformed nbf claim", "nbf not a number")
		}
		if now.Add(ti.skew).Before(nbf) {
			return p, refuse("is not yet valid", "nbf %s, now %s, skew %v", nbf.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ti.skew)
		}
	}
	if c.IssuedAt != nil {
		iat, ok := unixTime(c.IssuedAt)
		if !ok {
			return p, refuse("has a malformed iat claim", "iat not a number")
		}
		if now.Add(ti.skew).Before(iat) {
			return p, refuse("is not yet valid", "iat %s is in the future (now %s, skew %v)", iat.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ti.skew)
		}
	}
	if !anyOf(c.Audience, ti.cfg.Audiences) {
		return p, refuse("is not addressed to this server", "aud %v holds none of %v", []string(c.Audience), ti.cfg.Audiences)
	}
	if p.Subject == "" {
		return p, refuse("has no "+ti.cfg.SubjectClaim+" claim", "subject_claim %q missing, empty or not a string", ti.cfg.SubjectClaim)
	}
	if !safeName(p.Subject) {
		sub := p.Subject
		p.Subject = "" // not even in the audit record
		return p, refuse("has a "+ti.cfg.SubjectClaim+" claim with control characters or longer than "+strconv.Itoa(maxTrustedNameBytes)+" bytes",
			"subject_claim %q: %d bytes, %.64q", ti.cfg.SubjectClaim, len(sub), sub)
	}
	if !safeName(p.JTI) {
		jti := p.JTI
		p.JTI = ""
		return p, refuse("has a malformed jti claim", "jti of %d bytes, %.64q", len(jti), jti)
	}
	for _, k := range slices.Sorted(maps.Keys(ti.cfg.RequiredClaims)) {
		if !claimHolds(all[k], ti.cfg.RequiredClaims[k]) {
			return p, refuse("does not have the "+k+" this server requires", "required claim %s is not %q", k, ti.cfg.RequiredClaims[k])
		}
	}
	if rawAct, ok := all["act"]; ok && string(rawAct) != "null" {
		act, err := parseAct(rawAct, c.Issuer)
		if err != nil {
			return p, refuse("has a malformed act claim", "%v", err)
		}
		p.Act = act
	}
	if rawCnf, ok := all["cnf"]; ok && string(rawCnf) != "null" {
		if p.Cnf, err = parseCnf(rawCnf); err != nil {
			return p, err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(ti.cfg.Claims)) {
		v, ok := all[ti.cfg.Claims[k]]
		if !ok || string(v) == "null" {
			continue
		}
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			return p, refuse("has malformed claims", "claim %s: %v", ti.cfg.Claims[k], err)
		}
		if len(v) > maxTrustedClaimBytes || !safeClaim(x) {
			return p, refuse("has a "+ti.cfg.Claims[k]+" claim with control characters or larger than "+strconv.Itoa(maxTrustedClaimBytes)+" bytes",
				"claim %s (mapped to %s): %d bytes", ti.cfg.Claims[k], k, len(v))
		}
		if p.Claims == nil {
			p.Claims = map[string]any{}
		}
		p.Claims[k] = x
	}
	// The claims only an ID token carries (OpenID Connect Core §2 nonce, §3.1.3.6
	// at_hash, §3.3.2.11 c_hash), sorted: the exchange refuses a token with any
	// as an on-behalf-of assertion.
	for _, k := range [...]string{"at_hash", "c_hash", "nonce"} {
		if v, ok := all[k]; ok && string(v) != "null" {
			p.IDTokenClaims = append(p.IDTokenClaims, k)
		}
	}
	// Scopes stay nil: a foreign issuer's scopes belong to its own domain (design §5).
	return p, nil
}

// parseCnf reads a trusted issuer's cnf claim (RFC 7800 §3.1) so that a
// sender-constrained token stays one through the exchange: exactly one of jkt (RFC
// 9449 §6.1) or x5t#S256 (RFC 8705 §3.1), a base64url thumbprint. A token bound
// any other way (a jwk, a kid, both) is refused rather than taken for a bearer
// token, as deputy could not keep that binding.
func parseCnf(raw json.RawMessage) (*oauth.Confirmation, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, refuse("has a malformed cnf claim", "cnf is not a JSON object")
	}
	if len(m) != 1 || (m["jkt"] == nil && m["x5t#S256"] == nil) {
		return nil, refuse("is bound to a key in a way this server cannot check",
			"cnf members %q: only one of jkt or x5t#S256 is supported", slices.Sorted(maps.Keys(m)))
	}
	var c oauth.Confirmation
	name, v := "jkt", &c.JKT
	if m["jkt"] == nil {
		name, v = "x5t#S256", &c.X5TS256
	}
	if err := json.Unmarshal(m[name], v); err != nil || !thumbprint(*v) {
		return nil, refuse("has a malformed cnf claim", "cnf %s is not a base64url thumbprint", name)
	}
	return &c, nil
}

// thumbprint reports whether s is a plausible base64url (no padding) SHA-2
// thumbprint: 1 to 128 characters of the base64url alphabet.
func thumbprint(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// foreignKeyHeaders refuses the headers by which a token names its own key or
// where to fetch one (RFC 7515 §4.1.2–4.1.5), and critical extensions deputy does
// not implement (§4.1.11).
func foreignKeyHeaders(h jose.Header) error {
	if h.JSONWebKey != nil {
		return refuse("carries its own key (jwk header), which this server never trusts", "jwk header present")
	}
	for _, name := range []jose.HeaderKey{"jku", "x5u"} {
		if _, ok := h.ExtraHeaders[name]; ok {
			return refuse("names a key location ("+string(name)+" header), which this server never follows", "%s header present", name)
		}
	}
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return refuse("has critical header extensions this server does not understand", "crit header present")
	}
	return nil
}

// keyFits checks that key may verify alg: the check the SDK makes of deputy's own
// keys (type, curve, the key's alg, RSA of 2048 bits or more).
func keyFits(key jwks.Key, alg jose.SignatureAlgorithm) error {
	return jwk.Fits(key, alg)
}

// unixTime reads a NumericDate (RFC 7519 §2), which may have a fraction.
func unixTime(n *json.Number) (time.Time, bool) {
	if n == nil {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f <= 0 || f > 1<<40 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

func stringClaim(all map[string]json.RawMessage, name string) (string, bool) {
	var s string
	if raw, ok := all[name]; !ok || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// claimHolds reports whether a claim is the string want or an array holding it.
func claimHolds(raw json.RawMessage, want string) bool {
	if raw == nil {
		return false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s == want
	}
	var l []string
	if json.Unmarshal(raw, &l) == nil {
		for _, x := range l {
			if x == want {
				return true
			}
		}
	}
	return false
}

func anyOf(have, want []string) bool {
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}

// parseAct reads an act claim asserted by a trusted issuer (RFC 8693 §4.1) and
// keeps identity only: sub and iss at each level. An actor without iss is in the
// asserting issuer's namespace, so iss is set to it.
func parseAct(raw json.RawMessage, iss string) (*oauth.Actor, error) {
	var a oauth.Actor
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	depth := 0
	for x := &a; x != nil; x = x.Actor {
		depth++
		if depth > maxActDepth {
			return nil, fmt.Errorf("act nested deeper than %d", maxActDepth)
		}
		if x.Subject == "" {
			return nil, fmt.Errorf("act at depth %d has no sub", depth)
		}
		if !safeName(x.Subject) || !safeName(x.Issuer) {
			return nil, fmt.Errorf("act at depth %d: sub or iss with control characters or longer than %d bytes", depth, maxTrustedNameBytes)
		}
		if x.Issuer == "" {
			x.Issuer = iss
		}
	}
	return &a, nil
}
