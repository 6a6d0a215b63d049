package jwks

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// watchdog bounds how long a test waits for a lookup that must not block; it is
// not a measurement: a correct Remote answers at once, a blocked one never.
const watchdog = 10 * time.Second

// TestRemoteRefetchDoesNotHoldLookups: while a refetch (for an unknown kid) waits on
// a slow issuer, lookups of known kids answer at once, lookups that wait for the
// fetch give up when their own context ends, and the fetch itself is made once.
func TestRemoteRefetchDoesNotHoldLookups(t *testing.T) {
	a, ab, _ := keySets(t)
	var hits atomic.Int64
	var slow atomic.Bool
	entered, release := make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body := a
		if slow.Load() {
			entered <- struct{}{}
			<-release
			body = ab
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	released := false
	free := func() {
		if !released {
			released = true
			close(release)
		}
	}
	t.Cleanup(free)                                         // before srv.Close, which waits for the handler
	r := NewRemote(srv.URL, Options{Timeout: 3 * watchdog}) // the fetch outlasts the watchdog
	if _, err := r.Lookup(t.Context(), "a", t0); err != nil {
		t.Fatal(err)
	}

	// A token with a new kid: the refetch hangs at the issuer.
	slow.Store(true)
	now := t0.Add(time.Minute)
	refetched := make(chan error, 1)
	go func() {
		_, err := r.Lookup(context.Background(), "b", now)
		refetched <- err
	}()
	<-entered

	within := func(what string, f func() error) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			return err
		case <-time.After(watchdog):
			t.Fatalf("%s waited for the issuer's slow answer", what)
			return nil
		}
	}
	// A known kid does not wait for the fetch.
	if err := within("a lookup of a known kid", func() error {
		_, err := r.Lookup(t.Context(), "a", now)
		return err
	}); err != nil {
		t.Errorf("known kid during a refetch: %v", err)
	}
	// A request that waits for the fetch leaves when its own context ends.
	ctx, cancel := context.WithCancel(t.Context())
	waiting := make(chan error, 1)
	go func() {
		_, err := r.Lookup(ctx, "b", now)
		waiting <- err
	}()
	cancel()
	if err := within("a canceled lookup", func() error { return <-waiting }); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("canceled lookup during a refetch: %v, want ErrUnavailable and context.Canceled", err)
	}

	free()
	if err := within("the refetching lookup", func() error { return <-refetched }); err != nil {
		t.Errorf("lookup that refetched: %v", err)
	}
	if got := hits.Load(); got != 2 {
		t.Errorf("%d fetches, want 2 (the first, and one refetch)", got)
	}
}
