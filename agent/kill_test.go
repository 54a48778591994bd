package agent

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/cgroup"
)

// killHelperEnv makes TestKillHelper act as a workload's process.
const killHelperEnv = "BULWARK_KILL_HELPER"

// TestKillHelper is not a test but the process the kill tests run in
// workloads: with BULWARK_KILL_HELPER=connect it makes a connection the
// policy denies, then (in every mode) prints "ready" and sleeps.
func TestKillHelper(t *testing.T) {
	switch os.Getenv(killHelperEnv) {
	case "":
		t.Skip("the process the kill tests start")
	case "connect":
		c, err := net.DialTimeout("tcp", "127.0.0.1:9", time.Second)
		if err == nil {
			c.Close()
		}
	}
	fmt.Println("ready")
	time.Sleep(time.Hour)
}

// killEnv is a real agent (not running its loops) whose engine enforces
// two service policies with kill responses: victim.service kills the
// deviating process, group.service its process group. other is a cgroup
// in no workload.
type killEnv struct {
	a                    *Agent
	engine               *bpf.Engine
	victim, group, other string
	exe                  string
}

func newKillEnv(t *testing.T) *killEnv {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, p := range []struct{ name, action string }{{"victim", "agentKillProcess"}, {"group", "agentKillProcessGroup"}} {
		docs = append(docs, fmt.Sprintf(`apiVersion: bulwark/v1
kind: WorkloadPolicy
metadata: {name: %[1]s, type: linux-service}
spec:
  serviceSelector: {name: %[1]s.service}
  mode: enforce
  processPolicy:
  - {name: %[2]s, exe: [%[3]s], euser: [root], id: helper}
  networkPolicy: {ingress: [], egress: []}
  response:
    default: [{%[4]s: {}}]
    actions: []
`, p.name, filepath.Base(exe), exe, p.action))
	}
	a, engine, slice := testAgent(t, strings.Join(docs, "---\n"))
	k := &killEnv{a: a, engine: engine, exe: exe,
		victim: filepath.Join(slice, "victim.service"), group: filepath.Join(slice, "group.service"), other: filepath.Join(slice, "other")}
	for _, cg := range []string{k.victim, k.group, k.other} {
		if _, err := cgroup.Create(cg); err != nil {
			t.Fatal(err)
		}
	}
	root, err := cgroup.Mountpoint()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.scanServices(root); err != nil {
		t.Fatal(err)
	}
	for _, w := range a.Status().Workloads {
		if w.Mode != "enforce" {
			t.Fatalf("workload %s armed in %s mode", w.Name, w.Mode)
		}
	}
	return k
}

// testAgent returns a real agent on a real engine, with policies (YAML
// documents) in its policy directory and the services of slice (a
// test-owned cgroup) to guard. Its loops do not run: tests drive it.
func testAgent(t *testing.T, policies string) (*Agent, *bpf.Engine, string) {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	engine, slice := testEngine(t, dir, log)
	pdir := filepath.Join(dir, "policies")
	if err := os.Mkdir(pdir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pdir, "test.yaml"), []byte(policies), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{PolicyDir: pdir, Hostname: "test-node", ServicesRoot: slice, Log: log}, engine)
	if err != nil {
		t.Fatal(err)
	}
	return a, engine, slice
}

// helper is a started TestKillHelper process.
type helper struct {
	pid   int
	done  chan struct{}
	state *os.ProcessState
}

// start runs the helper in mode in cgroup cg, in process group pgid (-1:
// the test's own group, 0: a group of its own), and waits until it is
// ready.
func (k *killEnv) start(t *testing.T, cg, mode string, pgid int) *helper {
	t.Helper()
	cmd := exec.Command(k.exe, "-test.run=^TestKillHelper$")
	cmd.Env = append(os.Environ(), killHelperEnv+"="+mode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if pgid >= 0 {
		cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true, Pgid: pgid}
	}
	if err := cgroup.StartIn(cmd, cg); err != nil {
		t.Fatal(err)
	}
	h := &helper{pid: cmd.Process.Pid, done: make(chan struct{})}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if sc.Text() == "ready" {
				ok = true
				break
			}
		}
		ready <- ok
		for sc.Scan() {
		}
		cmd.Wait()
		h.state = cmd.ProcessState
		close(h.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-h.done
	})
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("helper %s in %s exited before it was ready", mode, cg)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("helper %s in %s not ready", mode, cg)
	}
	return h
}

// alive reports whether h still runs after a moment for a kill to land.
func (h *helper) alive() bool {
	select {
	case <-h.done:
		return false
	case <-time.After(300 * time.Millisecond):
		return true
	}
}

// killed waits until h ends and reports whether SIGKILL ended it.
func (h *helper) killed() bool {
	select {
	case <-h.done:
		ws, ok := h.state.Sys().(syscall.WaitStatus)
		return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
	case <-time.After(5 * time.Second):
		return false
	}
}

// deviation reads the kernel's events until the connect deviation of pid.
func (k *killEnv) deviation(t *testing.T, pid int) bpf.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		ev, err := k.engine.ReadEvent(ctx)
		if err != nil {
			t.Fatalf("no connect deviation of pid %d: %v", pid, err)
		}
		if ev.Deviation && ev.Kind == bpf.KindConnect && int(ev.PID) == pid {
			return ev
		}
	}
}

// handle hands ev to the agent's deviation handling, as its event loop
// does.
func (k *killEnv) handle(t *testing.T, ev bpf.Event) {
	t.Helper()
	k.a.mu.Lock()
	w := k.a.byCgroup[ev.CgroupID]
	k.a.mu.Unlock()
	if w == nil {
		t.Fatalf("no workload for cgroup %d", ev.CgroupID)
	}
	k.a.handleDeviation(w, ev)
}

// procStart reads when process pid started.
func procStart(t *testing.T, pid int) time.Duration {
	t.Helper()
	st, err := readProcStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st.start
}

// TestKillChecksTheDeviant: agentKillProcess kills the process that
// deviated, and not what its pid names by the time the event is handled:
// a process in another cgroup (with the event's start time, or with its
// own as after pid reuse), another process of the same workload, or a pid
// whose process exited.
func TestKillChecksTheDeviant(t *testing.T) {
	k := newKillEnv(t)
	dev := k.start(t, k.victim, "connect", -1)
	ev := k.deviation(t, dev.pid)
	if got := procStart(t, dev.pid); ev.ProcessStart/clockTick*clockTick != got {
		t.Fatalf("event's process start %v, /proc says %v", ev.ProcessStart, got)
	}

	outsider := k.start(t, k.other, "sleep", -1)
	sibling := k.start(t, k.victim, "sleep", -1)
	exited := k.start(t, k.victim, "sleep", -1)
	syscall.Kill(exited.pid, syscall.SIGKILL)
	<-exited.done

	rewrite := func(pid int, start time.Duration) bpf.Event {
		e := ev
		e.PID, e.ProcessStart = uint32(pid), start
		return e
	}
	k.handle(t, rewrite(outsider.pid, ev.ProcessStart))
	if !outsider.alive() {
		t.Error("a process outside the workload, given the deviant's pid, was killed")
	}
	k.handle(t, rewrite(outsider.pid, procStart(t, outsider.pid)))
	if !outsider.alive() {
		t.Error("a process outside the workload, with its own start time, was killed")
	}
	k.handle(t, rewrite(sibling.pid, ev.ProcessStart))
	if !sibling.alive() {
		t.Error("another process of the workload (a reused pid) was killed")
	}
	k.handle(t, rewrite(exited.pid, ev.ProcessStart))
	if !dev.alive() {
		t.Fatal("the deviant died before its own event was handled")
	}
	k.handle(t, ev)
	if !dev.killed() {
		t.Error("the deviating process was not killed")
	}
}

// TestKillProcessGroupChecksEachMember: agentKillProcessGroup kills the
// deviant's group members inside the workload and spares a member in
// another cgroup.
func TestKillProcessGroupChecksEachMember(t *testing.T) {
	k := newKillEnv(t)
	leader := k.start(t, k.group, "connect", 0)
	member := k.start(t, k.group, "sleep", leader.pid)
	outsider := k.start(t, k.other, "sleep", leader.pid)
	ev := k.deviation(t, leader.pid)
	k.handle(t, ev)
	if !leader.killed() {
		t.Error("the deviating process was not killed")
	}
	if !member.killed() {
		t.Error("its group member in the workload was not killed")
	}
	if !outsider.alive() {
		t.Error("its group member outside the workload was killed")
	}
}
