package subject

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/store"

	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// Self is the issuer name of deputy's own tokens in policies (subject_issuers).
const Self = "self"

// Verifier turns a presented token into a Principal, whatever its source:
// deputy's own tokens, trusted issuers' JWTs (trusted.go) and SAML 2.0 assertions
// of configured IdPs (saml2.go). Safe for concurrent use.
type Verifier struct {
	tokens  *token.Service
	trusted map[string]*trustedIssuer // by issuer URL
	saml    []*samlIdP
	refresh store.RefreshTokens // nil: refresh tokens are not accepted
	// trustDomain is the aud of the transaction tokens deputy accepts; "": none.
	trustDomain string
}

// Options name the sources beyond deputy itself.
type Options struct {
	TrustedIssuers []config.TrustedIssuer
	SAMLIdPs       []config.SAMLIdP
	// Nonces remembers SAML assertion IDs until they expire, so none is used twice
	// on any node.
	Nonces store.Nonces
	// Refresh finds deputy's refresh tokens presented as subject tokens; nil
	// refuses them.
	Refresh store.RefreshTokens
	// OnJWKSFetch, if set, is called after each fetch of a trusted issuer's
	// jwks_uri with the issuer's configured name and the fetch's error (nil when it
	// succeeded), for metrics.
	OnJWKSFetch func(issuer string, err error)
	// TrustDomain is txn_tokens.trust_domain: the aud a transaction token
	// presented as subject token must have. "" refuses transaction tokens.
	TrustDomain string
	// Previous is the Verifier this one replaces (a reload of the configuration
	// file), or nil. A trusted issuer whose keys come from jwks_uri and whose
	// configuration is unchanged keeps Previous's cache of its keys; a jwks_file
	// is read again.
	Previous *Verifier
}

// NewVerifier returns a Verifier of deputy's own tokens only.
func NewVerifier(tokens *token.Service) *Verifier {
	return &Verifier{tokens: tokens, trusted: map[string]*trustedIssuer{}}
}

// New returns a Verifier of deputy's own tokens and of the configured sources.
func New(ctx context.Context, tokens *token.Service, opts Options) (*Verifier, error) {
	v := NewVerifier(tokens)
	v.refresh = opts.Refresh
	v.trustDomain = opts.TrustDomain
	for i, c := range opts.TrustedIssuers {
		if prev := opts.Previous.trustedIssuer(c); prev != nil {
			v.trusted[c.Issuer] = prev
			continue
		}
		ti, err := newTrustedIssuer(ctx, c, opts.OnJWKSFetch)
		if err != nil {
			return nil, fmt.Errorf("trusted_issuers[%d] (%s): %w", i, c.Name, err)
		}
		v.trusted[c.Issuer] = ti
	}
	for i, c := range opts.SAMLIdPs {
		idp, err := newSAMLIdP(c, opts.Nonces)
		if err != nil {
			return nil, fmt.Errorf("saml_idps[%d] (%s): %w", i, c.Name, err)
		}
		v.saml = append(v.saml, idp)
	}
	return v, nil
}

// trustedIssuer returns v's verifier of the trusted issuer c when its keys come
// from jwks_uri and it was configured exactly as c; nil otherwise (or if v is nil).
func (v *Verifier) trustedIssuer(c config.TrustedIssuer) *trustedIssuer {
	if v == nil || c.JWKSURI == "" {
		return nil
	}
	if ti := v.trusted[c.Issuer]; ti != nil && reflect.DeepEqual(ti.given, c) {
		return ti
	}
	return nil
}

// Verify checks raw as a token of declared type typ and returns its principal. role
// ("subject" or "actor") names the token in errors. Every refusal is invalid_request
// (RFC 8693 §2.2.2) with the precise reason as its cause; what cannot be checked
// now (the refresh token store, a trusted issuer's key set) is
// temporarily_unavailable.
func (v *Verifier) Verify(ctx context.Context, role, raw string, typ oauth.TokenType, now time.Time) (exchange.Principal, error) {
	switch typ {
	case oauth.TokenTypeSAML2:
		return v.verifySAML(ctx, role, raw, now)
	case oauth.TokenTypeRefreshToken:
		return v.verifyRefresh(ctx, role, raw, now)
	case oauth.TokenTypeTxnToken:
		return v.verifyTxn(ctx, role, raw, now)
	case oauth.TokenTypeAccessToken, oauth.TokenTypeJWT, oauth.TokenTypeIDToken:
		// A token deputy verified before is its own: no need to read its issuer.
		if !v.tokens.Seen(raw) {
			if iss := UnverifiedIssuer(raw); iss != "" && iss != v.tokens.Issuer() {
				return v.verifyTrusted(ctx, role, raw, typ, iss, now)
			}
		}
		if typ == oauth.TokenTypeIDToken {
			return v.verifyOwnIDToken(ctx, role, raw, now)
		}
		return v.verifyOwn(ctx, role, raw, typ, now)
	}
	return exchange.Principal{}, oauth.InvalidRequest(
		fmt.Sprintf("%s_token_type %s is not accepted", role, typ),
		fmt.Errorf("no verifier for %s tokens of type %s", role, typ))
}

// UnverifiedIssuer reads the iss claim of a compact JWT WITHOUT verifying anything,
// only to choose which issuer's keys and rules verify it; "" if unreadable.
func UnverifiedIssuer(raw string) string {
	if len(raw) > 64<<10 {
		return ""
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Iss
}

// verifyOwn checks an access token or JWT deputy issued.
func (v *Verifier) verifyOwn(ctx context.Context, role, raw string, typ oauth.TokenType, now time.Time) (exchange.Principal, error) {
	types := token.TypesFor(typ)
	vt, err := v.tokens.VerifyContext(ctx, raw, types, now)
	if err != nil {
		var p exchange.Principal
		if vt != nil {
			// Signed by deputy but expired or revoked: name it, for the audit record.
			p = exchange.Principal{TokenType: typ, Issuer: Self, Subject: vt.Claims.Subject, JTI: vt.Claims.ID}
		}
		return p, oauth.InvalidRequest(describe(role, err), fmt.Errorf("%s token: %w", role, err))
	}
	c := &vt.Claims
	p := exchange.Principal{
		TokenType: typ,
		Issuer:    Self,
		IssuerURL: c.Issuer,
		Subject:   c.Subject,
		Audiences: c.Audience,
		Scopes:    c.Scopes(),
		ClientID:  c.ClientID,
		Act:       c.Act,
		MayAct:    c.MayAct,
		JTI:       c.ID,
		ExpiresAt: time.Unix(c.Expiry, 0),
		Cnf:       c.Cnf,
	}
	if c.AuthTime != 0 || c.ACR != "" || len(c.AMR) > 0 || len(c.Extra) > 0 {
		p.Claims = map[string]any{}
		for k, x := range c.Extra {
			p.Claims[k] = x
		}
		if c.AuthTime != 0 {
			p.Claims["auth_time"] = c.AuthTime
		}
		if c.ACR != "" {
			p.Claims["acr"] = c.ACR
		}
		if len(c.AMR) > 0 {
			p.Claims["amr"] = c.AMR
		}
	}
	return p, nil
}

// describe is the client-facing sentence for a verification failure.
func describe(role string, err error) string {
	switch {
	case errors.Is(err, token.ErrExpired):
		return role + "_token is expired"
	case errors.Is(err, token.ErrRevoked):
		return role + "_token is revoked"
	case errors.Is(err, token.ErrNotYetValid):
		return role + "_token is not yet valid"
	case errors.Is(err, token.ErrType):
		return role + "_token is not of the declared " + role + "_token_type"
	case errors.Is(err, token.ErrIssuer), errors.Is(err, token.ErrUnknownKey):
		return role + "_token was not issued by this server"
	case errors.Is(err, token.ErrTooLarge):
		return role + "_token is too large"
	}
	return role + "_token is invalid"
}
