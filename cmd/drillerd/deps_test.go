package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// drillerd links no package that looks methods up by a name known only at
// run time (text/template and html/template do, to execute a template):
// the Go linker would then keep every exported method of every type, code
// never run, a third of the binary and of its memory when idle.
func TestNoTemplateEngineIsLinked(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderr.String())
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "sigs.k8s.io/controller-runtime/pkg/manager") {
		t.Fatalf("go list -deps did not list drillerd's dependencies: %d packages", len(deps))
	}
	for _, pkg := range []string{"text/template", "html/template"} {
		if slices.Contains(deps, pkg) {
			t.Errorf("drillerd links %s; write HTML with internal/server's htmlPage instead", pkg)
		}
	}
}
