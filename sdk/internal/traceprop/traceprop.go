// Package traceprop carries a request's trace from one service to the next: the
// W3C Trace Context headers (traceparent, tracestate) through the OpenTelemetry
// API, which records nothing without an OpenTelemetry SDK. With one, the
// service's own spans are the parents of the next hop's; without one, the trace
// id still runs web app → payments → ledger → fraud-check and through deputy,
// whose audit events record it (README "Operating deputy › Tracing").
package traceprop

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// w3c reads and writes traceparent and tracestate only, whatever the service's
// global propagator is.
var w3c propagation.TraceContext

// Inject writes the span context of ctx (its current span) into h as
// traceparent and tracestate, unless h has a traceparent already (the caller's
// own instrumentation wrote it) or ctx carries no trace.
func Inject(ctx context.Context, h http.Header) {
	if h.Get("Traceparent") != "" || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	w3c.Inject(ctx, propagation.HeaderCarrier(h))
}

// Extract returns r's context with the remote span context r's traceparent
// names, so that what the handler sends continues r's trace. A context that
// has a span already (the service's own OpenTelemetry middleware ran first) is
// kept as it is, and so is one of a request without a valid traceparent.
func Extract(r *http.Request) context.Context {
	ctx := r.Context()
	if r.Header.Get("Traceparent") == "" || trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	return w3c.Extract(ctx, propagation.HeaderCarrier(r.Header))
}
