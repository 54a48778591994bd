package bpf

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/policy"
)

// floodHelper sends count datagrams from two threads (each with an
// unconnected UDP socket of its own): "flood ADDR COUNT" all to ADDR,
// "flood-spread ADDR COUNT" each to another destination (ports counting up
// from ADDR's, across 127.0.0.0/8), so that no two share an aggregation key.
func floodHelper(spread bool, args []string) int {
	dst, err := netip.ParseAddrPort(args[0])
	n, err2 := strconv.Atoi(args[1])
	if err != nil || err2 != nil || !dst.Addr().Is4() {
		fmt.Fprintln(os.Stderr, "flood: want ADDR COUNT", err, err2)
		return helperFailed
	}
	const threads = 2
	errs := make(chan error, threads)
	for th := range threads {
		go func() {
			errs <- floodFrom(dst, spread, th, threads, n)
		}()
	}
	for range threads {
		if err := <-errs; err != nil {
			return statusOf(err)
		}
	}
	return helperOK
}

// floodFrom sends datagram th, th+step, ... of n (see floodHelper).
func floodFrom(dst netip.AddrPort, spread bool, th, step, n int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrInet4{Addr: dst.Addr().As4(), Port: int(dst.Port())}
	msg := []byte{0}
	for i := th; i < n; i += step {
		if spread {
			p := int(dst.Port()) + i
			sa.Port = 1 + p%65535
			sa.Addr[3] = byte(1 + p/65535%254)
		}
		// EPERM: denied in enforce mode, which is what the flood is.
		if err := unix.Sendto(fd, msg, 0, sa); err != nil && err != unix.ECONNREFUSED && err != unix.EPERM {
			return err
		}
	}
	return nil
}

// sink binds a UDP socket (outside any workload) that is never read: a
// flood sent to it is dropped once its buffer is full, without the ICMP
// errors of a closed port.
func sink(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// floodPlan is how a test floods: n datagrams from an audited workload on
// this host; in the qemu VM (BULWARK_VM set), where every datagram costs
// tens of times more, 160k from an enforced one (a denied sendto stops at
// the hook): still more than the ring buffer holds (~130k network events)
// and the aggregation table (16k).
func floodPlan(n int) (int, Mode) {
	if os.Getenv("BULWARK_VM") != "" {
		return min(n, 160_000), ModeEnforce
	}
	return n, ModeAudit
}

// runAfterFlood runs bin/cat in cgroup cg, which it may (audit) or must
// not (enforce).
func runAfterFlood(t *testing.T, e *Engine, cg, bin string, mode Mode) {
	t.Helper()
	want := "0"
	if mode == ModeEnforce {
		want = deniedStatus(e.Backend())
	}
	if st, out := run(t, cg, nil, bin+"/cat", "/dev/null"); strconv.Itoa(st) != want {
		t.Fatalf("cat in %s mode: status %d, output %q; want %s", mode, st, out, want)
	}
}

// floodSpec lets the test binary run (as node "helper") and allows no
// network peer and no other process.
func floodSpec(t *testing.T) *policy.Spec {
	spec := helperSpec(t)
	spec.NetworkPolicy = &policy.NetworkPolicy{}
	return spec
}

// TestFloodKeepsExecDeviations: an audited workload floods denied
// datagrams while nobody reads the events (the agent busy or slow), then
// runs a binary outside its policy. The exec deviation still arrives, and
// the flood is reported once, with its count (see floodPlan for the VM).
func TestFloodKeepsExecDeviations(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	bin := applets(t, "cat")
	sent, mode := floodPlan(1_000_000)
	id, err := e.Apply(cg, mustCompile(t, floodSpec(t)), mode)
	if err != nil {
		t.Fatal(err)
	}
	dst := sink(t)
	start := time.Now()
	if st := helper(t, cg, fmt.Sprintf("flood %s %d", dst, sent)); st != helperOK {
		t.Fatalf("flood: status %d", st)
	}
	t.Logf("%d datagrams in %v", sent, time.Since(start))
	runAfterFlood(t, e, cg, bin, mode)
	ev := collect(t, e)
	var execs, floods int
	var flood Event
	for _, x := range ev.drain(time.Second) {
		switch {
		case x.CgroupID != id || !x.Deviation:
		case x.Kind == KindExec && x.Comm == "cat":
			execs++
		case x.Kind == KindConnect && x.Dst == dst:
			floods++
			flood = x
		}
	}
	if execs != 1 || floods != 1 {
		t.Fatalf("after the flood: %d exec deviations of cat, %d flood deviations; want 1 and 1", execs, floods)
	}
	repeats, err := e.DrainRepeats()
	if err != nil {
		t.Fatal(err)
	}
	total := flood.Count
	for _, r := range repeats {
		if r.Key == flood.Key {
			total += r.Count
			if r.Unreported || r.Kind != KindConnect || r.CgroupID != id || r.Last.Before(r.First) {
				t.Fatalf("repeats of the flood: %+v", r)
			}
		}
	}
	if total != uint64(sent) {
		t.Fatalf("flood reported %d times (event %d, repeats %+v), want %d", total, flood.Count, repeats, sent)
	}
	if _, byCgroup, err := e.Losses(); err != nil || byCgroup[id] != (Losses{}) {
		t.Fatalf("losses %+v, %v; want none", byCgroup, err)
	}
}

// TestFloodOfDistinctDeviationsIsCounted: a flood of distinct deviations
// fills the aggregation table and then the ring buffer while nobody
// reads; the losses are counted for the workload, and an exec deviation
// after them still arrives.
func TestFloodOfDistinctDeviationsIsCounted(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	other := cg + "-other"
	if _, err := cgroup.Create(other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cgroup.Remove(other); err != nil {
			t.Error(err)
		}
	})
	bin := applets(t, "cat")
	sent, mode := floodPlan(300_000)
	id, err := e.Apply(cg, mustCompile(t, floodSpec(t)), mode)
	if err != nil {
		t.Fatal(err)
	}
	otherID, err := e.Apply(other, mustCompile(t, floodSpec(t)), mode)
	if err != nil {
		t.Fatal(err)
	}
	if st := helper(t, cg, fmt.Sprintf("flood-spread 127.0.0.1:1 %d", sent)); st != helperOK {
		t.Fatalf("flood: status %d", st)
	}
	runAfterFlood(t, e, cg, bin, mode)
	total, byCgroup, err := e.Losses()
	if err != nil {
		t.Fatal(err)
	}
	l := byCgroup[id]
	if l.Events == 0 || l.Unaggregated == 0 || total.Events < l.Events || total.Unaggregated < l.Unaggregated {
		t.Fatalf("losses of the flooding workload %+v (all: %+v), want events and unaggregated counted", l, total)
	}
	if o := byCgroup[otherID]; o != (Losses{}) {
		t.Fatalf("losses %+v counted for a workload that sent nothing", o)
	}
	ev := collect(t, e)
	ev.wait(t, "exec deviation after the flood", func(x Event) bool {
		return x.CgroupID == id && x.Deviation && x.Kind == KindExec && x.Comm == "cat"
	})
}
