package token

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/oauth"
)

// IDClaims are the claims of an ID token (OIDC Core §2, §3.1.3.6).
type IDClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience Audience `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	AuthTime int64    `json:"auth_time,omitempty"`
	Nonce    string   `json:"nonce,omitempty"`
	ACR      string   `json:"acr,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	SID      string   `json:"sid,omitempty"`
	AZP      string   `json:"azp,omitempty"`
	ATHash   string   `json:"at_hash,omitempty"`
	ID       string   `json:"jti,omitempty"`
	IdP      string   `json:"idp,omitempty"` // the identity provider the user signed in with
	// Act is the act claim of an ID token issued by a token exchange (RFC 8693 §4.1).
	Act *oauth.Actor `json:"act,omitempty"`
	// Profile holds the user's standard claims (name, email, …) released by the
	// granted scopes; they never override the claims above.
	Profile map[string]string `json:"-"`
	// Extra holds further identity claims carried through a token exchange; like
	// Profile they never override the claims above.
	Extra map[string]any `json:"-"`
}

var idReserved = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "iat": true, "auth_time": true, "nonce": true,
	"acr": true, "amr": true, "sid": true, "azp": true, "at_hash": true, "jti": true, "nbf": true, "idp": true,
	"act": true, "may_act": true, "client_id": true, "scope": true,
}

// MintIDToken signs an ID token (typ "JWT") with the key of algorithm alg (the
// client's id_token_signed_response_alg, which configuration always sets; ""
// for the key set's default algorithm), with iss set to the service's issuer.
func (s *Service) MintIDToken(alg string, c *IDClaims) (string, error) {
	c.Issuer = s.issuer
	type plain IDClaims
	b, err := json.Marshal((*plain)(c))
	if err != nil {
		return "", err
	}
	if len(c.Profile) > 0 || len(c.Extra) > 0 {
		m := map[string]any{}
		if err := json.Unmarshal(b, &m); err != nil {
			return "", err
		}
		for k, v := range c.Extra {
			if !idReserved[k] {
				m[k] = v
			}
		}
		for k, v := range c.Profile {
			if !idReserved[k] {
				m[k] = v
			}
		}
		if b, err = json.Marshal(m); err != nil {
			return "", err
		}
	}
	return s.keys.SignWith(s.idTokenAlg(alg), oauth.JWTTypeJWT, b)
}

// idTokenAlg is alg, or the key set's default algorithm when alg is "".
func (s *Service) idTokenAlg(alg string) jose.SignatureAlgorithm {
	if alg == "" {
		return s.keys.SigningAlgorithms()[0]
	}
	return jose.SignatureAlgorithm(alg)
}

// ATHash is the at_hash of an access token for an ID token signed with algorithm
// alg (as MintIDToken's; OIDC Core §3.1.3.6): the left half of the hash of the
// token, base64url. ES256, RS256 and PS256 use SHA-256, EdDSA (Ed25519) SHA-512.
func (s *Service) ATHash(alg, accessToken string) string {
	var h hash.Hash = sha256.New()
	if s.idTokenAlg(alg) == jose.EdDSA {
		h = sha512.New()
	}
	h.Write([]byte(accessToken))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}
