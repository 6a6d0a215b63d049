package subject

import (
	"context"
	"fmt"
	"time"

	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// idTokenNotCarried are ID token claims that describe the token or the sign-in
// response, not the user; they are not carried into an exchanged token.
var idTokenNotCarried = map[string]bool{"azp": true, "nonce": true, "at_hash": true, "c_hash": true}

// verifyOwnIDToken checks an ID token deputy issued (OIDC Core §2), presented as a
// subject or actor token: typ JWT, signature by one of deputy's keys with the key's
// algorithm, iss, exp, nbf and revocation (token.Service.Verify), and aud present.
// The principal's audiences are the ID token's aud (the client it was issued to),
// ClientID its azp. An ID token grants nothing, so it carries no scopes.
func (v *Verifier) verifyOwnIDToken(ctx context.Context, role, raw string, now time.Time) (exchange.Principal, error) {
	typ := oauth.TokenTypeIDToken
	vt, err := v.tokens.VerifyContext(ctx, raw, []string{oauth.JWTTypeJWT}, now)
	if err != nil {
		var p exchange.Principal
		if vt != nil {
			p = exchange.Principal{TokenType: typ, Issuer: Self, Subject: vt.Claims.Subject, JTI: vt.Claims.ID}
		}
		return p, oauth.InvalidRequest(describe(role, err), fmt.Errorf("%s ID token: %w", role, err))
	}
	c := &vt.Claims
	if len(c.Audience) == 0 {
		return exchange.Principal{}, oauth.InvalidRequest(role+"_token is not a valid ID token",
			fmt.Errorf("%s ID token: no aud", role))
	}
	azp, _ := c.Extra["azp"].(string)
	if azp == "" || c.ClientID != "" || c.Scope != "" {
		// Every ID token deputy issues names its azp and grants nothing; a JWT with
		// client_id or scope is an exchange's jwt output, not an ID token.
		return exchange.Principal{TokenType: typ, Issuer: Self, Subject: c.Subject, JTI: c.ID},
			oauth.InvalidRequest(role+"_token is not of the declared "+role+"_token_type",
				fmt.Errorf("%s ID token: azp %q, client_id %q, scope %q: not an ID token", role, azp, c.ClientID, c.Scope))
	}
	p := exchange.Principal{
		TokenType: typ,
		Issuer:    Self,
		IssuerURL: c.Issuer,
		Subject:   c.Subject,
		Audiences: c.Audience,
		ClientID:  azp,
		Act:       c.Act, // an ID token a token exchange issued names the delegation
		JTI:       c.ID,
		ExpiresAt: time.Unix(c.Expiry, 0),
	}
	p.Claims = idTokenClaims(c)
	return p, nil
}

// idTokenClaims are the identity claims of an ID token carried through an
// exchange: auth_time, acr, amr and the user's claims; nil when there are none.
func idTokenClaims(c *token.Claims) map[string]any {
	m := map[string]any{}
	for k, x := range c.Extra {
		if !idTokenNotCarried[k] {
			m[k] = x
		}
	}
	if c.AuthTime != 0 {
		m["auth_time"] = c.AuthTime
	}
	if c.ACR != "" {
		m["acr"] = c.ACR
	}
	if len(c.AMR) > 0 {
		m["amr"] = c.AMR
	}
	if len(m) == 0 {
		return nil
	}
	return m
}
