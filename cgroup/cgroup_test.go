package cgroup

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// testCgroup creates a fresh cgroup for the test and removes it afterwards.
func testCgroup(t *testing.T) (root, path string, id uint64) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
	root, err := Mountpoint()
	if err != nil {
		t.Skipf("no cgroup v2: %v", err)
	}
	path = filepath.Join(root, fmt.Sprintf("bulwark-cgtest-%d", os.Getpid()))
	id, err = Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Remove(path); err != nil {
			t.Error(err)
		}
	})
	return root, path, id
}

func TestIDIsInodeAndPathRoundTrips(t *testing.T) {
	root, path, id := testCgroup(t)
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if id != st.Ino || id == 0 {
		t.Fatalf("id %d, inode %d", id, st.Ino)
	}
	got, err := Path(root, id)
	if err != nil {
		t.Fatal(err)
	}
	if got != path {
		t.Fatalf("Path(%d) = %s, want %s", id, got, path)
	}
	if _, err := Path(root, 1<<62); err == nil {
		t.Fatal("Path of a non-existent id succeeded")
	}
	if ids, err := IDs(root); err != nil || !ids[id] || ids[1<<62] {
		t.Fatalf("IDs: %v (holds %d: %v), want the test cgroup's id and no other", err, id, ids[id])
	}
	lvl, err := Level(root, path)
	if err != nil || lvl != 1 {
		t.Fatalf("Level = %d, %v; want 1", lvl, err)
	}
}

func TestStartInRunsInsideAndRemoveKillsLeftovers(t *testing.T) {
	_, path, _ := testCgroup(t)
	cmd := exec.Command("/bin/sh", "-c", "cat /proc/self/cgroup; exec sleep 60")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := StartIn(cmd, path); err != nil {
		t.Fatal(err)
	}
	// The shell printed its own cgroup before the sleep replaced it.
	sc := bufio.NewScanner(out)
	rel, err := parseProcCgroup(sc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(path, rel) || rel == "/" {
		t.Fatalf("child ran in %q, want %s", rel, path)
	}
	got, err := OfPID(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if got != path {
		t.Fatalf("OfPID = %s, want %s", got, path)
	}
	// Procs lists it (and maybe the exiting cat), with a nested cgroup
	// below, and a process in a nested cgroup unless that one is skipped.
	if _, err := Create(filepath.Join(path, "empty")); err != nil {
		t.Fatal(err)
	}
	if pids, err := Procs(path, nil); err != nil || !slices.Contains(pids, cmd.Process.Pid) {
		t.Fatalf("Procs = %v, %v; want it to hold %d", pids, err, cmd.Process.Pid)
	}
	nested := filepath.Join(path, "nested")
	if _, err := Create(nested); err != nil {
		t.Fatal(err)
	}
	inner := exec.Command("/bin/sh", "-c", "exec sleep 60")
	if err := StartIn(inner, nested); err != nil {
		t.Fatal(err)
	}
	defer inner.Wait()
	if pids, err := Procs(path, nil); err != nil || !slices.Contains(pids, inner.Process.Pid) {
		t.Fatalf("Procs = %v, %v; want it to hold the nested %d", pids, err, inner.Process.Pid)
	}
	skipNested := func(p string) bool { return p == nested }
	if pids, err := Procs(path, skipNested); err != nil || slices.Contains(pids, inner.Process.Pid) || !slices.Contains(pids, cmd.Process.Pid) {
		t.Fatalf("Procs skipping %s = %v, %v; want %d and not %d", nested, pids, err, cmd.Process.Pid, inner.Process.Pid)
	}
	// Remove must kill the sleeping child to empty the cgroup.
	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("sleep exited cleanly; Remove should have killed it")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("cgroup still exists: %v", err)
	}
}

func TestParseProcCgroup(t *testing.T) {
	in := "12:pids:/a\n0::/kubepods/pod1/c1\n"
	got, err := parseProcCgroup(bufio.NewScanner(strings.NewReader(in)))
	if err != nil || got != "/kubepods/pod1/c1" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := parseProcCgroup(bufio.NewScanner(strings.NewReader("1:cpu:/\n"))); err == nil {
		t.Fatal("want an error without a 0:: line")
	}
}
