package audit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/store"
)

// recorder keeps what it is asked to record.
type recorder struct{ events []*store.AuditEvent }

func (r *recorder) Record(_ context.Context, e *store.AuditEvent) error {
	r.events = append(r.events, e)
	return nil
}

// TestAggregatorDenyClient: a client's refusals are on record once a minute
// whatever address they come from (the first with its address), summed up in one
// event naming no address; Deny keeps one window per address.
func TestAggregatorDenyClient(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	refusal := func(client, addr string) *store.AuditEvent {
		return &store.AuditEvent{Type: store.EventRateLimited, Decision: store.DecisionDeny, ClientID: client, RemoteAddr: addr,
			Reason: "rate_limited: client over limits.rate at /token"}
	}
	for _, tc := range []struct {
		name     string
		perAddr  bool // Deny rather than DenyClient
		sent     []string
		recorded int // at once
	}{
		{name: "ok/per-client-from-many-addresses", sent: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1"}, recorded: 1},
		{name: "ok/per-address-and-client", perAddr: true, sent: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1"}, recorded: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			a := audit.NewAggregator(rec)
			for i, addr := range tc.sent {
				deny := a.DenyClient
				if tc.perAddr {
					deny = a.Deny
				}
				if _, err := deny(t.Context(), refusal("web-app", addr), "rate_limited", t0.Add(time.Duration(i)*time.Second)); err != nil {
					t.Fatal(err)
				}
			}
			if len(rec.events) != tc.recorded {
				t.Fatalf("%d events recorded at once, want %d", len(rec.events), tc.recorded)
			}
			if rec.events[0].RemoteAddr != "192.0.2.1" {
				t.Errorf("the first event's address %q, want the first refusal's", rec.events[0].RemoteAddr)
			}
			if err := a.Flush(t.Context(), time.Time{}); err != nil {
				t.Fatal(err)
			}
			summaries := rec.events[tc.recorded:]
			if tc.perAddr {
				return
			}
			if len(summaries) != 1 {
				t.Fatalf("summaries %+v, want one", summaries)
			}
			sum := summaries[0]
			if sum.Type != store.EventRateLimited || sum.ClientID != "web-app" || sum.RemoteAddr != "" ||
				!strings.HasPrefix(sum.Reason, `rate_limited: 4 requests refused by limits.rate from any address for client "web-app" between `) {
				t.Errorf("summary %+v", sum)
			}
		})
	}
}
