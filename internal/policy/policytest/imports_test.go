package policytest

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/deputy-auth/deputy/"

// TestImportRules enforces doc.go and style rule 11: policytest imports neither
// net/http nor database/sql, directly or through any dependency (other than oauth's
// status constants), and of the module only oauth, internal/config and
// internal/exchange.
func TestImportRules(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	const root = module + "internal/policy/policytest"
	allowed := []string{module + "oauth", module + "internal/config", module + "internal/exchange"}
	cmd := exec.Command(goCmd, "list", "-e", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", root)
	cmd.Env = os.Environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		imports[f[0]] = f[1:]
	}
	if _, ok := imports[root]; !ok {
		t.Fatalf("go list did not list %s:\n%s", root, out)
	}
	for _, imp := range imports[root] {
		if strings.HasPrefix(imp, module) && !slices.Contains(allowed, imp) {
			t.Errorf("%s imports %s; it may import only the standard library and %q", root, imp, allowed)
		}
	}
	forbidden := func(p string) bool {
		for _, f := range []string{"net/http", "database/sql"} {
			if p == f || strings.HasPrefix(p, f+"/") {
				return true
			}
		}
		return false
	}
	// Breadth-first from root, remembering how each package was reached; oauth's
	// import of net/http (for oauth.Error.Status) is the one allowed edge.
	via := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, q := range imports[p] {
			if p == module+"oauth" && q == "net/http" {
				continue
			}
			if _, seen := via[q]; seen {
				continue
			}
			via[q] = p
			if forbidden(q) {
				path := []string{q}
				for r := p; r != ""; r = via[r] {
					path = append([]string{r}, path...)
				}
				t.Errorf("%s reaches forbidden %s: %s", root, q, strings.Join(path, " → "))
				continue
			}
			queue = append(queue, q)
		}
	}
	if len(via) < 3 {
		t.Fatalf("suspiciously few dependencies of %s (%d): is go list output parsed right?", root, len(via))
	}
}
