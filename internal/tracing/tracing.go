// Package tracing sets up OpenTelemetry tracing for a deputy process (README
// "Operating deputy › Tracing"): the official Go SDK with its OTLP/HTTP exporter
// when an endpoint is configured (tracing.endpoint, or the standard
// OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), and the W3C
// Trace Context and Baggage propagators in every case.
//
// The packages that make spans (httpapi, grant, subject, token, audit) use only the
// OpenTelemetry API through otel.Tracer; this package is the only one that imports
// the SDK and the exporter. With tracing off the global tracer provider stays the
// API's no-op one: spans cost an allocation or two and carry the trace id of the
// request (see httpapi), which the audit trail records.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// ServiceName is the service.name of deputy's spans unless OTEL_SERVICE_NAME (or
// service.name in OTEL_RESOURCE_ATTRIBUTES) names another.
const ServiceName = "deputy"

// Options configure Setup.
type Options struct {
	// Endpoint is tracing.endpoint: the base URL of an OTLP/HTTP receiver, like
	// OTEL_EXPORTER_OTLP_ENDPOINT ("/v1/traces" is appended to its path). It wins
	// over the OTEL_EXPORTER_OTLP_* endpoint variables. Empty: those variables decide.
	Endpoint string
	// Version is the service.version resource attribute.
	Version string
	// Log receives the SDK's errors (a collector that cannot be reached, an
	// unknown OTEL_TRACES_SAMPLER); nil: slog.Default.
	Log *slog.Logger
	// Getenv reads the environment (nil: os.Getenv).
	Getenv func(string) string
}

// Tracer is what Setup started: Shutdown flushes the spans still queued to the
// exporter and stops it. The zero Tracer (tracing off) has nothing to flush.
type Tracer struct {
	provider *sdktrace.TracerProvider
	// Endpoint is where spans go ("" when off), for the start-up log line.
	Endpoint string
}

// Enabled reports whether spans are exported.
func (t *Tracer) Enabled() bool { return t != nil && t.provider != nil }

// Shutdown exports the spans still queued and stops the exporter, within ctx.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// Setup installs the W3C Trace Context and Baggage propagators as the global
// propagator and, when an endpoint is configured, a global tracer provider of the
// OpenTelemetry SDK exporting over OTLP/HTTP in batches. The SDK and the exporter
// read the standard variables themselves: OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG, OTEL_BSP_*, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_EXPORTER_OTLP_[TRACES_]HEADERS, _TIMEOUT, _COMPRESSION and the TLS
// certificate variables. Tracing stays off (nothing exported) when no endpoint is
// configured, when OTEL_SDK_DISABLED is true or when OTEL_TRACES_EXPORTER is none.
// OTLP over gRPC is not built in: OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL other than
// http/protobuf is an error when the endpoint comes from the variables, and so is
// an OTEL_TRACES_EXPORTER other than otlp or none.
func Setup(ctx context.Context, o Options) (*Tracer, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	endpoint, err := Endpoint(o.Endpoint, getenv)
	if err != nil || endpoint == "" {
		return &Tracer{}, err
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: " + err.Error())
	}))
	var opts []otlptracehttp.Option
	if o.Endpoint != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(endpoint))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", ServiceName)}
	if o.Version != "" {
		attrs = append(attrs, attribute.String("service.version", o.Version))
	}
	// Later detectors win: OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME over
	// deputy's defaults.
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithIDGenerator(idGenerator{}))
	otel.SetTracerProvider(tp)
	shown := endpoint
	if u, err := url.Parse(endpoint); err == nil {
		u.User = nil // never in a log line
		shown = u.String()
	}
	return &Tracer{provider: tp, Endpoint: shown}, nil
}

// Endpoint is where spans are exported to, "" when tracing is off: tracing.endpoint
// (configured) with "/v1/traces" appended to its path, else
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is), else OTEL_EXPORTER_OTLP_ENDPOINT
// with "/v1/traces" appended — as the OTLP exporter specification says. It fails on
// settings deputy cannot honour (see Setup).
func Endpoint(configured string, getenv func(string) string) (string, error) {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	if strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") {
		return "", nil
	}
	switch e := strings.ToLower(env("OTEL_TRACES_EXPORTER")); e {
	case "", "otlp":
	case "none":
		return "", nil
	default:
		return "", fmt.Errorf("tracing: OTEL_TRACES_EXPORTER=%s is not supported; deputy exports over OTLP (otlp) or not at all (none)", e)
	}
	if configured != "" {
		return withTracesPath("tracing.endpoint", configured)
	}
	traces, base := env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), env("OTEL_EXPORTER_OTLP_ENDPOINT")
	if traces == "" && base == "" {
		return "", nil
	}
	// The variables' endpoint may be meant for another protocol.
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := env(k); p != "" {
			if p != "http/protobuf" {
				return "", fmt.Errorf("tracing: %s=%s is not supported; deputy exports OTLP over HTTP (http/protobuf, the collector's port 4318): "+
					"set it to http/protobuf for deputy, or set tracing.endpoint", k, p)
			}
			break
		}
	}
	if traces != "" {
		return traces, nil
	}
	return withTracesPath("OTEL_EXPORTER_OTLP_ENDPOINT", base)
}

// withTracesPath is the base URL s of an OTLP/HTTP receiver with /v1/traces
// appended to its path.
func withTracesPath(name, s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("tracing: %s is not an http(s) URL", name)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	return u.String(), nil
}
