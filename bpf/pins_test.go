package bpf

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cilium/ebpf/link"

	"github.com/bulwarkhq/bulwark/policy"
)

// TestRemovedPinsKeepEnforcing: someone with access to bpffs removes a
// workload's link pins and the exec link pins while the engine runs. The
// engine holds the links, so the workload stays enforced, and CheckLinks
// puts the pins back (the maps' too), so that they survive the engine.
func TestRemovedPinsKeepEnforcing(t *testing.T) {
	e, pins := openTestEngine(t)
	denied := deniedStatus(e.Backend())
	cg := testCgroup(t)
	bin := applets(t, "sh", "cat")
	port := listen(t, "tcp4", "127.0.0.1:0")
	spec := treeSpec()
	spec.ProcessPolicy = append(spec.ProcessPolicy, helperSpec(t).ProcessPolicy...)
	spec.NetworkPolicy = &policy.NetworkPolicy{}
	id, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce)
	if err != nil {
		t.Fatal(err)
	}
	cgDir := filepath.Join(pins, pinCgroupDir+strconv.FormatUint(id, 10))
	removed := []string{cgDir}
	for _, p := range []string{pinExecPrefix + e.Backend(), pinFork, pinExit, "workloads", "task_states"} {
		removed = append(removed, filepath.Join(pins, p))
	}
	for _, p := range removed {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	enforced := func(when string) {
		t.Helper()
		if st, out := run(t, cg, nil, bin+"/sh", "-c", bin+"/cat /dev/null; echo $?"); st != 0 || lastLine(out) != denied {
			t.Fatalf("%s: exec of cat: status %d, output %q; want %s", when, st, out, denied)
		}
		if got := helper(t, cg, fmt.Sprintf("connect tcp 127.0.0.1:%d", port)); got != helperEPERM {
			t.Fatalf("%s: connect: status %d, want EPERM", when, got)
		}
	}
	enforced("pins removed")
	// A directory in the place of a pin does not pass for it.
	if err := os.Mkdir(filepath.Join(pins, pinFork), 0o700); err != nil {
		t.Fatal(err)
	}
	repairs, err := e.CheckLinks()
	if err != nil {
		t.Fatal(err)
	}
	restored := map[string]bool{}
	for _, r := range repairs {
		if r.Reattached {
			t.Fatalf("repair %+v: nothing was detached", r)
		}
		restored[r.Pin] = true
	}
	for _, p := range cgroupLinkNames(e) {
		removed = append(removed, filepath.Join(cgDir, p))
	}
	for _, p := range removed[1:] {
		if !restored[p] || !exists(p) {
			t.Errorf("pin %s not restored (repairs %+v)", p, repairs)
		}
	}
	if again, err := e.CheckLinks(); err != nil || len(again) != 0 {
		t.Fatalf("second check: %+v, %v; want nothing to repair", again, err)
	}
	// The restored pins are the live links: another engine adopts them
	// and this one closes, and the workload stays enforced.
	e2 := reopenEngine(t, e, pins)
	if at, err := e2.Attached(); err != nil || len(at) != 1 || at[0].CgroupID != id {
		t.Fatalf("adopting engine sees workloads %+v, %v; want cgroup %d", at, err, id)
	}
	enforced("pins restored, first engine closed")
}

// TestDetachedLinkIsReattached: a root process outside the engine detaches
// a workload's connect link (BPF_LINK_DETACH on the link loaded by id, as
// bpftool link detach does). CheckLinks notices and attaches it again.
func TestDetachedLinkIsReattached(t *testing.T) {
	e, pins := openTestEngine(t)
	cg := testCgroup(t)
	port := listen(t, "tcp4", "127.0.0.1:0")
	spec := helperSpec(t)
	spec.NetworkPolicy = &policy.NetworkPolicy{}
	id, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce)
	if err != nil {
		t.Fatal(err)
	}
	action := fmt.Sprintf("connect tcp 127.0.0.1:%d", port)
	if got := helper(t, cg, action); got != helperEPERM {
		t.Fatalf("armed: connect status %d, want EPERM", got)
	}
	pin := filepath.Join(pins, pinCgroupDir+strconv.FormatUint(id, 10), "connect4")
	pinned, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := pinned.Info()
	pinned.Close()
	if err != nil {
		t.Fatal(err)
	}
	byID, err := link.NewFromID(info.ID)
	if err != nil {
		t.Fatal(err)
	}
	err = byID.Detach()
	byID.Close()
	if err != nil {
		t.Fatalf("detach: %v", err)
	}
	if got := helper(t, cg, action); got != helperOK {
		t.Fatalf("detached: connect status %d, want it to get through (the hole CheckLinks closes)", got)
	}
	repairs, err := e.CheckLinks()
	if err != nil {
		t.Fatal(err)
	}
	if len(repairs) != 1 || repairs[0] != (Repair{Pin: pin, CgroupID: id, Reattached: true}) {
		t.Fatalf("repairs %+v, want connect4 of cgroup %d re-attached", repairs, id)
	}
	if got := helper(t, cg, action); got != helperEPERM {
		t.Fatalf("re-attached: connect status %d, want EPERM", got)
	}
	if !exists(pin) {
		t.Fatalf("pin %s gone", pin)
	}
}

// cgroupLinkNames are the names of a workload's link pins.
func cgroupLinkNames(e *Engine) []string {
	var out []string
	for _, p := range e.cgroupPrograms() {
		out = append(out, p.name)
	}
	return out
}
