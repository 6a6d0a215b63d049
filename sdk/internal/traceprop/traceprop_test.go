package traceprop

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

const (
	tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	sid = "00f067aa0ba902b7"
	tp  = "00-" + tid + "-" + sid + "-01"
)

func spanContext(t *testing.T, traceID, spanID string) trace.SpanContext {
	t.Helper()
	ti, err := trace.TraceIDFromHex(traceID)
	if err != nil {
		t.Fatal(err)
	}
	si, err := trace.SpanIDFromHex(spanID)
	if err != nil {
		t.Fatal(err)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: ti, SpanID: si, TraceFlags: trace.FlagsSampled})
}

func TestInject(t *testing.T) {
	withSpan := trace.ContextWithSpanContext(context.Background(), spanContext(t, tid, sid))
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		existing string
		want     string
	}{
		{"ok/current-span", withSpan, "", tp},
		{"ok/no-trace", context.Background(), "", ""},
		{"ok/caller-set-one", withSpan, "00-" + tid + "-1111111111111111-01", "00-" + tid + "-1111111111111111-01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.existing != "" {
				h.Set("traceparent", tc.existing)
			}
			Inject(tc.ctx, h)
			if got := h.Get("traceparent"); got != tc.want {
				t.Errorf("traceparent %q, want %q", got, tc.want)
			}
		})
	}
}

func TestExtract(t *testing.T) {
	own := spanContext(t, "11111111111111111111111111111111", "2222222222222222")
	for _, tc := range []struct {
		name        string
		traceparent string
		ctx         context.Context
		want        string // trace id, "" for none
	}{
		{"ok/traceparent", tp, context.Background(), tid},
		{"ok/none", "", context.Background(), ""},
		{"ok/malformed-ignored", "00-" + tid + "-" + sid, context.Background(), ""},
		{"ok/service-span-kept", tp, trace.ContextWithSpanContext(context.Background(), own), own.TraceID().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(tc.ctx)
			if tc.traceparent != "" {
				r.Header.Set("traceparent", tc.traceparent)
			}
			sc := trace.SpanContextFromContext(Extract(r))
			got := ""
			if sc.IsValid() {
				got = sc.TraceID().String()
			}
			if got != tc.want {
				t.Errorf("trace id %q, want %q", got, tc.want)
			}
			if tc.want == tid && (!sc.IsRemote() || sc.SpanID().String() != sid) {
				t.Errorf("span context %v, want the caller's remote span %s", sc, sid)
			}
		})
	}
}
