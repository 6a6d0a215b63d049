package exchange

import (
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/deptest"
)

const module = deptest.Module

// pureRoots are the packages design §8 keeps pure, each with the module packages it may
// import directly (besides the standard library and outside modules).
var pureRoots = map[string][]string{
	module + "internal/exchange":         {module + "oauth", module + "internal/config", module + "internal/policy", module + "internal/policy/condition"},
	module + "internal/policy":           {module + "oauth", module + "internal/config", module + "internal/policy/condition"},
	module + "internal/policy/condition": {},
}

// TestImportRules enforces design §8 and style rule 11: exchange, policy and
// condition import neither net/http nor database/sql, directly or through any
// dependency (other than oauth's status constants), and depend on no module
// package outside their list.
func TestImportRules(t *testing.T) {
	for root, allowed := range pureRoots {
		t.Run(strings.TrimPrefix(root, module), func(t *testing.T) {
			deptest.PureImports(t, root, allowed...)
		})
	}
}
