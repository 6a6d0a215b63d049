package sdk_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/deputy-auth/deputy/"

// allowed reports whether an sdk package may depend on pkg (design §8: the sdk
// imports only oauth/, go-jose and the standard library — and its own packages).
func allowed(pkg string, std map[string]bool) bool {
	switch {
	case std[pkg]:
		return true
	case pkg == module+"oauth", pkg == module+"sdk", strings.HasPrefix(pkg, module+"sdk/"):
		return true
	case pkg == "github.com/go-jose/go-jose/v4", strings.HasPrefix(pkg, "github.com/go-jose/go-jose/v4/"):
		return true
	}
	return false
}

// TestSDKImports: no sdk package reaches, directly or through a dependency,
// anything but the standard library, oauth/, go-jose and the sdk itself — so a
// service that adds the SDK pulls in none of the server.
func TestSDKImports(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	list := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(goCmd, append([]string{"list"}, args...)...)
		cmd.Env = os.Environ()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %v: %v\n%s", args, err, stderr.Bytes())
		}
		return string(out)
	}
	std := map[string]bool{}
	for _, p := range strings.Fields(list("std")) {
		std[p] = true
	}
	roots := strings.Fields(list(module + "sdk/..."))
	if len(roots) < 4 {
		t.Fatalf("sdk packages: %v, want sdk, verify, exchange, report", roots)
	}
	deps := list(append([]string{"-deps", "-f", "{{.ImportPath}}"}, roots...)...)
	for _, p := range strings.Fields(deps) {
		if !allowed(p, std) {
			t.Errorf("the sdk depends on %s", p)
		}
	}
}
