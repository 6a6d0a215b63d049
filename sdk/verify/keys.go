package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/sdk/jwk"
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

// keySet is a parsed, immutable JWKS.
type keySet struct {
	byKID map[string]jose.JSONWebKey
}

// parseKeySet reads a JWKS document (RFC 7517 §5). It keeps public signing keys that
// have a kid; it refuses the whole set when it carries private or symmetric key
// material or one kid twice, and a set without any usable key.
func parseKeySet(b []byte) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %v", err)
	}
	ks := &keySet{byKID: map[string]jose.JSONWebKey{}}
	for i, raw := range doc.Keys {
		var probe struct {
			Kty string `json:"kty"`
			D   string `json:"d"`
			K   string `json:"k"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			return nil, fmt.Errorf("keys[%d]: %v", i, err)
		}
		if probe.D != "" || probe.K != "" || strings.EqualFold(probe.Kty, "oct") {
			return nil, fmt.Errorf("keys[%d]: private or symmetric key material in a public key set", i)
		}
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue // a key type go-jose does not know: not one a token can use
		}
		if k.Use != "" && k.Use != "sig" {
			continue // an encryption key
		}
		if !k.IsPublic() || !k.Valid() {
			return nil, fmt.Errorf("keys[%d]: not a valid public key", i)
		}
		if k.KeyID == "" {
			continue // tokens must name their key
		}
		if _, dup := ks.byKID[k.KeyID]; dup {
			return nil, fmt.Errorf("keys[%d]: kid %q appears twice", i, k.KeyID)
		}
		ks.byKID[k.KeyID] = k
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

// keysMaxAge is how long a JWKS served with this Cache-Control header is kept: its
// max-age clamped to [MinKeysMaxAge, MaxKeysMaxAge], MinKeysMaxAge for no-cache or
// no-store, DefaultKeysMaxAge when it says nothing usable.
func keysMaxAge(cacheControl string) time.Duration {
	d := DefaultKeysMaxAge
	for _, dir := range strings.Split(cacheControl, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "no-cache", "no-store":
			return MinKeysMaxAge
		case "max-age":
			n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(val), `"`), 10, 64)
			if errors.Is(err, strconv.ErrRange) && n > 0 {
				n = math.MaxInt64 // RFC 9111 §1.2.2: too large means the largest
			} else if err != nil || n < 0 {
				continue
			}
			d = time.Duration(min(n, int64(MaxKeysMaxAge/time.Second))) * time.Second
		}
	}
	return min(max(d, MinKeysMaxAge), MaxKeysMaxAge)
}

// keyCache is deputy's JWKS, fetched on first use and cached. Safe for concurrent
// use. At most one fetch runs at a time, in its own goroutine bounded by
// fetchTimeout; lookups of known kids never wait for it, other lookups do (each
// until its own context ends).
//
// Fetches are at least refetchInterval apart. Until the cached set's max-age passes
// it is served even when refreshing fails; past it, lookups fail with
// ErrUnavailable until a fetch succeeds (fail closed).
type keyCache struct {
	// url resolves the JWKS URL (from the configuration or deputy's metadata).
	url    func(ctx context.Context, now time.Time) (string, error)
	client *http.Client

	mu        sync.Mutex
	set       *keySet   // nil until a fetch succeeds
	expires   time.Time // set is not used at or after this
	lastFetch time.Time // start of the last fetch, successful or not
	lastErr   error
	inflight  chan struct{} // closed when the running fetch ends; nil when none runs
}

// lookup returns the key named kid at time now. It fetches the set when none is
// cached, when the cached one has expired, or when kid is unknown and the last fetch
// is at least refetchInterval old.
func (c *keyCache) lookup(ctx context.Context, kid string, now time.Time) (jose.JSONWebKey, error) {
	fetched := false
	for {
		c.mu.Lock()
		valid := c.set != nil && now.Before(c.expires)
		if valid {
			if k, ok := c.set.byKID[kid]; ok {
				c.mu.Unlock()
				return k, nil
			}
		}
		// A now before the last fetch (a request stamped before it waited) counts
		// as within the interval.
		recent := !c.lastFetch.IsZero() && now.Sub(c.lastFetch) < refetchInterval
		if fetched || (c.inflight == nil && recent) {
			err := c.missLocked(kid, now, valid)
			c.mu.Unlock()
			return jose.JSONWebKey{}, err
		}
		if c.inflight == nil {
			c.inflight = make(chan struct{})
			c.lastFetch = now
			// Detached from ctx: other lookups wait for this fetch too, and the
			// request that started it going away says nothing about deputy.
			go c.refresh(context.WithoutCancel(ctx), now, c.inflight)
		}
		wait := c.inflight
		c.mu.Unlock()
		select {
		case <-wait:
			fetched = true
		case <-ctx.Done():
			return jose.JSONWebKey{}, unavailable("deputy's signing keys are being fetched", ctx.Err())
		}
	}
}

// missLocked is the error for a kid not found without (another) fetch.
func (c *keyCache) missLocked(kid string, now time.Time, valid bool) error {
	if valid {
		return invalidToken("token is signed with a key deputy does not publish",
			fmt.Errorf("kid %q is not in the JWKS fetched %s ago", kid, now.Sub(c.lastFetch).Round(time.Second)))
	}
	cause := c.lastErr
	if cause == nil {
		cause = errors.New("the cached JWKS has expired")
	}
	return unavailable("deputy's signing keys cannot be fetched", cause)
}

// refresh fetches the set and records the outcome, then closes done.
func (c *keyCache) refresh(ctx context.Context, started time.Time, done chan struct{}) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	set, maxAge, err := c.fetch(ctx, started)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.lastErr = err
	} else {
		c.set, c.expires, c.lastErr = set, started.Add(maxAge), nil
	}
	c.inflight = nil
	close(done)
}

func (c *keyCache) fetch(ctx context.Context, now time.Time) (*keySet, time.Duration, error) {
	u, err := c.url(ctx, now)
	if err != nil {
		return nil, 0, err
	}
	b, h, err := getDocument(ctx, c.client, u)
	if err != nil {
		return nil, 0, fmt.Errorf("jwks: %w", err)
	}
	set, err := parseKeySet(b)
	if err != nil {
		return nil, 0, fmt.Errorf("jwks %s: %w", u, err)
	}
	return set, keysMaxAge(h.Get("Cache-Control")), nil
}
