package account

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports enforces doc.go: no HTTP, no SQL, no store implementation.
func TestImports(t *testing.T) {
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	forbidden := []string{"net/http", "database/sql", "github.com/deputy-auth/deputy/internal/store/sqlstore"}
	for _, imp := range p.Imports {
		for _, f := range forbidden {
			if imp == f || strings.HasPrefix(imp, f+"/") {
				t.Errorf("account imports %s", imp)
			}
		}
	}
}
