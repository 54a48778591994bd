package bpf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/policy"
)

// busyboxCopy copies busybox into dir with a "true" applet link beside
// it, so that exe globs can tell copies apart by their directory.
func busyboxCopy(t *testing.T, dir string) string {
	t.Helper()
	exe := filepath.Join(dir, "busybox")
	copyBusybox(t, exe)
	if err := os.Symlink(exe, filepath.Join(dir, "true")); err != nil {
		t.Fatal(err)
	}
	return exe
}

// TestExecGlobsMatchExactly: in enforce mode, name globs with several '*'
// or a '?' (*tables*, *0-a*, run?) allow exactly the names fnmatch would,
// where they were once widened to '*'; a name glob with a '[' class and a
// node whose euser no passwd names fail closed, denied while their
// siblings keep working; an exe glob the kernel cannot express
// (*/lib-?-*/busybox) is dropped from its node, which keeps its
// single-star exe. A busybox applet
// link with an unknown applet name exits 127 when it runs, so 127 means
// "allowed" and the backend's denied status means denied.
func TestExecGlobsMatchExactly(t *testing.T) {
	e, _ := openTestEngine(t)
	denied := deniedStatus(e.Backend())
	cg := testCgroup(t)
	names := []string{"sh", "iptables", "ip6tables-save", "tablesx", "iptable", "x10-ab", "x10a-b", "runa", "run", "runab", "lsa", "ghost"}
	bin := applets(t, names...)
	tmp := t.TempDir()
	good := busyboxCopy(t, filepath.Join(tmp, "lib-0-abc"))
	busyboxCopy(t, filepath.Join(tmp, "lib-10-abc"))
	box := busyboxExe()
	spec := &policy.Spec{ProcessPolicy: []policy.ProcessNode{{
		Name: "sh", Exe: []string{box}, ID: "sh_0", Euser: []string{"root"},
		Children: []policy.ProcessNode{
			{Name: "*tables*", Exe: []string{box}, ID: "tables_0"},
			{Name: "*0-a*", Exe: []string{box}, ID: "zero_0"},
			{Name: "run?", Exe: []string{box}, ID: "run_0"},
			{Name: "ls[ab]", Exe: []string{box}, ID: "cls_0"},
			{Name: "ghost", Exe: []string{box}, ID: "ghost_0", Euser: []string{"no-such-user-h14"}},
			{Name: "true", Exe: []string{"*/lib-?-*/busybox", "*/lib-0-abc/busybox"}, ID: "lib_0"},
		},
	}}}
	c := mustCompile(t, spec)
	if len(c.Unreachable) != 3 {
		t.Fatalf("unreachable %q, want the class, the unknown user and the exe glob", c.Unreachable)
	}
	if _, err := e.Apply(cg, c, ModeEnforce); err != nil {
		t.Fatal(err)
	}
	ev := collect(t, e)
	want := map[string]string{
		bin + "/iptables": "127", bin + "/ip6tables-save": "127", bin + "/tablesx": "127", bin + "/iptable": denied,
		bin + "/x10-ab": "127", bin + "/x10a-b": denied,
		bin + "/runa": "127", bin + "/run": denied, bin + "/runab": denied,
		bin + "/lsa": denied, bin + "/ghost": denied,
		filepath.Join(tmp, "lib-0-abc/true"): "0", filepath.Join(tmp, "lib-10-abc/true"): denied,
	}
	var script strings.Builder
	script.WriteString("exec 2>/dev/null\n") // only the statuses are printed
	var order []string
	for cmd := range want {
		order = append(order, cmd)
		fmt.Fprintf(&script, "%s; echo \"$?\"\n", cmd)
	}
	st, out := run(t, cg, nil, bin+"/sh", "-c", script.String())
	if st != 0 {
		t.Fatalf("sh: status %d, output %q", st, out)
	}
	got := strings.Fields(out)
	if len(got) != len(order) {
		t.Fatalf("output %q: want %d statuses", out, len(order))
	}
	for i, cmd := range order {
		if got[i] != want[cmd] {
			t.Errorf("%s: status %s, want %s", cmd, got[i], want[cmd])
		}
	}
	// The denied execs were reported as blocked deviations under sh_0;
	// the allowed lib-0 copy was none.
	evs := ev.drain(time.Second)
	blocked := map[string]bool{}
	for _, x := range evs {
		if x.Deviation && x.Blocked && x.ParentNode == "sh_0" {
			blocked[x.Comm+" "+x.Exe] = true
		}
		if x.Deviation && x.Exe == good {
			t.Errorf("exec of %s is a deviation: %+v", good, x)
		}
	}
	for _, k := range []string{"x10a-b " + box, "lsa " + box, "ghost " + box, "true " + filepath.Join(tmp, "lib-10-abc/busybox")} {
		if !blocked[k] {
			t.Errorf("no blocked deviation for %s", k)
		}
	}
}
