package server_test

import (
	"go/build"
	"strings"
	"testing"
)

// TestLayering enforces design §8: only httpapi speaks net/http on the server side,
// only sqlstore speaks SQL, and the core packages reach neither. (exchange and
// policy have a stricter, transitive test of their own.)
func TestLayering(t *testing.T) {
	const mod = "github.com/deputy-auth/deputy/"
	forbidden := map[string][]string{
		"internal/store":   {"net/http", "database/sql", "modernc.org/sqlite", "github.com/jackc/pgx"},
		"internal/keys":    {"net/http", "database/sql", mod + "internal/store/sqlstore"},
		"internal/token":   {"net/http", "database/sql", mod + "internal/store/sqlstore"},
		"internal/subject": {"net/http", "database/sql", mod + "internal/store/sqlstore"},
		"internal/client":  {"net/http", "database/sql", mod + "internal/store/sqlstore"},
		"internal/grant":   {"net/http", "database/sql", mod + "internal/store/sqlstore"},
		"internal/audit":   {"net/http", "database/sql", mod + "internal/store/sqlstore"},
		"internal/config":  {"net/http", "database/sql"},
	}
	for pkg, bad := range forbidden {
		p, err := build.Import(mod+pkg, ".", 0)
		if err != nil {
			t.Fatalf("%s: %v", pkg, err)
		}
		for _, imp := range p.Imports {
			for _, b := range bad {
				if imp == b || strings.HasPrefix(imp, b+"/") {
					t.Errorf("%s imports %s", pkg, imp)
				}
			}
		}
	}
}
