package bpf

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// TestNetworkObservations checks what observe mode reports for
// fingerprints: each connection once per (process node, peer, port,
// protocol), each bound port once per (node, port, protocol) as a listen
// event, each accepted peer once per (listener node, source, local port),
// all carrying the node of the process involved.
func TestNetworkObservations(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	ev := collect(t, e)
	if _, err := e.Apply(cg, nil, ModeObserve); err != nil {
		t.Fatal(err)
	}
	a := listen(t, "tcp4", "127.0.0.1:0")
	b := listen(t, "tcp4", "127.0.0.1:0")
	for _, port := range []int{a, a, a, b} {
		if st := helper(t, cg, fmt.Sprintf("connect tcp 127.0.0.1:%d", port)); st != helperOK {
			t.Fatalf("connect to %d: status %d", port, st)
		}
	}
	// Binding port 0 (a UDP client) is not listening.
	if st := helper(t, cg, fmt.Sprintf("sendto 127.0.0.1:%d", a)); st != helperOK {
		t.Fatalf("sendto: status %d", st)
	}
	tcp := freePort(t, "tcp4", "127.0.0.1:0")
	udp := freePort(t, "udp4", "127.0.0.1:0")
	serve(t, cg, fmt.Sprintf("127.0.0.1:%d", tcp))
	serveWith(t, cg, "serve-udp", fmt.Sprintf("127.0.0.1:%d", udp))
	for _, src := range []string{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.2:0"} {
		if err := dialFrom(src, fmt.Sprintf("127.0.0.1:%d", tcp)); err != nil {
			t.Fatalf("dial from %s: %v", src, err)
		}
	}

	var execs []Event
	count := map[string]int{}
	var listens, accepts []Event
	for _, x := range ev.drain(500 * time.Millisecond) {
		if x.CgroupID == 0 || x.Deviation || x.Blocked {
			t.Fatalf("observation %+v: want a workload's, not a deviation", x)
		}
		switch x.Kind {
		case KindExec:
			execs = append(execs, x)
		case KindConnect:
			count[fmt.Sprintf("%s %s node=%x", x.Protocol, x.Dst, x.NodeKey)]++
		case KindListen:
			listens = append(listens, x)
		case KindAccept:
			accepts = append(accepts, x)
		}
	}
	// Every helper is the same exec of the test binary from outside: one node.
	if len(execs) != 1 || execs[0].ParentKey != 0 || execs[0].NodeKey&nodeSynthetic == 0 {
		t.Fatalf("exec observations %+v, want one root node", execs)
	}
	node := execs[0].NodeKey
	// Three connects to a are one observation; the UDP datagram another.
	want := map[string]int{
		fmt.Sprintf("TCP 127.0.0.1:%d node=%x", a, node): 1,
		fmt.Sprintf("TCP 127.0.0.1:%d node=%x", b, node): 1,
		fmt.Sprintf("UDP 127.0.0.1:%d node=%x", a, node): 1,
	}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("connect observations %v, want %v", count, want)
	}
	if len(listens) != 2 {
		t.Fatalf("listen observations %+v, want the TCP and the UDP server", listens)
	}
	for _, l := range listens {
		wantPort := map[string]int{"TCP": tcp, "UDP": udp}[l.Protocol]
		if l.NodeKey != node || l.Dst != netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", wantPort)) || l.Src.IsValid() || l.PID == 0 {
			t.Errorf("listen %+v, want %s 127.0.0.1:%d by node %x", l, l.Protocol, wantPort, node)
		}
	}
	srcs := map[netip.Addr]bool{}
	for _, x := range accepts {
		if x.NodeKey != node || x.Protocol != "TCP" || x.Dst.Port() != uint16(tcp) {
			t.Errorf("accept %+v, want TCP to %d by node %x", x, tcp, node)
		}
		srcs[x.Src.Addr()] = true
	}
	if len(accepts) != 2 || !srcs[netip.MustParseAddr("127.0.0.1")] || !srcs[netip.MustParseAddr("127.0.0.2")] {
		t.Errorf("accept observations %+v, want one from 127.0.0.1 and one from 127.0.0.2", accepts)
	}
}

// TestObservationsKeepFamiliesApart: UDP connects to 0.0.0.0 and to ::
// (what glibc's getaddrinfo does to sort its answers) have the same
// address bytes; each is its own observation, so a policy learned from
// them allows both.
func TestObservationsKeepFamiliesApart(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	ev := collect(t, e)
	if _, err := e.Apply(cg, nil, ModeObserve); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"[::]:9", "0.0.0.0:9"} {
		if st := helper(t, cg, "connect udp "+dst); st != helperOK {
			t.Fatalf("connect udp %s: status %d", dst, st)
		}
	}
	for _, want := range []netip.AddrPort{netip.MustParseAddrPort("[::]:9"), netip.MustParseAddrPort("0.0.0.0:9")} {
		ev.wait(t, "UDP connect to "+want.String(), func(x Event) bool {
			return x.Kind == KindConnect && x.Protocol == "UDP" && x.Dst == want
		})
	}
}
