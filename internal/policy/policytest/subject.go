package policytest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/oauth"
)

// Principal is the subject token s describes, as the subject verifier
// (internal/subject) would hand it to the exchange for client at now. Claims the
// verifier would refuse the token for, or never hand on from a token of that
// source, are a *UsageError naming the claim: a description the server could not
// produce would make a test pass that the server fails.
//
// Every source:
//   - type: "" is access_token (saml2 for a saml_idps issuer); a refresh token is
//     deputy's own, a saml2 assertion a saml_idps issuer's;
//   - iss: when given, it must be the named issuer's;
//   - sub and jti: as given;
//   - exp: a NumericDate; when absent, now plus the access token lifetime;
//   - iat and nbf: dropped, as the verifiers drop them.
//
// Deputy's own tokens (issuer self), as verifyOwn, verifyOwnIDToken and
// verifyRefresh build them:
//   - aud: a string or a list; when absent, the audience whose client the client
//     is, else the client id, so that a description is not refused for its
//     addressee;
//   - scope (space-separated), act, may_act ({sub, iss, act}), client_id, cnf
//     ({jkt} or {"x5t#S256"});
//   - auth_time an int64 (whole seconds), acr a string, amr a list of strings, as
//     the token's typed claims: a condition sees them with those types
//     (timestamp(subject.claims.auth_time)); zero or empty, they are dropped;
//   - every other claim as encoding/json decodes it (numbers float64, lists
//     []any), except sid, which is dropped;
//   - an ID token grants nothing: client_id or scope is refused (the server takes
//     such a JWT for not an ID token), may_act and cnf too (an ID token has none);
//     azp (default: the client) is its ClientID, and azp, nonce, at_hash and
//     c_hash never reach subject.claims;
//   - a refresh token's client_id defaults to the client (one is exchanged only by
//     the client it was issued to); it has no may_act, a cnf only of a DPoP key
//     (jkt), and idp, when given, is a string.
//
// A trusted issuer's token, as trusted.go verifies it: aud must hold one of its
// audiences (default: its first), act (an actor without iss is the issuer's) and
// cnf (exactly one of jkt and x5t#S256); subject.claims holds only the claims
// its trusted_issuers[].claims maps, under deputy's names, as encoding/json
// decodes them (null ones dropped). Any other claim — scope, client_id, may_act
// included — is refused: the server never shows it.
//
// A SAML IdP's assertion, as saml2.go verifies it: no aud, act, may_act, cnf,
// scope nor client_id; subject.claims holds only email, name, given_name,
// family_name and preferred_username, each a string (its attributes' values).
func (e *Env) Principal(client string, s Subject, now time.Time) (exchange.Principal, error) {
	p := exchange.Principal{Issuer: cmp.Or(s.Issuer, config.SubjectIssuerSelf)}
	self := p.Issuer == config.SubjectIssuerSelf
	ti, idp := e.trusted(p.Issuer), e.samlIdP(p.Issuer)
	switch {
	case self:
		p.IssuerURL = e.cfg.Issuer
	case ti != nil:
		p.IssuerURL = ti.Issuer
	case idp != nil:
		p.IssuerURL = idp.EntityID
	default:
		return p, usage("subject issuer %q is neither self nor a trusted_issuers or saml_idps name", p.Issuer)
	}
	var err error
	if p.TokenType, err = subjectType(s.Type, p.Issuer, self, idp != nil); err != nil {
		return p, err
	}

	all := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(s.Claims)) > 0 {
		if err := json.Unmarshal(s.Claims, &all); err != nil || all == nil {
			return p, usage("subject claims are not a JSON object: %v", errOr(err, "null"))
		}
	}
	var c registeredClaims
	dec := json.NewDecoder(bytes.NewReader(orEmpty(s.Claims)))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return p, usage("subject claims: %v", err)
	}
	if c.Iss != nil && *c.Iss != p.IssuerURL {
		return p, usage("subject claims: iss %q is not issuer %s's (%s)", *c.Iss, p.Issuer, p.IssuerURL)
	}
	p.Subject, p.JTI = c.Sub, c.JTI
	p.ExpiresAt = now.Add(e.cfg.Tokens.AccessTokenTTL.D())
	if c.Exp != nil {
		if p.ExpiresAt, err = numericDate(*c.Exp, self); err != nil {
			return p, err
		}
	}
	switch {
	case self:
		err = e.ownToken(&p, client, all, &c)
	case ti != nil:
		err = trustedToken(&p, ti, all, &c)
	default:
		err = samlAssertion(&p, idp, all)
	}
	return p, err
}

// registeredClaims are the claims read into a principal's own fields.
type registeredClaims struct {
	Iss      *string             `json:"iss"`
	Sub      string              `json:"sub"`
	Aud      json.RawMessage     `json:"aud"`
	Scope    string              `json:"scope"`
	Act      *oauth.Actor        `json:"act"`
	MayAct   *oauth.Actor        `json:"may_act"`
	ClientID string              `json:"client_id"`
	JTI      string              `json:"jti"`
	Exp      *json.Number        `json:"exp"`
	Cnf      *oauth.Confirmation `json:"cnf"`
}

// subjectType is the token type a description declares, for its issuer.
func subjectType(short, issuer string, self, saml bool) (oauth.TokenType, error) {
	t := oauth.TokenTypeAccessToken
	if saml {
		t = oauth.TokenTypeSAML2
	}
	if short != "" {
		var ok bool
		if t, ok = oauth.TokenTypeFromShort(short); !ok || t == oauth.TokenTypeSAML1 {
			return t, usage("subject type %q is not one of access_token, jwt, id_token, refresh_token, saml2, txn_token", short)
		}
	}
	switch {
	case saml && t != oauth.TokenTypeSAML2:
		return t, usage("subject issuer %s is a SAML IdP: its subject tokens are saml2 assertions, not %s", issuer, t.ShortName())
	case !saml && t == oauth.TokenTypeSAML2:
		return t, usage("a saml2 subject token comes from a saml_idps issuer; %s is not one", issuer)
	case !self && t == oauth.TokenTypeRefreshToken:
		return t, usage("a refresh_token subject token is deputy's own: its issuer is self, not %s", issuer)
	case !self && t == oauth.TokenTypeTxnToken:
		return t, usage("a txn_token subject token is deputy's own: its issuer is self, not %s", issuer)
	}
	return t, nil
}

// numericDate reads exp: whole seconds in deputy's own tokens (an int64 claim),
// seconds with a fraction allowed in a trusted issuer's (RFC 7519 §2).
func numericDate(n json.Number, whole bool) (time.Time, error) {
	if whole {
		sec, err := n.Int64()
		if err != nil {
			return time.Time{}, usage("subject claims: exp %s is not a NumericDate (seconds)", n)
		}
		return time.Unix(sec, 0), nil
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f <= 0 || f > 1<<40 {
		return time.Time{}, usage("subject claims: exp %s is not a NumericDate (seconds)", n)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

// present reports whether a claim is given with a value other than null.
func present(all map[string]json.RawMessage, k string) bool {
	v, ok := all[k]
	return ok && string(bytes.TrimSpace(v)) != "null"
}

// audiences reads aud, a string or a list of strings; nil when absent.
func audiences(raw json.RawMessage) ([]string, error) {
	switch aud := bytes.TrimSpace(raw); {
	case len(aud) == 0 || string(aud) == "null":
		return nil, nil
	case aud[0] == '"':
		var one string
		if err := json.Unmarshal(aud, &one); err != nil {
			return nil, usage("subject claims: aud: %v", err)
		}
		return []string{one}, nil
	default:
		var l []string
		if err := json.Unmarshal(aud, &l); err != nil || l == nil {
			return nil, usage("subject claims: aud is neither a string nor a list of strings")
		}
		return l, nil
	}
}

// ownToken fills in a principal of deputy's own token.
func (e *Env) ownToken(p *exchange.Principal, client string, all map[string]json.RawMessage, c *registeredClaims) error {
	aud, err := audiences(c.Aud)
	if err != nil {
		return err
	}
	p.Audiences = aud
	if !present(all, "aud") && p.TokenType == oauth.TokenTypeTxnToken {
		// A transaction token is addressed to the trust domain.
		p.Audiences = []string{e.cfg.TxnTokens.TrustDomain}
	} else if !present(all, "aud") {
		p.Audiences = []string{client}
		for _, a := range e.cfg.Audiences {
			if a.Client == client {
				p.Audiences = []string{a.ID}
				break
			}
		}
	}
	p.Act, p.MayAct, p.ClientID, p.Cnf = c.Act, c.MayAct, c.ClientID, c.Cnf
	notCarried := map[string]bool{}
	switch p.TokenType {
	case oauth.TokenTypeIDToken:
		if c.ClientID != "" || c.Scope != "" {
			return usage("subject claims: an ID token has no client_id or scope: the server takes a JWT with them for not an ID token " +
				"(subject_token is not of the declared subject_token_type); describe it as type jwt, or leave them out")
		}
		for _, k := range []string{"may_act", "cnf"} {
			if present(all, k) {
				return usage("subject claims: an ID token has no %s (the server does not read one from it); leave it out", k)
			}
		}
		if len(p.Audiences) == 0 {
			return usage("subject claims: an ID token's aud must name the client it was issued to (the server refuses one without)")
		}
		p.ClientID = client
		if present(all, "azp") {
			var azp string
			if err := json.Unmarshal(all["azp"], &azp); err != nil || azp == "" {
				return usage("subject claims: azp must be the client id the ID token was issued to (a non-empty string)")
			}
			p.ClientID = azp
		}
		notCarried = map[string]bool{"azp": true, "nonce": true, "at_hash": true, "c_hash": true}
	case oauth.TokenTypeRefreshToken:
		if present(all, "may_act") {
			return usage("subject claims: a refresh token has no may_act (the server keeps none for it); leave it out")
		}
		if p.Cnf != nil && p.Cnf.X5TS256 != "" {
			return usage(`subject claims: a refresh token is bound only to a DPoP key (cnf {"jkt": …}), never to a certificate`)
		}
		if p.ClientID == "" {
			p.ClientID = client
		}
		p.Scopes = strings.Fields(c.Scope)
	default:
		p.Scopes = strings.Fields(c.Scope)
	}
	if p.TokenType == oauth.TokenTypeTxnToken && present(all, "tctx") {
		// As the verifier keeps it: the tctx claim as signed.
		var b bytes.Buffer
		if err := json.Compact(&b, all["tctx"]); err != nil {
			return usage("subject claims: tctx: %v", err)
		}
		p.Tctx = b.Bytes()
	}
	if p.Cnf != nil {
		if err := checkCnf(all["cnf"]); err != nil {
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(all)) {
		if notCarried[k] {
			continue
		}
		switch k {
		case "iss", "sub", "aud", "scope", "act", "may_act", "client_id", "jti", "exp", "cnf", "iat", "nbf", "sid":
			continue
		}
		v, keep, err := ownClaim(k, all[k], p.TokenType)
		if err != nil {
			return err
		}
		if keep {
			if p.Claims == nil {
				p.Claims = map[string]any{}
			}
			p.Claims[k] = v
		}
	}
	return nil
}

// ownClaim is claim k of deputy's own token with the Go type the verifier gives
// it (token.Claims, store.RefreshToken): auth_time int64, acr string, amr
// []string, a refresh token's idp string — each dropped when zero or empty —
// and any other claim as encoding/json decodes it into an any.
func ownClaim(k string, raw json.RawMessage, typ oauth.TokenType) (any, bool, error) {
	null := string(bytes.TrimSpace(raw)) == "null"
	switch {
	case k == "auth_time":
		var n json.Number
		if null {
			return nil, false, nil
		}
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, false, usage("subject claims: auth_time must be a NumericDate in whole seconds (the server refuses any other)")
		}
		sec, err := n.Int64()
		if err != nil {
			return nil, false, usage("subject claims: auth_time %s is not a NumericDate in whole seconds (the server refuses any other)", n)
		}
		return sec, sec != 0, nil
	case k == "acr" || k == "idp" && typ == oauth.TokenTypeRefreshToken:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, false, usage("subject claims: %s must be a string (the server refuses any other)", k)
		}
		return s, s != "", nil
	case k == "amr":
		var l []string
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, false, usage("subject claims: amr must be a list of strings (the server refuses any other)")
		}
		return l, len(l) > 0, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, false, usage("subject claims: %s: %v", k, err)
	}
	return v, true, nil
}

// checkCnf refuses a cnf the server could not keep: anything but exactly one of
// jkt and x5t#S256, a base64url thumbprint (RFC 7800 §3.1, RFC 9449 §6.1, RFC 8705
// §3.1).
func checkCnf(raw json.RawMessage) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return usage("subject claims: cnf is not a JSON object")
	}
	if len(m) != 1 || (m["jkt"] == nil && m["x5t#S256"] == nil) {
		return usage(`subject claims: cnf must hold exactly one of jkt and x5t#S256 (the server cannot check any other binding), not %q`,
			slices.Sorted(maps.Keys(m)))
	}
	for k, v := range m {
		var s string
		if json.Unmarshal(v, &s) != nil || !thumbprint(s) {
			return usage("subject claims: cnf %s is not a base64url thumbprint", k)
		}
	}
	return nil
}

// trustedToken fills in a principal of a trusted issuer's token.
func trustedToken(p *exchange.Principal, ti *config.TrustedIssuer, all map[string]json.RawMessage, c *registeredClaims) error {
	aud, err := audiences(c.Aud)
	if err != nil {
		return err
	}
	p.Audiences = aud
	switch {
	case !present(all, "aud") && len(ti.Audiences) > 0:
		p.Audiences = ti.Audiences[:1]
	case !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(ti.Audiences, a) }):
		return usage("subject claims: aud %q holds none of trusted issuer %s's audiences %q: the server refuses the token (not addressed to this server)",
			aud, ti.Name, ti.Audiences)
	}
	p.Act = c.Act
	for a := p.Act; a != nil; a = a.Actor {
		if a.Subject == "" {
			return usage("subject claims: an act level without sub: the server refuses the token (malformed act claim)")
		}
		if a.Issuer == "" {
			a.Issuer = p.IssuerURL
		}
	}
	if present(all, "cnf") {
		if err := checkCnf(all["cnf"]); err != nil {
			return err
		}
		p.Cnf = c.Cnf
	}
	mapped := slices.Sorted(maps.Keys(ti.Claims))
	for _, k := range slices.Sorted(maps.Keys(all)) {
		switch k {
		case "iss", "sub", "aud", "exp", "jti", "act", "cnf", "iat", "nbf":
			continue
		}
		if _, ok := ti.Claims[k]; !ok {
			return usage("subject claims: the server never shows %s from trusted issuer %s: subject.claims holds only what trusted_issuers[].claims maps (%s), under deputy's names%s",
				k, ti.Name, orNothing(mapped), notCarriedWhy(k))
		}
		if !present(all, k) {
			continue
		}
		var v any
		if err := json.Unmarshal(all[k], &v); err != nil {
			return usage("subject claims: %s: %v", k, err)
		}
		if p.Claims == nil {
			p.Claims = map[string]any{}
		}
		p.Claims[k] = v
	}
	return nil
}

// notCarriedWhy adds why a foreign token's registered claim is not carried.
func notCarriedWhy(k string) string {
	switch k {
	case "scope":
		return "; a foreign issuer's scopes belong to its own domain and are never carried"
	case "client_id", "may_act", "sid":
		return "; " + k + " is read only from deputy's own tokens"
	}
	return ""
}

func orNothing(l []string) string {
	if len(l) == 0 {
		return "nothing"
	}
	return strings.Join(l, ", ")
}

// samlClaims are the claims a SAML assertion's attributes give (samlx.Claim).
var samlClaims = []string{"email", "family_name", "given_name", "name", "preferred_username"}

// samlAssertion fills in a principal of a SAML IdP's assertion.
func samlAssertion(p *exchange.Principal, idp *config.SAMLIdP, all map[string]json.RawMessage) error {
	for _, k := range slices.Sorted(maps.Keys(all)) {
		switch k {
		case "iss", "sub", "exp", "jti", "iat", "nbf":
			continue
		case "aud", "act", "may_act", "cnf", "scope", "client_id":
			return usage("subject claims: an assertion of SAML IdP %s has no %s (the server reads none from it); leave it out", idp.Name, k)
		}
		if !slices.Contains(samlClaims, k) {
			return usage("subject claims: the server never shows %s from SAML IdP %s: subject.claims holds only %s, from its attributes",
				k, idp.Name, strings.Join(samlClaims, ", "))
		}
		if !present(all, k) {
			continue
		}
		var v string
		if err := json.Unmarshal(all[k], &v); err != nil {
			return usage("subject claims: %s must be a string: a SAML attribute's value", k)
		}
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if p.Claims == nil {
			p.Claims = map[string]any{}
		}
		p.Claims[k] = v
	}
	return nil
}

// thumbprint reports whether s can be a key's thumbprint as a binding names it:
// base64url without padding, 1 to 128 characters (a SHA-256 one has 43).
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
