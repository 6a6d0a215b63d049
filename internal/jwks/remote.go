package jwks

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
)

// Bounds of the remote cache. A Cache-Control max-age outside
// [MinMaxAge, MaxMaxAge] is clamped to it; without one, DefaultMaxAge applies.
const (
	MinMaxAge          = 5 * time.Minute
	MaxMaxAge          = 24 * time.Hour
	DefaultMaxAge      = time.Hour
	DefaultMinInterval = 30 * time.Second
	DefaultTimeout     = 10 * time.Second
	DefaultMaxBytes    = 1 << 20
)

// Options tune a Remote; zero values take the defaults above.
type Options struct {
	// Client makes the requests; default one with Timeout.
	Client  *http.Client
	Timeout time.Duration
	// MaxBytes bounds the response body.
	MaxBytes int64
	// MinInterval is the least time between two fetches, whatever forced them: an
	// unknown kid refetches at most once per MinInterval, and a failed fetch is not
	// retried sooner, even when the cached set expires meanwhile.
	MinInterval time.Duration
}

// Remote is a JWKS fetched over HTTP(S) and cached. Safe for concurrent use.
//
// At most one fetch runs at a time, in its own goroutine bounded by Timeout, and no
// lock is held while it runs: lookups of cached kids never wait for it; lookups
// that need it (nothing cached, the set expired, an unknown kid) wait for it each
// until its own context ends. The fetch does not end with the request that started
// it: other requests may be waiting for it, and a client going away says nothing
// about the issuer.
//
// Lookups never fetch more than once per MinInterval. Until the cached set's
// max-age passes it is served even when refreshing fails; past it, lookups fail
// with ErrUnavailable until a fetch succeeds (fail closed).
type Remote struct {
	url      string
	client   *http.Client
	timeout  time.Duration
	maxBytes int64
	interval time.Duration

	mu        sync.Mutex
	keys      *Keys
	expires   time.Time // keys are not used at or after this
	lastFetch time.Time // start of the last fetch, successful or not
	lastErr   error
	inflight  chan struct{} // closed when the running fetch ends; nil when none runs
}

// NewRemote returns a Remote for the JWKS at url. It fetches nothing until the
// first Lookup.
func NewRemote(url string, opts Options) *Remote {
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
	return &Remote{url: url, client: opts.Client, timeout: opts.Timeout, maxBytes: opts.MaxBytes, interval: opts.MinInterval}
}

// Lookup returns the key with this kid at time now, fetching the set when none is
// cached, when the cached one has expired, or when kid is unknown and the last
// fetch is at least MinInterval old. When ctx ends while it waits for a fetch, it
// returns ErrUnavailable wrapping ctx's error.
func (r *Remote) Lookup(ctx context.Context, kid string, now time.Time) (Key, error) {
	if err := ctx.Err(); err != nil {
		return Key{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	waited := false
	for {
		r.mu.Lock()
		valid := r.keys != nil && now.Before(r.expires)
		if valid {
			if k, ok := r.keys.Find(kid); ok {
				r.mu.Unlock()
				return k, nil
			}
		}
		// A now before the last fetch (a request stamped before it waited) counts
		// as within the interval.
		recent := !r.lastFetch.IsZero() && now.Sub(r.lastFetch) < r.interval
		if waited || (r.inflight == nil && recent) {
			err := r.missLocked(kid, now, valid, waited)
			r.mu.Unlock()
			return Key{}, err
		}
		if r.inflight == nil {
			r.inflight = make(chan struct{})
			r.lastFetch = now
			go r.refresh(context.WithoutCancel(ctx), now, r.inflight)
		}
		wait := r.inflight
		r.mu.Unlock()
		select {
		case <-wait:
			waited = true
		case <-ctx.Done():
			return Key{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
	}
}

// missLocked is the error for a kid not found, after a fetch (waited) or without
// one (fetched too recently).
func (r *Remote) missLocked(kid string, now time.Time, valid, waited bool) error {
	switch {
	case !valid:
		return r.unavailable()
	case waited && r.lastErr != nil:
		return fmt.Errorf("%w (kid %q; refetch failed: %v)", ErrUnknownKey, kid, r.lastErr)
	case waited:
		return fmt.Errorf("%w (kid %q, after a refetch)", ErrUnknownKey, kid)
	}
	// Fetched (or tried) a moment ago: do not let unknown kids or a failing issuer
	// turn every request into a fetch.
	return fmt.Errorf("%w (kid %q; refetched %s ago)", ErrUnknownKey, kid, now.Sub(r.lastFetch).Round(time.Second))
}

// refresh fetches the set and records the outcome, then closes done.
func (r *Remote) refresh(ctx context.Context, started time.Time, done chan struct{}) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	ks, maxAge, err := r.fetch(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.lastErr = err
	} else {
		r.keys, r.expires, r.lastErr = ks, started.Add(maxAge), nil
	}
	r.inflight = nil
	close(done)
}

func (r *Remote) unavailable() error {
	if r.lastErr != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, r.lastErr)
	}
	return fmt.Errorf("%w: the cached key set has expired", ErrUnavailable)
}

func (r *Remote) fetch(ctx context.Context) (*Keys, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetching %s: %w", r.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("fetching %s: HTTP %d", r.url, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, r.maxBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("fetching %s: %w", r.url, err)
	}
	if int64(len(b)) > r.maxBytes {
		return nil, 0, fmt.Errorf("fetching %s: the key set is larger than %d bytes", r.url, r.maxBytes)
	}
	ks, err := Parse(b)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", r.url, err)
	}
	return ks, MaxAge(resp.Header.Get("Cache-Control")), nil
}

// MaxAge is how long a set served with this Cache-Control header is kept: its
// max-age clamped to [MinMaxAge, MaxMaxAge], MinMaxAge for no-cache or no-store,
// DefaultMaxAge when it says nothing usable.
func MaxAge(cacheControl string) time.Duration {
	d := DefaultMaxAge
	for _, dir := range strings.Split(cacheControl, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
		switch strings.ToLower(name) {
		case "no-cache", "no-store":
			return MinMaxAge
		case "max-age":
			n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
			if errors.Is(err, strconv.ErrRange) && n > 0 {
				n = math.MaxInt64 // RFC 9111 §1.2.2: too large means the largest; clamped below
			} else if err != nil || n < 0 {
				continue
			}
			if n > int64(MaxMaxAge/time.Second) {
				n = int64(MaxMaxAge / time.Second)
			}
			d = time.Duration(n) * time.Second
		}
	}
	return min(max(d, MinMaxAge), MaxMaxAge)
}
