package token

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/deputy-auth/deputy/oauth"
)

// TxnClaims are the claims of a transaction token (draft-ietf-oauth-transaction-tokens
// §4; README "Transaction tokens"): no act, no cnf, no client_id. Aud is the
// trust domain, a single string.
type TxnClaims struct {
	Issuer   string          `json:"iss"`
	IssuedAt int64           `json:"iat"`
	Expiry   int64           `json:"exp"`
	ID       string          `json:"jti"`
	Audience string          `json:"aud"`
	Txn      string          `json:"txn"`
	Subject  string          `json:"sub"`
	Scope    string          `json:"scope,omitempty"`
	Tctx     json.RawMessage `json:"tctx,omitempty"` // a JSON object
	Rctx     map[string]any  `json:"rctx"`
}

// MintTxn signs c as a transaction token, typ "txntoken+jwt". Iss is set to
// the service's issuer.
func (s *Service) MintTxn(c *TxnClaims) (string, error) {
	c.Issuer = s.issuer
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("token: encode transaction token claims: %w", err)
	}
	return s.keys.Sign(oauth.JWTTypeTxnToken, payload)
}

// MintTxnContext is MintTxn within a token.sign span, a child of ctx's span.
func (s *Service) MintTxnContext(ctx context.Context, c *TxnClaims) (string, error) {
	_, span := tracer.Start(ctx, spanSign)
	defer span.End()
	raw, err := s.MintTxn(c)
	if span.IsRecording() {
		span.SetAttributes(attrJWTType.String(oauth.JWTTypeTxnToken), attrAlgorithm.String(string(s.keys.Active().Algorithm)))
		signFailed(span, err)
	}
	return raw, err
}
