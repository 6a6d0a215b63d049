package audit

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports enforces doc.go: the package builds on the store interfaces, the
// protocol vocabulary (oauth), the OpenTelemetry API and the standard library only,
// and never on HTTP or a database.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		switch {
		case imp == "net/http", imp == "database/sql", strings.HasPrefix(imp, "net/http/"), strings.HasPrefix(imp, "database/sql/"):
			t.Errorf("audit imports %s", imp)
		case imp == "github.com/deputy-auth/deputy/internal/store", imp == "github.com/deputy-auth/deputy/oauth":
		case imp == "go.opentelemetry.io/otel", imp == "go.opentelemetry.io/otel/attribute",
			imp == "go.opentelemetry.io/otel/codes", imp == "go.opentelemetry.io/otel/trace":
			// The OpenTelemetry API (audit.commit spans, the trace id), never the SDK.
		case strings.Contains(strings.SplitN(imp, "/", 2)[0], "."):
			t.Errorf("audit imports %s: only the standard library, internal/store, oauth and the OpenTelemetry API are allowed", imp)
		}
	}
}
