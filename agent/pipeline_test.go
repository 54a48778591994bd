package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
)

const busybox = "/bin/busybox"

// pipeline is a real agent (real kernel engine on a private bpffs) that
// guards the services of a test-owned slice and streams to a real
// collector, both in this process.
type pipeline struct {
	agent   *Agent
	query   *collector.QueryClient
	slice   string
	applets string
}

func startPipeline(t *testing.T) *pipeline {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	engine, slice := testEngine(t, dir, log)

	ctx, cancel := context.WithCancel(context.Background())
	srv, err := collector.NewServer(collector.Options{Socket: filepath.Join(dir, "collector.sock"), DB: filepath.Join(dir, "collector.db"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	// Registered before the agent's cleanup, so it runs after it: the
	// agent stops before the collector.
	t.Cleanup(func() {
		cancel()
		<-served
	})

	a, err := New(Config{
		PolicyDir: filepath.Join(dir, "policies"), Socket: filepath.Join(dir, "agent.sock"), Hostname: "test-node",
		CollectorSocket: filepath.Join(dir, "collector.sock"), SpoolDir: filepath.Join(dir, "spool"),
		ServicesRoot: slice, Log: log,
	}, engine)
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("agent: %v", err)
		}
		a.Close()
	})

	applets := t.TempDir()
	for _, n := range []string{"sh", "true", "cat", "id"} {
		if err := os.Symlink(busybox, filepath.Join(applets, n)); err != nil {
			t.Fatal(err)
		}
	}
	return &pipeline{agent: a, query: collector.NewQueryClient(filepath.Join(dir, "collector.sock")), slice: slice, applets: applets}
}

// testEngine opens a real kernel engine pinned on a private bpffs under
// dir and creates a test-owned cgroup slice for services; both are removed
// at the end of the test. It skips unless root with busybox and cgroup v2.
func testEngine(t *testing.T, dir string, log *slog.Logger) (*bpf.Engine, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (BPF, cgroups)")
	}
	if _, err := os.Stat(busybox); err != nil {
		t.Skipf("needs %s: %v", busybox, err)
	}
	pins := filepath.Join(dir, "bpf")
	if err := os.Mkdir(pins, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpffs", pins, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(pins, unix.MNT_DETACH) })
	engine, err := bpf.Open(bpf.Options{PinDir: filepath.Join(pins, "bulwark"), Logger: log})
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	t.Cleanup(func() { engine.Unpin(); engine.Close() })

	root, err := cgroup.Mountpoint()
	if err != nil {
		t.Skipf("no cgroup v2: %v", err)
	}
	slice := filepath.Join(root, fmt.Sprintf("bulwark-agent-test-%d.slice", os.Getpid()))
	if _, err := cgroup.Create(slice); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Removes the service cgroups first, killing what still runs.
		if err := cgroup.Remove(slice); err != nil {
			t.Error(err)
		}
	})
	return engine, slice
}

// service creates the service cgroup NAME.service in the slice and waits
// until the agent guards it.
func (p *pipeline) service(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(p.slice, name+".service")
	if _, err := cgroup.Create(dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "service armed", func() bool {
		for _, w := range p.agent.Status().Workloads {
			if w.Name == name+".service" && w.CgroupID != 0 {
				return true
			}
		}
		return false
	})
	return dir
}

// run runs a shell script in cgroup dir and returns its exit status; $B
// is the directory of busybox applet links (run by path, so each is a real
// exec, not a shell builtin).
func (p *pipeline) run(t *testing.T, dir, script string) int {
	t.Helper()
	cmd := exec.Command(p.applets+"/sh", "-c", script)
	cmd.Env = []string{"B=" + p.applets}
	if err := cgroup.StartIn(cmd, dir); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

// waitingProcess starts a process in cgroup dir that waits until the end
// of the test (busybox cat on a pipe) and returns its pid.
func waitingProcess(t *testing.T, dir string) int {
	t.Helper()
	cmd := exec.Command(busybox, "cat")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cgroup.StartIn(cmd, dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	return cmd.Process.Pid
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hasProcess reports whether the process tree has a node named name.
func hasProcess(nodes []policy.ProcessNode, name string) bool {
	for _, n := range nodes {
		if n.Name == name || hasProcess(n.Children, name) {
			return true
		}
	}
	return false
}

// TestServiceLearnedThenEnforced is the learn → policy → enforce →
// deviation loop through the real agent and collector, on a systemd-style
// service cgroup: the agent fingerprints the service, the fingerprint in
// the collector becomes a policy, the same behaviour then passes, and a new
// one is blocked and stored as a deviation with a flag.
func TestServiceLearnedThenEnforced(t *testing.T) {
	p := startPipeline(t)
	dir := p.service(t, "web")
	svc := cgroup.ServiceCgroup(filepath.Dir(p.slice), dir)

	if st := p.run(t, dir, "$B/true; $B/id -u >/dev/null"); st != 0 {
		t.Fatalf("learning run: status %d", st)
	}
	var fps []*policy.Fingerprint
	waitFor(t, "the service's fingerprint in the collector", func() bool {
		groups, err := p.query.Fingerprints(collector.Filter{Service: svc})
		if err != nil || len(groups) != 1 || len(groups[0].Instances) != 1 {
			return false
		}
		fp := groups[0].Instances[0].Fingerprint
		if !hasProcess(fp.Spec.ProcessPolicy, "true") || !hasProcess(fp.Spec.ProcessPolicy, "id") {
			return false
		}
		fps = []*policy.Fingerprint{&fp}
		return true
	})
	if fps[0].Metadata.Type != policy.TypeLinuxService || fps[0].Spec.ServiceSelector == nil ||
		fps[0].Spec.ServiceSelector.Cgroup != svc {
		t.Fatalf("fingerprint metadata %+v, selector %+v", fps[0].Metadata, fps[0].Spec.ServiceSelector)
	}

	pol, err := policy.PolicyFromFingerprints(fps, policy.CreateOptions{Name: "web", Mode: policy.ModeEnforce})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := policy.Encode(&buf, policy.FormatYAML, pol); err != nil {
		t.Fatal(err)
	}
	if _, err := p.agent.ApplyPolicy(buf.Bytes()); err != nil {
		t.Fatalf("apply learned policy: %v\n%s", err, buf.String())
	}
	waitFor(t, "the policy on the service", func() bool {
		for _, w := range p.agent.Status().Workloads {
			if w.CgroupID != 0 && w.Policy == "web" && w.Mode == policy.ModeEnforce {
				return true
			}
		}
		return false
	})

	// The learned behaviour passes; cat was never seen and is stopped.
	if st := p.run(t, dir, "$B/true; $B/id -u >/dev/null"); st != 0 {
		t.Fatalf("learned behaviour under the policy: status %d", st)
	}
	if st := p.run(t, dir, "$B/true; $B/cat /dev/null; echo $? >&2; exit 0"); st != 0 {
		t.Fatalf("shell status %d", st)
	}
	var dev collector.StoredDeviation
	waitFor(t, "the blocked deviation in the collector", func() bool {
		ds, err := p.query.Deviations(collector.Filter{})
		if err != nil {
			return false
		}
		for _, d := range ds {
			if e := d.Deviation.Metadata.Event; e != nil && e.Comm == "cat" {
				dev = d
				return true
			}
		}
		return false
	})
	if e := dev.Deviation.Metadata.Event; e.Verdict != "blocked" || dev.Deviation.Metadata.PolicyName != "web" {
		t.Fatalf("deviation %+v", dev.Deviation.Metadata)
	}
	for _, d := range p.agent.Deviations() {
		if d.Metadata.Event != nil && d.Metadata.Event.Comm != "cat" {
			t.Fatalf("unexpected deviation %+v", d.Metadata.Event)
		}
	}
	waitFor(t, "the red flag in the collector", func() bool {
		fs, err := p.query.Flags(collector.Filter{})
		return err == nil && len(fs) == 1 && fs[0].Flag.Metadata.DeviationUID == dev.Deviation.Metadata.UID
	})

	// The deviation merged back allows cat.
	var dbuf bytes.Buffer
	if err := policy.Encode(&dbuf, policy.FormatYAML, &dev.Deviation); err != nil {
		t.Fatal(err)
	}
	docs, err := policy.Load("deviation.yaml", dbuf.Bytes())
	if err != nil {
		t.Fatalf("stored deviation does not load: %v", err)
	}
	merged, err := policy.Merge(pol, docs...)
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := policy.Encode(&buf, policy.FormatYAML, merged); err != nil {
		t.Fatal(err)
	}
	if _, err := p.agent.ApplyPolicy(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "name: cat") {
		t.Fatalf("merged policy lacks cat:\n%s", buf.String())
	}
	waitFor(t, "the merged policy in force", func() bool {
		return p.run(t, dir, "$B/true; $B/cat /dev/null") == 0
	})
}
