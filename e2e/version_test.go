package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionNamesTheRevision: a deputy built from a git checkout with VCS stamping
// (go build -buildvcs=true; this machine's GOFLAGS may turn it off by default)
// prints its module version on the first line and the commit it was built from.
func TestVersionNamesTheRevision(t *testing.T) {
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD (the test runs in a git checkout): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "deputy")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "../cmd/deputy")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build -buildvcs=true: %v", err)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("deputy version: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if !strings.HasPrefix(lines[0], "deputy v") && lines[0] != "deputy (devel)" {
		t.Errorf("first line %q: want the module version", lines[0])
	}
	want := "revision " + strings.TrimSpace(string(head))
	if !strings.Contains(string(out), want) {
		t.Errorf("deputy version:\n%s\nwant a line %q", out, want)
	}
	// The binary every other test runs (built without stamping) still answers.
	out, err = exec.Command(binary, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "deputy ") {
		t.Errorf("deputy version without VCS stamping: %q, %v", out, err)
	}
}
