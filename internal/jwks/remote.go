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

// Remote is a JWKS fetched over HTTP(S) and cached. Safe for concurrent use; one
// fetch runs at a time and concurrent lookups wait for it.
//
// Lookups never fetch more than once per MinInterval. Until the cached set's
// max-age passes it is served even when refreshing fails; past it, lookups fail
// with ErrUnavailable until a fetch succeeds (fail closed).
type Remote struct {
	url      string
	client   *http.Client
	maxBytes int64
	interval time.Duration

	mu        sync.Mutex
	keys      *Keys
	expires   time.Time // keys are not used at or after this
	lastFetch time.Time // last attempt, successful or not
	lastErr   error
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
	return &Remote{url: url, client: opts.Client, maxBytes: opts.MaxBytes, interval: opts.MinInterval}
}

// Lookup returns the key with this kid at time now, fetching the set when none is
// cached, when the cached one has expired, or when kid is unknown and the last
// fetch is at least MinInterval old.
func (r *Remote) Lookup(ctx context.Context, kid string, now time.Time) (Key, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	valid := r.keys != nil && now.Before(r.expires)
	if valid {
		if k, ok := r.keys.Find(kid); ok {
			return k, nil
		}
	}
	// A now before the last fetch (a request stamped before it waited for the
	// lock) counts as within the interval.
	if !r.lastFetch.IsZero() && now.Sub(r.lastFetch) < r.interval {
		// Fetched (or tried) a moment ago: do not let unknown kids or a failing
		// issuer turn every request into a fetch.
		if valid {
			return Key{}, fmt.Errorf("%w (kid %q; refetched %s ago)", ErrUnknownKey, kid, now.Sub(r.lastFetch).Round(time.Second))
		}
		return Key{}, r.unavailable()
	}
	prev := r.lastFetch
	r.lastFetch = now
	ks, maxAge, err := r.fetch(ctx)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up (a client went away): that says nothing about
			// the issuer, so the next lookup may fetch at once.
			r.lastFetch = prev
			return Key{}, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		}
		r.lastErr = err
		if valid {
			return Key{}, fmt.Errorf("%w (kid %q; refetch failed: %v)", ErrUnknownKey, kid, err)
		}
		return Key{}, r.unavailable()
	}
	r.keys, r.expires, r.lastErr = ks, now.Add(maxAge), nil
	if k, ok := ks.Find(kid); ok {
		return k, nil
	}
	return Key{}, fmt.Errorf("%w (kid %q, after a refetch)", ErrUnknownKey, kid)
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
