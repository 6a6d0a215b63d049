package tracing

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
)

func TestEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name       string
		configured string
		env        map[string]string
		want       string
		err        string
	}{
		{name: "ok/off"},
		{name: "ok/configured", configured: "http://otel-collector:4318", want: "http://otel-collector:4318/v1/traces"},
		{name: "ok/configured-path", configured: "https://otlp.example.com/otlp/", want: "https://otlp.example.com/otlp/v1/traces"},
		{name: "ok/configured-wins", configured: "http://a:4318", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4318"}, want: "http://a:4318/v1/traces"},
		{name: "ok/env-base", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4318"}, want: "http://b:4318/v1/traces"},
		{name: "ok/env-traces-as-is", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom"}, want: "http://c:4318/custom"},
		{name: "ok/sdk-disabled", configured: "http://a:4318", env: map[string]string{"OTEL_SDK_DISABLED": "true"}},
		{name: "ok/exporter-none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4318", "OTEL_TRACES_EXPORTER": "none"}},
		{name: "ok/exporter-otlp", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4318", "OTEL_TRACES_EXPORTER": "otlp"}, want: "http://b:4318/v1/traces"},
		{name: "ok/http-protobuf", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, want: "http://b:4318/v1/traces"},
		{name: "ok/grpc-for-others-configured-http", configured: "http://a:4318", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: "http://a:4318/v1/traces"},
		{name: "ok/grpc-without-endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}},
		{name: "fail/grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, err: "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported"},
		{name: "fail/traces-grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, err: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc"},
		{name: "fail/exporter-console", env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, err: "OTEL_TRACES_EXPORTER=console is not supported"},
		{name: "fail/env-not-url", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "otel-collector:4318"}, err: "OTEL_EXPORTER_OTLP_ENDPOINT is not an http(s) URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Endpoint(tc.configured, func(k string) string { return tc.env[k] })
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one with %q", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case got != tc.want:
				t.Errorf("endpoint %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSetup: off without an endpoint (the global tracer provider stays the
// API's), on with one; either way the W3C propagator is installed, and Shutdown
// returns.
func TestSetup(t *testing.T) {
	ctx := context.Background()
	off, err := Setup(ctx, Options{Getenv: func(string) string { return "" }})
	if err != nil || off.Enabled() || off.Shutdown(ctx) != nil {
		t.Fatalf("off: %v, enabled %v", err, off.Enabled())
	}
	if f := otel.GetTextMapPropagator().Fields(); !strings.Contains(strings.Join(f, " "), "traceparent") {
		t.Errorf("propagator fields %v, want traceparent", f)
	}
	on, err := Setup(ctx, Options{Endpoint: "http://127.0.0.1:1", Version: "test", Getenv: func(string) string { return "" }})
	if err != nil || !on.Enabled() {
		t.Fatalf("on: %v, enabled %v", err, on.Enabled())
	}
	if on.Endpoint != "http://127.0.0.1:1/v1/traces" {
		t.Errorf("endpoint %q", on.Endpoint)
	}
	_, span := otel.Tracer("test").Start(ctx, "span")
	if !span.IsRecording() {
		t.Error("with an endpoint, spans are not recorded")
	}
	span.End()
	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_ = on.Shutdown(sctx) // nothing listens there: the export fails, Shutdown still returns
}
