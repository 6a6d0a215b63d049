package httpapi

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// RateLimitedCode is the audit code (and event type) of a request refused by
// limits.rate.
const RateLimitedCode = "rate_limited"

// DefaultMaxRateKeys bounds each of the rate limiter's two tables (clients and
// addresses): at most this many keys have their own bucket; beyond it (a flood
// from many addresses) the others share one, so no sender can grow deputy's
// memory without bound. The tables are apart, so that addresses filling theirs
// never push a client into a shared bucket.
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

// limiter is a table of token buckets, one per key, bounded (maxKeys). Safe for
// concurrent use.
type limiter struct {
	rate    float64 // tokens a second; 0: no limit
	burst   float64
	maxKeys int

	mu       sync.Mutex
	buckets  map[string]*bucket
	overflow bucket // shared by the keys beyond maxKeys
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

// blocked reports whether key has a bucket of its own and it is empty at now,
// and how long until it is not. It takes nothing and adds no key. A key without
// a bucket is never blocked, even when the table is full and the shared bucket
// empty: else whoever fills the table (a flood from many addresses) would have
// every well-behaved newcomer refused before it could authenticate.
func (l *limiter) blocked(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		return false, 0
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		return false, 0
	}
	return true, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
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

// size is the number of keys with their own bucket.
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

// Keying (README, Operating deputy › Limits). limits.rate applies per client to
// requests whose client authenticated, and per address to the others:
//
//   - A request from an address whose bucket is empty is refused before anything
//     is read or parsed (rateLimit). Only requests that did not authenticate a
//     confidential client spend an address's bucket, so an address has one only
//     once it sent such requests: a well-behaved client never meets this check,
//     and the clients behind one address (a NAT, a proxy without trusted_proxies,
//     one test machine) do not share a bucket.
//   - A request whose confidential client authenticated (a secret, an assertion,
//     a certificate) spends that client's bucket, and is refused when it is empty
//     right after the authentication, before its grant runs: nothing is signed
//     or written but the aggregated rate_limited event. A client id claimed with
//     a wrong secret never spends the client's bucket, so nobody can exhaust
//     another client's allowance; it spends its address's.
//   - A request that did not authenticate — no or wrong credentials, a malformed
//     body, a public client (whose client id proves nothing) — spends its
//     address's bucket once it is refused or, for a public client, when it
//     authenticates; a public client's request over it is refused with 429.
//
// An address's requests in flight when its bucket empties are answered as usual,
// so a burst of concurrent unauthenticated requests may pass the burst by up to
// the requests in flight (limits.max_in_flight bounds those).

// rateLimit answers r with 429 and reports false when r comes from an address
// whose bucket is empty, on an endpoint limits.rate applies to. It runs before
// anything is parsed; it takes nothing, and adds no address to the table.
func (s *Server) rateLimit(w http.ResponseWriter, r *http.Request) bool {
	endpoint, ok := rateLimited[r.URL.Path]
	if !ok || s.addrRate == nil {
		return true
	}
	now := s.cfg.Now()
	addr := remoteHost(r)
	blocked, wait := s.addrRate.blocked(addr, now)
	if !blocked {
		return true
	}
	oe := s.refuseRate(r.Context(), endpoint, wait, "address", "", addr, requestID(r), r.URL.Path, now)
	writeRefusal(w, r, http.StatusTooManyRequests, oe.retryAfter, oe.oe, true)
	return false
}

// rateGate is a request's grant.Limit: it spends its client's or its address's
// bucket once its client authentication is decided (see Keying above).
type rateGate struct {
	s         *Server
	ctx       context.Context
	endpoint  string
	path      string
	addr      string
	requestID string
}

// rateGateFor is r's grant.Limit, nil where limits.rate does not apply.
func (s *Server) rateGateFor(r *http.Request, requestID string) grant.Limit {
	endpoint, ok := rateLimited[r.URL.Path]
	if !ok || s.addrRate == nil {
		return nil
	}
	return &rateGate{s: s, ctx: r.Context(), endpoint: endpoint, path: r.URL.Path, addr: remoteHost(r), requestID: requestID}
}

// Admit spends c's bucket, or for a public client its address's, and refuses the
// request with a *rateLimitedError when it is empty.
func (g *rateGate) Admit(c *client.Client) error {
	now := g.s.cfg.Now()
	lim, key, per := g.s.clientRate, c.ID, "client"
	if c.Public() {
		lim, key, per = g.s.addrRate, g.addr, "address"
	}
	allowed, wait := lim.allow(key, now)
	if allowed {
		return nil
	}
	return g.s.refuseRate(g.ctx, g.endpoint, wait, per, c.ID, g.addr, g.requestID, g.path, now)
}

// Blocked refuses a request, before its client authentication, when the client
// it claims has emptied its own bucket: that client's requests then cost no
// assertion check and no replay record. It spends nothing, and a client id with
// no bucket (unknown, public, or within its allowance) is never blocked.
func (g *rateGate) Blocked(claimedID string) error {
	now := g.s.cfg.Now()
	blocked, wait := g.s.clientRate.blocked(claimedID, now)
	if !blocked {
		return nil
	}
	return g.s.refuseRate(g.ctx, g.endpoint, wait, "client", claimedID, g.addr, g.requestID, g.path, now)
}

// Unauthenticated spends the address's bucket.
func (g *rateGate) Unauthenticated() {
	_, _ = g.s.addrRate.allow(g.addr, g.s.cfg.Now())
}

// rateLimitedError is the answer to a request over limits.rate: 429 with
// Retry-After (seconds) and oe as its RFC 6749 §5.2-shaped body (writeError).
type rateLimitedError struct {
	oe         *oauth.Error
	retryAfter string
}

func (e *rateLimitedError) Error() string { return e.oe.Error() }
func (e *rateLimitedError) Unwrap() error { return e.oe }

// refuseRate counts a request refused by limits.rate, whose bucket is per
// ("client" or "address"), audits it as a rate_limited event in aggregate — once
// a minute per client, or per address and claimed client id (clientID, "" when
// it was refused before its credentials were read) for the others
// (audit.Aggregator) — and returns its answer.
func (s *Server) refuseRate(ctx context.Context, endpoint string, wait time.Duration, per, clientID, addr, reqID, path string, now time.Time) *rateLimitedError {
	s.rateMetrics.refused.WithLabelValues(endpoint).Inc()
	secs := strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
	oe := oauth.TemporarilyUnavailable("too many requests from this "+per+"; retry after "+secs+" s", nil)
	if s.cfg.Throttled != nil {
		ev := &store.AuditEvent{
			Time: now, Type: store.EventRateLimited, Decision: store.DecisionDeny,
			Reason:    RateLimitedCode + ": " + per + " over limits.rate at " + path,
			RequestID: reqID, RemoteAddr: addr, ClientID: clientID,
		}
		// The refusal stands whether or not its record is stored: the limit
		// protects the audit writer too.
		if d := s.cfg.RequestTimeout; d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		deny := s.cfg.Throttled.Deny
		if per == "client" {
			deny = s.cfg.Throttled.DenyClient // once a minute per client, from wherever
		}
		if _, err := deny(ctx, ev, RateLimitedCode, now); err != nil {
			s.cfg.Log.Warn("rate_limited event not recorded", "err", err)
		}
	}
	return &rateLimitedError{oe: oe, retryAfter: secs}
}
