package jwks

import (
	"context"
	"net/http"
	"time"

	"github.com/deputy-auth/deputy/sdk/jwkfetch"
)

// Bounds of the remote cache. A Cache-Control max-age outside
// [MinMaxAge, MaxMaxAge] is clamped to it; without one, DefaultMaxAge applies.
const (
	MinMaxAge          = 5 * time.Minute
	MaxMaxAge          = 24 * time.Hour
	DefaultMaxAge      = time.Hour
	DefaultMinInterval = jwkfetch.DefaultMinInterval
	DefaultTimeout     = jwkfetch.DefaultTimeout
	DefaultMaxBytes    = jwkfetch.DefaultMaxBytes
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
	// OnFetch, if set, is called after each fetch with its error (nil when a set
	// was fetched): the hook internal/server counts fetches with, as this package
	// does not import Prometheus.
	OnFetch func(err error)
}

// Remote is a JWKS fetched over HTTP(S) and cached: the SDK's [jwkfetch.Cache], with the
// server's bounds. Safe for concurrent use. A fetch holds no lock: lookups of known
// kids never wait for it, and lookups that do wait give up when their own context
// ends. Lookups never fetch more than once per MinInterval; a set is served until
// its max-age passes, and past it lookups fail with ErrUnavailable until a fetch
// succeeds (fail closed).
type Remote struct {
	c *jwkfetch.Cache
}

// NewRemote returns a Remote for the JWKS at url. It fetches nothing until the
// first Lookup.
func NewRemote(url string, opts Options) *Remote {
	fixed := func(context.Context, time.Time) (string, error) { return url, nil }
	return &Remote{c: jwkfetch.NewCache(fixed, jwkfetch.CacheOptions{
		Client: opts.Client, Timeout: opts.Timeout, MaxBytes: opts.MaxBytes, MinInterval: opts.MinInterval, OnFetch: opts.OnFetch,
		MaxAge: jwkfetch.MaxAgeBounds{Min: MinMaxAge, Max: MaxMaxAge, Default: DefaultMaxAge},
	})}
}

// Lookup returns the key with this kid at time now, fetching the set when none is
// cached, when the cached one has expired, or when kid is unknown and the last
// fetch is at least MinInterval old. When ctx ends while it waits for a fetch, it
// returns ErrUnavailable wrapping ctx's error.
func (r *Remote) Lookup(ctx context.Context, kid string, now time.Time) (Key, error) {
	return r.c.Lookup(ctx, kid, now)
}

// MaxAge is how long a set served with this Cache-Control header is kept: its
// max-age clamped to [MinMaxAge, MaxMaxAge], MinMaxAge for no-cache or no-store,
// DefaultMaxAge when it says nothing usable.
func MaxAge(cacheControl string) time.Duration {
	return jwkfetch.MaxAge(cacheControl, jwkfetch.MaxAgeBounds{Min: MinMaxAge, Max: MaxMaxAge, Default: DefaultMaxAge})
}
