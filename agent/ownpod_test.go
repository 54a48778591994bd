package agent

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/cgroup"
)

// TestOwnPodNeverArmed: with an enforce-mode policy that selects every
// container, the containers of the agent's own pod (Config.OwnPodUID) are
// neither tracked nor attached, even after a re-arm of every workload,
// while a container of another pod is armed.
func TestOwnPodNeverArmed(t *testing.T) {
	a, engine, slice := testAgent(t, `apiVersion: bulwark/v1
kind: WorkloadPolicy
metadata: {name: everything, type: container}
spec:
  containerSelector: {containerName: "*"}
  mode: enforce
  processPolicy:
  - {name: cat, exe: [/bin/busybox], euser: [root], id: cat}
  networkPolicy: {ingress: [], egress: []}
  response: {default: [], actions: []}
`)
	a.cfg.OwnPodUID = "uid-of-the-agent-pod"
	start := func(name, podUID string) uint64 {
		dir := filepath.Join(slice, name+".scope")
		if _, err := cgroup.Create(dir); err != nil {
			t.Fatal(err)
		}
		info := ContainerInfo{ID: name, Name: name, PodName: name + "-pod", PodUID: podUID, Namespace: "bulwark", PID: waitingProcess(t, dir)}
		a.ContainerCreated(info)
		if err := a.ContainerStarted(context.Background(), info); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		id, err := cgroup.ID(dir)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	agentCg := start("agent", "uid-of-the-agent-pod")
	otherCg := start("app", "uid-of-another-pod")
	if err := a.rearmAll(); err != nil {
		t.Fatal(err)
	}
	at, err := engine.Attached()
	if err != nil {
		t.Fatal(err)
	}
	has := func(id uint64) bool {
		return slices.ContainsFunc(at, func(at bpf.Attachment) bool { return at.CgroupID == id })
	}
	if has(agentCg) {
		t.Error("the agent's own container was armed")
	}
	if !has(otherCg) {
		t.Error("a container of another pod was not armed (the test proves nothing)")
	}
	for _, w := range a.Status().Workloads {
		if w.ID == "agent" {
			t.Errorf("own container tracked: %+v", w)
		}
	}
}
