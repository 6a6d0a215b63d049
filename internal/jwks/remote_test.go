package jwks

import (
	"context"
	"crypto/elliptic"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// t0 is the time of the first lookup in the Remote tests; the tests drive time
// through Lookup's now argument only.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// issuer is a JWKS endpoint on 127.0.0.1 whose answer the test changes.
type issuer struct {
	srv  *httptest.Server
	hits atomic.Int64

	mu           sync.Mutex
	status       int
	body         []byte
	cacheControl string
	accept       string
	method       string
}

func newIssuer(t *testing.T, body []byte, cacheControl string) *issuer {
	t.Helper()
	is := &issuer{status: http.StatusOK, body: body, cacheControl: cacheControl}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	is.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.hits.Add(1)
		is.mu.Lock()
		defer is.mu.Unlock()
		is.accept, is.method = r.Header.Get("Accept"), r.Method
		if is.cacheControl != "" {
			w.Header().Set("Cache-Control", is.cacheControl)
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(is.status)
		_, _ = w.Write(is.body)
	}))
	is.srv.Listener.Close()
	is.srv.Listener = l
	is.srv.Start()
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) url() string { return is.srv.URL + "/jwks.json" }

// serve changes what the issuer answers from now on.
func (is *issuer) serve(status int, body []byte, cacheControl string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.status, is.body, is.cacheControl = status, body, cacheControl
}

// keySets returns the sets {a}, {a, b} and {b}: a an EC key, b an Ed25519 key.
func keySets(t *testing.T) (a, ab, b []byte) {
	ka := jwkJSON(t, newEC(t, elliptic.P256()).Public(), "a", "ES256", "sig")
	kb := jwkJSON(t, newEd(t).Public(), "b", "EdDSA", "sig")
	return jwksJSON(t, ka), jwksJSON(t, ka, kb), jwksJSON(t, kb)
}

// lookupOK asserts that kid is found at now and that the issuer has then been
// asked hits times in all.
func lookupOK(t *testing.T, r *Remote, is *issuer, kid string, now time.Time, hits int64) {
	t.Helper()
	k, err := r.Lookup(context.Background(), kid, now)
	if err != nil {
		t.Fatalf("Lookup(%q, t0+%v): %v", kid, now.Sub(t0), err)
	}
	if (kid != "" && k.KeyID != kid) || !k.IsPublic() {
		t.Fatalf("Lookup(%q, t0+%v) = kid %q public %v", kid, now.Sub(t0), k.KeyID, k.IsPublic())
	}
	if got := is.hits.Load(); got != hits {
		t.Fatalf("after Lookup(%q, t0+%v): %d fetches, want %d", kid, now.Sub(t0), got, hits)
	}
}

// lookupErr asserts that Lookup of kid at now fails with want (and not with the
// other error of Lookup), and that the issuer has then been asked hits times.
func lookupErr(t *testing.T, r *Remote, is *issuer, kid string, now time.Time, want error, hits int64) error {
	t.Helper()
	k, err := r.Lookup(context.Background(), kid, now)
	if !errors.Is(err, want) {
		t.Fatalf("Lookup(%q, t0+%v) = kid %q, error %v; want %v", kid, now.Sub(t0), k.KeyID, err, want)
	}
	other := ErrUnavailable
	if want == ErrUnavailable {
		other = ErrUnknownKey
	}
	if errors.Is(err, other) {
		t.Fatalf("Lookup(%q, t0+%v) error %v is also %v", kid, now.Sub(t0), err, other)
	}
	if k.Key != nil {
		t.Fatalf("Lookup(%q, t0+%v) returned key %v with error", kid, now.Sub(t0), k.Key)
	}
	if got := is.hits.Load(); got != hits {
		t.Fatalf("after Lookup(%q, t0+%v): %d fetches, want %d", kid, now.Sub(t0), got, hits)
	}
	return err
}

func TestRemoteFetchesOnFirstLookupOnly(t *testing.T) {
	a, _, _ := keySets(t)
	is := newIssuer(t, a, "")
	r := NewRemote(is.url(), Options{})
	if n := is.hits.Load(); n != 0 {
		t.Fatalf("NewRemote fetched %d times, want 0", n)
	}
	lookupOK(t, r, is, "a", t0, 1)
	lookupOK(t, r, is, "a", t0.Add(time.Second), 1)
	// No kid: the set's only key.
	if k, err := r.Lookup(context.Background(), "", t0.Add(2*time.Second)); err != nil || k.KeyID != "a" {
		t.Errorf(`Lookup("") = kid %q, %v; want the only key, "a"`, k.KeyID, err)
	}
	if n := is.hits.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.method != http.MethodGet {
		t.Errorf("method %q, want GET", is.method)
	}
	if !strings.Contains(is.accept, "application/jwk-set+json") || !strings.Contains(is.accept, "application/json") {
		t.Errorf("Accept %q, want application/jwk-set+json and application/json", is.accept)
	}
}

func TestRemoteCachesForMaxAge(t *testing.T) {
	cases := []struct {
		cacheControl string
		keep         time.Duration
	}{
		{"", DefaultMaxAge},
		{"max-age=600", 10 * time.Minute},
		{"public, max-age=7200", 2 * time.Hour},
		{"max-age=60", MinMaxAge},
		{"max-age=0", MinMaxAge},
		{"no-store", MinMaxAge},
		{"no-cache", MinMaxAge},
		{"max-age=604800", MaxMaxAge},
		{"garbage", DefaultMaxAge},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%q", tc.cacheControl), func(t *testing.T) {
			a, _, _ := keySets(t)
			is := newIssuer(t, a, tc.cacheControl)
			r := NewRemote(is.url(), Options{})
			lookupOK(t, r, is, "a", t0, 1)
			lookupOK(t, r, is, "a", t0.Add(tc.keep/2), 1)
			lookupOK(t, r, is, "a", t0.Add(tc.keep-time.Nanosecond), 1)
			// Expired at exactly max-age: fetched again, and kept anew from then.
			lookupOK(t, r, is, "a", t0.Add(tc.keep), 2)
			lookupOK(t, r, is, "a", t0.Add(2*tc.keep-time.Nanosecond), 2)
			lookupOK(t, r, is, "a", t0.Add(2*tc.keep), 3)
		})
	}
}

func TestRemoteUnknownKidRefetchesAtMostOncePerInterval(t *testing.T) {
	cases := []struct {
		name     string
		opt      time.Duration
		interval time.Duration
	}{
		{"default", 0, DefaultMinInterval},
		{"negative means default", -time.Second, DefaultMinInterval},
		{"one minute", time.Minute, time.Minute},
		{"one millisecond", time.Millisecond, time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, ab, _ := keySets(t)
			is := newIssuer(t, a, "max-age=3600")
			r := NewRemote(is.url(), Options{MinInterval: tc.opt})
			iv := tc.interval
			lookupOK(t, r, is, "a", t0, 1)

			// The issuer rotates in key b; lookups of b within the interval of
			// the first fetch do not fetch.
			is.serve(http.StatusOK, ab, "max-age=3600")
			lookupErr(t, r, is, "b", t0, ErrUnknownKey, 1)
			lookupErr(t, r, is, "b", t0.Add(iv-time.Nanosecond), ErrUnknownKey, 1)
			lookupOK(t, r, is, "a", t0.Add(iv-time.Nanosecond), 1)
			// Then one refetch finds it.
			lookupOK(t, r, is, "b", t0.Add(iv), 2)
			lookupOK(t, r, is, "a", t0.Add(iv), 2)

			// A kid the issuer does not publish: one refetch per interval.
			t1 := t0.Add(2 * iv)
			err := lookupErr(t, r, is, "c", t1, ErrUnknownKey, 3)
			if !strings.Contains(err.Error(), `"c"`) {
				t.Errorf("error %q does not name the kid", err)
			}
			for i := range 5 {
				lookupErr(t, r, is, "c", t1.Add(time.Duration(i)*iv/5), ErrUnknownKey, 3)
				lookupErr(t, r, is, fmt.Sprintf("other-%d", i), t1.Add(time.Duration(i)*iv/5), ErrUnknownKey, 3)
			}
			lookupErr(t, r, is, "c", t1.Add(iv), ErrUnknownKey, 4)
			// Known keys are served all along, from the cache.
			lookupOK(t, r, is, "b", t1.Add(iv), 4)
		})
	}
}

func TestRemoteRefetchReplacesTheSet(t *testing.T) {
	a, _, b := keySets(t)
	is := newIssuer(t, a, "")
	r := NewRemote(is.url(), Options{})
	lookupOK(t, r, is, "a", t0, 1)
	is.serve(http.StatusOK, b, "")
	lookupOK(t, r, is, "b", t0.Add(DefaultMinInterval), 2)
	// a was withdrawn: not served from the old set.
	lookupErr(t, r, is, "a", t0.Add(DefaultMinInterval+time.Second), ErrUnknownKey, 2)
}

func TestRemoteNoKidWithManyKeys(t *testing.T) {
	_, ab, _ := keySets(t)
	is := newIssuer(t, ab, "")
	r := NewRemote(is.url(), Options{})
	lookupErr(t, r, is, "", t0, ErrUnknownKey, 1)
	lookupErr(t, r, is, "", t0.Add(time.Second), ErrUnknownKey, 1)
	lookupOK(t, r, is, "b", t0.Add(2*time.Second), 1)
}

func TestRemoteUnavailableWithNothingCached(t *testing.T) {
	a, _, _ := keySets(t)
	ecPriv := newEC(t, elliptic.P256())
	cases := []struct {
		name   string
		status int
		body   []byte
	}{
		{"HTTP 500", http.StatusInternalServerError, a},
		{"HTTP 503", http.StatusServiceUnavailable, nil},
		{"HTTP 404", http.StatusNotFound, []byte("not found")},
		{"HTTP 204", http.StatusNoContent, nil},
		{"HTTP 201 with a valid set", http.StatusCreated, a},
		{"HTTP 203 with a valid set", http.StatusNonAuthoritativeInfo, a},
		{"HTTP 304", http.StatusNotModified, nil},
		{"not JSON", http.StatusOK, []byte("<html>hello</html>")},
		{"empty body", http.StatusOK, nil},
		{"empty set", http.StatusOK, []byte(`{"keys":[]}`)},
		{"private key", http.StatusOK, jwksJSON(t, jwkJSON(t, ecPriv, "a", "ES256", "sig"))},
		{"only encryption keys", http.StatusOK, jwksJSON(t, jwkJSON(t, ecPriv.Public(), "a", "ECDH-ES", "enc"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := newIssuer(t, nil, "")
			is.serve(tc.status, tc.body, "max-age=3600")
			r := NewRemote(is.url(), Options{})
			err := lookupErr(t, r, is, "a", t0, ErrUnavailable, 1)
			if tc.status != http.StatusOK && !strings.Contains(err.Error(), fmt.Sprint(tc.status)) {
				t.Errorf("error %q does not name the HTTP status %d", err, tc.status)
			}
			// A failed fetch is not retried within the interval, whatever the kid.
			lookupErr(t, r, is, "a", t0.Add(time.Second), ErrUnavailable, 1)
			lookupErr(t, r, is, "", t0.Add(DefaultMinInterval-time.Nanosecond), ErrUnavailable, 1)
			// After it, the issuer is asked again and, now healthy, serves.
			is.serve(http.StatusOK, a, "")
			lookupOK(t, r, is, "a", t0.Add(DefaultMinInterval), 2)
		})
	}
}

func TestRemoteUnavailableWhenUnreachable(t *testing.T) {
	// A server closed before the lookup: connection refused on 127.0.0.1.
	is := newIssuer(t, nil, "")
	is.srv.Close()
	r := NewRemote(is.url(), Options{})
	lookupErr(t, r, is, "a", t0, ErrUnavailable, 0)

	// A malformed URL.
	r = NewRemote("http://127.0.0.1:-1/\x7f", Options{})
	lookupErr(t, r, is, "a", t0, ErrUnavailable, 0)
}

func TestRemoteCanceledContext(t *testing.T) {
	a, _, _ := keySets(t)
	is := newIssuer(t, a, "")
	r := NewRemote(is.url(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	k, err := r.Lookup(ctx, "a", t0)
	if !errors.Is(err, ErrUnavailable) || k.Key != nil {
		t.Fatalf("Lookup with a canceled context = %v, %v; want ErrUnavailable", k.Key, err)
	}
}

// roundTripFunc is an http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestRemoteUsesOptionsClient(t *testing.T) {
	a, _, _ := keySets(t)
	is := newIssuer(t, a, "")
	var viaClient atomic.Int64
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		viaClient.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}
	r := NewRemote(is.url(), Options{Client: client})
	lookupOK(t, r, is, "a", t0, 1)
	if n := viaClient.Load(); n != 1 {
		t.Errorf("%d requests through Options.Client, want 1", n)
	}

	failing := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		return nil, errors.New("injected transport failure")
	})}
	r = NewRemote(is.url(), Options{Client: failing})
	err := lookupErr(t, r, is, "a", t0, ErrUnavailable, 1)
	if !strings.Contains(err.Error(), "injected transport failure") {
		t.Errorf("error %q does not carry the cause", err)
	}
}

func TestRemoteServesCacheWithinExpiryWhenIssuerFails(t *testing.T) {
	a, _, _ := keySets(t)
	for _, fail := range []struct {
		name   string
		status int
		body   []byte
	}{
		{"HTTP 500", http.StatusInternalServerError, nil},
		{"invalid body", http.StatusOK, []byte("{")},
	} {
		t.Run(fail.name, func(t *testing.T) {
			is := newIssuer(t, a, "max-age=600")
			r := NewRemote(is.url(), Options{})
			lookupOK(t, r, is, "a", t0, 1)
			is.serve(fail.status, fail.body, "")

			lookupOK(t, r, is, "a", t0.Add(5*time.Minute), 1)
			// An unknown kid makes it refetch; that fails, and the kid is
			// unknown rather than the set unavailable.
			err := lookupErr(t, r, is, "x", t0.Add(5*time.Minute), ErrUnknownKey, 2)
			if !strings.Contains(err.Error(), "refetch failed") {
				t.Errorf("error %q does not tell the refetch failed", err)
			}
			lookupErr(t, r, is, "x", t0.Add(5*time.Minute+time.Second), ErrUnknownKey, 2)
			// The cached set is still served until it expires.
			lookupOK(t, r, is, "a", t0.Add(5*time.Minute+time.Second), 2)
			lookupOK(t, r, is, "a", t0.Add(10*time.Minute-time.Nanosecond), 2)
		})
	}
}

func TestRemoteFailsClosedAfterExpiry(t *testing.T) {
	a, _, _ := keySets(t)
	for _, fail := range []struct {
		name   string
		status int
		body   []byte
	}{
		{"HTTP 500", http.StatusInternalServerError, a},
		{"invalid body", http.StatusOK, []byte(`{"keys":"a"}`)},
	} {
		t.Run(fail.name, func(t *testing.T) {
			is := newIssuer(t, a, "max-age=600")
			r := NewRemote(is.url(), Options{})
			lookupOK(t, r, is, "a", t0, 1)
			is.serve(fail.status, fail.body, "")

			expiry := t0.Add(10 * time.Minute)
			lookupErr(t, r, is, "a", expiry, ErrUnavailable, 2)
			// Not retried within the interval; the expired set is not used.
			lookupErr(t, r, is, "a", expiry.Add(time.Second), ErrUnavailable, 2)
			lookupErr(t, r, is, "", expiry.Add(DefaultMinInterval-time.Nanosecond), ErrUnavailable, 2)
			lookupErr(t, r, is, "a", expiry.Add(DefaultMinInterval), ErrUnavailable, 3)
			// Once the issuer recovers, the next permitted fetch serves again.
			is.serve(http.StatusOK, a, "max-age=600")
			lookupErr(t, r, is, "a", expiry.Add(DefaultMinInterval+time.Second), ErrUnavailable, 3)
			lookupOK(t, r, is, "a", expiry.Add(2*DefaultMinInterval), 4)
			lookupOK(t, r, is, "a", expiry.Add(2*DefaultMinInterval+9*time.Minute), 4)
		})
	}
}

// Remote's doc: lookups never fetch more than once per MinInterval, so a set that
// expires within MinInterval of the last fetch stays unavailable until the
// interval has passed. (Options.MinInterval's doc says fetches forced by an
// expired cache are not so bounded; the code and this test follow Remote's doc.)
func TestRemoteExpiredSetWithinIntervalIsUnavailable(t *testing.T) {
	a, _, _ := keySets(t)
	is := newIssuer(t, a, "max-age=300")
	r := NewRemote(is.url(), Options{MinInterval: 10 * time.Minute})
	lookupOK(t, r, is, "a", t0, 1)
	err := lookupErr(t, r, is, "a", t0.Add(5*time.Minute), ErrUnavailable, 1)
	if !strings.Contains(err.Error(), "expired") {
		t.Errorf("error %q does not tell the set expired", err)
	}
	lookupOK(t, r, is, "a", t0.Add(10*time.Minute), 2)

	// A success forgets an earlier failure: the error names the expiry, not the
	// old cause.
	is = newIssuer(t, nil, "")
	is.serve(http.StatusTeapot, nil, "")
	r = NewRemote(is.url(), Options{MinInterval: 10 * time.Minute})
	lookupErr(t, r, is, "a", t0, ErrUnavailable, 1)
	is.serve(http.StatusOK, a, "max-age=300")
	lookupOK(t, r, is, "a", t0.Add(10*time.Minute), 2)
	err = lookupErr(t, r, is, "a", t0.Add(15*time.Minute), ErrUnavailable, 2)
	if !strings.Contains(err.Error(), "expired") || strings.Contains(err.Error(), "418") {
		t.Errorf("error %q: want the expiry, not the earlier HTTP 418", err)
	}
}

func TestRemoteMaxBytes(t *testing.T) {
	a, _, _ := keySets(t)
	// padded is the set a, padded with trailing white space to n bytes.
	padded := func(n int) []byte {
		if n < len(a) {
			t.Fatalf("cannot pad %d bytes to %d", len(a), n)
		}
		return append(append([]byte(nil), a...), strings.Repeat(" ", n-len(a))...)
	}
	cases := []struct {
		name  string
		opt   int64
		limit int
	}{
		{"default", 0, DefaultMaxBytes},
		{"negative means default", -1, DefaultMaxBytes},
		{"4 KiB", 4096, 4096},
		{"exactly the set", int64(len(a)), len(a)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := newIssuer(t, padded(tc.limit), "")
			r := NewRemote(is.url(), Options{MaxBytes: tc.opt})
			lookupOK(t, r, is, "a", t0, 1)

			is = newIssuer(t, padded(tc.limit+1), "")
			r = NewRemote(is.url(), Options{MaxBytes: tc.opt})
			err := lookupErr(t, r, is, "a", t0, ErrUnavailable, 1)
			if !strings.Contains(err.Error(), fmt.Sprintf("larger than %d bytes", tc.limit)) {
				t.Errorf("error %q does not tell the set is too large", err)
			}

			is = newIssuer(t, padded(4*tc.limit), "")
			r = NewRemote(is.url(), Options{MaxBytes: tc.opt})
			lookupErr(t, r, is, "a", t0, ErrUnavailable, 1)
		})
	}
}

func TestRemoteConcurrentLookupsFetchOnce(t *testing.T) {
	_, ab, _ := keySets(t)
	is := newIssuer(t, ab, "")
	r := NewRemote(is.url(), Options{})
	const n = 16
	run := func(now time.Time, kid func(int) string) []error {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = r.Lookup(context.Background(), kid(i), now)
			})
		}
		wg.Wait()
		return errs
	}
	for i, err := range run(t0, func(i int) string { return []string{"a", "b"}[i%2] }) {
		if err != nil {
			t.Errorf("lookup %d: %v", i, err)
		}
	}
	if got := is.hits.Load(); got != 1 {
		t.Errorf("%d concurrent lookups fetched %d times, want 1", n, got)
	}
	// Unknown kids at one instant past the interval: one refetch between them.
	for i, err := range run(t0.Add(time.Minute), func(i int) string { return fmt.Sprint("unknown-", i) }) {
		if !errors.Is(err, ErrUnknownKey) {
			t.Errorf("lookup %d: %v, want ErrUnknownKey", i, err)
		}
	}
	if got := is.hits.Load(); got != 2 {
		t.Errorf("after unknown kids: %d fetches in all, want 2", got)
	}
}

func TestMaxAge(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
	}{
		{"", DefaultMaxAge},
		{"max-age=60", MinMaxAge},
		{"public, max-age=0", MinMaxAge},
		{"no-store", MinMaxAge},
		{"no-cache", MinMaxAge},
		{"No-Cache", MinMaxAge},
		{"garbage", DefaultMaxAge},
		{"max-age=300", 5 * time.Minute},
		{"max-age=600", 10 * time.Minute},
		{"max-age=3600", time.Hour},
		{"max-age=7200", 2 * time.Hour},
		{"max-age=86400", MaxMaxAge},
		{"max-age=86401", MaxMaxAge},
		{"max-age=31536000", MaxMaxAge},
		{"max-age=9223372036854775807", MaxMaxAge},
		{"max-age=99999999999999999999", MaxMaxAge}, // RFC 9111 §1.2.2: too large is the largest
		{"MAX-AGE=600", 10 * time.Minute},
		{`max-age="600"`, 10 * time.Minute},
		{"public,max-age=600", 10 * time.Minute},
		{" private , max-age=600 ", 10 * time.Minute},
		{"max-age=600, must-revalidate", 10 * time.Minute},
		{"max-age=600, no-store", MinMaxAge},
		{"no-cache, max-age=600", MinMaxAge},
		{"max-age=600, max-age=1200", 20 * time.Minute},
		{"max-age=-1", DefaultMaxAge},
		{"max-age=", DefaultMaxAge},
		{"max-age", DefaultMaxAge},
		{"max-age=abc", DefaultMaxAge},
		{"max-age=1.5", DefaultMaxAge},
		{"max-age=600x", DefaultMaxAge},
		{"s-maxage=600", DefaultMaxAge},
		{"public", DefaultMaxAge},
		{",,,", DefaultMaxAge},
	}
	for _, tc := range cases {
		if got := MaxAge(tc.in); got != tc.want {
			t.Errorf("MaxAge(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// A request stamped before the last fetch (it waited for the lock) is within the
// interval: stale stamps must not turn unknown kids into a fetch each.
func TestRemoteStaleNowDoesNotRefetch(t *testing.T) {
	a, _, _ := keySets(t)
	is := newIssuer(t, a, "")
	r := NewRemote(is.url(), Options{MinInterval: time.Minute})
	lookupOK(t, r, is, "a", t0, 1)
	for i := 1; i <= 5; i++ {
		lookupErr(t, r, is, "unknown", t0.Add(-time.Duration(i)*time.Millisecond), ErrUnknownKey, 1)
	}
	// The interval still counts from the real last fetch.
	lookupErr(t, r, is, "unknown", t0.Add(time.Minute), ErrUnknownKey, 2)
}

// A caller that gives up during a fetch says nothing about the issuer: the next
// lookup fetches at once instead of failing for MinInterval.
func TestRemoteCanceledFetchDoesNotBlockOthers(t *testing.T) {
	a, _, _ := keySets(t)
	is := newIssuer(t, a, "")
	r := NewRemote(is.url(), Options{MinInterval: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Lookup(ctx, "a", t0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("canceled Lookup: %v, want ErrUnavailable", err)
	}
	lookupOK(t, r, is, "a", t0.Add(time.Second), 1)
}
