package sdk_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/deputy-auth/deputy/"

// allowed reports whether an sdk package may depend on pkg: the standard library,
// oauth/, go-jose, its own packages and the OpenTelemetry API (to carry the W3C
// traceparent from hop to hop; it records nothing without an OpenTelemetry SDK,
// which the sdk never imports, nor an exporter).
func allowed(pkg string, std map[string]bool) bool {
	switch {
	case std[pkg]:
		return true
	case pkg == module+"oauth", pkg == module+"sdk", strings.HasPrefix(pkg, module+"sdk/"):
		return true
	case pkg == "github.com/go-jose/go-jose/v4", strings.HasPrefix(pkg, "github.com/go-jose/go-jose/v4/"):
		return true
	}
	return otelAPI(pkg)
}

// otelAPI reports whether pkg is part of the OpenTelemetry API the sdk may use,
// or its one dependency: never the SDK (go.opentelemetry.io/otel/sdk), an
// exporter, or the metric and log APIs.
func otelAPI(pkg string) bool {
	switch {
	case pkg == "github.com/cespare/xxhash/v2": // of go.opentelemetry.io/otel/attribute
		return true
	case pkg == "go.opentelemetry.io/otel":
		return true
	}
	for _, p := range []string{"attribute", "baggage", "codes", "propagation", "trace", "semconv", "internal"} {
		p = "go.opentelemetry.io/otel/" + p
		if pkg == p || strings.HasPrefix(pkg, p+"/") {
			return true
		}
	}
	return false
}

// TestOTelAPIOnly: the OpenTelemetry packages the sdk may reach are the API's;
// the SDK and the exporters stay out.
func TestOTelAPIOnly(t *testing.T) {
	for _, tc := range []struct {
		pkg  string
		want bool
	}{
		{"go.opentelemetry.io/otel/trace", true},
		{"go.opentelemetry.io/otel/propagation", true},
		{"go.opentelemetry.io/otel/sdk/trace", false},
		{"go.opentelemetry.io/otel/sdk", false},
		{"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp", false},
		{"go.opentelemetry.io/otel/metric", false},
		{"go.opentelemetry.io/proto/otlp/trace/v1", false},
		{"google.golang.org/protobuf/proto", false},
	} {
		if got := otelAPI(tc.pkg); got != tc.want {
			t.Errorf("otelAPI(%s) = %v, want %v", tc.pkg, got, tc.want)
		}
	}
}

// TestSDKImports: no sdk package reaches, directly or through a dependency,
// anything but the standard library, oauth/, go-jose, the OpenTelemetry API and
// the sdk itself — so a service that adds the SDK pulls in none of the server.
func TestSDKImports(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	list := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(goCmd, append([]string{"list"}, args...)...)
		cmd.Env = os.Environ()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %v: %v\n%s", args, err, stderr.Bytes())
		}
		return string(out)
	}
	std := map[string]bool{}
	for _, p := range strings.Fields(list("std")) {
		std[p] = true
	}
	roots := strings.Fields(list(module + "sdk/..."))
	if len(roots) < 4 {
		t.Fatalf("sdk packages: %v, want sdk, verify, exchange, report", roots)
	}
	deps := list(append([]string{"-deps", "-f", "{{.ImportPath}}"}, roots...)...)
	for _, p := range strings.Fields(deps) {
		if !allowed(p, std) {
			t.Errorf("the sdk depends on %s", p)
		}
	}
}
