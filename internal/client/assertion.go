package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/jwk"
)

// assertionAlgorithms are the algorithms accepted for private_key_jwt: asymmetric
// only, never "none" or HMAC.
var assertionAlgorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
}

// maxAssertionLifetime bounds exp - now of a client assertion, so that the jti
// memory it needs stays bounded.
const maxAssertionLifetime = time.Hour

type assertionClaims struct {
	Issuer   string          `json:"iss"`
	Subject  string          `json:"sub"`
	Audience json.RawMessage `json:"aud"`
	Expiry   float64         `json:"exp"` // NumericDate: may have a fraction (RFC 7519 §2)
	NotBef   float64         `json:"nbf"`
	ID       string          `json:"jti"`
}

// assertion authenticates a private_key_jwt client (RFC 7523 §3, OIDC Core §9).
func (r *Registry) assertion(ctx context.Context, cr *Credentials, now time.Time) (*Client, error) {
	fail := func(format string, a ...any) error {
		return oauth.InvalidClient("client authentication failed", fmt.Errorf("client assertion: "+format, a...))
	}
	if cr.AssertionType != oauth.ClientAssertionTypeJWTBearer {
		return nil, oauth.InvalidClient("unsupported client_assertion_type", fmt.Errorf("client_assertion_type %q", cr.AssertionType))
	}
	if cr.Assertion == "" || len(cr.Assertion) > 8192 {
		return nil, fail("missing or over-sized")
	}
	jws, err := jose.ParseSignedCompact(cr.Assertion, assertionAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, fail("not a signed JWT: %v", err)
	}
	var claims assertionClaims
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil {
		return nil, fail("claims: %v", err)
	}
	c, ok := r.byID[claims.Subject]
	if !ok || claims.Issuer != claims.Subject {
		return nil, fail("iss and sub must both be a registered client id")
	}
	if cr.FormID != "" && cr.FormID != c.ID {
		// RFC 7521 §4.2: client_id must identify the client the assertion identifies;
		// when it does not, the client is not authenticated (RFC 7523 §3.2).
		return nil, oauth.InvalidClient("client_id does not match the client assertion",
			fmt.Errorf("client assertion: iss and sub name client %q, client_id %q", c.ID, cr.FormID))
	}
	if c.AuthMethod != oauth.AuthPrivateKeyJWT || c.jwks == nil {
		return nil, fail("client %q does not authenticate with private_key_jwt", c.ID)
	}
	h := jws.Signatures[0].Header
	var verified bool
	for _, k := range c.jwks.Keys {
		if h.KeyID != "" && k.KeyID != h.KeyID {
			continue
		}
		// The key's alg, type and size fit the assertion's alg: the check of
		// trusted issuers' and deputy's own keys (an RSA key has 2048 bits or more).
		if jwk.Fits(k, jose.SignatureAlgorithm(h.Algorithm)) != nil {
			continue
		}
		if _, err := jws.Verify(k.Key); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, fail("signature does not verify with client %q's keys", c.ID)
	}
	if !r.audienceOK(claims.Audience) {
		return nil, fail("aud must be the issuer or the token endpoint")
	}
	unix := float64(now.UnixNano()) / 1e9
	switch {
	case claims.Expiry == 0:
		return nil, fail("exp is required")
	case unix >= claims.Expiry:
		return nil, fail("expired")
	case claims.Expiry-unix > maxAssertionLifetime.Seconds():
		return nil, fail("exp is too far in the future")
	case claims.NotBef != 0 && unix+30 < claims.NotBef:
		return nil, fail("not yet valid")
	case claims.ID == "":
		return nil, fail("jti is required")
	}
	err = r.nonces.UseNonce(ctx, "client_assertion:"+c.ID+":"+claims.ID, time.Unix(int64(claims.Expiry)+1, 0))
	if errors.Is(err, store.ErrConflict) {
		return nil, fail("jti %q was already used", claims.ID)
	}
	if err != nil {
		return nil, oauth.TemporarilyUnavailable("cannot check the client assertion now", err)
	}
	return c, nil
}

func (r *Registry) audienceOK(raw json.RawMessage) bool {
	var one string
	var many []string
	if json.Unmarshal(raw, &one) == nil {
		many = []string{one}
	} else if json.Unmarshal(raw, &many) != nil {
		return false
	}
	for _, a := range many {
		for _, ok := range r.audiences {
			if a == ok {
				return true
			}
		}
	}
	return false
}
