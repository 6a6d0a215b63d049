package subject

import (
	"errors"
	"fmt"
	"time"

	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// Self is the issuer name of deputy's own tokens in policies (subject_issuers).
const Self = "self"

// Verifier turns a presented token into a Principal.
type Verifier struct {
	tokens *token.Service
}

// NewVerifier returns a Verifier of deputy's own tokens.
func NewVerifier(tokens *token.Service) *Verifier { return &Verifier{tokens: tokens} }

// Verify checks raw as a token of declared type typ and returns its principal. role
// ("subject" or "actor") names the token in errors. Every failure is invalid_request
// (RFC 8693 §2.2.2) with the precise reason as its cause.
func (v *Verifier) Verify(role, raw string, typ oauth.TokenType, now time.Time) (exchange.Principal, error) {
	types := token.TypesFor(typ)
	if types == nil {
		return exchange.Principal{}, oauth.InvalidRequest(
			fmt.Sprintf("%s_token_type %s is not accepted", role, typ),
			fmt.Errorf("no verifier for %s tokens of type %s", role, typ))
	}
	vt, err := v.tokens.Verify(raw, types, now)
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
