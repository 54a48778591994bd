package bpf

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/policy"
)

// helperSpec lets the test binary run as the root node "helper".
func helperSpec(t *testing.T) *policy.Spec {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	self, err = filepath.EvalSymlinks(self)
	if err != nil {
		t.Fatal(err)
	}
	return &policy.Spec{ProcessPolicy: []policy.ProcessNode{{Name: "*", Exe: []string{self}, ID: "helper", Euser: []string{"root"}}}}
}

// listen opens a TCP listener (outside any workload) that accepts and
// closes connections until the test ends; it returns its port.
func listen(t *testing.T, network, addr string) int {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("listen %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// helper runs the test binary as a workload in cgroup cg performing action.
func helper(t *testing.T, cg string, action string) int {
	t.Helper()
	self, _ := os.Executable()
	st, out := run(t, cg, []string{helperEnv + "=" + action}, self)
	if st == helperFailed {
		t.Logf("helper %q: %s", action, out)
	}
	return st
}

func TestEgress(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	allowed := listen(t, "tcp4", "127.0.0.1:0")
	other := listen(t, "tcp4", "127.0.0.1:0")
	allowed6 := listen(t, "tcp6", "[::1]:0")
	spec := helperSpec(t)
	spec.NetworkPolicy = &policy.NetworkPolicy{Egress: []policy.NetworkRule{
		{To: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.0.0.0/8", Except: []string{"127.0.0.3/32"}}}},
			Ports: []policy.Port{{Port: allowed, Protocol: "TCP"}}, Processes: []string{"helper"}},
		{To: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "::1/128"}}},
			Ports: []policy.Port{{Port: allowed6, Protocol: "TCP"}}},
		{To: []policy.Peer{{DNSSelector: []string{"example.com"}}}, Ports: []policy.Port{{Port: 443, Protocol: "TCP"}}},
	}}
	c := mustCompile(t, spec)
	if len(c.Warnings) != 0 {
		t.Fatalf("warnings %q, want none: dnsSelector names are checked in the kernel", c.Warnings)
	}
	ev := collect(t, e)
	if _, err := e.Apply(cg, c, ModeEnforce); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		action string
		want   int
	}{
		{fmt.Sprintf("connect tcp 127.0.0.1:%d", allowed), helperOK},
		{fmt.Sprintf("connect tcp 127.0.0.1:%d", other), helperEPERM},      // port
		{fmt.Sprintf("connect tcp 127.0.0.3:%d", allowed), helperEPERM},    // except
		{fmt.Sprintf("connect udp 127.0.0.1:%d", allowed), helperEPERM},    // protocol
		{fmt.Sprintf("sendto 127.0.0.1:%d", allowed), helperEPERM},         // unconnected UDP
		{fmt.Sprintf("connect tcp6 [::1]:%d", allowed6), helperOK},         // IPv6
		{fmt.Sprintf("connect tcp6 [::1]:%d", other), helperEPERM},         // IPv6 port
		{fmt.Sprintf("connect-mapped 127.0.0.1 %d", allowed), helperOK},    // v4-mapped → IPv4 rules
		{fmt.Sprintf("connect-mapped 127.0.0.3 %d", allowed), helperEPERM}, // v4-mapped except
	}
	for _, tc := range cases {
		if got := helper(t, cg, tc.action); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.action, got, tc.want)
		}
	}
	dev := ev.wait(t, "connect deviation", func(x Event) bool {
		return x.Kind == KindConnect && x.Deviation && x.Dst.Port() == uint16(other) && x.Dst.Addr().Is4()
	})
	if !dev.Blocked || dev.Node != "helper" || dev.Protocol != "TCP" || dev.Dst.Addr() != netip.MustParseAddr("127.0.0.1") || dev.PID == 0 {
		t.Fatalf("deviation %+v", dev)
	}
	mapped := ev.wait(t, "v4-mapped deviation", func(x Event) bool {
		return x.Kind == KindConnect && x.Deviation && x.Dst.Addr() == netip.MustParseAddr("127.0.0.3")
	})
	if !mapped.Blocked {
		t.Fatalf("v4-mapped deviation %+v", mapped)
	}
}

func TestEgressAuditAndDisable(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	port := listen(t, "tcp4", "127.0.0.1:0")
	spec := helperSpec(t)
	spec.NetworkPolicy = &policy.NetworkPolicy{}
	ev := collect(t, e)
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeAudit); err != nil {
		t.Fatal(err)
	}
	action := fmt.Sprintf("connect tcp 127.0.0.1:%d", port)
	if got := helper(t, cg, action); got != helperOK {
		t.Fatalf("audit: status %d, want the connection to succeed", got)
	}
	dev := ev.wait(t, "audit deviation", func(x Event) bool { return x.Kind == KindConnect && x.Deviation })
	if dev.Blocked {
		t.Fatalf("audit blocked: %+v", dev)
	}
	// disablePrivateConnections: egress lets loopback through even in
	// enforce mode, without a deviation; public addresses stay checked.
	spec.DisablePrivateConnections = "egress"
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	if got := helper(t, cg, action); got != helperOK {
		t.Fatalf("private disabled: status %d", got)
	}
	if got := helper(t, cg, "connect tcp 192.0.2.1:9"); got != helperEPERM {
		t.Fatalf("public address with private disabled: status %d, want EPERM", got)
	}
	for _, x := range ev.drain(200 * time.Millisecond) {
		if x.Deviation && x.Dst.Addr().IsLoopback() {
			t.Fatalf("deviation with private connections disabled: %+v", x)
		}
	}
	spec.DisablePrivateConnections = ""
	spec.DisableConnections = "egress"
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	if got := helper(t, cg, action); got != helperOK {
		t.Fatalf("egress disabled: status %d", got)
	}
}

// serve starts the test binary in cg as a TCP server on addr.
func serve(t *testing.T, cg, addr string) {
	t.Helper()
	serveWith(t, cg, "serve", addr)
}

// serveWith starts the test binary in cg running helper action on addr.
func serveWith(t *testing.T, cg, action, addr string) {
	t.Helper()
	self, _ := os.Executable()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), helperEnv+"="+action+" "+addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cgroup.StartIn(cmd, cg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	buf := make([]byte, 16)
	if n, err := out.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "listening") {
		t.Fatalf("server did not start: %q, %v", buf[:n], err)
	}
}

// dialFrom connects from local address src to dst and reads the greeting.
func dialFrom(src, dst string) error {
	d := net.Dialer{Timeout: 500 * time.Millisecond}
	if src != "" {
		a, err := net.ResolveTCPAddr("tcp", src)
		if err != nil {
			return err
		}
		d.LocalAddr = a
	}
	c, err := d.Dial("tcp", dst)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil {
		return err
	}
	if string(buf) != "hi" {
		return fmt.Errorf("greeting %q", buf)
	}
	return nil
}

// freePort returns a port of addr (port 0) that is free for network (tcp*
// or udp*); the test is skipped when it cannot listen there.
func freePort(t *testing.T, network, addr string) int {
	t.Helper()
	if strings.HasPrefix(network, "udp") {
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			t.Skipf("listen %s: %v", addr, err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("listen %s: %v", addr, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestIngress(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	port := freePort(t, "tcp4", "127.0.0.1:0")
	port6 := freePort(t, "tcp6", "[::1]:0")
	spec := helperSpec(t)
	spec.NetworkPolicy = &policy.NetworkPolicy{Ingress: []policy.NetworkRule{
		{From: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.0.0.1/32"}}},
			Ports: []policy.Port{{Port: port, Protocol: "TCP"}}, Processes: []string{"helper"}},
		{From: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "fd00::/8"}}},
			Ports: []policy.Port{{Port: port6, Protocol: "TCP"}}},
	}}
	ev := collect(t, e)
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	serve(t, cg, fmt.Sprintf("127.0.0.1:%d", port))
	serve(t, cg, fmt.Sprintf("[::1]:%d", port6))
	dst := fmt.Sprintf("127.0.0.1:%d", port)
	if err := dialFrom("127.0.0.1:0", dst); err != nil {
		t.Fatalf("allowed source: %v", err)
	}
	if err := dialFrom("127.0.0.2:0", dst); err == nil {
		t.Fatal("127.0.0.2 was served; its SYN should be dropped")
	}
	if err := dialFrom("", fmt.Sprintf("[::1]:%d", port6)); err == nil {
		t.Fatal("::1 was served; only fd00::/8 is allowed")
	}
	dev := ev.wait(t, "accept deviation", func(x Event) bool { return x.Kind == KindAccept && x.Deviation && x.Src.Addr().Is4() })
	if !dev.Blocked || dev.Src.Addr() != netip.MustParseAddr("127.0.0.2") || dev.Dst.Port() != uint16(port) || dev.Node != "helper" {
		t.Fatalf("deviation %+v", dev)
	}
	ev.wait(t, "IPv6 accept deviation", func(x Event) bool { return x.Kind == KindAccept && x.Deviation && x.Src.Addr().Is6() })
}

// udpEcho sends a datagram from src to dst and reports whether it came back.
func udpEcho(t *testing.T, src, dst string) bool {
	t.Helper()
	c, err := net.ListenPacket("udp", src)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ua, err := net.ResolveUDPAddr("udp", dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteTo([]byte("ping"), ua); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 8)
	n, _, err := c.ReadFrom(buf)
	return err == nil && string(buf[:n]) == "ping"
}

func TestIngressUDP(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	port := freePort(t, "udp", "127.0.0.1:0")
	spec := helperSpec(t)
	spec.NetworkPolicy = &policy.NetworkPolicy{
		Ingress: []policy.NetworkRule{{From: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.0.0.1/32"}}},
			Ports: []policy.Port{{Port: port, Protocol: "UDP"}}}},
		// The server's replies go out to any loopback port.
		Egress: []policy.NetworkRule{{To: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.0.0.0/8"}}},
			Ports: []policy.Port{{Protocol: "UDP"}}}},
	}
	ev := collect(t, e)
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	dst := fmt.Sprintf("127.0.0.1:%d", port)
	serveWith(t, cg, "serve-udp", dst)
	if !udpEcho(t, "127.0.0.1:0", dst) {
		t.Fatal("datagram from an allowed source was not served")
	}
	if udpEcho(t, "127.0.0.2:0", dst) {
		t.Fatal("datagram from 127.0.0.2 was served; it should be dropped")
	}
	dev := ev.wait(t, "UDP accept deviation", func(x Event) bool { return x.Kind == KindAccept && x.Deviation })
	if !dev.Blocked || dev.Protocol != "UDP" || dev.Src.Addr() != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("deviation %+v", dev)
	}
}
