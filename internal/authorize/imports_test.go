package authorize

import (
	"testing"

	"github.com/deputy-auth/deputy/internal/deptest"
)

// TestImportRules enforces doc.go and style rule 11: authorize imports neither
// net/http nor database/sql, directly or through any dependency (other than oauth's
// status constants), and of the module only oauth and internal/client.
func TestImportRules(t *testing.T) {
	const m = deptest.Module
	deptest.PureImports(t, m+"internal/authorize", m+"oauth", m+"internal/client")
}
