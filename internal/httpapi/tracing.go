package httpapi

import (
	"net/http"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/deputy-auth/deputy/internal/tracing"
)

// Tracing (README "Operating deputy › Tracing"): every request gets a server span
// and a trace id. A W3C traceparent (and tracestate) on the request is honoured,
// on every endpoint; a malformed one is ignored, as the W3C Trace Context
// specification (§4.3) asks, and the request starts a trace of its own. The
// spans go to the global tracer provider, which internal/tracing sets when an
// exporter is configured; without one they are not recorded, but the request's
// context still carries a valid span context, so the audit events the request
// records carry its trace id.
//
// Span attributes come from fixed sets (the method, the route, the status, the
// OAuth error code) or are deputy's own identifiers (client id, grant type, rule
// name): never a token, a secret, a code, an assertion or free text.

// tracer makes the server spans.
var tracer = otel.Tracer("github.com/deputy-auth/deputy/internal/httpapi")

// traceContext reads traceparent and tracestate (W3C Trace Context); it reads
// nothing else, whatever the global propagator is.
var traceContext propagation.TraceContext

// Attribute keys of the server span (OpenTelemetry HTTP semantic conventions,
// and deputy's own).
const (
	attrMethod     = attribute.Key("http.request.method")
	attrRoute      = attribute.Key("http.route")
	attrStatus     = attribute.Key("http.response.status_code")
	attrOAuthError = attribute.Key("oauth.error")
)

// spanMethod is the request's method when it is a standard one, else _OTHER
// (OpenTelemetry HTTP semantic conventions).
func spanMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodOptions, http.MethodHead, http.MethodPut,
		http.MethodDelete, http.MethodPatch, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// serverKind is the start option of server spans (made once: it allocates).
var serverKind = trace.WithSpanKind(trace.SpanKindServer)

// startSpan starts the server span of r, the child of the span its traceparent
// names, if any. It returns the request with the span in its context and the
// function that ends the span. w is the writer ServeHTTP answers through (the
// access log's, which notes the status); the OAuth error code comes from r's
// access record (writeError notes it), never the description, which may quote
// what the client sent.
func startSpan(w http.ResponseWriter, r *http.Request) (*http.Request, func()) {
	ctx := r.Context()
	if r.Header.Get("Traceparent") != "" {
		ctx = traceContext.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	method, rt := spanMethod(r.Method), route(r.URL.Path)
	name := method
	if rt != "other" {
		name += " " + rt
	}
	ctx, span := tracer.Start(ctx, name, serverKind)
	if !span.SpanContext().IsValid() {
		// No tracer provider records spans and the request named no trace: a
		// trace of its own all the same, so that its audit events can be found.
		ctx = trace.ContextWithSpanContext(ctx, newSpanContext())
	}
	r = r.WithContext(ctx)
	if !span.IsRecording() {
		return r, noEnd // a span that records nothing needs no End
	}
	span.SetAttributes(attrMethod.String(method))
	if rt != "other" {
		span.SetAttributes(attrRoute.String(rt))
	}
	a := accessOf(r)
	return r, func() {
		status := http.StatusOK
		if aw, ok := w.(*accessWriter); ok && aw.status != 0 {
			status = aw.status
		}
		span.SetAttributes(attrStatus.Int(status))
		switch {
		case a.code != "":
			span.SetAttributes(attrOAuthError.String(string(a.code)))
			span.SetStatus(codes.Error, string(a.code))
		case status >= 400:
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		span.End()
	}
}

func noEnd() {}

// newSpanContext is a fresh, unsampled span context (tracing.NewTraceID: a trace
// id that begins with the time, and a random span id).
func newSpanContext() trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tracing.NewTraceID(time.Now()), SpanID: tracing.NewSpanID()})
}
