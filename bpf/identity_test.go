package bpf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/policy"
)

// The identity tests run the test binary inside the workload as an
// attacker: "identity ATTACK ARGS" (identityHelper) makes a binary that
// is not allowed appear at an allowed path and then executes it. The
// executed binary is a copy of busybox run as `true`, so it exits 0 when
// the exec is let through.

func init() {
	// An attack ends with an exec by the thread-group leader (the main
	// thread), as a single-threaded attacker's would: the main goroutine
	// stays on the main thread, and unshare affects that thread.
	if os.Getenv(helperEnv) != "" {
		runtime.LockOSThread()
	}
}

// identityHelper performs one attack and execs its target; it returns
// only when the exec failed.
func identityHelper(args []string) int {
	argv := []string{"true"}
	fail := func(what string, err error) int {
		if errors.Is(err, unix.EPERM) {
			return helperEPERM
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
		return helperFailed
	}
	switch args[0] {
	case "exec": // PATH
		return fail("exec", unix.Exec(args[1], argv, os.Environ()))
	case "unshare-bind": // SRC DST: a private mount namespace
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return fail("unshare", err)
		}
		return bindAndExec(args[1], args[2], fail)
	case "userns-bind": // SRC DST: a new user and mount namespace
		cmd := exec.Command("/proc/self/exe")
		cmd.Env = append(os.Environ(), helperEnv+"=identity bind "+args[1]+" "+args[2])
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		}
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			ws := ee.Sys().(syscall.WaitStatus)
			if ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return ws.ExitStatus()
		}
		if err != nil {
			return fail("run in a user namespace", err)
		}
		return helperOK
	case "bind": // SRC DST, in the namespace userns-bind made
		return bindAndExec(args[1], args[2], fail)
	case "chroot": // DIR PATH
		if err := unix.Chroot(args[1]); err != nil {
			return fail("chroot", err)
		}
		if err := unix.Chdir("/"); err != nil {
			return fail("chdir", err)
		}
		return fail("exec", unix.Exec(args[2], argv, os.Environ()))
	case "fd-chroot": // DIR PATH: the file opened before the chroot
		fd, err := unix.Open(filepath.Join(args[1], args[2]), unix.O_RDONLY, 0)
		if err != nil {
			return fail("open", err)
		}
		if err := unix.Chroot(args[1]); err != nil {
			return fail("chroot", err)
		}
		return fail("execveat", execveat(fd, "", argv, unix.AT_EMPTY_PATH))
	case "open-tree": // DIR REL: a detached clone of DIR
		fd, err := unix.OpenTree(unix.AT_FDCWD, args[1], unix.OPEN_TREE_CLONE)
		if err != nil {
			return fail("open_tree", err)
		}
		return fail("execveat", execveat(fd, args[2], argv, 0))
	case "memfd": // NAME proc|fd
		fd, err := unix.MemfdCreate(args[1], 0)
		if err != nil {
			return fail("memfd_create", err)
		}
		if err := copyToFd(fd, busybox); err != nil {
			return fail("fill memfd", err)
		}
		if args[2] == "proc" {
			return fail("exec", unix.Exec(fmt.Sprintf("/proc/self/fd/%d", fd), argv, os.Environ()))
		}
		return fail("execveat", execveat(fd, "", argv, unix.AT_EMPTY_PATH))
	case "unlinked": // PATH: opened, unlinked, then executed
		fd, err := unix.Open(args[1], unix.O_RDONLY, 0)
		if err != nil {
			return fail("open", err)
		}
		if err := unix.Unlink(args[1]); err != nil {
			return fail("unlink", err)
		}
		return fail("execveat", execveat(fd, "", argv, unix.AT_EMPTY_PATH))
	}
	return helperFailed
}

// bindAndExec bind-mounts file src over dst in the current (private)
// mount namespace and executes dst.
func bindAndExec(src, dst string, fail func(string, error) int) int {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fail("make mounts private", err)
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fail("bind mount", err)
	}
	return fail("exec", unix.Exec(dst, []string{"true"}, os.Environ()))
}

// execveat is execveat(2), which x/sys/unix does not wrap.
func execveat(dirfd int, path string, argv []string, flags int) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	av, err := cStrings(argv)
	if err != nil {
		return err
	}
	ev, err := cStrings(os.Environ())
	if err != nil {
		return err
	}
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(&av[0])), uintptr(unsafe.Pointer(&ev[0])), uintptr(flags), 0)
	return errno
}

// cStrings is ss as a NULL-terminated array of C strings.
func cStrings(ss []string) ([]*byte, error) {
	out := make([]*byte, 0, len(ss)+1)
	for _, s := range ss {
		p, err := unix.BytePtrFromString(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return append(out, nil), nil
}

func copyToFd(fd int, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out := os.NewFile(uintptr(fd), "memfd")
	_, err = io.Copy(out, in)
	return err
}

// copyBusybox copies busybox to path (creating its directory).
func copyBusybox(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(busybox)
	if err != nil {
		t.Skipf("needs %s: %v", busybox, err)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// testBinary is the test binary's path, the exe of the helper's node.
func testBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		t.Fatal(err)
	}
	return self
}

// identitySpec lets the helper (the test binary) exec exes, also from a
// second helper it starts.
func identitySpec(t *testing.T, exes ...string) *policy.Spec {
	self := testBinary(t)
	target := func(id string) policy.ProcessNode { return policy.ProcessNode{ID: id, Exe: exes} }
	return &policy.Spec{ProcessPolicy: []policy.ProcessNode{{
		ID: "helper", Exe: []string{self}, Euser: []string{"root"},
		Children: []policy.ProcessNode{
			target("target"),
			{ID: "helper2", Exe: []string{self}, Children: []policy.ProcessNode{target("target2")}},
		},
	}}}
}

// armIdentity arms cg in enforce mode with identitySpec(exes).
func armIdentity(t *testing.T, e *Engine, cg string, exes ...string) {
	t.Helper()
	if _, err := e.Apply(cg, mustCompile(t, identitySpec(t, exes...)), ModeEnforce); err != nil {
		t.Fatal(err)
	}
}

// execDeviation waits for the next exec deviation.
func (ev *events) execDeviation(t *testing.T) Event {
	t.Helper()
	return ev.wait(t, "exec deviation", func(x Event) bool { return x.Deviation && x.Kind == KindExec })
}

// attack runs the helper with one attack inside cgroup cg and returns
// its exit status and output.
func attack(t *testing.T, cg string, args ...string) (int, string) {
	t.Helper()
	return run(t, cg, []string{helperEnv + "=identity " + strings.Join(args, " ")}, testBinary(t))
}

// identityWorkload opens an engine, a cgroup for the attacks and the
// engine's events; denied is the helper's status for a denied exec.
func identityWorkload(t *testing.T) (e *Engine, cg string, ev *events, denied int) {
	t.Helper()
	e, _ = openTestEngine(t)
	return e, testCgroup(t), collect(t, e), identityDenied(e.Backend())
}

// identityDenied is the helper's status when its exec was denied.
func identityDenied(backend string) int {
	if backend == BackendLSM {
		return helperEPERM
	}
	return 137
}

// mountTmpfs mounts a private tmpfs on dir until the test ends.
func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make %s private: %v", dir, err)
	}
}

// TestExeIdentityMounts: a binary the policy does not allow, made to
// appear at the allowed path by mounts, a chroot or a detached tree, is
// denied; the allowed binary at that path runs.
func TestExeIdentityMounts(t *testing.T) {
	e, cg, ev, denied := identityWorkload(t)
	work := t.TempDir()
	allowed := filepath.Join(work, "allowed", "ok")
	copyBusybox(t, allowed)
	jail := filepath.Join(work, "jail")
	copyBusybox(t, filepath.Join(jail, allowed)) // the jail's copy sits at the allowed path inside it
	evil := filepath.Join(work, "evil")
	copyBusybox(t, evil)
	armIdentity(t, e, cg, allowed)
	if st, out := attack(t, cg, "exec", allowed); st != 0 {
		t.Fatalf("the allowed binary: status %d, %s", st, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		exe  string // the exe the deviation reports ("": unresolved)
	}{
		{"bind mount in a private mount namespace", []string{"unshare-bind", evil, allowed}, ""},
		{"bind mount in a user namespace", []string{"userns-bind", evil, allowed}, ""},
		{"chroot", []string{"chroot", jail, allowed}, filepath.Join(jail, allowed)},
		{"fd opened before a chroot", []string{"fd-chroot", jail, allowed}, filepath.Join(jail, allowed)},
		{"open_tree clone", []string{"open-tree", jail, strings.TrimPrefix(allowed, "/")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The chroot cases make the same deviation, whose repeats
			// the kernel only counts until they are drained.
			if _, err := e.DrainRepeats(); err != nil {
				t.Fatal(err)
			}
			st, out := attack(t, cg, tc.args...)
			if st != denied {
				t.Fatalf("status %d (want %d), output %q", st, denied, out)
			}
			dev := ev.execDeviation(t)
			if !dev.Blocked || dev.Unresolved != (tc.exe == "") || (tc.exe != "" && dev.Exe != tc.exe) {
				t.Fatalf("deviation %+v, want exe %q (unresolved if empty)", dev, tc.exe)
			}
		})
	}
}

// TestExeIdentityFileBindMount: a file bind-mounted over an allowed path
// is not the allowed file: denied, unless the policy names the bind mount
// ("bind:PATH").
func TestExeIdentityFileBindMount(t *testing.T) {
	e, cg, ev, denied := identityWorkload(t)
	dir := filepath.Join(t.TempDir(), "mnt")
	mountTmpfs(t, dir)
	allowed, evil := filepath.Join(dir, "ok"), filepath.Join(dir, "evil")
	copyBusybox(t, allowed)
	copyBusybox(t, evil)
	if err := unix.Mount(evil, allowed, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(allowed, unix.MNT_DETACH)
	armIdentity(t, e, cg, allowed, "/*")
	if st, out := attack(t, cg, "exec", allowed); st != denied {
		t.Fatalf("bind-mounted file: status %d (want %d), output %q", st, denied, out)
	}
	dev := ev.execDeviation(t)
	if dev.Exe != "bind:"+allowed || dev.Unresolved {
		t.Fatalf("deviation %+v, want exe %q", dev, "bind:"+allowed)
	}
	armIdentity(t, e, cg, "bind:"+allowed)
	if st, out := attack(t, cg, "exec", allowed); st != 0 {
		t.Fatalf("bind-mounted file the policy names: status %d, output %q", st, out)
	}
}

// TestExeIdentityMountBudget: mounts stacked deeper than the walk can
// follow leave the path unresolved, which fails closed; a directory
// mount the walk follows resolves to its mount point's path.
func TestExeIdentityMountBudget(t *testing.T) {
	e, cg, ev, denied := identityWorkload(t)
	dir := filepath.Join(t.TempDir(), "stack")
	mountTmpfs(t, dir)
	target := filepath.Join(dir, "ok")
	copyBusybox(t, target)
	armIdentity(t, e, cg, target)
	if st, out := attack(t, cg, "exec", target); st != 0 {
		t.Fatalf("a file on a mounted directory: status %d, output %q", st, out)
	}
	for range 48 {
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		defer unix.Unmount(dir, unix.MNT_DETACH)
	}
	// Before the budget ran out the walk had seen only "ok".
	armIdentity(t, e, cg, target, "/ok")
	if st, out := attack(t, cg, "exec", target); st != denied {
		t.Fatalf("48 stacked mounts: status %d (want %d), output %q", st, denied, out)
	}
	if dev := ev.execDeviation(t); !dev.Unresolved {
		t.Fatalf("deviation %+v, want unresolved", dev)
	}
}

// TestExeTruncatedPathsDenied: a path too deep or too long to resolve
// matches nothing, not even "*".
func TestExeTruncatedPathsDenied(t *testing.T) {
	e, cg, ev, denied := identityWorkload(t)
	work := t.TempDir()
	deep := filepath.Join(work, strings.Repeat("d/", 40), "ok")
	long := filepath.Join(work, strings.Repeat("l", 200), strings.Repeat("m", 60), "ok")
	copyBusybox(t, deep)
	copyBusybox(t, long)
	armIdentity(t, e, cg, "*")
	for _, p := range []string{deep, long} {
		if st, out := attack(t, cg, "exec", p); st != denied {
			t.Fatalf("%s: status %d (want %d), output %q", p, st, denied, out)
		}
		dev := ev.execDeviation(t)
		if !dev.Truncated || !dev.Blocked {
			t.Fatalf("deviation %+v, want truncated and blocked", dev)
		}
	}
}

// TestExeAnonymous: memfd and unlinked executables match only a policy
// that names them ("memfd:NAME", "PATH (deleted)"), never "*".
func TestExeAnonymous(t *testing.T) {
	e, cg, ev, denied := identityWorkload(t)
	work := t.TempDir()
	gone := filepath.Join(work, "gone")
	try := func(want int, wantExe string, args ...string) {
		t.Helper()
		if args[0] == "unlinked" {
			copyBusybox(t, gone)
		}
		// Through /proc/self/fd and execveat the lsm backend sees the
		// same name ("3"): the same deviation, whose repeats the
		// kernel only counts until they are drained.
		if _, err := e.DrainRepeats(); err != nil {
			t.Fatal(err)
		}
		st, out := attack(t, cg, args...)
		if st != want {
			t.Fatalf("%v: status %d (want %d), output %q", args, st, want, out)
		}
		if want == denied {
			dev := ev.execDeviation(t)
			if dev.Exe != wantExe {
				t.Fatalf("%v: deviation exe %q, want %q", args, dev.Exe, wantExe)
			}
		}
	}
	armIdentity(t, e, cg, "*")
	try(denied, "memfd:evil", "memfd", "evil", "proc")
	try(denied, "memfd:evil", "memfd", "evil", "fd")
	try(denied, gone+" (deleted)", "unlinked", gone)
	armIdentity(t, e, cg, "/*", "memfd:ok", gone+" (deleted)")
	try(0, "", "memfd", "ok", "proc")
	try(0, "", "memfd", "ok", "fd")
	try(denied, "memfd:evil", "memfd", "evil", "fd")
	try(0, "", "unlinked", gone)
}

// Two directories whose paths have the same length and the same FNV-1a
// 64-bit hash, found offline by a Pollard rho search with distinguished
// points over 13-character names (two cores, a few minutes): FNV-1a of
// "/tmp/yyoqedbyz0dhh" and of "/tmp/trvbpzfkmjjym" is 0x2c2a7bea60794f70,
// so every path below one collides with the same path below the other.
const (
	fnvAllowedDir = "/tmp/yyoqedbyz0dhh"
	fnvOtherDir   = "/tmp/trvbpzfkmjjym"
)

// TestExeHashCollision: a policy allowing a path does not allow another
// path of the same length and FNV-1a hash (the kernel compares bytes).
func TestExeHashCollision(t *testing.T) {
	e, cg, _, denied := identityWorkload(t)
	for _, d := range []string{fnvAllowedDir, fnvOtherDir} {
		if _, err := os.Stat(d); err == nil {
			t.Skipf("%s exists: not made by this test", d)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		copyBusybox(t, filepath.Join(d, "ok"))
	}
	allowed, other := filepath.Join(fnvAllowedDir, "ok"), filepath.Join(fnvOtherDir, "ok")
	armIdentity(t, e, cg, allowed)
	if st, out := attack(t, cg, "exec", allowed); st != 0 {
		t.Fatalf("the allowed path: status %d, output %q", st, out)
	}
	if st, out := attack(t, cg, "exec", other); st != denied {
		t.Fatalf("the colliding path: status %d (want %d), output %q", st, denied, out)
	}
}

// TestExeIdentityOverlayRoot: a workload whose root is an overlayfs mount
// (a container's) runs the files of its image, resolved from that root.
func TestExeIdentityOverlayRoot(t *testing.T) {
	e, cg, ev, _ := identityWorkload(t)
	dir := t.TempDir()
	lower, upper, work, merged := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyBusybox(t, filepath.Join(lower, "bin", "sh"))
	copyBusybox(t, filepath.Join(lower, "bin", "true"))
	copyBusybox(t, filepath.Join(lower, "bin", "echo"))
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Skipf("no overlayfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
	// The workload's init: a process chrooted into the overlay.
	initProc := exec.Command("/bin/sh", "-c", "read x")
	initProc.SysProcAttr = &syscall.SysProcAttr{Chroot: merged}
	stdin, err := initProc.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := initProc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); initProc.Wait() }()
	root, err := RootOf(initProc.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	spec := &policy.Spec{ProcessPolicy: []policy.ProcessNode{{
		ID: "sh", Name: "sh", Exe: []string{"/bin/sh"},
		Children: []policy.ProcessNode{{ID: "true", Exe: []string{"/bin/true"}}},
	}}}
	if _, err := e.ApplyIn(cg, root, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	inRoot := func(script string) int {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: merged}
		if err := cgroup.StartIn(cmd, cg); err != nil {
			t.Fatal(err)
		}
		return exitStatus(t, cmd.Wait())
	}
	if st := inRoot("/bin/true"); st != 0 {
		t.Fatalf("an allowed binary of the overlay root: status %d", st)
	}
	if st := inRoot("/bin/echo; echo $? >/status"); st != 0 {
		t.Fatalf("shell: status %d", st)
	}
	if b, err := os.ReadFile(filepath.Join(merged, "status")); err != nil || strings.TrimSpace(string(b)) != deniedStatus(e.Backend()) {
		t.Fatalf("a binary the policy does not name: status %q (%v), want %s", b, err, deniedStatus(e.Backend()))
	}
	if dev := ev.execDeviation(t); dev.Exe != "/bin/echo" || dev.Unresolved {
		t.Fatalf("deviation %+v, want /bin/echo resolved", dev)
	}
}
