package exchange

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/deputy-auth/deputy/"

// pureRoots are the packages design §8 keeps pure, each with the module packages it may
// import directly (besides the standard library).
var pureRoots = map[string][]string{
	module + "internal/exchange":         {module + "oauth", module + "internal/config", module + "internal/policy", module + "internal/policy/condition"},
	module + "internal/policy":           {module + "oauth", module + "internal/config", module + "internal/policy/condition"},
	module + "internal/policy/condition": {},
}

// forbidden reports whether a package may not be reached from a pure package.
func forbidden(pkg string) bool {
	for _, f := range []string{"net/http", "database/sql"} {
		if pkg == f || strings.HasPrefix(pkg, f+"/") {
			return true
		}
	}
	return false
}

// allowedEdge is the one exception: oauth imports net/http for its status constants
// only (oauth.Error.Status), which brings in no server or client code.
func allowedEdge(from, to string) bool { return from == module+"oauth" && to == "net/http" }

// TestImportRules enforces design §8 and style rule 11: exchange and policy import
// neither net/http nor database/sql, directly or through any dependency (other than
// oauth's status constants), and depend on no module package outside their list.
func TestImportRules(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	for root, allowed := range pureRoots {
		t.Run(strings.TrimPrefix(root, module), func(t *testing.T) {
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

			// Breadth-first from root, remembering how each package was reached.
			via := map[string]string{root: ""}
			queue := []string{root}
			for len(queue) > 0 {
				p := queue[0]
				queue = queue[1:]
				for _, q := range imports[p] {
					if allowedEdge(p, q) {
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
		})
	}
}
