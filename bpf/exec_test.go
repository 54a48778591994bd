package bpf

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/policy"
)

// treeSpec allows sh (root) → touch, and sh → mkdir; everything via the
// busybox applet links in dir.
func treeSpec() *policy.Spec {
	box := busyboxExe()
	return &policy.Spec{ProcessPolicy: []policy.ProcessNode{{
		Name: "sh", Exe: []string{box}, ID: "sh_0", Euser: []string{"root"},
		Children: []policy.ProcessNode{
			{Name: "touch", Exe: []string{box}, ID: "touch_0"},
			{Name: "mkdir", Exe: []string{"/*box"}, ID: "mkdir_0"},
		},
	}}}
}

func TestExecTreeEnforced(t *testing.T) {
	e, _ := openTestEngine(t)
	denied := deniedStatus(e.Backend())
	cg := testCgroup(t)
	bin := applets(t, "sh", "touch", "mkdir", "cat", "true")
	work := t.TempDir()
	ev := collect(t, e)
	id, err := e.Apply(cg, mustCompile(t, treeSpec()), ModeEnforce)
	if err != nil {
		t.Fatal(err)
	}

	// The allowed tree runs: sh, then its children touch and mkdir.
	a, b := filepath.Join(work, "a"), filepath.Join(work, "b")
	st, out := run(t, cg, nil, bin+"/sh", "-c", fmt.Sprintf("%s/touch %s && %s/mkdir %s", bin, a, bin, b))
	if st != 0 || !exists(a) || !exists(b) {
		t.Fatalf("allowed tree: status %d, output %q, a=%v b=%v", st, out, exists(a), exists(b))
	}

	// A child outside the tree is killed before its first instruction:
	// The shell reports the denial (137 killed, or 126 EPERM) and
	// carries on.
	c, d := filepath.Join(work, "c"), filepath.Join(work, "d")
	st, out = run(t, cg, nil, bin+"/sh", "-c", fmt.Sprintf("%s/touch %s; %s/cat /dev/null; echo $?", bin, d, bin))
	if st != 0 || lastLine(out) != denied || !exists(d) {
		t.Fatalf("denied child: status %d, output %q (want %s), d=%v", st, out, denied, exists(d))
	}
	dev := ev.wait(t, "deviation for cat", func(x Event) bool { return x.Deviation && x.Comm == "cat" })
	if !dev.Blocked || dev.Kind != KindExec || dev.CgroupID != id || dev.ParentNode != "sh_0" || dev.Exe != busyboxExe() || dev.Node != "" {
		t.Fatalf("deviation %+v", dev)
	}

	// A grandchild: touch has no children, so nothing runs under it, and
	// the first exec must be a root: mkdir as the entrypoint is killed.
	st, _ = run(t, cg, nil, bin+"/mkdir", c)
	if strconv.Itoa(st) != denied || exists(c) {
		t.Fatalf("denied root: status %d (want %s), c exists %v", st, denied, exists(c))
	}
	dev = ev.wait(t, "deviation for root mkdir", func(x Event) bool { return x.Deviation && x.Comm == "mkdir" })
	if dev.ParentNode != "" || dev.ParentKey != 0 {
		t.Fatalf("root deviation has a parent: %+v", dev)
	}
	// Outside the workload nothing is checked.
	if err := exec.Command(bin+"/mkdir", c).Run(); err != nil {
		t.Fatalf("mkdir outside the workload: %v", err)
	}
	lost, err := e.Lost()
	if err != nil || lost != 0 {
		t.Fatalf("lost %d, %v", lost, err)
	}
}

func TestExecDeniedImageRunsNoInstruction(t *testing.T) {
	e, _ := openTestEngine(t)
	denied := deniedStatus(e.Backend())
	cg := testCgroup(t)
	bin := applets(t, "sh", "dd")
	out := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(out, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(cg, mustCompile(t, treeSpec()), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	// dd would copy 4 KiB into out; it is denied, so out stays empty.
	st, msg := run(t, cg, nil, bin+"/sh", "-c", fmt.Sprintf("%s/dd if=/dev/zero of=%s bs=4096 count=1 conv=notrunc; echo $?", bin, out))
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st != 0 || lastLine(msg) != denied || fi.Size() != 0 {
		t.Fatalf("status %d, output %q, out has %d bytes; want %s and 0 bytes", st, msg, fi.Size(), denied)
	}
}

func TestExecEuser(t *testing.T) {
	e, _ := openTestEngine(t)
	denied := deniedStatus(e.Backend())
	cg := testCgroup(t)
	bin := applets(t, "sh", "touch", "mkdir")
	work := t.TempDir()
	if err := os.Chmod(work, 0o777); err != nil {
		t.Fatal(err)
	}
	box := busyboxExe()
	spec := &policy.Spec{ProcessPolicy: []policy.ProcessNode{{
		Name: "sh", Exe: []string{box}, ID: "sh_0", Euser: []string{"root", "nobody"},
		Children: []policy.ProcessNode{
			{Name: "touch", Exe: []string{box}, ID: "touch_0", Euser: []string{"nobody"}},
			{Name: "mkdir", Exe: []string{box}, ID: "mkdir_0"}, // inherits root, nobody
		},
	}}}
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(work, "a"), filepath.Join(work, "b")
	script := fmt.Sprintf("%s/touch %s; echo $?; %s/mkdir %s", bin, a, bin, b)
	// As root: touch (nobody only) is killed, mkdir (inherited) runs.
	st, out := run(t, cg, nil, bin+"/sh", "-c", script)
	if st != 0 || lastLine(out) != denied || exists(a) || !exists(b) {
		t.Fatalf("as root: status %d, output %q, a=%v b=%v", st, out, exists(a), exists(b))
	}
	// As nobody both run.
	os.Remove(b)
	cmd := exec.Command(bin+"/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	outb, err := startWait(t, cmd, cg)
	if err != nil || lastLine(outb) != "0" || !exists(a) || !exists(b) {
		t.Fatalf("as nobody: %v, output %q, a=%v b=%v", err, outb, exists(a), exists(b))
	}
}

// startWait runs cmd inside cgroup path and returns its output.
func startWait(t *testing.T, cmd *exec.Cmd, path string) (string, error) {
	t.Helper()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cgroup.StartIn(cmd, path); err != nil {
		return "", err
	}
	err := cmd.Wait()
	return out.String(), err
}

// TestExecSetuidEuser: a setuid-root binary run by nobody executes with
// euid 0, and the euser check must see that euid, not the caller's. The
// workload is a setuid-root copy of this test binary that prints its euid
// (runHelper's print-euid).
func TestExecSetuidEuser(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	bin := applets(t, "sh")
	dir := t.TempDir()
	// Reachable by nobody, the user the shell runs as (applets made the
	// test's temporary directories, dir's parent, reachable).
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Flags&unix.ST_NOSUID != 0 {
		t.Skipf("%s is on a nosuid mount: the setuid bit would be ignored", dir)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	image, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	suid := filepath.Join(dir, "euid")
	if err := os.WriteFile(suid, image, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	ev := collect(t, e)
	script := `"$0"; echo $?`
	for _, tc := range []struct {
		euser string
		allow bool
	}{{"root", true}, {"nobody", false}} {
		// The shell runs as nobody; its child is the setuid binary.
		spec := &policy.Spec{ProcessPolicy: []policy.ProcessNode{{
			Name: "sh", Exe: []string{busyboxExe()}, ID: "sh_0", Euser: []string{"nobody"},
			Children: []policy.ProcessNode{{Name: "euid", Exe: []string{suid}, ID: "euid_0", Euser: []string{tc.euser}}},
		}}}
		if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin+"/sh", "-c", script, suid)
		cmd.Env = append(os.Environ(), helperEnv+"=print-euid")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := startWait(t, cmd, cg)
		if err != nil {
			t.Fatalf("euser %s: %v, output %q", tc.euser, err, out)
		}
		ran := strings.Contains(out, "euid=0\n")
		if tc.allow {
			// Allowed only as root: it ran, and as root.
			if !ran || lastLine(out) != "0" {
				t.Fatalf("euser root: output %q, want euid=0 and status 0", out)
			}
			continue
		}
		// Allowed only as nobody, the caller's euid: denied, since the
		// new image runs as root.
		if ran || lastLine(out) != deniedStatus(e.Backend()) {
			t.Fatalf("euser nobody: output %q, want status %s and no run", out, deniedStatus(e.Backend()))
		}
		dev := ev.wait(t, "deviation for the setuid exec", func(x Event) bool { return x.Deviation && x.Comm == "euid" })
		if !dev.Blocked || dev.EUID != 0 || dev.UID != 65534 || dev.Exe != suid || dev.ParentNode != "sh_0" {
			t.Fatalf("deviation %+v, want blocked, euid 0, uid 65534, exe %s, parent sh_0", dev, suid)
		}
	}
}

func TestExecAuditReportsAndBlocksNothing(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	bin := applets(t, "sh", "touch", "mkdir", "rmdir")
	work := t.TempDir()
	ev := collect(t, e)
	if _, err := e.Apply(cg, mustCompile(t, treeSpec()), ModeAudit); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(work, "a")
	// rmdir is outside the tree but runs; so does its sibling.
	st, out := run(t, cg, nil, bin+"/sh", "-c", fmt.Sprintf("%s/mkdir %s; %s/rmdir %s; echo $?", bin, a, bin, a))
	if st != 0 || lastLine(out) != "0" || exists(a) {
		t.Fatalf("audit: status %d, output %q, a exists %v", st, out, exists(a))
	}
	obs := ev.wait(t, "observation of mkdir", func(x Event) bool { return !x.Deviation && x.Comm == "mkdir" })
	if obs.Node != "mkdir_0" || obs.ParentNode != "sh_0" {
		t.Fatalf("observation %+v", obs)
	}
	dev := ev.wait(t, "audit deviation", func(x Event) bool { return x.Deviation && x.Comm == "rmdir" })
	if dev.Blocked || dev.ParentNode != "sh_0" || dev.Node != "" {
		t.Fatalf("audit deviation %+v", dev)
	}
}

func TestExecObservationsDeduplicated(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	bin := applets(t, "sh", "touch", "true")
	f := filepath.Join(t.TempDir(), "f")
	ev := collect(t, e)
	if _, err := e.Apply(cg, nil, ModeObserve); err != nil {
		t.Fatal(err)
	}
	st, out := run(t, cg, nil, bin+"/sh", "-c", fmt.Sprintf("for i in 1 2 3 4 5 6 7 8 9 10; do %s/touch %s; done; %s/true", bin, f, bin))
	if st != 0 {
		t.Fatalf("status %d, output %q", st, out)
	}
	var touches, shells int
	var sh Event
	for _, x := range ev.drain(500 * time.Millisecond) {
		if x.Deviation {
			t.Fatalf("deviation in observe mode: %+v", x)
		}
		switch x.Comm {
		case "touch":
			touches++
			if x.ParentKey != sh.NodeKey || x.NodeKey&nodeSynthetic == 0 {
				t.Fatalf("touch observation not under sh: %+v (sh %+v)", x, sh)
			}
		case "sh":
			shells++
			sh = x
		}
	}
	if touches != 1 || shells != 1 {
		t.Fatalf("10 identical execs gave %d observations (sh: %d), want 1", touches, shells)
	}
}

// armHelper arms a cgroup from a separate process and exits without
// unpinning (see TestPinsSurviveLoaderExit).
func armHelper(args []string) int {
	e, err := Open(Options{PinDir: args[0], Backend: os.Getenv("BULWARK_TEST_BACKEND"), Logger: slog.Default()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return helperFailed
	}
	defer e.Close()
	c, err := Compile(treeSpec(), map[string]uint32{"root": 0})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return helperFailed
	}
	if _, err := e.Apply(args[1], c, ModeEnforce); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return helperFailed
	}
	return helperOK
}

func TestPinsSurviveLoaderExit(t *testing.T) {
	needRoot(t)
	pins := testPinDir(t)
	cg := testCgroup(t)
	bin := applets(t, "sh", "touch", "cat")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=arm "+pins+" "+cg, "BULWARK_TEST_BACKEND="+testBackend())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("arming process: %v\n%s", err, out)
	}
	// The loader is gone; the kernel still enforces.
	denied := deniedStatus(BackendTracing)
	if exists(filepath.Join(pins, pinExecPrefix+BackendLSM)) {
		denied = deniedStatus(BackendLSM)
	}
	f := filepath.Join(t.TempDir(), "f")
	st, out := run(t, cg, nil, bin+"/sh", "-c", fmt.Sprintf("%s/cat /dev/null; echo $?; %s/touch %s", bin, bin, f))
	if st != 0 || lastLine(out) != denied || !exists(f) {
		t.Fatalf("after loader exit: status %d, output %q, f=%v", st, out, exists(f))
	}
	// A new engine adopts the pins and sees the workload.
	e, err := Open(Options{PinDir: pins, Backend: testBackend(), Logger: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	att, err := e.Attached()
	if err != nil || len(att) != 1 || att[0].Mode != ModeEnforce {
		t.Fatalf("adopted attachments %+v, %v", att, err)
	}
	if err := e.Unpin(); err != nil {
		t.Fatal(err)
	}
	// Unpinned: nothing is enforced any more.
	st, out = run(t, cg, nil, bin+"/sh", "-c", fmt.Sprintf("%s/cat /dev/null; echo $?", bin))
	if st != 0 || lastLine(out) != "0" {
		t.Fatalf("after Unpin: status %d, output %q", st, out)
	}
}

func TestApplyReplacesAtomically(t *testing.T) {
	e, _ := openTestEngine(t)
	denied := deniedStatus(e.Backend())
	cg := testCgroup(t)
	bin := applets(t, "sh", "touch", "mkdir")
	work := t.TempDir()
	id, err := e.Apply(cg, mustCompile(t, treeSpec()), ModeEnforce)
	if err != nil {
		t.Fatal(err)
	}
	// The replacement allows sh → touch only.
	spec := treeSpec()
	spec.ProcessPolicy[0].Children = spec.ProcessPolicy[0].Children[:1]
	id2, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce)
	if err != nil || id2 != id {
		t.Fatalf("re-apply: %d, %v", id2, err)
	}
	a, b := filepath.Join(work, "a"), filepath.Join(work, "b")
	st, out := run(t, cg, nil, bin+"/sh", "-c", fmt.Sprintf("%s/mkdir %s; echo $?; %s/touch %s", bin, b, bin, a))
	if st != 0 || lastLine(out) != denied || !exists(a) || exists(b) {
		t.Fatalf("after replace: status %d, output %q, a=%v b=%v", st, out, exists(a), exists(b))
	}
	att, err := e.Attached()
	if err != nil || len(att) != 1 || att[0].Generation < 2 {
		t.Fatalf("attachments %+v, %v", att, err)
	}
	// Only the new generation's tables remain: the roots and 2 nodes.
	var k networkNodeKey
	var v []byte
	n := 0
	it := e.net.PolicyNodes.Iterate()
	for it.Next(&k, &v) {
		if k.Gen != att[0].Generation {
			t.Errorf("stale policy node of generation %d", k.Gen)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("%d policy nodes, want 3", n)
	}
	// Remove disarms: mkdir runs again.
	if err := e.Remove(id); err != nil {
		t.Fatal(err)
	}
	st, out = run(t, cg, nil, bin+"/sh", "-c", fmt.Sprintf("%s/mkdir %s; echo $?", bin, b))
	if st != 0 || lastLine(out) != "0" {
		t.Fatalf("after Remove: status %d, output %q", st, out)
	}
	if att, _ := e.Attached(); len(att) != 0 {
		t.Fatalf("still attached: %+v", att)
	}
}

func TestNestedCgroupIsCovered(t *testing.T) {
	e, _ := openTestEngine(t)
	denied := deniedStatus(e.Backend())
	cg := testCgroup(t)
	nested := filepath.Join(cg, "inner", "deeper")
	if err := os.MkdirAll(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := applets(t, "sh", "cat")
	if _, err := e.Apply(cg, mustCompile(t, treeSpec()), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	// A process two levels below the workload cgroup is checked against
	// the workload's policy.
	st, out := run(t, nested, nil, bin+"/sh", "-c", bin+"/cat /dev/null; echo $?")
	if st != 0 || lastLine(out) != denied {
		t.Fatalf("nested cgroup: status %d, output %q; want cat killed", st, out)
	}
}
