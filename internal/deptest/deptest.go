// Package deptest checks the import rules of deputy's pure packages (design §8,
// style rule 11): such a package reaches neither net/http nor database/sql, directly
// or through any dependency, and imports, of deputy's own packages, only those its
// doc.go lists. Tests of those packages call PureImports.
//
// It imports the standard library only.
package deptest

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Module is deputy's module path, with a trailing slash.
const Module = "github.com/deputy-auth/deputy/"

// forbidden reports whether a pure package may not reach pkg.
func forbidden(pkg string) bool {
	for _, f := range []string{"net/http", "database/sql"} {
		if pkg == f || strings.HasPrefix(pkg, f+"/") {
			return true
		}
	}
	return false
}

// allowedEdge is the one exception: oauth imports net/http for its status
// constants only (oauth.Error.Status), which brings in no server or client code.
func allowedEdge(from, to string) bool { return from == Module+"oauth" && to == "net/http" }

// PureImports fails t when root (a full import path) imports a package of the
// module outside allowed (full import paths), or reaches net/http or
// database/sql through any chain of imports, naming the chain. It runs `go list`,
// so the go command must be on PATH: without it the test fails.
func PureImports(t testing.TB, root string, allowed ...string) {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH: the import rules of %s cannot be checked", root)
	}
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
		if strings.HasPrefix(imp, Module) && !slices.Contains(allowed, imp) {
			t.Errorf("%s imports %s; of the module it may import only %q", root, imp, allowed)
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
}
