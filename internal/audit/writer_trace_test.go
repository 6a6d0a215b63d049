package audit

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/deputy-auth/deputy/internal/store"
)

const (
	reqTrace   = "4bf92f3577b34da6a3ce929d0e0e4736" // the request's, in its context
	otherTrace = "0af7651916cd43dd8448eb211c80319c"
)

// tracedContext is a context carrying the span context of a request that came
// with a traceparent header of trace id traceID, as the HTTP layer makes it.
func tracedContext(t *testing.T, traceID string) context.Context {
	t.Helper()
	tid, err := trace.TraceIDFromHex(traceID)
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	return trace.ContextWithRemoteSpanContext(context.Background(), sc)
}

func TestWriterTraceIDFromContext(t *testing.T) {
	tests := []struct {
		name  string
		ctx   func(t *testing.T) context.Context
		given string // the event's TraceID before Record
		want  string
	}{
		{"ok/from-remote-span-context", func(t *testing.T) context.Context { return tracedContext(t, reqTrace) }, "", reqTrace},
		{"ok/explicit-kept", func(t *testing.T) context.Context { return tracedContext(t, reqTrace) }, otherTrace, otherTrace},
		{"ok/explicit-without-context", func(*testing.T) context.Context { return context.Background() }, otherTrace, otherTrace},
		{"ok/no-span-context", func(*testing.T) context.Context { return context.Background() }, "", ""},
		{"ok/values-kept-without-cancel", func(t *testing.T) context.Context {
			ctx, cancel := context.WithCancel(tracedContext(t, reqTrace))
			defer cancel()
			return context.WithoutCancel(ctx)
		}, "", reqTrace},
		{"ok/invalid-span-context", func(*testing.T) context.Context {
			return trace.ContextWithSpanContext(context.Background(), trace.SpanContext{})
		}, "", ""},
		{"fail/malformed-explicit-dropped", func(*testing.T) context.Context { return context.Background() }, "4BF92F3577B34DA6A3CE929D0E0E4736", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newMemStore()
			w := NewWriter(b, b, WriterOptions{})
			defer w.Close()
			e := &store.AuditEvent{Type: store.EventTokenIssued, Decision: store.DecisionAllow, TokenJTI: "J1", TraceID: tt.given}
			if err := w.Record(tt.ctx(t), e); err != nil {
				t.Fatal(err)
			}
			got, err := b.EventByID(context.Background(), e.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.TraceID != tt.want || e.TraceID != tt.want {
				t.Errorf("stored TraceID %q (event %q), want %q", got.TraceID, e.TraceID, tt.want)
			}
			mustVerify(t, b, 1)
		})
	}
}

func TestWriterRecordAllAndRevokeTraceID(t *testing.T) {
	b := newMemStore()
	w := NewWriter(b, b, WriterOptions{})
	defer w.Close()
	ctx := tracedContext(t, reqTrace)
	access, refresh := issued("A", "J1"), issued("R", "J2")
	refresh.TraceID = otherTrace
	if err := w.RecordAll(ctx, access, refresh); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Revoke(ctx, store.Revocation{JTI: "J1", ExpiresAt: t0.Add(time.Hour), RevokedAt: t0}, nil); err != nil {
		t.Fatal(err)
	}
	revs, err := b.EventsByToken(context.Background(), "J1")
	if err != nil || len(revs) != 2 || revs[1].Type != store.EventTokenRevoked {
		t.Fatalf("events of J1: %v %v", revs, err)
	}
	for _, c := range []struct {
		what, got, want string
	}{
		{"RecordAll, empty", access.TraceID, reqTrace},
		{"RecordAll, given", refresh.TraceID, otherTrace},
		{"Revoke, nil event", revs[1].TraceID, reqTrace},
	} {
		if c.got != c.want {
			t.Errorf("%s: TraceID %q, want %q", c.what, c.got, c.want)
		}
	}
	mustVerify(t, b, 3)
}

// TestAggregatorSummaryHasNoRequestTrace: a summary of a window is recorded
// during some later request, but is not that request's event.
func TestAggregatorSummaryHasNoRequestTrace(t *testing.T) {
	b := newMemStore()
	w := NewWriter(b, b, WriterOptions{})
	defer w.Close()
	a := NewAggregator(w)
	deny := func() *store.AuditEvent {
		return &store.AuditEvent{Type: store.EventDenied, Decision: store.DecisionDeny, RemoteAddr: "192.0.2.1",
			ClientID: "x", Reason: "invalid_client: unknown client"}
	}
	for _, r := range []struct {
		traceID string
		at      time.Time
	}{{reqTrace, t0}, {reqTrace, t0.Add(time.Second)}, {otherTrace, t0.Add(2 * DenialWindow)}} {
		if _, err := a.Deny(tracedContext(t, r.traceID), deny(), "invalid_client", r.at); err != nil {
			t.Fatal(err)
		}
	}
	var got []store.AuditEvent
	if err := b.Scan(context.Background(), 0, func(e store.AuditEvent) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	// The first denial of window 1, its summary (recorded during the third
	// request), the first denial of window 2.
	if len(got) != 3 {
		t.Fatalf("%d events, want 3: %+v", len(got), got)
	}
	for i, want := range []string{reqTrace, "", otherTrace} {
		if got[i].TraceID != want {
			t.Errorf("event %d (%s): TraceID %q, want %q", i+1, got[i].Reason, got[i].TraceID, want)
		}
	}
}

func TestValidTraceID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{reqTrace, true},
		{"00000000000000000000000000000001", true},
		{"", false},
		{"00000000000000000000000000000000", false},       // all zero: invalid (W3C)
		{"4BF92F3577B34DA6A3CE929D0E0E4736", false},       // upper case
		{reqTrace[:31], false},                            // short
		{reqTrace + "0", false},                           // long
		{"4bf92f3577b34da6a3ce929d0e0e473g", false},       // not hex
		{"4bf92f3577b34da6-3ce929d0e0e4736", false},       // a dash
		{"4bf92f3577b34da6a3ce929d0e0e473\x00", false},    // NUL
		{"é4bf92f3577b34da6a3ce929d0e0e47", false},        // multi-byte
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00", false}, // a whole traceparent
	} {
		if got := ValidTraceID(tc.id); got != tc.want {
			t.Errorf("ValidTraceID(%q) = %t, want %t", tc.id, got, tc.want)
		}
	}
}

// FuzzValidTraceID: ValidTraceID, which checks trace_id from /audit/events and
// every event's TraceID, agrees with the OpenTelemetry API's parser of trace ids.
func FuzzValidTraceID(f *testing.F) {
	for _, s := range []string{reqTrace, "", "00000000000000000000000000000000", "4BF92F3577B34DA6A3CE929D0E0E4736", reqTrace[:31] + "g"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := trace.TraceIDFromHex(s)
		if got, want := ValidTraceID(s), err == nil; got != want {
			t.Errorf("ValidTraceID(%q) = %t, OpenTelemetry says %t (%v)", s, got, want, err)
		}
	})
}
