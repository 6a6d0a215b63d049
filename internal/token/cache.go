package token

import (
	"crypto/sha256"
	"sync"
)

// DefaultCacheEntries bounds the verified-token cache of a Service.
const DefaultCacheEntries = 1 << 14

// verifiedCache remembers tokens whose signature and claims decoded successfully,
// keyed by the SHA-256 of the token, so that a token presented again (a service
// exchanging the same incoming token for several calls) is not verified again: an
// ECDSA verification costs more than the rest of an exchange. What can change
// between two presentations is checked on every hit: the signing key must still be
// published (a withdrawn key's tokens are refused), the typ must be acceptable,
// and expiry, nbf and revocation are checked against the current time and set.
//
// It holds two generations of at most max/2 entries each: when the current one is
// full it becomes the previous one and the one before is dropped, so memory is
// bounded and entries in use survive (a hit in the previous generation moves the
// entry to the current one).
type verifiedCache struct {
	mu       sync.Mutex
	max      int
	cur, old map[[32]byte]*cachedToken
}

type cachedToken struct {
	kid string
	v   Verified
}

func newVerifiedCache(max int) *verifiedCache {
	if max < 2 {
		return nil
	}
	return &verifiedCache{max: max, cur: make(map[[32]byte]*cachedToken)}
}

func cacheKey(raw string) [32]byte { return sha256.Sum256([]byte(raw)) }

func (c *verifiedCache) get(k [32]byte) (*cachedToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.cur[k]; ok {
		return e, true
	}
	e, ok := c.old[k]
	if ok {
		delete(c.old, k)
		c.putLocked(k, e)
	}
	return e, ok
}

func (c *verifiedCache) put(k [32]byte, e *cachedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(k, e)
}

func (c *verifiedCache) putLocked(k [32]byte, e *cachedToken) {
	if len(c.cur) >= c.max/2 {
		c.old, c.cur = c.cur, make(map[[32]byte]*cachedToken, len(c.cur))
	}
	c.cur[k] = e
}

// len is the number of entries held, for tests.
func (c *verifiedCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}
