package token

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// Errors of Verify. They are causes; callers turn them into protocol errors.
var (
	ErrMalformed   = errors.New("token is not a well-formed signed JWT")
	ErrAlgorithm   = errors.New("token algorithm is not allowed")
	ErrUnknownKey  = errors.New("token is signed by an unknown key")
	ErrSignature   = errors.New("token signature is invalid")
	ErrType        = errors.New("token type header is not accepted")
	ErrIssuer      = errors.New("token is from another issuer")
	ErrExpired     = errors.New("token is expired")
	ErrNotYetValid = errors.New("token is not yet valid")
	ErrRevoked     = store.ErrRevoked
	ErrTooLarge    = errors.New("token is too large")
)

// Leeway is the clock skew tolerated on nbf and iat.
const Leeway = 30 * time.Second

// Service mints and verifies deputy's JWTs.
type Service struct {
	issuer   string
	keys     *keys.Set
	revoked  *Revoked
	maxBytes int
	cache    *verifiedCache // nil: every token is verified in full
	// payloads are buffers Mint encodes claims into; keys.Set.Sign keeps
	// nothing of them.
	payloads sync.Pool
}

// payloadKeep bounds the buffers Mint keeps for the next token.
const payloadKeep = 8 << 10

// NewService returns a Service for tokens of issuer, signed by ks, checked against
// revoked. maxBytes bounds the size of a token Verify accepts. Verified tokens are
// remembered (DefaultCacheEntries; see verifiedCache).
func NewService(issuer string, ks *keys.Set, revoked *Revoked, maxBytes int) *Service {
	return &Service{issuer: issuer, keys: ks, revoked: revoked, maxBytes: maxBytes, cache: newVerifiedCache(DefaultCacheEntries)}
}

// Issuer is deputy's issuer URL.
func (s *Service) Issuer() string { return s.issuer }

// NewID returns a fresh token id: 128 bits, base64url, time first and 80 random
// bits (store.SortableID), so that the audit trail's indexes on jtis stay compact.
func NewID() string {
	b := store.SortableID(time.Now())
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Mint signs c with typ header typ ("at+jwt" for access tokens, "JWT" otherwise).
// Iss is set to the service's issuer.
func (s *Service) Mint(typ string, c *Claims) (string, error) {
	c.Issuer = s.issuer
	buf, _ := s.payloads.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	payload, err := c.appendJSON((*buf)[:0])
	if err != nil {
		return "", fmt.Errorf("token: encode claims: %w", err)
	}
	raw, err := s.keys.Sign(typ, payload)
	if cap(payload) <= payloadKeep {
		*buf = payload
		s.payloads.Put(buf)
	}
	return raw, err
}

// Seen reports whether raw is a token this service verified before and still
// remembers: one deputy signed (whether it is still valid is Verify's to say).
func (s *Service) Seen(raw string) bool {
	if s.cache == nil || len(raw) > s.maxBytes {
		return false
	}
	_, ok := s.cache.get(cacheKey(raw))
	return ok
}

// Verified is a token that passed Verify.
type Verified struct {
	Claims Claims
	Type   string // the typ header
}

// Verify checks a token deputy issued: size, compact form, algorithm allow-list, a
// known kid, signature, typ header among types, iss, exp, nbf and revocation. It
// is VerifyContext without a request: a kid this node does not know is looked
// up in the store within keys' own bound; request handlers use VerifyContext.
func (s *Service) Verify(raw string, types []string, now time.Time) (*Verified, error) {
	return s.VerifyContext(context.Background(), raw, types, now)
}

// VerifyContext is Verify within ctx: a kid this node does not know is looked up
// in the store (keys.Set.LookupFresh) only as long as ctx allows.
func (s *Service) VerifyContext(ctx context.Context, raw string, types []string, now time.Time) (*Verified, error) {
	v, err := s.VerifyIgnoringRevocationContext(ctx, raw, types, now)
	if err != nil {
		return v, err // v is set when the token is deputy's but expired or not yet valid
	}
	if s.revoked.Contains(v.Claims.ID) {
		return v, ErrRevoked
	}
	return v, nil
}

// VerifyIgnoringRevocation is Verify without the revocation check (for revocation
// itself, which must identify a token to revoke it).
func (s *Service) VerifyIgnoringRevocation(raw string, types []string, now time.Time) (*Verified, error) {
	return s.VerifyIgnoringRevocationContext(context.Background(), raw, types, now)
}

// VerifyIgnoringRevocationContext is VerifyIgnoringRevocation within ctx (see
// VerifyContext).
func (s *Service) VerifyIgnoringRevocationContext(ctx context.Context, raw string, types []string, now time.Time) (*Verified, error) {
	if len(raw) > s.maxBytes {
		return nil, ErrTooLarge
	}
	var key [32]byte
	if s.cache != nil {
		key = cacheKey(raw)
		if e, ok := s.cache.get(key); ok {
			if _, published := s.keys.Lookup(e.kid); published {
				if !accepts(types, e.v.Type) {
					return nil, fmt.Errorf("%w: %q", ErrType, e.v.Type)
				}
				v := e.v // a copy: callers may set its fields
				return &v, checkTimes(&v.Claims, now)
			}
		}
	}
	v, kid, err := s.verifyFull(ctx, raw, types)
	if err != nil {
		return nil, err
	}
	if s.cache != nil {
		s.cache.put(key, &cachedToken{kid: kid, v: *v})
	}
	return v, checkTimes(&v.Claims, now)
}

// checkTimes checks exp and nbf; the token is returned with the error, as it is
// deputy's (callers say "expired" rather than "not ours").
func checkTimes(c *Claims, now time.Time) error {
	unix := now.Unix()
	if unix >= c.Expiry {
		return ErrExpired
	}
	if c.NotBef != 0 && unix+int64(Leeway/time.Second) < c.NotBef {
		return ErrNotYetValid
	}
	return nil
}

// verifyFull checks everything of a token but the times: form, algorithm, key,
// signature, typ, claims, issuer. It returns the key id that signed it.
func (s *Service) verifyFull(ctx context.Context, raw string, types []string) (*Verified, string, error) {
	if strings.Count(raw, ".") != 2 {
		return nil, "", ErrMalformed
	}
	jws, err := jose.ParseSignedCompact(raw, s.keys.Algorithms())
	if err != nil {
		if strings.Contains(err.Error(), "unexpected signature algorithm") {
			return nil, "", fmt.Errorf("%w: %v", ErrAlgorithm, err)
		}
		return nil, "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, "", ErrMalformed
	}
	h := jws.Signatures[0].Header
	k, ok := s.keys.LookupFresh(ctx, h.KeyID)
	if !ok {
		return nil, "", ErrUnknownKey
	}
	if jose.SignatureAlgorithm(h.Algorithm) != k.Algorithm {
		return nil, "", ErrAlgorithm
	}
	payload, err := jws.Verify(k.Private.Public())
	if err != nil {
		return nil, "", ErrSignature
	}
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if !accepts(types, typ) {
		return nil, "", fmt.Errorf("%w: %q", ErrType, typ)
	}
	v := &Verified{Type: typ}
	if err := decode(payload, &v.Claims); err != nil {
		return nil, "", fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	c := &v.Claims
	if c.Issuer != s.issuer {
		return nil, "", ErrIssuer
	}
	if c.ID == "" || c.Subject == "" || c.Expiry == 0 {
		return nil, "", fmt.Errorf("%w: missing jti, sub or exp", ErrMalformed)
	}
	return v, h.KeyID, nil
}

func accepts(types []string, typ string) bool {
	for _, t := range types {
		if strings.EqualFold(t, typ) {
			return true
		}
	}
	return false
}

// TypesFor returns the typ headers a token presented as declared type t may carry:
// an access token must be an RFC 9068 "at+jwt"; a "jwt" may be any JWT deputy
// issues but a transaction token, which is only ever a "txntoken+jwt" presented
// as txn_token (draft-ietf-oauth-transaction-tokens): it grants nothing outside
// its trust domain's calls, so no other declared type lets it in.
func TypesFor(t oauth.TokenType) []string {
	switch t {
	case oauth.TokenTypeAccessToken:
		return []string{oauth.JWTTypeAccessToken}
	case oauth.TokenTypeJWT:
		return []string{oauth.JWTTypeAccessToken, oauth.JWTTypeJWT}
	case oauth.TokenTypeTxnToken:
		return []string{oauth.JWTTypeTxnToken}
	}
	return nil
}

// IsRevoked reports whether the token, code or session with this id is revoked.
func (s *Service) IsRevoked(jti string) bool { return s.revoked.Contains(jti) }
