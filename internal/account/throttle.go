package account

import (
	"container/list"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Throttle configures login throttling. Zero fields take the defaults below.
//
// The rules, applied separately to each account (the username as typed, known or
// not, so that throttling does not reveal which accounts exist) and to each remote
// address (an IPv4 address, or the /64 an IPv6 address is in):
//
//   - Every sign-in attempt that does not succeed is a failure. Failures are
//     counted until Window passes without one; then the count starts again.
//   - The attempt that makes the count reach the limit (AccountFailures for an
//     account, AddressFailures for an address) locks the key for BaseDelay, and
//     every further failure doubles the lock: BaseDelay, 2·BaseDelay, 4·BaseDelay,
//     …, at most MaxDelay. While a key is locked, attempts are refused with a
//     [*ThrottledError] before any password is hashed, and are not counted.
//   - A successful sign-in forgets the account's failures, and does not count
//     against its address.
//   - At most MaxKeys accounts and MaxKeys addresses are tracked; beyond that the
//     least recently active is forgotten, so memory stays bounded under a flood of
//     made-up usernames. An attacker who sprays that many names forgets other
//     accounts' counts, but is stopped by its address's limit first.
//
// Throttling is kept in memory, per node: each node of a cluster counts on its own.
type Throttle struct {
	AccountFailures int           // default 5
	AddressFailures int           // default 20
	Window          time.Duration // default 15m
	BaseDelay       time.Duration // default 1s
	MaxDelay        time.Duration // default 15m
	MaxKeys         int           // default 100000, for accounts and for addresses each
}

// Defaults of [Throttle].
const (
	DefaultAccountFailures = 5
	DefaultAddressFailures = 20
	DefaultWindow          = 15 * time.Minute
	DefaultBaseDelay       = time.Second
	DefaultMaxDelay        = 15 * time.Minute
	DefaultMaxKeys         = 100_000
)

func (t Throttle) withDefaults() (Throttle, error) {
	for _, f := range []struct {
		v    int64
		name string
	}{
		{int64(t.AccountFailures), "AccountFailures"}, {int64(t.AddressFailures), "AddressFailures"},
		{int64(t.Window), "Window"}, {int64(t.BaseDelay), "BaseDelay"}, {int64(t.MaxDelay), "MaxDelay"},
		{int64(t.MaxKeys), "MaxKeys"},
	} {
		if f.v < 0 {
			return t, fmt.Errorf("account: Throttle.%s is negative", f.name)
		}
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&t.AccountFailures, DefaultAccountFailures)
	def(&t.AddressFailures, DefaultAddressFailures)
	def(&t.MaxKeys, DefaultMaxKeys)
	defD(&t.Window, DefaultWindow)
	defD(&t.BaseDelay, DefaultBaseDelay)
	defD(&t.MaxDelay, DefaultMaxDelay)
	if t.MaxDelay < t.BaseDelay {
		return t, errors.New("account: Throttle.MaxDelay is shorter than BaseDelay")
	}
	return t, nil
}

// ErrThrottled is matched (errors.Is) by every [*ThrottledError].
var ErrThrottled = errors.New("account: too many failed sign-ins")

// ThrottledError refuses an attempt made while its account or address is locked.
type ThrottledError struct {
	// RetryAfter is how long until the lock that refused the attempt ends.
	RetryAfter time.Duration
	// Limit is the lock that refused it: "account" or "address". For logs and the
	// audit trail; a login page should not tell the two apart.
	Limit string
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%v: %s locked for %v", ErrThrottled, e.Limit, e.RetryAfter)
}

// Is makes errors.Is(err, ErrThrottled) true.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// key names what a limiter counts: a SHA-256 digest, so that a key's memory does not
// depend on the length of what the caller sent.
type key [sha256.Size]byte

func accountKey(username string) key { return sha256.Sum256([]byte("account\x00" + username)) }

// addressKey returns the key of a remote address ("host:port" or a bare host): an
// IPv4 address itself, an IPv6 address's /64 (what one subscriber usually holds),
// anything else as written. ok is false for "", which no limit applies to.
func addressKey(remoteAddr string) (k key, ok bool) {
	if remoteAddr == "" {
		return k, false
	}
	host := remoteAddr
	a, err := netip.ParseAddr(remoteAddr)
	if err != nil {
		if h, _, err2 := net.SplitHostPort(remoteAddr); err2 == nil {
			host = h
			a, err = netip.ParseAddr(h)
		}
	}
	if err == nil {
		a = a.Unmap().WithZone("")
		bits := 32
		if a.Is6() {
			bits = 64
		}
		host = netip.PrefixFrom(a, bits).Masked().String()
	}
	return sha256.Sum256([]byte("address\x00" + host)), true
}

// limiter counts failures per key (see [Throttle]). Safe for concurrent use.
type limiter struct {
	threshold              int
	window, base, maxDelay time.Duration
	maxKeys                int

	mu    sync.Mutex
	byKey map[key]*list.Element
	lru   *list.List // of *record; front: most recently active
}

type record struct {
	key      key
	failures int
	last     time.Time // of the latest failure
	until    time.Time // locked before this; zero: not locked
}

func newLimiter(threshold int, t Throttle) *limiter {
	return &limiter{threshold: threshold, window: t.Window, base: t.BaseDelay, maxDelay: t.MaxDelay,
		maxKeys: t.MaxKeys, byKey: map[key]*list.Element{}, lru: list.New()}
}

// begin admits an attempt for k at now, or refuses it with how long the lock has
// left. An admitted attempt is counted as a failure at once, so concurrent attempts
// cannot all slip under the limit; [limiter.cancel] takes it back.
func (l *limiter) begin(k key, now time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var r *record
	if e := l.byKey[k]; e != nil {
		l.lru.MoveToFront(e)
		r = e.Value.(*record)
		if now.Sub(r.last) > l.window {
			r.failures, r.until = 0, time.Time{}
		}
		if now.Before(r.until) {
			return r.until.Sub(now), false
		}
	} else {
		r = &record{key: k}
		l.byKey[k] = l.lru.PushFront(r)
		for l.lru.Len() > l.maxKeys {
			l.remove(l.lru.Back())
		}
	}
	r.failures++
	r.last = now
	if r.failures >= l.threshold {
		r.until = now.Add(l.delay(r.failures))
	}
	return 0, true
}

// cancel takes back one failure counted by begin: the attempt succeeded (for an
// address) or was never judged (the store failed, the caller gave up).
func (l *limiter) cancel(k key) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.byKey[k]
	if e == nil {
		return
	}
	r := e.Value.(*record)
	r.failures--
	switch {
	case r.failures <= 0:
		l.remove(e)
	case r.failures >= l.threshold:
		r.until = r.last.Add(l.delay(r.failures))
	default:
		r.until = time.Time{}
	}
}

// reset forgets k's failures.
func (l *limiter) reset(k key) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.byKey[k]; e != nil {
		l.remove(e)
	}
}

func (l *limiter) remove(e *list.Element) {
	l.lru.Remove(e)
	delete(l.byKey, e.Value.(*record).key)
}

// delay is the lock after the n-th failure, n ≥ threshold.
func (l *limiter) delay(n int) time.Duration {
	shift := n - l.threshold
	if shift >= 62 {
		return l.maxDelay
	}
	d := l.base << shift
	if d <= 0 || d > l.maxDelay || d>>shift != l.base {
		return l.maxDelay
	}
	return d
}

// len reports how many keys are tracked.
func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
