package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/policy"
)

// TestAgentKilledEnforcementHoldsAndAdopts is suite test 9: with the agent
// SIGKILLed, a guarded container stays guarded (a shell the app spawns and
// a crictl exec are still killed, allowed children still run); a container
// started meanwhile is adopted when the agent restarts (armed with its
// policy and enforced); the restarted agent attaches nothing twice (one
// program per attach type on each cgroup) and leaks no pins: the pin
// directory is as before plus the new container's links, which go away
// when it is removed.
func TestAgentKilledEnforcementHoldsAndAdopts(t *testing.T) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	n := nonce()
	name, label := "e2e-restart-"+n, "restart-"+n

	pol := rt.podPolicy(name, policy.ModeEnforce, label,
		node("spawner_0", "spawner", "/bin/spawner", applet("echo")), node("httpserver_0", "httpserver", "/bin/httpserver"))
	pol.Spec.NetworkPolicy.Ingress = []policy.NetworkRule{ingressRule(rt.subnet.String(), 8080, "spawner_0")}
	rt.writePolicy(t, cl, pol)

	p := rt.runPod(t, podSpec{Name: "restart", Namespace: "e2e-restart", Labels: map[string]string{"app": label}})
	app := p.Run(t, ctrSpec{Name: "app", Command: []string{"/bin/spawner", "-listen", ":8080", "/bin/echo", "hi"}})
	appCgroup := waitArmed(t, cl, app, name, policy.ModeEnforce).CgroupID
	deny := denialOf(t, cl)
	base := fmt.Sprintf("http://%s:8080", p.IP(t))
	rt.checkAttachedOnce(t, app, appCgroup)
	pinsBefore := rt.pins(t)
	if !slices.Contains(pinsBefore, pinCgroupDir(appCgroup)) {
		t.Fatalf("pin directory lacks %s for the app's cgroup: %v", pinCgroupDir(appCgroup), pinsBefore)
	}

	// From here on the agent must be running again at the end, whatever
	// happens.
	t.Cleanup(func() {
		if !rt.agentRunning() {
			if err := rt.agent("start"); err != nil {
				t.Errorf("restart the agent: %v", err)
			}
		}
	})
	if err := rt.agent("kill"); err != nil {
		t.Fatal(err)
	}
	if rt.agentRunning() {
		t.Fatal("agent still running after agent.sh kill")
	}

	// Down: the kernel keeps enforcing from the pins.
	echoOK, shKilled := "spawn /bin/echo: exit 0: hi", deny.spawned("/bin/sh")
	if got := spawn(t, base, "/bin/sh", "-c", "true"); got != shKilled {
		t.Errorf("agent down: app spawns sh: %q, want %q", got, shKilled)
	}
	if got := spawn(t, base, "/bin/echo", "hi"); got != echoOK {
		t.Errorf("agent down: app spawns echo: %q, want %q", got, echoOK)
	}
	if err := deny.checkExec(app.Exec(10*time.Second, "/bin/sh", "-c", "echo ran")); err != nil {
		t.Errorf("agent down: %v", err)
	}
	// A container started while the agent is down runs unarmed until the
	// agent is back.
	late := p.Run(t, ctrSpec{Name: "late", Command: []string{"/bin/httpserver", "-listen", ":8081"}})

	if err := rt.agent("start"); err != nil {
		t.Fatal(err)
	}
	cl = rt.needAgent(t)
	if got := waitArmed(t, cl, app, name, policy.ModeEnforce).CgroupID; got != appCgroup {
		t.Errorf("restarted agent: app cgroup id %d, was %d", got, appCgroup)
	}
	lateCgroup := waitArmed(t, cl, late, name, policy.ModeEnforce).CgroupID
	rt.checkAttachedOnce(t, app, appCgroup)
	rt.checkAttachedOnce(t, late, lateCgroup)
	// The late container's links, named like the app's.
	want := slices.Clone(pinsBefore)
	appDir, lateDir := pinCgroupDir(appCgroup), pinCgroupDir(lateCgroup)
	for _, pin := range pinsBefore {
		if rest, ok := strings.CutPrefix(pin, appDir); ok {
			want = append(want, lateDir+rest)
		}
	}
	slices.Sort(want)
	if got := rt.pins(t); !slices.Equal(got, want) {
		t.Errorf("pins after the restart:\n%v\nwant the ones before plus the late container's:\n%v", got, want)
	}

	// Up again: both containers are enforced and deviations recorded.
	if got := spawn(t, base, "/bin/sh", "-c", "true"); got != shKilled {
		t.Errorf("agent back: app spawns sh: %q, want %q", got, shKilled)
	}
	// (cat, not sh: deviations are de-duplicated by policy and content,
	// and the sh exec'd into the app while the agent was down is already
	// recorded from the events the kernel kept.)
	if err := deny.checkExec(late.Exec(10*time.Second, "/bin/cat", "/etc/hostname")); err != nil {
		t.Errorf("adopted container: %v", err)
	}
	waitDeviations(t, cl,
		devMatch{Container: app.ID, Policy: name, Kind: "exec", Verdict: "blocked", Comm: "sh", ParentNode: "spawner_0"},
		devMatch{Container: app.ID, Policy: name, Kind: "exec", Verdict: "blocked", Comm: "sh", ParentNode: ""},
		devMatch{Container: late.ID, Policy: name, Kind: "exec", Verdict: "blocked", Comm: "cat"},
	)

	// Removing the adopted container removes its links.
	late.Remove(t)
	poll(t, waitTimeout, "the removed container's pins and workload go away", func() (bool, string) {
		got := rt.pins(t)
		st, err := cl.Status()
		if err != nil {
			return false, err.Error()
		}
		_, tracked := workload(st, late.ID)
		return slices.Equal(got, pinsBefore) && !tracked, fmt.Sprintf("pins %v (want %v), still tracked: %v", got, pinsBefore, tracked)
	})
}

// pinCgroupDir is the name of the engine's pin directory holding the links
// of cgroup id (bpf.pinCgroupDir).
func pinCgroupDir(id uint64) string {
	return "cgroup_" + strconv.FormatUint(id, 10)
}

// pins lists the agent's pin directory: every entry and, for directories,
// every entry inside, as relative paths, sorted.
func (rt *runtimeEnv) pins(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(rt.pinDir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == rt.pinDir {
			return nil
		}
		rel, err := filepath.Rel(rt.pinDir, path)
		if err != nil {
			return err
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatalf("list pins: %v", err)
	}
	slices.Sort(out)
	return out
}

// checkAttachedOnce checks that the container's cgroup (v2) has the id the
// agent reports and that the kernel has exactly one program attached to it
// for each of the engine's cgroup attach types.
func (rt *runtimeEnv) checkAttachedOnce(t *testing.T, c *container, id uint64) {
	t.Helper()
	root, err := cgroup.Mountpoint()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, rt.cgroupParent, c.ID)
	if got, err := cgroup.ID(path); err != nil || got != id {
		t.Fatalf("cgroup %s: id %d (error %v), the agent reports %d", path, got, err, id)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("cgroup of %s: %v", c.Name, err)
	}
	defer f.Close()
	for _, typ := range []ebpf.AttachType{
		ebpf.AttachCGroupInet4Bind, ebpf.AttachCGroupInet6Bind,
		ebpf.AttachCGroupInet4Connect, ebpf.AttachCGroupInet6Connect,
		ebpf.AttachCGroupUDP4Sendmsg, ebpf.AttachCGroupUDP6Sendmsg,
		ebpf.AttachCGroupInetIngress,
	} {
		res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: typ})
		if err != nil {
			t.Fatalf("query %s programs of %s: %v", typ, path, err)
		}
		if len(res.Programs) != 1 {
			t.Errorf("cgroup of %s: %d %s programs attached, want exactly 1", c.Name, len(res.Programs), typ)
		}
	}
}
