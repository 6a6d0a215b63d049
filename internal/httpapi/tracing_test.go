package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// spanContextOf runs startSpan on a request with the given traceparent (none when
// empty) and returns the span context the handler's context carries.
func spanContextOf(t testing.TB, path, traceparent string) trace.SpanContext {
	r := httptest.NewRequest(http.MethodPost, path, nil)
	if traceparent != "" {
		r.Header.Set("traceparent", traceparent)
	}
	r, end := startSpan(httptest.NewRecorder(), r)
	defer end()
	return trace.SpanContextFromContext(r.Context())
}

// TestTraceparent: without a tracer provider that records (the default: tracing
// off), every request still carries a valid span context: the one its valid
// traceparent names, else a fresh one — a malformed traceparent is ignored (W3C
// Trace Context §4.3), never an error.
func TestTraceparent(t *testing.T) {
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, tc := range []struct {
		name        string
		traceparent string
		wantTrace   string // "" for a fresh one
	}{
		{"ok/sampled", "00-" + tid + "-" + sid + "-01", tid},
		{"ok/not-sampled", "00-" + tid + "-" + sid + "-00", tid},
		{"ok/none", "", ""},
		{"fail/version-ff", "ff-" + tid + "-" + sid + "-01", ""},
		{"fail/zero-trace-id", "00-00000000000000000000000000000000-" + sid + "-01", ""},
		{"fail/zero-span-id", "00-" + tid + "-0000000000000000-01", ""},
		{"fail/short-trace-id", "00-" + tid[:30] + "-" + sid + "-01", ""},
		{"fail/upper-case", "00-4BF92F3577B34DA6A3CE929D0E0E4736-" + sid + "-01", ""},
		{"fail/not-hex", "00-" + tid[:31] + "g-" + sid + "-01", ""},
		{"fail/no-flags", "00-" + tid + "-" + sid, ""},
		{"fail/garbage", "hello", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := spanContextOf(t, PathToken, tc.traceparent)
			if !sc.IsValid() {
				t.Fatalf("span context %v is not valid", sc)
			}
			got := sc.TraceID().String()
			switch {
			case tc.wantTrace != "" && got != tc.wantTrace:
				t.Errorf("trace id %s, want %s", got, tc.wantTrace)
			case tc.wantTrace == "" && got == tid:
				t.Errorf("trace id %s of a malformed traceparent was used", got)
			}
			if tc.wantTrace == "" && sc.IsRemote() {
				t.Errorf("a fresh span context is marked remote")
			}
		})
	}
	a, b := spanContextOf(t, PathJWKS, ""), spanContextOf(t, PathJWKS, "")
	if a.TraceID() == b.TraceID() {
		t.Errorf("two requests without traceparent share the trace id %s", a.TraceID())
	}
}

func TestRoute(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{PathToken, "/token"},
		{"/.well-known/openid-configuration", "/.well-known/openid-configuration"},
		{PathCallback + "corp", "/callback/{idp}"},
		{"/token/extra", "other"},
		{"/secret-looking-path-eyJhbGciOi", "other"},
	} {
		if got := route(tc.path); got != tc.want {
			t.Errorf("route(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
	if got := spanMethod("BREW"); got != "_OTHER" {
		t.Errorf("spanMethod(BREW) = %q", got)
	}
}

// FuzzTraceparent: whatever traceparent and tracestate a request carries, its
// context holds a valid span context and nothing panics.
func FuzzTraceparent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "congo=t61rcWkgMzE")
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", "")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", "a=b,c=d")
	f.Add("", ",,,=")
	f.Fuzz(func(t *testing.T, traceparent, tracestate string) {
		r := httptest.NewRequest(http.MethodGet, PathJWKS, nil)
		r.Header["Traceparent"] = []string{traceparent}
		r.Header["Tracestate"] = []string{tracestate}
		r, end := startSpan(httptest.NewRecorder(), r)
		end()
		if sc := trace.SpanContextFromContext(r.Context()); !sc.IsValid() {
			t.Fatalf("span context %v is not valid", sc)
		}
	})
}

// BenchmarkTracingOff is what tracing costs a token request when no exporter is
// configured: the server span (a traceparent read, a fresh span context) and the
// four child spans of an exchange (subject verification, decision, signing, audit
// commit), none of them recorded.
func BenchmarkTracingOff(b *testing.B) {
	for _, tc := range []struct{ name, traceparent string }{
		{"no-traceparent", ""},
		{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodPost, PathToken, nil)
			if tc.traceparent != "" {
				r.Header.Set("traceparent", tc.traceparent)
			}
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				req, end := startSpan(w, r)
				ctx := req.Context()
				for range 4 {
					_, span := tracer.Start(ctx, "child")
					span.End()
				}
				end()
			}
		})
	}
}
