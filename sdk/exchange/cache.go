package exchange

import (
	"time"

	"github.com/deputy-auth/deputy/oauth"
)

// cacheKey identifies an exchange: the subject token (by its SHA-256, so the cache
// keeps no incoming token), the audience, the normalised scope parameter and the
// key the token is bound to (the DPoP key's thumbprint; "" for bearer tokens).
type cacheKey struct {
	subject  [32]byte
	audience string
	scope    string
	binding  string
}

// entry is a cached token, reused while the clock is before refreshAt
// (ExpiresAt - RefreshBefore, so never past the token's expiry).
type entry struct {
	tok       *Token
	refreshAt time.Time
}

// flight is one exchange in progress; its waiters read tok and err after done is
// closed.
type flight struct {
	done chan struct{}
	tok  *Token
	err  error
}

// result gives a waiter its own copy of the outcome, so that no caller can change
// what another sees.
func (f *flight) result() (*Token, error) {
	if f.err != nil {
		if oe, ok := f.err.(*oauth.Error); ok {
			c := *oe
			return nil, &c
		}
		return nil, f.err
	}
	t := *f.tok
	return &t, nil
}

// lookup returns a copy of the fresh token cached for k, dropping a stale one.
// e.mu must be held.
func (e *Exchanger) lookup(k cacheKey) (*Token, bool) {
	ent, ok := e.cache[k]
	if !ok {
		return nil, false
	}
	if !e.now().Before(ent.refreshAt) {
		delete(e.cache, k)
		return nil, false
	}
	t := *ent.tok
	return &t, true
}

// store caches tok under k. A token already due for refresh (or without an expiry)
// is not cached. When the cache is full, stale entries are dropped first, then those
// due for refresh soonest, until there is room. e.mu must be held.
func (e *Exchanger) store(k cacheKey, tok *Token) {
	if tok.ExpiresAt.IsZero() {
		return
	}
	now := e.now()
	refreshAt := tok.ExpiresAt.Add(-e.refreshBefore)
	if !now.Before(refreshAt) {
		return
	}
	if _, ok := e.cache[k]; !ok && len(e.cache) >= e.maxEntries {
		e.evict(now)
	}
	e.cache[k] = entry{tok: tok, refreshAt: refreshAt}
}

// evict makes room for one entry: it drops every stale entry, then, while the cache
// is still full, the entry due for refresh soonest. Each pass is linear in the size
// of the cache; it runs only when the cache is full. e.mu must be held.
func (e *Exchanger) evict(now time.Time) {
	for k, ent := range e.cache {
		if !now.Before(ent.refreshAt) {
			delete(e.cache, k)
		}
	}
	for len(e.cache) >= e.maxEntries {
		var (
			oldest cacheKey
			at     time.Time
			found  bool
		)
		for k, ent := range e.cache {
			if !found || ent.refreshAt.Before(at) {
				oldest, at, found = k, ent.refreshAt, true
			}
		}
		delete(e.cache, oldest)
	}
}
