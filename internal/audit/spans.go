package audit

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// otelTracer makes the audit commit spans (README "Operating deputy › Tracing"): each
// covers a caller's wait for the group commit that makes its events durable.
var otelTracer = otel.Tracer("github.com/deputy-auth/deputy/internal/audit")

// spanCommit is the span of Record, RecordAll and Revoke; its attributes are
// counts and the event type (a fixed set).
const spanCommit = "audit.commit"

var (
	attrEvents    = attribute.Key("deputy.audit.events")     // the caller's events
	attrBatch     = attribute.Key("deputy.audit.batch_size") // events in the commit that carried them
	attrEventType = attribute.Key("deputy.audit.event_type") // Record and Revoke: the event's type
)

// startCommit starts the span of a wait for the commit of n events.
func startCommit(ctx context.Context, n int, eventType string) trace.Span {
	_, span := otelTracer.Start(ctx, spanCommit)
	if span.IsRecording() {
		span.SetAttributes(attrEvents.Int(n))
		if eventType != "" {
			span.SetAttributes(attrEventType.String(eventType))
		}
	}
	return span
}

// endCommit ends span with the outcome of the commit: err, and batch (the
// events the commit carried; 0 when unknown).
func endCommit(span trace.Span, batch int, err error) {
	if span.IsRecording() {
		if batch > 0 {
			span.SetAttributes(attrBatch.Int(batch))
		}
		if err != nil {
			span.SetStatus(codes.Error, "audit commit failed")
		}
	}
	span.End()
}
