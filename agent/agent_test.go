package agent

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/cgroup"
)

// TestSynchronizeForgetsVanishedContainers: a container the runtime no
// longer lists when it (re)connects ended meanwhile, so Synchronize
// disarms and forgets it; a listed container and the services stay.
func TestSynchronizeForgetsVanishedContainers(t *testing.T) {
	p := startPipeline(t)
	p.service(t, "svc")
	// container runs a process in its own cgroup of the slice (not a
	// *.service one) and reports it as started.
	container := func(id string) (ContainerInfo, uint64) {
		dir := filepath.Join(p.slice, id+".scope")
		if _, err := cgroup.Create(dir); err != nil {
			t.Fatal(err)
		}
		info := ContainerInfo{ID: id, Name: id, PID: waitingProcess(t, dir)}
		if err := p.agent.ContainerStarted(context.Background(), info); err != nil {
			t.Fatal(err)
		}
		for _, w := range p.agent.Status().Workloads {
			if w.ID == id && w.CgroupID != 0 {
				return info, w.CgroupID
			}
		}
		t.Fatalf("container %s not armed", id)
		return info, 0
	}
	keptInfo, kept := container("kept")
	_, vanished := container("vanished")

	if err := p.agent.Synchronize([]ContainerInfo{keptInfo}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, w := range p.agent.Status().Workloads {
		ids = append(ids, w.ID)
	}
	if slices.Contains(ids, "vanished") || !slices.Contains(ids, "kept") || len(ids) != 2 {
		t.Errorf("workloads after Synchronize: %v, want kept and the service", ids)
	}
	attached, err := p.agent.engine.Attached()
	if err != nil {
		t.Fatal(err)
	}
	armed := func(cgid uint64) bool {
		return slices.ContainsFunc(attached, func(at bpf.Attachment) bool { return at.CgroupID == cgid })
	}
	if armed(vanished) || !armed(kept) {
		t.Errorf("attachments after Synchronize: %+v; want %d, not %d", attached, kept, vanished)
	}
}

// TestSynchronizeKeepsDockerContainers: on a host running both an NRI
// runtime and Docker, an agent that restarts gets NRI's Synchronize before
// it has listed Docker's containers. The Docker container armed before
// the restart keeps its attachment through that Synchronize (NRI speaks
// only for its own containers); the attachment of a cgroup that no longer
// exists is removed.
func TestSynchronizeKeepsDockerContainers(t *testing.T) {
	before, engine, slice := testAgent(t, "")
	arm := func(id string) (string, uint64) {
		dir := filepath.Join(slice, "docker-"+id+".scope")
		if _, err := cgroup.Create(dir); err != nil {
			t.Fatal(err)
		}
		info := ContainerInfo{ID: id, Name: id, Runtime: RuntimeDocker, PID: waitingProcess(t, dir)}
		if err := before.ContainerStarted(context.Background(), info); err != nil {
			t.Fatal(err)
		}
		cgid, err := cgroup.ID(dir)
		if err != nil {
			t.Fatal(err)
		}
		return dir, cgid
	}
	_, running := arm("running")
	endedDir, ended := arm("ended")
	// The ended container's process exits and its cgroup goes while no
	// agent runs.
	if err := cgroup.Remove(endedDir); err != nil {
		t.Fatal(err)
	}

	after, err := New(Config{PolicyDir: filepath.Join(t.TempDir(), "policies"), Hostname: "test-node", ServicesRoot: slice,
		Log: before.log}, engine)
	if err != nil {
		t.Fatal(err)
	}
	if err := after.Synchronize(nil); err != nil {
		t.Fatal(err)
	}
	attached, err := engine.Attached()
	if err != nil {
		t.Fatal(err)
	}
	armed := func(cgid uint64) bool {
		return slices.ContainsFunc(attached, func(at bpf.Attachment) bool { return at.CgroupID == cgid })
	}
	if !armed(running) {
		t.Errorf("NRI's Synchronize unarmed the running Docker container (cgroup %d): attachments %+v", running, attached)
	}
	if armed(ended) {
		t.Errorf("the attachment of the removed cgroup %d survived Synchronize: %+v", ended, attached)
	}
}
