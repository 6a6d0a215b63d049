package upstream

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/deputy-auth/deputy/internal/config"
)

// How an OpenID Provider that cannot be discovered is tried again: in the
// background after OIDCRetryMin, doubling up to OIDCRetryMax; a sign-in started
// meanwhile tries at once, unless the last try is less than OIDCRetryMin old.
const (
	OIDCRetryMin = time.Second
	OIDCRetryMax = 5 * time.Minute
)

// lazyOIDC is an OpenID Provider discovered on first use rather than at start:
// one IdP that cannot be reached must not keep deputy — and token exchange
// with it — from starting. Until discovery succeeds the provider is
// unavailable (the login page says so; a sign-in started with it gets an error
// page), and discovery is retried in the background with backoff and by each
// sign-in started with it; once it succeeds it is never repeated (go-oidc
// refreshes the IdP's keys on its own). A configuration that can never work
// (no issuer, no openid scope) is still an error at start. Safe for
// concurrent use.
type lazyOIDC struct {
	name   string
	cfg    config.UpstreamIdP
	client *http.Client
	now    func() time.Time
	log    *slog.Logger
	// base is the context of discovery attempts: the provider's lifetime, not
	// one request's (a browser that goes away does not abort the attempt).
	base context.Context

	mu      sync.Mutex
	p       *oidcProvider // nil until discovered
	lastErr error         // of the last failed attempt
	lastTry time.Time     // start of the last attempt
	trying  chan struct{} // closed when the attempt under way ends; nil when none is
}

func newLazyOIDC(ctx context.Context, cfg config.UpstreamIdP, log *slog.Logger) (*lazyOIDC, error) {
	if err := oidcStaticChecks(cfg); err != nil {
		return nil, err
	}
	return &lazyOIDC{name: cfg.Name, cfg: cfg, client: &http.Client{Timeout: OIDCHTTPTimeout}, now: time.Now, log: log,
		base: context.WithoutCancel(ctx)}, nil
}

// oidcStaticChecks refuses a configuration no IdP could make work.
func oidcStaticChecks(cfg config.UpstreamIdP) error {
	where := "upstream_idps[" + cfg.Name + "]"
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return fmt.Errorf("%s: issuer and client_id must be set", where)
	}
	if len(cfg.Scopes) > 0 && !slices.Contains(cfg.Scopes, oidc.ScopeOpenID) {
		return fmt.Errorf("%s.scopes: must include %q: without it the IdP sends no ID token", where, oidc.ScopeOpenID)
	}
	return nil
}

func (l *lazyOIDC) Name() string { return l.name }

// Unavailable reports the last failed discovery, or nil once the IdP was
// discovered or before the first attempt has ended.
func (l *lazyOIDC) Unavailable() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p != nil || l.lastErr == nil {
		return nil
	}
	return l.lastErr
}

func (l *lazyOIDC) Begin(ctx context.Context, callbackURL string) (string, []byte, error) {
	p, err := l.provider(ctx)
	if err != nil {
		return "", nil, err
	}
	return p.Begin(ctx, callbackURL)
}

func (l *lazyOIDC) Complete(ctx context.Context, callbackURL string, params url.Values, state []byte) (Identity, error) {
	p, err := l.provider(ctx)
	if err != nil {
		return Identity{}, err
	}
	return p.Complete(ctx, callbackURL, params, state)
}

// provider returns the discovered provider, discovering it now if it is not
// yet: joining an attempt under way, or starting one unless the last is less
// than OIDCRetryMin old (so a flood of sign-ins does not become a flood of
// requests to the IdP). The error matches ErrUnavailable.
func (l *lazyOIDC) provider(ctx context.Context) (*oidcProvider, error) {
	l.mu.Lock()
	if l.p != nil {
		defer l.mu.Unlock()
		return l.p, nil
	}
	if ch := l.trying; ch != nil {
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.p != nil {
			return l.p, nil
		}
		return nil, l.lastErr
	}
	if now := l.now(); !l.lastTry.IsZero() && now.Sub(l.lastTry) < OIDCRetryMin {
		defer l.mu.Unlock()
		return nil, l.lastErr
	}
	ch := make(chan struct{})
	l.trying, l.lastTry = ch, l.now()
	l.mu.Unlock()

	p, err := dialOIDC(l.base, l.cfg, l.client, l.now)

	l.mu.Lock()
	defer l.mu.Unlock()
	l.trying = nil
	close(ch)
	if err != nil {
		l.lastErr = fmt.Errorf("%w: %w", ErrUnavailable, err)
		return nil, l.lastErr
	}
	l.p, l.lastErr = p.(*oidcProvider), nil
	return l.p, nil
}

// retry discovers the IdP in the background until it succeeds or ctx ends,
// waiting OIDCRetryMin after the first failure and twice as long after each
// next, up to OIDCRetryMax.
func (l *lazyOIDC) retry(ctx context.Context) {
	wait := OIDCRetryMin
	for attempt := 1; ; attempt++ {
		_, err := l.provider(ctx)
		if err == nil {
			if attempt > 1 {
				l.log.Info("upstream identity provider discovered", "upstream", l.name, "issuer", l.cfg.Issuer)
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("upstream identity provider unavailable; its sign-in is off until discovery succeeds",
			"upstream", l.name, "issuer", l.cfg.Issuer, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, OIDCRetryMax)
	}
}

// discovered reports whether discovery has succeeded.
func (l *lazyOIDC) discovered() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.p != nil
}
