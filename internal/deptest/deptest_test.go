package deptest

import (
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps failures instead of failing.
type recorder struct {
	testing.TB
	errors []string
	fatal  bool
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, format)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = true
	r.errors = append(r.errors, format)
}

// TestPureImportsCatches: the check fails a package that reaches net/http through
// a module package, and one that imports a module package outside its list.
func TestPureImportsCatches(t *testing.T) {
	r := &recorder{TB: t}
	// internal/server reaches net/http directly and imports many module packages.
	PureImports(r, Module+"internal/server", Module+"oauth")
	if len(r.errors) < 2 || r.fatal {
		t.Fatalf("PureImports(internal/server) recorded %q", r.errors)
	}
	var reaches, imports bool
	for _, e := range r.errors {
		reaches = reaches || strings.Contains(e, "reaches forbidden")
		imports = imports || strings.Contains(e, "it may import only")
	}
	if !reaches || !imports {
		t.Errorf("recorded %q, want both a forbidden reach and an import outside the list", r.errors)
	}
}

func TestPureImportsPasses(t *testing.T) {
	r := &recorder{TB: t}
	PureImports(r, Module+"oauth")
	if len(r.errors) > 0 {
		t.Fatalf("PureImports(oauth) recorded %q", r.errors)
	}
}
