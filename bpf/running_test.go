package bpf

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/policy"
)

// TestPolicyAppliedToRunningWorkload: processes started while the workload
// was only observed take their nodes when a policy arrives, so a running
// shell's allowed child still runs, its other children are denied (also
// from a subshell it forked before the policy, which shares its node), and
// a server bound before the policy is served from an allowed source only.
func TestPolicyAppliedToRunningWorkload(t *testing.T) {
	e, _ := openTestEngine(t)
	denied := deniedStatus(e.Backend())
	cg := testCgroup(t)
	bin := applets(t, "sh", "touch", "cat")
	work := t.TempDir()
	if _, err := e.Apply(cg, nil, ModeObserve); err != nil {
		t.Fatal(err)
	}

	// Started under observation: a shell waiting for a line, and a server.
	port := freePort(t, "tcp4", "127.0.0.1:0")
	serve(t, cg, fmt.Sprintf("127.0.0.1:%d", port))
	a, status := filepath.Join(work, "a"), filepath.Join(work, "status")
	b, substatus, ready := filepath.Join(work, "b"), filepath.Join(work, "substatus"), filepath.Join(work, "ready")
	sh, stdin := startReader(t, bin, cg, fmt.Sprintf(
		"( : > %[4]s; read l; %[1]s/touch %[5]s; %[1]s/cat /dev/null; echo $? > %[6]s ); read l; %[1]s/touch %[2]s; %[1]s/cat /dev/null; echo $? > %[3]s",
		bin, a, status, ready, b, substatus), ready)

	spec := treeSpec()
	spec.ProcessPolicy = append(spec.ProcessPolicy, helperSpec(t).ProcessPolicy...)
	spec.NetworkPolicy = &policy.NetworkPolicy{Ingress: []policy.NetworkRule{{
		From:      []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.0.0.1/32"}}},
		Ports:     []policy.Port{{Port: port, Protocol: "TCP"}},
		Processes: []string{"helper"},
	}}}
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}

	dst := fmt.Sprintf("127.0.0.1:%d", port)
	if err := dialFrom("127.0.0.1:0", dst); err != nil {
		t.Fatalf("allowed source to the server bound before the policy: %v", err)
	}
	if err := dialFrom("127.0.0.2:0", dst); err == nil {
		t.Fatal("127.0.0.2 was served; the policy allows 127.0.0.1 only")
	}

	// The subshell reads the first line and finishes, then the shell the
	// second.
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	waitForFile(t, substatus, "the subshell did not finish")
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if err := sh.Wait(); err != nil {
		t.Fatalf("shell: %v", err)
	}
	got, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	if !exists(a) || strings.TrimSpace(string(got)) != denied {
		t.Fatalf("touch ran: %v (want true); cat status %q (want %s)", exists(a), got, denied)
	}
	got, err = os.ReadFile(substatus)
	if err != nil {
		t.Fatal(err)
	}
	if !exists(b) || strings.TrimSpace(string(got)) != denied {
		t.Fatalf("subshell: touch ran: %v (want true); cat status %q (want %s)", exists(b), got, denied)
	}
}

// TestMatchChildMirrorsKernel checks the userspace matcher used to place
// running processes against the patterns the compiler emits.
func TestMatchChildMirrorsKernel(t *testing.T) {
	spec := &policy.Spec{ProcessPolicy: []policy.ProcessNode{{
		Name: "sh", Exe: []string{"/bin/*sh"}, ID: "sh_0", Euser: []string{"root"},
		Children: []policy.ProcessNode{
			{Name: "py*", Exe: []string{"/usr/bin/python3*"}, ID: "py_0"},
			{Name: "*", Exe: []string{"/app/server"}, ID: "srv_0", Euser: []string{"nobody"},
				Children: []policy.ProcessNode{{Name: "*", Exe: []string{"/app/server"}, ID: "srv_1", Euser: []string{"root"}}}},
			{Name: "*", Exe: []string{"*", "memfd:ok"}, ID: "any_0", Euser: []string{"1000"}},
		},
	}}}
	c, err := Compile(spec, map[string]uint32{"root": 0, "nobody": 65534})
	if err != nil {
		t.Fatal(err)
	}
	sh := nodeHash("sh_0")
	for _, tc := range []struct {
		parent uint64
		p      runningProcess
		want   string
	}{
		{0, runningProcess{comm: "sh", exe: "/bin/bash", euid: 0}, "sh_0"},
		{0, runningProcess{comm: "sh", exe: "/bin/bash", euid: 1}, ""},
		{0, runningProcess{comm: "bash", exe: "/bin/bash", euid: 0}, ""},
		{0, runningProcess{comm: "sh", exe: "/usr/bin/bash", euid: 0}, ""},
		{sh, runningProcess{comm: "python3.11", exe: "/usr/bin/python3.11", euid: 0}, "py_0"},
		{sh, runningProcess{comm: "server", exe: "/app/server", euid: 65534}, "srv_0"},
		{sh, runningProcess{comm: "server", exe: "/app/server", euid: 0}, ""},
		{0, runningProcess{comm: "server", exe: "/app/server", euid: 65534}, ""},
		{sh, runningProcess{comm: "x", exe: "/opt/x", euid: 1000}, "any_0"},
		{sh, runningProcess{comm: "3", exe: "memfd:evil", euid: 1000}, ""},
		{sh, runningProcess{comm: "3", exe: "memfd:ok", euid: 1000}, "any_0"},
		{sh, runningProcess{comm: "x", exe: "/opt/x (deleted)", euid: 1000}, ""},
	} {
		got := c.NodeID(c.matchChild(tc.parent, tc.p))
		if got != tc.want {
			t.Errorf("parent %x, %+v: node %q, want %q", tc.parent, tc.p, got, tc.want)
		}
	}
	// A server that turned into root without an exec, placed: the cred
	// child of the node its name and exe match, never that node.
	srv := runningProcess{comm: "server", exe: "/app/server", euid: 0}
	if got := c.NodeID(c.matchChild(sh, srv)); got != "" {
		t.Errorf("server as root: exec match %q, want none", got)
	}
	if got := c.NodeID(c.matchCredChild(sh, srv)); got != "srv_1" {
		t.Errorf("server as root: cred match %q, want srv_1", got)
	}
	if got := c.NodeID(c.matchCredChild(sh, runningProcess{comm: "server", exe: "/app/server", euid: 7})); got != "" {
		t.Errorf("server as 7: cred match %q, want none", got)
	}
}

// TestPolicyAppliedToForkingWorkload: shells looping over an allowed child,
// started while the workload is only observed, never run a child with their
// observe-mode node once the policy is in force, whether the child forked
// before, during or after the running processes were placed: no exec is
// denied, no deviation reported.
func TestPolicyAppliedToForkingWorkload(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	bin := applets(t, "sh", "touch")
	f := filepath.Join(t.TempDir(), "f")
	ev := collect(t, e)
	c := mustCompile(t, treeSpec())
	for round := range 10 {
		if _, err := e.Apply(cg, nil, ModeObserve); err != nil {
			t.Fatal(err)
		}
		exited := make(chan string, 2)
		var loops []*exec.Cmd
		for range cap(exited) {
			sh := exec.Command(bin+"/sh", "-c", fmt.Sprintf("while %s/touch %s; do :; done; echo $?", bin, f))
			var out strings.Builder
			sh.Stdout, sh.Stderr = &out, &out
			if err := cgroup.StartIn(sh, cg); err != nil {
				t.Fatal(err)
			}
			loops = append(loops, sh)
			go func() { sh.Wait(); exited <- out.String() }()
		}
		time.Sleep(20 * time.Millisecond) // looping under observation
		if _, err := e.Apply(cg, c, ModeEnforce); err != nil {
			t.Fatal(err)
		}
		select {
		case out := <-exited:
			t.Fatalf("round %d: a loop stopped under the policy: %q", round, out)
		case <-time.After(50 * time.Millisecond):
		}
		for _, sh := range loops {
			sh.Process.Kill()
		}
		for range loops {
			<-exited
		}
	}
	for _, x := range ev.drain(200 * time.Millisecond) {
		if x.Deviation {
			t.Fatalf("deviation: %+v", x)
		}
	}
}

// TestPlaceRunningForkedBeforeParentPlaced: a process forked from its
// parent before an earlier pass placed the parent still has the parent's
// old node; the next pass gives it the parent's new one.
func TestPlaceRunningForkedBeforeParentPlaced(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	bin := applets(t, "sh")
	id, err := e.Apply(cg, nil, ModeObserve)
	if err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(t.TempDir(), "ready")
	sh, _ := startReader(t, bin, cg, fmt.Sprintf("( : > %s; read l ); read l", ready), ready)
	sub := subshell(t, cg, sh)
	st, ok, err := e.taskState(sh.Process.Pid)
	if err != nil || !ok {
		t.Fatalf("shell state: %v, %v", ok, err)
	}
	old := st.Node
	if sst, ok, err := e.taskState(sub); err != nil || !ok || sst.Node != old {
		t.Fatalf("subshell node %x, %v, %v; want the shell's %x", sst.Node, ok, err, old)
	}
	// An earlier pass placed the shell only.
	shNode := nodeHash("sh_0")
	st.Node = shNode
	if err := e.putTaskState(sh.Process.Pid, &st); err != nil {
		t.Fatal(err)
	}
	earlier := map[int]uint64{sh.Process.Pid: old}
	if err := e.placeRunning(id, cg, mustCompile(t, treeSpec()), earlier); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := e.taskState(sub); err != nil || !ok || got.Node != shNode {
		t.Fatalf("subshell node %x, %v, %v; want the shell's new node %x", got.Node, ok, err, shNode)
	}
}

// subshell returns the pid of the one process in cgroup cg besides the
// shell sh (its subshell).
func subshell(t *testing.T, cg string, sh *exec.Cmd) int {
	t.Helper()
	pids, err := cgroup.Procs(cg, nil)
	if err != nil || len(pids) != 2 {
		t.Fatalf("processes %v, %v; want the shell and its subshell", pids, err)
	}
	if pids[0] == sh.Process.Pid {
		return pids[1]
	}
	return pids[0]
}

// startReader starts busybox sh (in bin) running script in cgroup cg with
// a pipe to its stdin, for the script to read lines from; it is killed when
// the test ends. It returns once the script has created the file ready.
func startReader(t *testing.T, bin, cg, script, ready string) (*exec.Cmd, io.Writer) {
	t.Helper()
	sh := exec.Command(bin+"/sh", "-c", script)
	return sh, startWithStdin(t, sh, cg, ready)
}

// startWithStdin starts cmd in cgroup cg with a pipe to its stdin; it is
// killed when the test ends. It returns once cmd has created the file ready.
func startWithStdin(t *testing.T, cmd *exec.Cmd, cg, ready string) io.Writer {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cgroup.StartIn(cmd, cg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitForFile(t, ready, "the process did not create "+ready)
	return stdin
}

// waitForFile waits up to 10 s for path to exist; the test fails with
// message if it does not.
func waitForFile(t *testing.T, path, message string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !exists(path); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(message)
		}
	}
}

// TestPolicyAppliedAboveNestedWorkload: a policy applied to a cgroup does
// not place the processes of a cgroup below it that is armed as a workload
// of its own: they keep that workload's nodes, and its policy still allows
// their children.
func TestPolicyAppliedAboveNestedWorkload(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	inner := filepath.Join(cg, "inner")
	if _, err := cgroup.Create(inner); err != nil {
		t.Fatal(err)
	}
	bin := applets(t, "sh", "touch")
	if _, err := e.Apply(inner, mustCompile(t, treeSpec()), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	ready, a, status := filepath.Join(work, "ready"), filepath.Join(work, "a"), filepath.Join(work, "status")
	sh, stdin := startReader(t, bin, inner, fmt.Sprintf(": > %s; read l; %s/touch %s; echo $? > %s", ready, bin, a, status), ready)

	// The outer workload's policy has the same tree under other ids.
	outer := treeSpec()
	outer.ProcessPolicy[0].ID = "outer_sh"
	for i := range outer.ProcessPolicy[0].Children {
		outer.ProcessPolicy[0].Children[i].ID = "outer_" + outer.ProcessPolicy[0].Children[i].ID
	}
	if _, err := e.Apply(cg, mustCompile(t, outer), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if err := sh.Wait(); err != nil {
		t.Fatalf("shell: %v", err)
	}
	got, err := os.ReadFile(status)
	if err != nil || strings.TrimSpace(string(got)) != "0" || !exists(a) {
		t.Fatalf("touch under the inner workload: status %q, %v, ran %v; want 0", got, err, exists(a))
	}
}
