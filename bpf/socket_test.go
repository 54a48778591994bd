package bpf

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/policy"
)

// netHelpers are runHelper's actions for the socket tests:
//
//	socket FAMILY TYPE PROTO  create a socket (family inet, inet6 or packet;
//	                          type stream, dgram or raw) in a new network
//	                          namespace that lets root open ping sockets
//	raw-send PORT             send a hand-built UDP datagram to 127.0.0.1:PORT
//	                          on the raw socket inherited as fd 3
//	udp-peer ADDR             bind a UDP socket to 127.0.0.1:0, send "req" to
//	                          ADDR, then print "got PAYLOAD" for each datagram
//	passed-connect ADDR       receive a TCP socket over the unix socket at fd 3
//	                          (SCM_RIGHTS) and connect it to ADDR
//	passed-sendto ADDR        the same with a UDP socket and a sendto
//	raw-listen                open a raw IPPROTO_UDP socket, print "listening",
//	                          then "got MARKER" for each datagram with a
//	                          "bulwark-" marker
//	connect-mptcp ADDR        connect an MPTCP socket to ADDR (IPv4)
var netHelpers = map[string]func([]string) int{
	"socket":         socketHelper,
	"raw-send":       rawSendHelper,
	"udp-peer":       udpPeerHelper,
	"passed-connect": func(args []string) int { return passedHelper(true, args) },
	"passed-sendto":  func(args []string) int { return passedHelper(false, args) },
	"raw-listen":     rawListenHelper,
	"connect-mptcp":  mptcpHelper,
}

// mptcpHelper connects an MPTCP socket (SOCK_STREAM, IPPROTO_MPTCP) to
// the IPv4 address and port args[0].
func mptcpHelper(args []string) int {
	ap, err := netip.ParseAddrPort(args[0])
	if err != nil {
		return helperFailed
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_MPTCP)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mptcp socket:", err)
		return helperFailed
	}
	defer unix.Close(fd)
	return statusOf(unix.Connect(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}))
}

func socketHelper(args []string) int {
	families := map[string]int{"inet": unix.AF_INET, "inet6": unix.AF_INET6, "packet": unix.AF_PACKET, "vsock": unix.AF_VSOCK}
	types := map[string]int{"stream": unix.SOCK_STREAM, "dgram": unix.SOCK_DGRAM, "raw": unix.SOCK_RAW}
	proto, err := strconv.Atoi(args[2])
	if err != nil {
		return helperFailed
	}
	// A private network namespace (on this thread): nothing it opens
	// reaches the host's interfaces, and its ping_group_range is ours.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		fmt.Fprintln(os.Stderr, "unshare:", err)
		return helperFailed
	}
	// /proc/sys/net follows the namespace of the thread that opens it.
	if err := os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 0"), 0); err != nil {
		fmt.Fprintln(os.Stderr, "ping_group_range:", err)
		return helperFailed
	}
	fd, err := unix.Socket(families[args[0]], types[args[1]]|unix.SOCK_CLOEXEC, proto)
	if err == nil {
		unix.Close(fd)
	}
	return statusOf(err)
}

// udpDatagram is an 8-byte UDP header (checksum 0: none, valid over IPv4)
// and payload, for a raw IPPROTO_UDP socket.
func udpDatagram(sport, dport int, payload string) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], uint16(sport))
	binary.BigEndian.PutUint16(b[2:], uint16(dport))
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func rawSendHelper(args []string) int {
	port, err := strconv.Atoi(args[0])
	if err != nil {
		return helperFailed
	}
	err = unix.Sendto(3, udpDatagram(9, port, "raw"), 0, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	return statusOf(err)
}

func udpPeerHelper(args []string) int {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return helperFailed
	}
	ua, err := net.ResolveUDPAddr("udp4", args[0])
	if err != nil {
		return helperFailed
	}
	if _, err := c.WriteTo([]byte("req"), ua); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return statusOf(err)
	}
	fmt.Println("listening")
	buf := make([]byte, 64)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return helperFailed
		}
		fmt.Printf("got %s\n", buf[:n])
	}
}

func passedHelper(connect bool, args []string) int {
	buf := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(3, make([]byte, 1), buf, 0)
	if err != nil {
		return helperFailed
	}
	msgs, err := unix.ParseSocketControlMessage(buf[:oobn])
	if err != nil || len(msgs) != 1 {
		return helperFailed
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return helperFailed
	}
	ap, err := netip.ParseAddrPort(args[0])
	if err != nil {
		return helperFailed
	}
	sa := &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	if connect {
		err = unix.Connect(fds[0], sa)
	} else {
		err = unix.Sendto(fds[0], []byte("x"), 0, sa)
	}
	return statusOf(err)
}

// startHelper starts the test binary in cg performing action with extra
// inherited files (fd 3 on); it is killed when the test ends.
func startHelper(t *testing.T, cg, action string, files ...*os.File) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	self, _ := os.Executable()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), helperEnv+"="+action)
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cgroup.StartIn(cmd, cg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	return cmd, bufio.NewReader(out)
}

// runHelperWith runs action in cg with files and returns its exit status
// (128+signal when killed).
func runHelperWith(t *testing.T, cg, action string, files ...*os.File) int {
	t.Helper()
	cmd, out := startHelper(t, cg, action, files...)
	io.Copy(io.Discard, out)
	return exitStatus(t, cmd.Wait())
}

// allowLoopback is a network policy that allows every TCP and UDP
// connection to and from loopback, so only unnamed protocols deviate.
func allowLoopback() *policy.NetworkPolicy {
	lo := []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.0.0.0/8"}}, {IPBlock: &policy.IPBlock{CIDR: "::1/128"}}}
	any := []policy.Port{{Protocol: "TCP"}, {Protocol: "UDP"}}
	return &policy.NetworkPolicy{
		Egress:  []policy.NetworkRule{{To: lo, Ports: any}},
		Ingress: []policy.NetworkRule{{From: lo, Ports: any}},
	}
}

// TestUnnamedProtocols (issue 9 class 6): sockets of protocols the policy
// cannot name are refused in enforce mode and reported in audit mode;
// TCP and UDP sockets are not touched.
func TestUnnamedProtocols(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	spec := helperSpec(t)
	spec.NetworkPolicy = allowLoopback()
	c := mustCompile(t, spec)
	// AF_PACKET: EPERM from lsm/socket_create; the tracing backend
	// kills the creating process at its CAP_NET_RAW check.
	packetDenied := 128 + int(unix.SIGKILL)
	if e.Backend() == BackendLSM {
		packetDenied = helperEPERM
	}
	cases := []struct {
		action, protocol string
		enforced         int
	}{
		{"socket inet stream 0", "", helperOK},
		{"socket inet6 dgram 0", "", helperOK},
		{"socket inet raw 17", "RAW", helperEPERM},  // hand-built UDP
		{"socket inet raw 6", "RAW", helperEPERM},   // hand-built TCP SYN
		{"socket inet6 raw 58", "RAW", helperEPERM}, // ICMPv6 with payload
		{"socket inet dgram 136", "UDPLITE", helperEPERM},
		{"socket inet dgram 1", "ICMP", helperEPERM}, // ping socket
		{"socket inet6 dgram 58", "ICMPv6", helperEPERM},
		{"socket packet raw 0", "PACKET", packetDenied},
	}
	ev := collect(t, e)
	if e.Backend() == BackendLSM {
		// Other families reach peers the policy cannot name either
		// (checked before the kernel looks the family up, so also
		// where vsock is not built in).
		if _, err := e.Apply(cg, c, ModeEnforce); err != nil {
			t.Fatal(err)
		}
		if got := runHelperWith(t, cg, "socket vsock stream 0"); got != helperEPERM {
			t.Errorf("enforce: AF_VSOCK socket status %d, want %d", got, helperEPERM)
		}
	}
	for _, mode := range []Mode{ModeEnforce, ModeAudit} {
		if _, err := e.Apply(cg, c, mode); err != nil {
			t.Fatal(err)
		}
		for _, tc := range cases {
			want := tc.enforced
			if mode == ModeAudit {
				want = helperOK
			}
			if got := runHelperWith(t, cg, tc.action); got != want {
				t.Errorf("%s: %s: status %d, want %d", mode, tc.action, got, want)
				continue
			}
			if tc.protocol == "" {
				continue
			}
			x := ev.wait(t, mode.String()+" report of "+tc.action, func(x Event) bool {
				return x.Kind == KindSocket && x.Protocol == tc.protocol && x.Blocked == (mode == ModeEnforce)
			})
			if !x.Deviation || x.PID == 0 || x.Node != "helper" {
				t.Errorf("%s: %s: event %+v", mode, tc.action, x)
			}
		}
	}
}

// TestKernelRepliesPass: the kernel's own raw sockets, which answer on
// behalf of whatever task is current, are not the backstop's business: a
// connection to a closed port is refused (RST), not left to time out.
func TestKernelRepliesPass(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	spec := helperSpec(t)
	spec.NetworkPolicy = allowLoopback()
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	closed := freePort(t, "tcp4", "127.0.0.1:0")
	if got := helper(t, cg, fmt.Sprintf("connect tcp 127.0.0.1:%d", closed)); got != helperFailed {
		t.Fatalf("connect to a closed port: status %d, want %d (refused)", got, helperFailed)
	}
}

// onePortPolicy starts two TCP listeners on 127.0.0.1 and returns their
// ports and a policy for the helper that allows egress to the first only.
func onePortPolicy(t *testing.T) (allowed, other int, spec *policy.Spec) {
	t.Helper()
	allowed = listen(t, "tcp4", "127.0.0.1:0")
	other = listen(t, "tcp4", "127.0.0.1:0")
	spec = helperSpec(t)
	spec.NetworkPolicy = &policy.NetworkPolicy{Egress: []policy.NetworkRule{{
		To:    []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.0.0.1/32"}}},
		Ports: []policy.Port{{Port: allowed, Protocol: "TCP"}},
	}}}
	return allowed, other, spec
}

// TestEgressMPTCP: an MPTCP socket is a TCP socket to the policy (its
// subflows are TCP), checked like one: not a way around the TCP rules.
func TestEgressMPTCP(t *testing.T) {
	if b, err := os.ReadFile("/proc/sys/net/mptcp/enabled"); err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Skip("MPTCP is not enabled in this kernel")
	}
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	allowed, other, spec := onePortPolicy(t)
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	for port, want := range map[int]int{allowed: helperOK, other: helperEPERM} {
		if got := helper(t, cg, fmt.Sprintf("connect-mptcp 127.0.0.1:%d", port)); got != want {
			t.Errorf("MPTCP connect to port %d: status %d, want %d", port, got, want)
		}
	}
}

// TestUnnamedProtocolsObserved: observe mode never refuses them but
// reports them (once), as a fingerprint's raw material.
func TestUnnamedProtocolsObserved(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	ev := collect(t, e)
	if _, err := e.Apply(cg, nil, ModeObserve); err != nil {
		t.Fatal(err)
	}
	if got := runHelperWith(t, cg, "socket inet raw 17"); got != helperOK {
		t.Fatalf("observe: raw socket status %d, want %d", got, helperOK)
	}
	x := ev.wait(t, "observed raw socket", func(x Event) bool { return x.Kind == KindSocket })
	if x.Deviation || x.Protocol != "RAW" || x.Dst.Port() != unix.IPPROTO_UDP {
		t.Fatalf("observed raw socket: %+v", x)
	}
}

// rawUDPSocket opens, outside any workload, a raw IPPROTO_UDP socket.
func rawUDPSocket(t *testing.T) *os.File {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		t.Skipf("raw socket: %v", err)
	}
	f := os.NewFile(uintptr(fd), "raw")
	t.Cleanup(func() { f.Close() })
	return f
}

// received reports whether c gets a datagram saying want within 300 ms.
func received(c net.PacketConn, want string) bool {
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 64)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return false
		}
		if string(buf[:n]) == want {
			return true
		}
	}
}

// TestRawSocketFromOutside (issue 9 class 6): a raw socket made outside
// the workload and inherited by a process inside cannot send in enforce
// mode (the egress backstop judges by the sending task); in audit mode the
// datagram gets out and is reported.
func TestRawSocketFromOutside(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	sink, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	port := sink.LocalAddr().(*net.UDPAddr).Port
	raw := rawUDPSocket(t)
	spec := helperSpec(t)
	spec.NetworkPolicy = allowLoopback()
	c := mustCompile(t, spec)
	action := fmt.Sprintf("raw-send %d", port)

	ev := collect(t, e)
	if _, err := e.Apply(cg, c, ModeAudit); err != nil {
		t.Fatal(err)
	}
	if got := runHelperWith(t, cg, action, raw); got != helperOK || !received(sink, "raw") {
		t.Fatalf("audit: status %d, or the datagram did not arrive", got)
	}
	x := ev.wait(t, "audited raw send", func(x Event) bool { return x.Kind == KindSocket && x.Protocol == "RAW" })
	if !x.Deviation || x.Blocked || x.Dst.Addr() != netip.MustParseAddr("127.0.0.1") || x.Dst.Port() != unix.IPPROTO_UDP {
		t.Fatalf("audited raw send: %+v", x)
	}

	if _, err := e.Apply(cg, c, ModeEnforce); err != nil {
		t.Fatal(err)
	}
	got := runHelperWith(t, cg, action, raw)
	if received(sink, "raw") {
		t.Fatalf("enforce: the raw datagram got out (status %d)", got)
	}
	if got != helperEPERM {
		t.Errorf("enforce: raw send status %d, want EPERM (%d)", got, helperEPERM)
	}
	x = ev.wait(t, "blocked raw send", func(x Event) bool { return x.Kind == KindSocket && x.Blocked })
	if x.Node != "helper" || x.PID == 0 {
		t.Fatalf("blocked raw send: %+v", x)
	}
	// The same socket outside the workload is no business of ours.
	if err := unix.Sendto(int(raw.Fd()), udpDatagram(9, port, "host"), 0, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil || !received(sink, "host") {
		t.Fatalf("raw send outside the workload: %v", err)
	}
}

// TestRawSocketIngress (issue 9 class 6): a raw socket that exists in the
// workload when the policy arrives (made under observation) hears nothing
// in enforce mode.
func TestRawSocketIngress(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	if _, err := e.Apply(cg, nil, ModeObserve); err != nil {
		t.Fatal(err)
	}
	_, out := startHelper(t, cg, "raw-listen")
	if line, err := out.ReadString('\n'); err != nil || line != "listening\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		for {
			l, err := out.ReadString('\n')
			if err != nil {
				return
			}
			lines <- strings.TrimSpace(l)
		}
	}()
	hears := func(marker string) bool {
		c, err := net.Dial("udp4", "127.0.0.1:9")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(marker)); err != nil {
			t.Fatal(err)
		}
		for deadline := time.After(500 * time.Millisecond); ; {
			select {
			case l := <-lines:
				if l == "got "+marker {
					return true
				}
			case <-deadline:
				return false
			}
		}
	}
	if !hears("bulwark-observed") {
		t.Fatal("observe mode: the raw socket heard nothing")
	}
	spec := helperSpec(t)
	spec.NetworkPolicy = allowLoopback()
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	if hears("bulwark-enforced") {
		t.Fatal("enforce mode: the raw socket heard a datagram")
	}
}

func rawListenHelper([]string) int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return statusOf(err)
	}
	fmt.Println("listening")
	buf := make([]byte, 256)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return helperFailed
		}
		// IP header, UDP header, payload: print bulwark markers only.
		if i := strings.Index(string(buf[:n]), "bulwark-"); i >= 0 {
			fmt.Printf("got %s\n", buf[i:n])
		}
	}
}

// socketPair returns the two ends of a unix stream socket pair.
func socketPair() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "pair0"), os.NewFile(uintptr(fds[1]), "pair1"), nil
}

// dstOpts is an IPv6 destination-options header with one PadN option
// (8 bytes; the kernel fills in the next header).
var dstOpts = []byte{0, 0, 1, 4, 0, 0, 0, 0}

// withDstOpts makes every packet of socket fd carry dstOpts.
func withDstOpts(fd int) error {
	return unix.SetsockoptString(fd, unix.IPPROTO_IPV6, unix.IPV6_DSTOPTS, string(dstOpts))
}

// TestIngressExtensionHeaders (issue 9 class 7): a destination-options
// header in front of the TCP or UDP header does not get a connection past
// `ingress: []` (the ingress program took the protocol from the fixed
// header's next-header field and let next-header 60 through).
func TestIngressExtensionHeaders(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	tcpPort := freePort(t, "tcp6", "[::1]:0")
	udpPort := freePort(t, "udp6", "[::1]:0")
	spec := helperSpec(t)
	// Nothing comes in; replies may go out.
	spec.NetworkPolicy = &policy.NetworkPolicy{Egress: allowLoopback().Egress}
	ev := collect(t, e)
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	serve(t, cg, fmt.Sprintf("[::1]:%d", tcpPort))
	serveWith(t, cg, "serve-udp", fmt.Sprintf("[::1]:%d", udpPort))

	d := net.Dialer{Timeout: 500 * time.Millisecond, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = withDstOpts(int(fd)) }); err != nil {
			return err
		}
		return serr
	}}
	if c, err := d.Dial("tcp6", fmt.Sprintf("[::1]:%d", tcpPort)); err == nil {
		c.Close()
		t.Error("TCP with a destination-options header was served; ingress: [] allows nothing")
	} else if !os.IsTimeout(err) {
		t.Errorf("TCP with a destination-options header: %v, want a timeout (SYN dropped)", err)
	}
	uc, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	rc, err := uc.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = withDstOpts(int(fd)) }); err != nil || serr != nil {
		t.Fatalf("set IPV6_DSTOPTS: %v %v", err, serr)
	}
	if _, err := uc.WriteTo([]byte("ping"), &net.UDPAddr{IP: net.IPv6loopback, Port: udpPort}); err != nil {
		t.Fatal(err)
	}
	if received(uc, "ping") {
		t.Error("UDP with a destination-options header was echoed; ingress: [] allows nothing")
	}
	for _, proto := range []string{"TCP", "UDP"} {
		x := ev.wait(t, proto+" accept deviation", func(x Event) bool {
			return x.Kind == KindAccept && x.Deviation && x.Protocol == proto
		})
		want := tcpPort
		if proto == "UDP" {
			want = udpPort
		}
		if !x.Blocked || int(x.Dst.Port()) != want || x.Src.Addr() != netip.IPv6Loopback() {
			t.Errorf("%s deviation %+v", proto, x)
		}
	}
}

// TestIngressUDPReplies (issue 9 class 7): a UDP socket bound to port 0
// gets the reply to its own datagram but not an unsolicited one (it had no
// listener entry, so every datagram reached it).
func TestIngressUDPReplies(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	spec := helperSpec(t)
	spec.NetworkPolicy = &policy.NetworkPolicy{Egress: []policy.NetworkRule{{
		To:    []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.0.0.1/32"}}},
		Ports: []policy.Port{{Port: peer.LocalAddr().(*net.UDPAddr).Port, Protocol: "UDP"}},
	}}}
	ev := collect(t, e)
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	_, out := startHelper(t, cg, "udp-peer "+peer.LocalAddr().String())
	if line, err := out.ReadString('\n'); err != nil || line != "listening\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 16)
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "req" {
		t.Fatalf("request: %q, %v", buf[:n], err)
	}
	stranger, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if _, err := stranger.WriteTo([]byte("unsolicited"), from); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.WriteTo([]byte("reply"), from); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4)
	go func() {
		for {
			l, err := out.ReadString('\n')
			if err != nil {
				close(lines)
				return
			}
			lines <- strings.TrimSpace(l)
		}
	}()
	var got []string
	for deadline := time.After(time.Second); ; {
		select {
		case l, ok := <-lines:
			if ok {
				got = append(got, l)
				continue
			}
		case <-deadline:
		}
		break
	}
	if strings.Join(got, ",") != "got reply" {
		t.Fatalf("the port-0 socket heard %q, want only the reply", got)
	}
	x := ev.wait(t, "unsolicited datagram deviation", func(x Event) bool { return x.Kind == KindAccept && x.Deviation })
	if !x.Blocked || x.Protocol != "UDP" || x.Src != stranger.LocalAddr().(*net.UDPAddr).AddrPort() || x.Node != "helper" {
		t.Fatalf("deviation %+v", x)
	}
}

// sendFile sends f over the unix socket end sock (SCM_RIGHTS).
func sendFile(sock, f *os.File) error {
	return unix.Sendmsg(int(sock.Fd()), []byte{0}, unix.UnixRights(int(f.Fd())), nil, 0)
}

// TestPassedInSocket (issue 9 class 8, lsm backend): a socket created
// outside the workload and passed in over a unix socket is checked by the
// calling task: connect and sendto to a port the policy does not allow
// fail with EPERM. The tracing backend cannot see it: the per-cgroup
// programs follow the socket's cgroup.
func TestPassedInSocket(t *testing.T) {
	e, _ := openTestEngine(t)
	if e.Backend() != BackendLSM {
		t.Skip("tracing backend: a passed-in socket's connect runs the programs of the socket's cgroup, not the workload's (needs lsm/socket_connect)")
	}
	cg := testCgroup(t)
	allowed, other, spec := onePortPolicy(t)
	ev := collect(t, e)
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		action string
		typ    int
		want   int
	}{
		{fmt.Sprintf("passed-connect 127.0.0.1:%d", allowed), unix.SOCK_STREAM, helperOK},
		{fmt.Sprintf("passed-connect 127.0.0.1:%d", other), unix.SOCK_STREAM, helperEPERM},
		{fmt.Sprintf("passed-sendto 127.0.0.1:%d", other), unix.SOCK_DGRAM, helperEPERM},
	}
	for _, tc := range cases {
		fd, err := unix.Socket(unix.AF_INET, tc.typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		s := os.NewFile(uintptr(fd), "outside")
		a, b, err := socketPair()
		if err != nil {
			t.Fatal(err)
		}
		if err := sendFile(a, s); err != nil {
			t.Fatal(err)
		}
		if got := runHelperWith(t, cg, tc.action, b); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.action, got, tc.want)
		}
		s.Close()
		a.Close()
		b.Close()
	}
	x := ev.wait(t, "passed-in connect deviation", func(x Event) bool {
		return x.Kind == KindConnect && x.Deviation && x.Dst.Port() == uint16(other)
	})
	if !x.Blocked || x.Node != "helper" || x.PID == 0 {
		t.Fatalf("deviation %+v", x)
	}
}

func TestProtocolName(t *testing.T) {
	for _, tc := range []struct {
		family uint16
		proto  uint8
		want   string
	}{
		{0, 0, ""}, // exec events
		{unix.AF_INET, protoTCP, "TCP"},
		{unix.AF_INET6, protoUDP, "UDP"},
		{unix.AF_INET, protoRaw, "RAW"},
		{unix.AF_INET, protoUDPLite, "UDPLITE"},
		{unix.AF_INET6, 50, "IP/50"},
		{unix.AF_PACKET, 0, "PACKET"},
		{unix.AF_VSOCK, 0, "AF/40"},
	} {
		if got := protocolName(tc.family, tc.proto); got != tc.want {
			t.Errorf("protocolName(%d, %d) = %q, want %q", tc.family, tc.proto, got, tc.want)
		}
	}
}
