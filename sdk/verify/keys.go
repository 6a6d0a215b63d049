package verify

import (
	"context"
	"errors"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/sdk/jwk"
	"github.com/deputy-auth/deputy/sdk/jwkfetch"
)

// Bounds of the JWKS cache. A Cache-Control max-age is clamped to
// [MinKeysMaxAge, MaxKeysMaxAge]; without one, DefaultKeysMaxAge applies.
const (
	MinKeysMaxAge     = time.Minute
	MaxKeysMaxAge     = 24 * time.Hour
	DefaultKeysMaxAge = 5 * time.Minute
)

const (
	// refetchInterval is the least time between two fetches of the same document,
	// whatever forced them: unknown kids or a failing deputy cannot turn every
	// request into a fetch.
	refetchInterval = 30 * time.Second
	// fetchTimeout bounds one fetch, whatever HTTP client is configured.
	fetchTimeout = 10 * time.Second
)

// keySet is a parsed, immutable JWKS: the keys that have a kid, by kid.
type keySet struct {
	byKID map[string]jose.JSONWebKey
}

// parseKeySet reads a JWKS document (RFC 7517 §5) as deputy's server reads other
// issuers' (jwk.Parse): it keeps public signing keys, refuses the whole set when it
// carries private or symmetric key material or one kid twice, and a set without any
// usable key. Keys without a kid are of no use here: tokens must name their key.
func parseKeySet(b []byte) (*keySet, error) {
	set, err := jwk.Parse(b)
	if err != nil {
		return nil, err
	}
	ks := &keySet{byKID: map[string]jose.JSONWebKey{}}
	for _, k := range set.Keys() {
		if k.KeyID != "" {
			ks.byKID[k.KeyID] = k
		}
	}
	if len(ks.byKID) == 0 {
		return nil, errors.New("no usable public signing key in the set")
	}
	return ks, nil
}

// keyFits reports whether a token signed with alg may be verified with k: the key's
// own alg, when it states one, is alg, and the key's type and size are those alg
// uses (jwk.Fits, the check deputy's server makes of trusted issuers' keys too).
func keyFits(k jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	return jwk.Fits(k, alg) == nil
}

// keysBounds are the SDK's bounds of a JWKS's lifetime.
var keysBounds = jwkfetch.MaxAgeBounds{Min: MinKeysMaxAge, Max: MaxKeysMaxAge, Default: DefaultKeysMaxAge}

// keysMaxAge is how long a JWKS served with this Cache-Control header is kept: its
// max-age clamped to [MinKeysMaxAge, MaxKeysMaxAge], MinKeysMaxAge for no-cache or
// no-store, DefaultKeysMaxAge when it says nothing usable.
func keysMaxAge(cacheControl string) time.Duration { return jwkfetch.MaxAge(cacheControl, keysBounds) }

// keyCache is deputy's JWKS, fetched on first use and cached: the cache deputy's
// server keeps of other issuers' keys (jwkfetch.Cache), with the SDK's bounds. Safe for
// concurrent use. At most one fetch runs at a time, in its own goroutine bounded by
// fetchTimeout; lookups of known kids never wait for it, other lookups do (each
// until its own context ends).
//
// Fetches are at least refetchInterval apart. Until the cached set's max-age passes
// it is served even when refreshing fails; past it, lookups fail with
// ErrUnavailable until a fetch succeeds (fail closed).
type keyCache struct {
	c *jwkfetch.Cache
}

// newKeyCache returns the cache of the JWKS at the URL url resolves (from the
// configuration or deputy's metadata).
func newKeyCache(client *http.Client, url func(ctx context.Context, now time.Time) (string, error)) *keyCache {
	return &keyCache{c: jwkfetch.NewCache(url, jwkfetch.CacheOptions{
		Client: client, Timeout: fetchTimeout, MaxBytes: maxDocumentBytes, MinInterval: refetchInterval, MaxAge: keysBounds,
	})}
}

// lookup returns the key named kid at time now. It fetches the set when none is
// cached, when the cached one has expired, or when kid is unknown and the last fetch
// is at least refetchInterval old.
func (c *keyCache) lookup(ctx context.Context, kid string, now time.Time) (jose.JSONWebKey, error) {
	k, err := c.c.Lookup(ctx, kid, now)
	switch {
	case err == nil:
		return k, nil
	case errors.Is(err, jwkfetch.ErrUnknownKey):
		return jose.JSONWebKey{}, invalidToken("token is signed with a key deputy does not publish", err)
	case ctx.Err() != nil:
		return jose.JSONWebKey{}, unavailable("deputy's signing keys are being fetched", ctx.Err())
	}
	return jose.JSONWebKey{}, unavailable("deputy's signing keys cannot be fetched", err)
}
