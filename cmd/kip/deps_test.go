package main

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/kip-image-puller/kip/"

// deps lists the module's own packages that pkg links, relative to the module.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	var ours []string
	for _, p := range strings.Fields(string(out)) {
		if rel, ok := strings.CutPrefix(p, module); ok {
			ours = append(ours, rel)
		}
	}
	if len(ours) < 2 {
		t.Fatalf("go list -deps %s found only %v of the module's packages; the check looks at the wrong thing", pkg, ours)
	}
	return ours
}

// TestBinaryLinksNoHarness keeps the development and test support code
// (internal/dev/..., test/...) out of the kip binary that users run.
func TestBinaryLinksNoHarness(t *testing.T) {
	for _, rel := range deps(t, ".") {
		if strings.HasPrefix(rel, "internal/dev/") || strings.HasPrefix(rel, "test/") {
			t.Errorf("kip links %s, which is harness code", rel)
		}
	}
}

// TestControllersStandApart keeps each controller free of the others: what
// they share lives in the packages below them (observe, labels, ...).
func TestControllersStandApart(t *testing.T) {
	controllers := []string{"internal/controller/puller", "internal/controller/imagepuller", "internal/controller/checluster"}
	for _, c := range controllers {
		for _, rel := range deps(t, module+c) {
			if rel != c && strings.HasPrefix(rel, "internal/controller/") {
				t.Errorf("%s imports %s", c, rel)
			}
		}
	}
}
