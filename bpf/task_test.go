package bpf

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/policy"
)

func init() {
	// A helper's main goroutine stays on the process's main thread, so
	// taskHelper knows which thread it runs on.
	if os.Getenv(helperEnv) != "" {
		runtime.LockOSThread()
	}
}

// taskHelper performs the task-state actions of runHelper, from the main
// goroutine (locked to the main thread by init):
//
//	thread-exec PATH ARG...      exec PATH from a thread other than the main one
//	leader-exit-exec PATH ARG... the main thread exits, then another thread execs
//	rename-exec NAME READY PATH ARG... rename the process (PR_SET_NAME) to NAME,
//	                             create READY, wait for a line on stdin, exec
//	wait-thread-exec READY PATH ARG... create READY, wait for a line on stdin,
//	                             exec from a thread other than the main one
//
// A failed exec exits with the status statusOf gives its error.
func taskHelper(args []string) int {
	execArgs := func(argv []string) int {
		return statusOf(unix.Exec(argv[0], argv, os.Environ()))
	}
	switch args[0] {
	case "thread-exec":
		st := make(chan int)
		onOtherThread(func() { st <- execArgs(args[1:]) })
		return <-st
	case "leader-exit-exec":
		onOtherThread(func() {
			// Until the main thread has exited: /proc shows it a zombie.
			for i := 0; i < 200 && !leaderExited(); i++ {
				time.Sleep(10 * time.Millisecond)
			}
			os.Exit(execArgs(args[1:]))
		})
		syscall.Syscall(unix.SYS_EXIT, 0, 0, 0)
		return helperFailed // not reached
	case "wait-thread-exec":
		st := make(chan int)
		onOtherThread(func() {
			bufio.NewReader(os.Stdin).ReadString('\n')
			st <- execArgs(args[2:])
		})
		if err := os.WriteFile(args[1], nil, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return helperFailed
		}
		return <-st
	case "rename-exec":
		name := append([]byte(args[1]), 0)
		if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return helperFailed
		}
		if err := os.WriteFile(args[2], nil, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return helperFailed
		}
		bufio.NewReader(os.Stdin).ReadString('\n')
		return execArgs(args[3:])
	}
	return helperFailed
}

// onOtherThread runs f on a goroutine locked to a thread other than the
// main one (which the main goroutine holds); it exits the process if that
// does not hold.
func onOtherThread(f func()) {
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			fmt.Fprintln(os.Stderr, "helper goroutine on the main thread")
			os.Exit(helperFailed)
		}
		f()
	}()
}

// leaderExited reports whether this process's main thread is a zombie.
func leaderExited() bool {
	b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(os.Getpid()) + "/stat")
	if err != nil {
		return true
	}
	_, rest, _ := cutLast(string(b), ")")
	return len(rest) > 1 && rest[1] == 'Z'
}

func cutLast(s, sep string) (string, string, bool) {
	for i := len(s) - len(sep); i >= 0; i-- {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

// deniedHelperStatus is how a helper that execs a denied image ends: killed
// by the tracing backend, its exec failing with EPERM on the lsm backend.
func deniedHelperStatus(backend string) int {
	if backend == BackendLSM {
		return helperEPERM
	}
	return 128 + int(unix.SIGKILL)
}

// shThenHelper allows sh (a root) to run the test binary ("helper"), which
// may exec nothing: sh is allowed as a root, never under the helper.
func shThenHelper(t *testing.T) *policy.Spec {
	t.Helper()
	spec := treeSpec()
	spec.ProcessPolicy[0].Children = helperSpec(t).ProcessPolicy
	return spec
}

// testThreadExec runs sh → helper (action), which execs sh from a thread
// that is not the process's main thread: it must be checked against the
// helper's node, not against the roots.
func testThreadExec(t *testing.T, action string) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	bin := applets(t, "sh")
	self, _ := os.Executable()
	ev := collect(t, e)
	if _, err := e.Apply(cg, mustCompile(t, shThenHelper(t)), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	env := []string{helperEnv + "=" + action + " " + bin + "/sh -c true"}
	st, out := run(t, cg, env, bin+"/sh", "-c", `"$0"; echo $?`, self)
	want := strconv.Itoa(deniedHelperStatus(e.Backend()))
	if st != 0 || lastLine(out) != want {
		t.Fatalf("exec of sh under the helper (%s): status %d, output %q; want %s (denied)", action, st, out, want)
	}
	dev := ev.wait(t, "deviation for sh", func(x Event) bool { return x.Deviation && x.Comm == "sh" })
	if !dev.Blocked || dev.ParentNode != "helper" {
		t.Fatalf("deviation %+v, want blocked with parent helper", dev)
	}
}

// TestExecFromThreadKeepsNode: an exec from a non-main thread (the old
// leader exits during the exec) is checked against the process's node.
func TestExecFromThreadKeepsNode(t *testing.T) { testThreadExec(t, "thread-exec") }

// TestExecAfterLeaderExitKeepsNode: after the main thread exited while
// another thread runs, that thread's exec is checked against its node.
func TestExecAfterLeaderExitKeepsNode(t *testing.T) { testThreadExec(t, "leader-exit-exec") }

// TestLostTaskStateFailsClosed: a process created inside the workload whose
// per-task state is missing (a full table, a failed allocation: here the
// test deletes it) gets no root rights: its child's exec of sh, allowed as
// a root only, is denied and the loss counted.
func TestLostTaskStateFailsClosed(t *testing.T) {
	e, _ := openTestEngine(t)
	denied := deniedStatus(e.Backend())
	cg := testCgroup(t)
	bin := applets(t, "sh")
	work := t.TempDir()
	if _, err := e.Apply(cg, mustCompile(t, treeSpec()), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	ready, status := filepath.Join(work, "ready"), filepath.Join(work, "status")
	sh, stdin := startReader(t, bin, cg, fmt.Sprintf("( : > %[2]s; read l; %[1]s/sh -c true; echo $? > %[3]s ); true", bin, ready, status), ready)
	sub := subshell(t, cg, sh)
	dropTaskState(t, e, sub)
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if err := sh.Wait(); err != nil {
		t.Fatalf("shell: %v", err)
	}
	got, err := os.ReadFile(status)
	if err != nil || lastLine(string(got)) != denied {
		t.Fatalf("sh from a process without state: status %q, %v; want %s (denied)", got, err, denied)
	}
	if n, err := e.TaskStateFailures(); err != nil || n == 0 {
		t.Fatalf("task state failures %d, %v; want the loss counted", n, err)
	}
}

// TestPlacementUsesExecRecord: a process running before the policy renames
// itself (PR_SET_NAME) to the name of a node allowed to run sh; placement
// must use the name it was executed with, so its exec of sh is denied.
func TestPlacementUsesExecRecord(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	bin := applets(t, "sh")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		t.Fatal(err)
	}
	comm := filepath.Base(self)
	if len(comm) > nameLen-1 {
		comm = comm[:nameLen-1]
	}
	ev := collect(t, e)
	if _, err := e.Apply(cg, nil, ModeObserve); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), helperEnv+"=rename-exec allowed "+ready+" "+bin+"/sh -c true")
	stdin := startWithStdin(t, cmd, cg, ready)

	spec := &policy.Spec{ProcessPolicy: []policy.ProcessNode{
		{Name: comm, Exe: []string{self}, ID: "real"},
		{Name: "allowed", Exe: []string{self}, ID: "renamed", Children: []policy.ProcessNode{
			{Name: "sh", Exe: []string{busyboxExe()}, ID: "sh_0"},
		}},
	}}
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	st := 0
	if err := cmd.Wait(); errors.As(err, &ee) {
		st = exitStatus(t, err)
	} else if err != nil {
		t.Fatal(err)
	}
	if want := deniedHelperStatus(e.Backend()); st != want {
		t.Fatalf("renamed process's exec of sh: status %d, want %d (denied)", st, want)
	}
	dev := ev.wait(t, "deviation for sh", func(x Event) bool { return x.Deviation && x.Comm == "sh" })
	if dev.ParentNode != "real" {
		t.Fatalf("deviation %+v, want parent node real", dev)
	}
}

// dropTaskState deletes the kernel's state of process pid, as a failed
// allocation leaves it.
func dropTaskState(t *testing.T, e *Engine, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := e.net.TaskStates.Delete(uint32(fd)); err != nil {
		t.Fatalf("delete the state of %d: %v", pid, err)
	}
}

// TestPlacementReachesThreads: a thread of a process placed when the policy
// arrives execs with the process's new node (helper, allowed to run sh),
// not with the node it was created with (observed).
func TestPlacementReachesThreads(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	bin := applets(t, "sh")
	self, _ := os.Executable()
	if _, err := e.Apply(cg, nil, ModeObserve); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), helperEnv+"=wait-thread-exec "+ready+" "+bin+"/sh -c true")
	stdin := startWithStdin(t, cmd, cg, ready)
	spec := helperSpec(t)
	spec.ProcessPolicy[0].Children = treeSpec().ProcessPolicy
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exec of sh from a thread of the placed helper: %v, want it allowed", err)
	}
}

// siblingCgroup creates a cgroup next to path for the test, removed when
// the test ends.
func siblingCgroup(t *testing.T, path string) string {
	t.Helper()
	other := path + "-other"
	if _, err := cgroup.Create(other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cgroup.Remove(other); err != nil {
			t.Error(err)
		}
	})
	return other
}

// testMigration: a shell of the workload moves itself to another cgroup,
// then tries to connect and to exec cat (outside its node).
func testMigration(t *testing.T, mode Mode) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	other := siblingCgroup(t, cg)
	bin := applets(t, "sh", "cat")
	self, _ := os.Executable()
	moved := filepath.Join(t.TempDir(), "moved")
	port := listen(t, "tcp4", "127.0.0.1:0")
	ev := collect(t, e)
	spec := treeSpec()
	spec.NetworkPolicy = &policy.NetworkPolicy{Egress: []policy.NetworkRule{}}
	id, err := e.Apply(cg, mustCompile(t, spec), mode)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{fmt.Sprintf("%s=connect tcp 127.0.0.1:%d", helperEnv, port)}
	script := fmt.Sprintf(`echo $$ > %s/cgroup.procs; : > %s; "$0"; %s/cat /dev/null; echo $?`, other, moved, bin)
	st, out := run(t, cg, env, bin+"/sh", "-c", script, self)
	mig := ev.wait(t, "migration event", func(x Event) bool { return x.Kind == KindMigrate })
	if !mig.Deviation || mig.CgroupID != id || mig.Node != "sh_0" || mig.Blocked != (mode == ModeEnforce) {
		t.Fatalf("migration event %+v", mig)
	}
	if mode == ModeEnforce {
		if st != 128+int(unix.SIGKILL) || exists(moved) {
			t.Fatalf("enforce: status %d, output %q, ran after the move %v; want killed at the move", st, out, exists(moved))
		}
		return
	}
	if st != 0 || lastLine(out) != "0" || !exists(moved) {
		t.Fatalf("audit: status %d, output %q, moved %v", st, out, exists(moved))
	}
	dev := ev.wait(t, "deviation for cat", func(x Event) bool { return x.Deviation && x.Comm == "cat" })
	if dev.Blocked || dev.CgroupID != id || dev.ParentNode != "sh_0" {
		t.Fatalf("cat after the move: %+v, want an audit deviation under sh_0 of workload %d", dev, id)
	}
}

// TestCgroupMigrationKilledInEnforce: the move itself kills the shell.
func TestCgroupMigrationKilledInEnforce(t *testing.T) { testMigration(t, ModeEnforce) }

// TestCgroupMigrationReportedInAudit: the move is reported and the shell's
// later exec is still checked against its node in the workload it left.
func TestCgroupMigrationReportedInAudit(t *testing.T) { testMigration(t, ModeAudit) }

// TestCgroupMoveWithinWorkloadAllowed: moving into a cgroup below the
// workload's stays inside it: not a deviation, the shell lives on.
func TestCgroupMoveWithinWorkloadAllowed(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	inner := filepath.Join(cg, "inner")
	if _, err := cgroup.Create(inner); err != nil {
		t.Fatal(err)
	}
	bin := applets(t, "sh", "touch")
	a := filepath.Join(t.TempDir(), "a")
	if _, err := e.Apply(cg, mustCompile(t, treeSpec()), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	st, out := run(t, cg, nil, bin+"/sh", "-c", fmt.Sprintf("echo $$ > %s/cgroup.procs; %s/touch %s", inner, bin, a))
	if st != 0 || !exists(a) {
		t.Fatalf("move within the workload: status %d, output %q, touch ran %v", st, out, exists(a))
	}
}
