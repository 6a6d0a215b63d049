package audit

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports enforces doc.go: the package builds on the store interfaces, the
// protocol vocabulary (oauth), the OpenTelemetry trace API and the standard library
// only, and never on HTTP or a database.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		switch {
		case imp == "net/http", imp == "database/sql", strings.HasPrefix(imp, "net/http/"), strings.HasPrefix(imp, "database/sql/"):
			t.Errorf("audit imports %s", imp)
		case imp == "github.com/deputy-auth/deputy/internal/store", imp == "github.com/deputy-auth/deputy/oauth",
			imp == "go.opentelemetry.io/otel/trace": // the OpenTelemetry API: the trace id of a request's context
		case strings.Contains(strings.SplitN(imp, "/", 2)[0], "."):
			t.Errorf("audit imports %s: only the standard library, internal/store and oauth are allowed", imp)
		}
	}
}
