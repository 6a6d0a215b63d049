package policytest

import (
	"testing"

	"github.com/deputy-auth/deputy/internal/deptest"
)

// TestImportRules enforces doc.go and style rule 11: policytest imports neither
// net/http nor database/sql, directly or through any dependency (other than oauth's
// status constants), and of the module only oauth, internal/config and
// internal/exchange.
func TestImportRules(t *testing.T) {
	const m = deptest.Module
	deptest.PureImports(t, m+"internal/policy/policytest", m+"oauth", m+"internal/config", m+"internal/exchange")
}
