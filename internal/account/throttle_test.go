package account

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// attempt signs in at t0+at and returns the error.
func attempt(t *testing.T, d *Directory, user, password, addr string, at time.Duration) error {
	t.Helper()
	_, err := d.Authenticate(t.Context(), user, password, addr, t0.Add(at))
	return err
}

// wantThrottled fails unless err is a *ThrottledError of that limit and delay.
func wantThrottled(t *testing.T, err error, limit string, retry time.Duration) {
	t.Helper()
	var te *ThrottledError
	if !errors.As(err, &te) || !errors.Is(err, ErrThrottled) {
		t.Fatalf("err = %v; want throttled (%s, %v)", err, limit, retry)
	}
	if te.Limit != limit || te.RetryAfter != retry {
		t.Fatalf("throttled by %s for %v; want %s for %v", te.Limit, te.RetryAfter, limit, retry)
	}
}

func TestThrottleAccount(t *testing.T) {
	d, _ := fixture(t, Options{})
	const addr = "" // the per-address limit out of the way
	for i := range DefaultAccountFailures {
		if err := attempt(t, d, "bob", "guess", addr, 0); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	// Locked for 1s after the 5th failure, even with the right password.
	wantThrottled(t, attempt(t, d, "bob", "bob-pw", addr, 0), "account", time.Second)
	wantThrottled(t, attempt(t, d, "bob", "guess", addr, 400*time.Millisecond), "account", 600*time.Millisecond)
	// Other accounts are not affected.
	if err := attempt(t, d, "alice", "alice-pw", addr, 0); err != nil {
		t.Fatalf("alice: %v", err)
	}
	// Each further failure doubles the lock: 2s, 4s, 8s, …
	at := time.Second
	for _, lock := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second} {
		if err := attempt(t, d, "bob", "guess", addr, at); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("at %v: %v", at, err)
		}
		wantThrottled(t, attempt(t, d, "bob", "bob-pw", addr, at), "account", lock)
		at += lock
	}
	// Unlocked after the delay, the right password succeeds and forgets the failures:
	// four more are allowed before the next lock, which is 1s again.
	if err := attempt(t, d, "bob", "bob-pw", addr, at); err != nil {
		t.Fatalf("after the lock: %v", err)
	}
	for i := range DefaultAccountFailures {
		if err := attempt(t, d, "bob", "guess", addr, at); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d after success: %v", i+1, err)
		}
	}
	wantThrottled(t, attempt(t, d, "bob", "bob-pw", addr, at), "account", time.Second)
}

// Unknown usernames are throttled like known ones, so locking does not reveal
// which accounts exist.
func TestThrottleUnknownAccount(t *testing.T) {
	d, _ := fixture(t, Options{})
	for range DefaultAccountFailures {
		if err := attempt(t, d, "zoe", "guess", "", 0); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatal(err)
		}
	}
	wantThrottled(t, attempt(t, d, "zoe", "guess", "", 0), "account", time.Second)
}

func TestThrottleWindow(t *testing.T) {
	d, _ := fixture(t, Options{})
	for range DefaultAccountFailures - 1 {
		if err := attempt(t, d, "bob", "guess", "", 0); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatal(err)
		}
	}
	// Failures spaced by at most the window add up …
	if err := attempt(t, d, "bob", "guess", "", DefaultWindow); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	wantThrottled(t, attempt(t, d, "bob", "bob-pw", "", DefaultWindow), "account", time.Second)
	// … and are forgotten once the window passes without one.
	later := 2*DefaultWindow + time.Nanosecond
	for i := range DefaultAccountFailures - 1 {
		if err := attempt(t, d, "bob", "guess", "", later); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d after the window: %v", i+1, err)
		}
	}
	if err := attempt(t, d, "bob", "bob-pw", "", later); err != nil {
		t.Fatalf("5th attempt after the window: %v", err)
	}
}

func TestThrottleMaxDelay(t *testing.T) {
	d, _ := fixture(t, Options{})
	at, want := time.Duration(0), []time.Duration{}
	for i := range 16 {
		want = append(want, min(time.Second<<i, DefaultMaxDelay))
	}
	for range DefaultAccountFailures - 1 {
		attempt(t, d, "bob", "guess", "", 0)
	}
	for _, lock := range want {
		if err := attempt(t, d, "bob", "guess", "", at); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("at %v: %v", at, err)
		}
		wantThrottled(t, attempt(t, d, "bob", "guess", "", at), "account", lock)
		at += lock
	}
	if want[len(want)-1] != DefaultMaxDelay {
		t.Fatal("the test did not reach the cap")
	}
}

func TestThrottleAddress(t *testing.T) {
	d, _ := fixture(t, Options{})
	const addr = "198.51.100.7:40000"
	// Successes from an address do not count against it.
	for range 3 * DefaultAddressFailures {
		if err := attempt(t, d, "alice", "alice-pw", addr, 0); err != nil {
			t.Fatal(err)
		}
	}
	// 20 failures over many accounts (none reaching its own limit), from one
	// address, other ports.
	for i := range DefaultAddressFailures {
		a := fmt.Sprintf("198.51.100.7:%d", 1000+i)
		if err := attempt(t, d, fmt.Sprintf("user%d", i), "guess", a, 0); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	wantThrottled(t, attempt(t, d, "alice", "alice-pw", addr, 0), "address", time.Second)
	wantThrottled(t, attempt(t, d, "alice", "alice-pw", "198.51.100.7", 0), "address", time.Second)
	// A refused attempt does not count against the account.
	if err := attempt(t, d, "alice", "alice-pw", "", 0); err != nil {
		t.Fatalf("alice from elsewhere: %v", err)
	}
	// Another address is not affected; the locked one is free after the delay.
	if err := attempt(t, d, "alice", "alice-pw", "198.51.100.8:1", 0); err != nil {
		t.Fatalf("other address: %v", err)
	}
	if err := attempt(t, d, "alice", "alice-pw", addr, time.Second); err != nil {
		t.Fatalf("after the delay: %v", err)
	}
}

func TestThrottleIPv6Prefix(t *testing.T) {
	d, _ := fixture(t, Options{Throttle: Throttle{AddressFailures: 2}})
	attempt(t, d, "u1", "guess", "[2001:db8:1:2::1]:1", 0)
	attempt(t, d, "u2", "guess", "[2001:db8:1:2:ffff::9]:2", 0)
	// The same /64 is one address …
	wantThrottled(t, attempt(t, d, "alice", "alice-pw", "2001:db8:1:2::77", 0), "address", time.Second)
	// … another /64 is another; an IPv4-mapped address is the IPv4 address.
	if err := attempt(t, d, "alice", "alice-pw", "[2001:db8:1:3::1]:1", 0); err != nil {
		t.Fatal(err)
	}
	attempt(t, d, "u3", "guess", "192.0.2.9:1", 0)
	attempt(t, d, "u4", "guess", "[::ffff:192.0.2.9]:2", 0)
	wantThrottled(t, attempt(t, d, "alice", "alice-pw", "192.0.2.9", 0), "address", time.Second)
}

// A throttled attempt is refused before any hashing: it does not wait for a slot.
func TestThrottledAttemptsDoNotHash(t *testing.T) {
	d, _ := fixture(t, Options{MaxConcurrentHashes: 1})
	for range DefaultAccountFailures {
		attempt(t, d, "bob", "guess", "", 0)
	}
	d.slow <- struct{}{} // no slot free: an attempt that hashed would block
	defer func() { <-d.slow }()
	wantThrottled(t, attempt(t, d, "bob", "bob-pw", "", 0), "account", time.Second)
}

// A burst of concurrent guesses at one account gets exactly the allowed number
// judged; the rest are refused, though none had finished when they arrived.
func TestThrottleConcurrentBurst(t *testing.T) {
	d, _ := fixture(t, Options{})
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			err := attempt(t, d, "bob", "guess", "", 0)
			kind := "other"
			switch {
			case errors.Is(err, ErrInvalidCredentials):
				kind = "judged"
			case errors.Is(err, ErrThrottled):
				kind = "throttled"
			}
			mu.Lock()
			counts[kind]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if counts["judged"] != DefaultAccountFailures || counts["throttled"] != 100-DefaultAccountFailures {
		t.Errorf("outcomes %v; want %d judged, the rest throttled", counts, DefaultAccountFailures)
	}
}

func TestThrottleMemoryBound(t *testing.T) {
	const maxKeys = 10
	d, _ := fixture(t, Options{Throttle: Throttle{MaxKeys: maxKeys, AccountFailures: 2}})
	attempt(t, d, "bob", "guess", "", 0) // one failure; a second would lock bob
	for i := range 1000 {
		attempt(t, d, fmt.Sprintf("user%d", i), "guess", fmt.Sprintf("203.0.113.%d:1", i%250), 0)
	}
	if n := d.accounts.len(); n > maxKeys {
		t.Errorf("%d accounts tracked; want at most %d", n, maxKeys)
	}
	if n := d.addresses.len(); n > maxKeys {
		t.Errorf("%d addresses tracked; want at most %d", n, maxKeys)
	}
	// The least recently active (bob) was forgotten: his one failure is gone.
	attempt(t, d, "bob", "guess", "", 0)
	if err := attempt(t, d, "bob", "bob-pw", "", 0); err != nil {
		t.Errorf("bob's old failure was kept: %v", err)
	}
}

func TestLimiterDelay(t *testing.T) {
	l := newLimiter(5, Throttle{BaseDelay: time.Second, MaxDelay: 15 * time.Minute})
	tests := []struct {
		n    int
		want time.Duration
	}{
		{5, time.Second}, {6, 2 * time.Second}, {7, 4 * time.Second}, {14, 512 * time.Second},
		{15, 15 * time.Minute}, {66, 15 * time.Minute}, {67, 15 * time.Minute}, {1 << 30, 15 * time.Minute},
	}
	for _, tt := range tests {
		if got := l.delay(tt.n); got != tt.want {
			t.Errorf("delay(%d) = %v; want %v", tt.n, got, tt.want)
		}
	}
}
