package verify

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/testdeputy"
)

// TestDiscoveryWaitersHonourTheirContext: while deputy's metadata is being fetched
// (slowly), a request that needs it waits for that one fetch and leaves when its own
// context ends; the fetch goes on for the others.
func TestDiscoveryWaitersHonourTheirContext(t *testing.T) {
	d := testdeputy.Start(t, nil)
	tr := newTransport()
	gate := make(chan struct{})
	tr.gate.Store(&gate)
	opened := false
	open := func() {
		if !opened {
			opened = true
			close(gate)
		}
	}
	t.Cleanup(open)
	disc := newDiscovery(d.URL, &http.Client{Transport: tr})
	now := time.Now()

	first := make(chan error, 1)
	go func() {
		_, err := disc.get(context.Background(), now)
		first <- err
	}()
	for tr.count(metadataURLPath) == 0 { // the fetch has reached deputy's door
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() {
		_, err := disc.get(ctx, now)
		second <- err
	}()
	cancel()
	select {
	case err := <-second:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("canceled get = %v, want context.Canceled", err)
		}
	case <-time.After(fetchTimeout / 2): // a watchdog shorter than the fetch's own bound
		t.Fatal("a canceled request waited for the metadata fetch")
	}
	open()
	if err := <-first; err != nil {
		t.Fatalf("the fetch: %v", err)
	}
	if m, err := disc.get(context.Background(), now); err != nil || m.JWKSURI == "" {
		t.Fatalf("get after the fetch = %v, %v", m, err)
	}
	if n := tr.count(metadataURLPath); n != 1 {
		t.Errorf("%d metadata fetches, want 1", n)
	}
}
