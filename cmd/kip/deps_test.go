package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinaryLinksNoHarness keeps the development and test support code
// (internal/dev/..., test/...) out of the kip binary that users run.
func TestBinaryLinksNoHarness(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/kip-image-puller/kip/"
	var ours []string
	for _, pkg := range strings.Fields(string(out)) {
		if !strings.HasPrefix(pkg, module) {
			continue
		}
		ours = append(ours, strings.TrimPrefix(pkg, module))
		if rel := strings.TrimPrefix(pkg, module); strings.HasPrefix(rel, "internal/dev/") || strings.HasPrefix(rel, "test/") {
			t.Errorf("kip links %s, which is harness code", rel)
		}
	}
	if len(ours) < 5 {
		t.Fatalf("go list -deps found only %v of the module's packages; the check looks at the wrong thing", ours)
	}
}
