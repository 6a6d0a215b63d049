package subject

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// verifyTxn checks a transaction token deputy issued, presented as subject token
// to be replaced (draft-ietf-oauth-transaction-tokens; README "Transaction
// tokens"): typ txntoken+jwt, deputy's signature and issuer, not expired, not
// revoked, addressed to this trust domain, with a txn claim. The Principal
// carries sub, scopes, jti, exp and, in Claims, txn, tctx and rctx. A
// transaction token is never an actor token: it names no acting party.
func (v *Verifier) verifyTxn(ctx context.Context, role, raw string, now time.Time) (exchange.Principal, error) {
	if role != "subject" {
		return exchange.Principal{}, oauth.InvalidRequest(role+"_token_type txn_token is not accepted: a transaction token is only ever a subject token",
			fmt.Errorf("transaction token presented as %s token", role))
	}
	vt, err := v.tokens.VerifyContext(ctx, raw, token.TypesFor(oauth.TokenTypeTxnToken), now)
	if err != nil {
		var p exchange.Principal
		if vt != nil {
			p = exchange.Principal{TokenType: oauth.TokenTypeTxnToken, Issuer: Self, Subject: vt.Claims.Subject, JTI: vt.Claims.ID}
		}
		return p, oauth.InvalidRequest(describe(role, err), fmt.Errorf("%s token: %w", role, err))
	}
	c := &vt.Claims
	p := exchange.Principal{
		TokenType: oauth.TokenTypeTxnToken,
		Issuer:    Self,
		IssuerURL: c.Issuer,
		Subject:   c.Subject,
		Audiences: c.Audience,
		Scopes:    c.Scopes(),
		JTI:       c.ID,
		ExpiresAt: time.Unix(c.Expiry, 0),
	}
	if v.trustDomain == "" || len(c.Audience) != 1 || c.Audience[0] != v.trustDomain {
		return p, oauth.InvalidRequest("subject_token is a transaction token of another trust domain",
			fmt.Errorf("transaction token aud %q, the trust domain is %q", []string(c.Audience), v.trustDomain))
	}
	txn, _ := c.Extra[exchange.ClaimTxn].(string)
	if txn == "" {
		return p, oauth.InvalidRequest("subject_token is a transaction token without txn", errors.New("transaction token has no txn claim"))
	}
	p.Claims = map[string]any{exchange.ClaimTxn: txn}
	for _, k := range []string{exchange.ClaimTctx, exchange.ClaimRctx} {
		if m, ok := c.Extra[k].(map[string]any); ok {
			p.Claims[k] = m
		}
	}
	if _, ok := p.Claims[exchange.ClaimTctx]; ok {
		// The replacement keeps tctx as signed, its numbers and key order too.
		if p.Tctx, err = signedTctx(raw); err != nil {
			return p, oauth.InvalidRequest("subject_token is invalid", err)
		}
	}
	return p, nil
}

// signedTctx reads the tctx claim of a transaction token that passed
// verification, as its payload has it.
func signedTctx(raw string) (json.RawMessage, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errors.New("transaction token is not a compact JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("transaction token payload: %w", err)
	}
	var c struct {
		Tctx json.RawMessage `json:"tctx"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("transaction token payload: %w", err)
	}
	return c.Tctx, nil
}
