package httpapi

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// RateLimitedCode is the audit code (and event type) of a request refused by
// limits.rate.
const RateLimitedCode = "rate_limited"

// DefaultMaxRateKeys bounds the rate limiter's table: at most this many
// addresses have their own bucket; beyond it (a flood from many addresses) the
// others share one, so no sender can grow deputy's memory without bound.
const DefaultMaxRateKeys = 16384

// rateLimited are the endpoints limits.rate applies to, by path, with the
// endpoint label of deputy_rate_limited_total (a fixed set).
var rateLimited = map[string]string{
	PathToken: "token", PathIntrospection: "introspect", PathRevocation: "revoke", PathCalls: "calls",
}

// bucket is a token bucket: tokens refill at the limiter's rate up to its burst.
type bucket struct {
	tokens float64
	at     time.Time
}

// limiter applies limits.rate per client address (README, Operating deputy ›
// Limits). It keys on the address, never on a client id the request claims: the
// check runs before anything is parsed or authenticated, and a flood of junk
// client ids from one address is one key. Safe for concurrent use.
type limiter struct {
	rate    float64 // tokens a second; 0: no limit
	burst   float64
	maxKeys int

	mu       sync.Mutex
	buckets  map[string]*bucket
	overflow bucket // shared by the addresses beyond maxKeys
}

func newLimiter(perSecond, burst, maxKeys int) *limiter {
	return &limiter{rate: float64(perSecond), burst: float64(burst), maxKeys: maxKeys, buckets: map[string]*bucket{}}
}

// allow takes a token of key's bucket at now; when there is none it reports
// false and how long until there is.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.maxKeys {
			l.sweep(now)
		}
		if len(l.buckets) >= l.maxKeys {
			b = &l.overflow
		} else {
			b = &bucket{tokens: l.burst, at: now}
			l.buckets[key] = b
		}
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

func (l *limiter) refill(b *bucket, now time.Time) {
	if b.at.IsZero() {
		b.tokens, b.at = l.burst, now
		return
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.at = now
	}
}

// sweep forgets the buckets that are full again: a new bucket is the same.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if l.refill(b, now); b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// size is the number of addresses with their own bucket.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// rateLimitMetrics counts the requests limits.rate refused.
type rateLimitMetrics struct {
	refused *prometheus.CounterVec
}

func newRateLimitMetrics(reg *prometheus.Registry) *rateLimitMetrics {
	m := &rateLimitMetrics{refused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "deputy_rate_limited_total",
		Help: "Requests refused with 429 by limits.rate, by endpoint.",
	}, []string{"endpoint"})}
	for _, e := range rateLimited {
		m.refused.WithLabelValues(e) // present at 0 from the first scrape
	}
	reg.MustRegister(m.refused)
	return m
}

// rateLimit answers r with 429 and reports false when its address is over
// limits.rate on an endpoint the limit applies to. The refusal is counted, and
// audited as a rate_limited event once per address a minute (audit.Aggregator).
func (s *Server) rateLimit(w http.ResponseWriter, r *http.Request) bool {
	endpoint, ok := rateLimited[r.URL.Path]
	if !ok || s.limiter == nil || s.limiter.rate <= 0 {
		return true
	}
	now := s.cfg.Now()
	addr := remoteHost(r)
	allowed, wait := s.limiter.allow(addr, now)
	if allowed {
		return true
	}
	s.rateMetrics.refused.WithLabelValues(endpoint).Inc()
	secs := max(1, int(math.Ceil(wait.Seconds())))
	oe := oauth.TemporarilyUnavailable("too many requests from this address; retry after "+strconv.Itoa(secs)+" s", nil)
	if s.cfg.Throttled != nil {
		ev := &store.AuditEvent{
			Time: now, Type: store.EventRateLimited, Decision: store.DecisionDeny,
			Reason:    RateLimitedCode + ": over limits.rate at " + r.URL.Path,
			RequestID: requestID(r), RemoteAddr: addr,
		}
		// The refusal stands whether or not its record is stored: the limit
		// protects the audit writer too.
		ctx := r.Context()
		if d := s.cfg.RequestTimeout; d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		if _, err := s.cfg.Throttled.Deny(ctx, ev, RateLimitedCode, now); err != nil {
			s.cfg.Log.Warn("rate_limited event not recorded", "err", err)
		}
	}
	writeRefusal(w, r, http.StatusTooManyRequests, strconv.Itoa(secs), oe)
	return false
}
