package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/policy"
)

// TestContainerStartedWithinDeadline: arming a starting container ends by
// the deadline of the runtime's request. An enforce-mode policy that is not
// armed by then fails the start with an error saying so, and is not
// attached afterwards; an audit-mode one lets the start go ahead and is
// armed when compiling ends; a normal arm stays well under the budget.
func TestContainerStartedWithinDeadline(t *testing.T) {
	var docs []string
	for _, p := range []struct{ name, mode string }{{"guarded", "enforce"}, {"watched", "audit"}, {"quick", "enforce"}} {
		docs = append(docs, fmt.Sprintf(`apiVersion: bulwark/v1
kind: WorkloadPolicy
metadata: {name: %[1]s, type: container}
spec:
  containerSelector: {containerName: %[1]s}
  mode: %[2]s
  processPolicy:
  - {name: cat, exe: [/bin/busybox], euser: [root], id: cat}
  networkPolicy: {ingress: [], egress: []}
  response: {default: [], actions: []}
`, p.name, p.mode))
	}
	a, engine, slice := testAgent(t, strings.Join(docs, "---\n"))
	const slowCompile = 3 * time.Second
	a.compile = func(spec *policy.Spec, users map[string]uint32) (*bpf.Compiled, error) {
		if spec.ContainerSelector.ContainerName != "quick" {
			time.Sleep(slowCompile)
		}
		return bpf.Compile(spec, users)
	}
	start := func(name string) (ContainerInfo, string) {
		dir := filepath.Join(slice, name+".scope")
		if _, err := cgroup.Create(dir); err != nil {
			t.Fatal(err)
		}
		return ContainerInfo{ID: name, Name: name, PID: waitingProcess(t, dir)}, dir
	}
	started := func(info ContainerInfo) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		t0 := time.Now()
		err := a.ContainerStarted(ctx, info)
		return time.Since(t0), err
	}
	attached := func(dir string) bool {
		id, err := cgroup.ID(dir)
		if err != nil {
			t.Fatal(err)
		}
		at, err := engine.Attached()
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(at, func(at bpf.Attachment) bool { return at.CgroupID == id })
	}

	guarded, guardedDir := start("guarded")
	took, err := started(guarded)
	if took > 1200*time.Millisecond {
		t.Errorf("enforce: ContainerStarted took %v, past its 1 s deadline", took)
	}
	if err == nil || !strings.Contains(err.Error(), "not armed in time") {
		t.Errorf("enforce: ContainerStarted = %v, want the start refused as not armed in time", err)
	}
	t.Logf("enforce: refused after %v: %v", took, err)
	watched, watchedDir := start("watched")
	took, err = started(watched)
	if took > 1200*time.Millisecond || err != nil {
		t.Errorf("audit: ContainerStarted took %v and returned %v, want nil by the deadline", took, err)
	}
	time.Sleep(slowCompile + 500*time.Millisecond) // both compiles end
	if attached(guardedDir) {
		t.Error("enforce: the refused container was armed after its start failed")
	}
	if !attached(watchedDir) {
		t.Error("audit: the container was not armed once compiling ended")
	}

	quick, quickDir := start("quick")
	took, err = started(quick)
	if err != nil || !attached(quickDir) {
		t.Fatalf("normal arm: %v, attached %v", err, attached(quickDir))
	}
	if took > 500*time.Millisecond {
		t.Errorf("normal arm took %v, want well under the 1 s budget", took)
	}
	t.Logf("normal arm took %v", took)
}
