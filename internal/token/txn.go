package token

import (
	"bytes"
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
// the service's issuer. The claims are encoded without HTML escaping, so tctx
// is signed byte for byte as given (json.Marshal would turn each <, > and &
// into six bytes, inside Tctx too). A token larger than the service's maxBytes
// (limits.max_token_bytes), which no verifier of deputy's would accept, is not
// issued: the error wraps ErrTooLarge.
func (s *Service) MintTxn(c *TxnClaims) (string, error) {
	c.Issuer = s.issuer
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return "", fmt.Errorf("token: encode transaction token claims: %w", err)
	}
	raw, err := s.keys.Sign(oauth.JWTTypeTxnToken, bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	if err != nil {
		return "", err
	}
	if len(raw) > s.maxBytes {
		return "", fmt.Errorf("token: transaction token of %d bytes, more than %d: %w", len(raw), s.maxBytes, ErrTooLarge)
	}
	return raw, nil
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
