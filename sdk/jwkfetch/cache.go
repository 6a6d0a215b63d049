// Package jwkfetch keeps a JSON Web Key Set fetched over HTTP(S): cached for the
// max-age its server gives (within the caller's bounds), fetched again on an
// unknown kid at most once per interval, one fetch at a time and never under a
// lock that lookups wait on. deputy uses it for trusted issuers' keys and the Go
// SDK for deputy's own, with one key check (package jwk).
package jwkfetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/sdk/jwk"
)

// Errors of [Cache.Lookup]. They are causes; callers turn them into their own.
var (
	// ErrUnknownKey: the set has no key with the token's kid.
	ErrUnknownKey = errors.New("no key with this kid in the key set")
	// ErrUnavailable: no valid key set is cached and fetching one failed, or the
	// caller's context ended while it waited for a fetch.
	ErrUnavailable = errors.New("the key set is unavailable")
)

// CacheOptions tune a [Cache]. Zero values take the defaults noted.
type CacheOptions struct {
	// Client makes the requests; default one with Timeout.
	Client *http.Client
	// Timeout bounds one fetch, whatever Client does; default 10s.
	Timeout time.Duration
	// MaxBytes bounds the response body; default 1 MiB.
	MaxBytes int64
	// MinInterval is the least time between two fetches, whatever forced them: an
	// unknown kid refetches at most once per MinInterval, and a failed fetch is not
	// retried sooner, even when the cached set expires meanwhile; default 30s.
	MinInterval time.Duration
	// MaxAge bounds how long a fetched set is used (see [MaxAge]); default
	// {5m, 24h, 1h}.
	MaxAge MaxAgeBounds
	// OnFetch, if set, is called after each fetch with its error (nil when a set
	// was fetched), for metrics.
	OnFetch func(err error)
}

// MaxAgeBounds are the bounds of a set's lifetime: a Cache-Control max-age is
// clamped to [Min, Max]; without one, Default applies.
type MaxAgeBounds struct {
	Min, Max, Default time.Duration
}

// Defaults of CacheOptions.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultMaxBytes    = 1 << 20
	DefaultMinInterval = 30 * time.Second
)

// DefaultMaxAge are the default MaxAgeBounds.
var DefaultMaxAge = MaxAgeBounds{Min: 5 * time.Minute, Max: 24 * time.Hour, Default: time.Hour}

// Cache is a key set fetched over HTTP(S) and cached. Safe for concurrent use.
//
// At most one fetch runs at a time, in its own goroutine bounded by Timeout, and no
// lock is held while it runs: lookups of cached kids never wait for it; lookups
// that need it (nothing cached, the set expired, an unknown kid) wait for it, each
// until its own context ends. The fetch does not end with the request that started
// it: others may be waiting for it, and a client going away says nothing about the
// issuer.
//
// Lookups never fetch more than once per MinInterval. Until the cached set's
// max-age passes it is served even when refreshing fails; past it, lookups fail
// with ErrUnavailable until a fetch succeeds (fail closed).
type Cache struct {
	// onFetch is CacheOptions.OnFetch.
	onFetch func(error)
	// url resolves the set's URL (fixed, or from an issuer's metadata).
	url      func(ctx context.Context, now time.Time) (string, error)
	client   *http.Client
	timeout  time.Duration
	maxBytes int64
	interval time.Duration
	bounds   MaxAgeBounds

	mu        sync.Mutex
	set       *jwk.Set  // nil until a fetch succeeds
	expires   time.Time // set is not used at or after this
	lastFetch time.Time // start of the last fetch, successful or not
	lastErr   error
	inflight  chan struct{} // closed when the running fetch ends; nil when none runs
}

// NewCache returns a Cache of the set at the URL url returns (called before each
// fetch). It fetches nothing until the first Lookup.
func NewCache(url func(ctx context.Context, now time.Time) (string, error), opts CacheOptions) *Cache {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: opts.Timeout}
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MinInterval <= 0 {
		opts.MinInterval = DefaultMinInterval
	}
	if opts.MaxAge == (MaxAgeBounds{}) {
		opts.MaxAge = DefaultMaxAge
	}
	return &Cache{url: url, client: opts.Client, timeout: opts.Timeout, maxBytes: opts.MaxBytes,
		interval: opts.MinInterval, bounds: opts.MaxAge, onFetch: opts.OnFetch}
}

// Lookup returns the key with this kid at time now (see [jwk.Set.Find] for an empty
// kid), fetching the set when none is cached, when the cached one has expired, or
// when kid is unknown and the last fetch is at least MinInterval old. When ctx ends
// while it waits for a fetch, it returns ErrUnavailable wrapping ctx's error.
func (c *Cache) Lookup(ctx context.Context, kid string, now time.Time) (jose.JSONWebKey, error) {
	if err := ctx.Err(); err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	waited := false
	for {
		c.mu.Lock()
		valid := c.set != nil && now.Before(c.expires)
		if valid {
			if k, ok := c.set.Find(kid); ok {
				c.mu.Unlock()
				return k, nil
			}
		}
		// A now before the last fetch (a request stamped before it waited) counts
		// as within the interval.
		recent := !c.lastFetch.IsZero() && now.Sub(c.lastFetch) < c.interval
		if waited || (c.inflight == nil && recent) {
			err := c.missLocked(kid, now, valid, waited)
			c.mu.Unlock()
			return jose.JSONWebKey{}, err
		}
		if c.inflight == nil {
			c.inflight = make(chan struct{})
			c.lastFetch = now
			go c.refresh(context.WithoutCancel(ctx), now, c.inflight)
		}
		wait := c.inflight
		c.mu.Unlock()
		select {
		case <-wait:
			waited = true
		case <-ctx.Done():
			return jose.JSONWebKey{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
	}
}

// missLocked is the error for a kid not found, after a fetch (waited) or without
// one (fetched too recently).
func (c *Cache) missLocked(kid string, now time.Time, valid, waited bool) error {
	switch {
	case !valid && c.lastErr != nil:
		return fmt.Errorf("%w: %v", ErrUnavailable, c.lastErr)
	case !valid:
		return fmt.Errorf("%w: the cached key set has expired", ErrUnavailable)
	case waited && c.lastErr != nil:
		return fmt.Errorf("%w (kid %q; refetch failed: %v)", ErrUnknownKey, kid, c.lastErr)
	case waited:
		return fmt.Errorf("%w (kid %q, after a refetch)", ErrUnknownKey, kid)
	}
	// Fetched (or tried) a moment ago: unknown kids or a failing issuer must not
	// turn every request into a fetch.
	return fmt.Errorf("%w (kid %q; refetched %s ago)", ErrUnknownKey, kid, now.Sub(c.lastFetch).Round(time.Second))
}

// refresh fetches the set and records the outcome, then closes done.
func (c *Cache) refresh(ctx context.Context, started time.Time, done chan struct{}) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	set, maxAge, err := c.fetch(ctx, started)
	if c.onFetch != nil {
		c.onFetch(err)
	}
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

func (c *Cache) fetch(ctx context.Context, now time.Time) (*jwk.Set, time.Duration, error) {
	u, err := c.url(ctx, now)
	if err != nil {
		return nil, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetching %s: %w", req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, c.maxBytes))
		return nil, 0, fmt.Errorf("fetching %s: HTTP %d", req.URL.Redacted(), resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("fetching %s: %w", req.URL.Redacted(), err)
	}
	if int64(len(b)) > c.maxBytes {
		return nil, 0, fmt.Errorf("fetching %s: the key set is larger than %d bytes", req.URL.Redacted(), c.maxBytes)
	}
	set, err := jwk.Parse(b)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", req.URL.Redacted(), err)
	}
	return set, MaxAge(resp.Header.Get("Cache-Control"), c.bounds), nil
}

// MaxAge is how long a set served with this Cache-Control header is kept: its
// max-age clamped to [b.Min, b.Max], b.Min for no-cache or no-store, b.Default when
// it says nothing usable.
func MaxAge(cacheControl string, b MaxAgeBounds) time.Duration {
	d := b.Default
	for _, dir := range strings.Split(cacheControl, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "no-cache", "no-store":
			return b.Min
		case "max-age":
			n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(val), `"`), 10, 64)
			if errors.Is(err, strconv.ErrRange) && n > 0 {
				n = math.MaxInt64 // RFC 9111 §1.2.2: too large means the largest; clamped below
			} else if err != nil || n < 0 {
				continue
			}
			d = time.Duration(min(n, int64(b.Max/time.Second))) * time.Second
		}
	}
	return min(max(d, b.Min), b.Max)
}
