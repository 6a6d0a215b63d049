package token

import (
	"sync"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// Revoked is the in-memory set of revoked token ids, loaded from the store at start
// and kept current as revocations are made. Safe for concurrent use.
type Revoked struct {
	mu  sync.RWMutex
	set map[string]time.Time // jti → token expiry (zero: never)
}

// NewRevoked returns an empty set.
func NewRevoked() *Revoked { return &Revoked{set: map[string]time.Time{}} }

// Add records revocations.
func (r *Revoked) Add(revs []store.Revocation) {
	r.mu.Lock()
	for _, v := range revs {
		r.set[v.JTI] = v.ExpiresAt
	}
	r.mu.Unlock()
}

// Contains reports whether jti is revoked.
func (r *Revoked) Contains(jti string) bool {
	r.mu.RLock()
	_, ok := r.set[jti]
	r.mu.RUnlock()
	return ok
}

// Len is the number of remembered revocations.
func (r *Revoked) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.set)
}

// Purge forgets revocations of tokens that expired before t: they are refused as
// expired anyway.
func (r *Revoked) Purge(t time.Time) {
	r.mu.Lock()
	for k, exp := range r.set {
		if !exp.IsZero() && exp.Before(t) {
			delete(r.set, k)
		}
	}
	r.mu.Unlock()
}
