package bpf

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/bulwarkhq/bulwark/policy"
)

func init() {
	netHelpers["udp-fork"] = udpForkHelper
	netHelpers["udp-thread"] = udpThreadHelper
}

// Ways a UDP receiver reads a datagram in the receive tests.
const (
	recvFrom   = iota // recvfrom with an address
	recvPeek          // recvfrom(MSG_PEEK), then recvfrom
	recvMmsg          // recvmmsg of one message with an address
	recvNoAddr        // recvfrom without an address; "got" on stdout, no reply
)

var recvModes = map[string]int{"recvfrom": recvFrom, "peek": recvPeek, "recvmmsg": recvMmsg, "recv": recvNoAddr}

// udpRecvBufs is what a forked receiver reads into: made before the fork,
// as the child may not allocate.
type udpRecvBufs struct {
	got     [4]byte // "got\n"
	buf     [64]byte
	from    [syscall.SizeofSockaddrInet6]byte
	fromLen uint32
	iov     syscall.Iovec
	mmsg    struct {
		hdr syscall.Msghdr
		n   uint32
		_   uint32
	}
}

// udpRecvChild forks a child that sets its uids to uid and echoes each
// datagram it reads from UDP socket fd (the way mode says) back to its
// sender. Only raw syscalls run in the child, as in forkChild.
//
//go:nosplit
//go:norace
func udpRecvChild(uid uintptr, fd int, mode int, b *udpRecvBufs) (uintptr, syscall.Errno) {
	pid, _, e := syscall.RawSyscall(syscall.SYS_FORK, 0, 0, 0)
	if e != 0 || pid != 0 {
		return pid, e
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uid, uid, uid); e != 0 {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, childSetuidFailed+uintptr(e), 0, 0)
	}
	buf, from, fromLen := uintptr(unsafe.Pointer(&b.buf[0])), uintptr(unsafe.Pointer(&b.from[0])), uintptr(unsafe.Pointer(&b.fromLen))
	for {
		var n uintptr
		b.fromLen = uint32(len(b.from))
		switch mode {
		case recvPeek:
			_, _, e = syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), buf, uintptr(len(b.buf)), syscall.MSG_PEEK, from, fromLen)
			if e != 0 {
				break
			}
			fallthrough
		case recvFrom:
			n, _, e = syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), buf, uintptr(len(b.buf)), 0, from, fromLen)
		case recvNoAddr:
			n, _, e = syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), buf, uintptr(len(b.buf)), 0, 0, 0)
		case recvMmsg:
			b.mmsg.hdr.Namelen = uint32(len(b.from))
			_, _, e = syscall.RawSyscall6(syscall.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.mmsg)), 1, 0, 0, 0)
			n, b.fromLen = uintptr(b.mmsg.n), b.mmsg.hdr.Namelen
		}
		if e != 0 {
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, childAcceptFailed+uintptr(e), 0, 0)
		}
		if mode == recvNoAddr { // no sender to answer: tell the test
			syscall.RawSyscall(syscall.SYS_WRITE, 1, uintptr(unsafe.Pointer(&b.got[0])), uintptr(len(b.got)))
			continue
		}
		syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), buf, n, 0, from, uintptr(b.fromLen))
	}
}

// udpForkHelper is "udp-fork UID ADDR MODE": bind a UDP socket to ADDR (as
// the caller), print "listening", fork a child that sets its uids to UID
// and echoes what it reads the way MODE says (recvfrom, peek, recvmmsg;
// recv: prints "got" instead), then print how the child ended.
func udpForkHelper(args []string) int {
	uid, err := strconv.Atoi(args[0])
	mode, ok := recvModes[args[2]]
	if err != nil || !ok {
		return helperFailed
	}
	fd, err := bindRaw(syscall.SOCK_DGRAM, args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return helperFailed
	}
	b := new(udpRecvBufs)
	copy(b.got[:], "got\n")
	b.iov = syscall.Iovec{Base: &b.buf[0], Len: uint64(len(b.buf))}
	b.mmsg.hdr = syscall.Msghdr{Name: &b.from[0], Iov: &b.iov, Iovlen: 1}
	fmt.Println("listening")
	defer runtime.KeepAlive(b)
	return reportChild(udpRecvChild(uintptr(uid), fd, mode, b))
}

// udpThreadHelper is "udp-thread UID ADDR": bind a UDP socket to ADDR on
// the main thread, then in another thread set that thread's uids alone to
// UID (the raw syscall: glibc and Go would change every thread), print
// "listening" and echo each datagram it reads.
func udpThreadHelper(args []string) int {
	uid, err := strconv.Atoi(args[0])
	if err != nil {
		return helperFailed
	}
	fd, err := bindRaw(syscall.SOCK_DGRAM, args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return helperFailed
	}
	done := make(chan int)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its uids
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
			done <- childSetuidFailed + int(e)
			return
		}
		fmt.Println("listening")
		buf := make([]byte, 64)
		for {
			n, from, err := syscall.Recvfrom(fd, buf, 0)
			if err != nil {
				done <- childAcceptFailed
				return
			}
			syscall.Sendto(fd, buf[:n], 0, from)
		}
	}()
	return <-done
}

// startUDP starts helper action in cg, waits for "listening" and returns
// the process and a function that returns the helper's next output line.
func startUDP(t *testing.T, cg, action string) (*exec.Cmd, func() string) {
	t.Helper()
	cmd, r := startHelper(t, cg, action)
	if line, err := r.ReadString('\n'); err != nil || line != "listening\n" {
		t.Fatalf("receiver did not start: %q, %v", line, err)
	}
	return cmd, func() string {
		line, _ := r.ReadString('\n')
		return strings.TrimSpace(line)
	}
}

// udpRecvSpec is credSpec's helper (root, node helper) with its child
// worker (nobody), the UDP ingress from 127.0.0.1 and ::1 to port given to
// node to, and UDP replies to loopback allowed to any node.
func udpRecvSpec(t *testing.T, port int, to string) *policy.Spec {
	spec := credSpec(t, []string{"nobody"})
	spec.NetworkPolicy = &policy.NetworkPolicy{
		Ingress: []policy.NetworkRule{{
			From:      []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.0.0.1/32"}}, {IPBlock: &policy.IPBlock{CIDR: "::1/128"}}},
			Ports:     []policy.Port{{Port: port, Protocol: "UDP"}},
			Processes: []string{to},
		}},
		Egress: []policy.NetworkRule{{To: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.0.0.0/8"}}, {IPBlock: &policy.IPBlock{CIDR: "::1/128"}}},
			Ports: []policy.Port{{Protocol: "UDP"}}}},
	}
	return spec
}

// openRecvEngine opens a test engine, skipping the test where the kernel
// lacks the UDP receive hooks (tracing before Linux 6.3).
func openRecvEngine(t *testing.T) *Engine {
	t.Helper()
	e, _ := openTestEngine(t)
	if !e.UDPAtReceive() {
		t.Skipf("%s backend: no UDP receive hook on this kernel", e.Backend())
	}
	return e
}

// isRecv matches the receive events of port.
func isRecv(port int) func(Event) bool {
	return func(x Event) bool { return x.Kind == KindAccept && x.Protocol == "UDP" && x.Dst.Port() == uint16(port) }
}

// TestUDPRecvByForkedChild: the UDP socket is bound by the helper as root
// (node helper), datagrams are read by its forked child as nobody (node
// worker) with recvfrom, MSG_PEEK and recvmmsg. The inbound decision is
// the receiver's: a policy giving the ingress to worker serves and reports
// worker; one giving it only to helper kills the worker at its read and
// reports the worker's node.
func TestUDPRecvByForkedChild(t *testing.T) {
	e := openRecvEngine(t)
	for _, mode := range []string{"recvfrom", "peek", "recvmmsg", "recv"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "recv" && e.Backend() != BackendLSM {
				t.Skip("tracing backend: a read without an address is decided at the packet (TestUDPRecvNoSourceTracing)")
			}
			port := freePort(t, "udp4", "127.0.0.1:0")
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			// served sends a datagram to the worker and reports
			// whether it got it (the echo, or its "got" line; any
			// other line read is kept in line).
			var line string
			served := func(next func() string) bool {
				if mode != "recv" {
					return udpEcho(t, "127.0.0.1:0", addr)
				}
				udpEcho(t, "127.0.0.1:0", addr)
				line = next()
				return line == "got"
			}

			cg := testCgroup(t)
			ev := collect(t, e)
			if _, err := e.Apply(cg, mustCompile(t, udpRecvSpec(t, port, "worker")), ModeEnforce); err != nil {
				t.Fatal(err)
			}
			_, next := startUDP(t, cg, fmt.Sprintf("udp-fork 65534 %s %s", addr, mode))
			if !served(next) {
				t.Fatal("datagram to the worker, whose node has the ingress, was not served")
			}
			seen := ev.wait(t, "receive by the worker", isRecv(port))
			if seen.Deviation || seen.Node != "worker" || seen.UID != 65534 || seen.PID == 0 {
				t.Fatalf("receive %+v", seen)
			}

			port = freePort(t, "udp4", "127.0.0.1:0") // the first receiver still holds its own
			addr = fmt.Sprintf("127.0.0.1:%d", port)
			cg = testCgroup(t)
			if _, err := e.Apply(cg, mustCompile(t, udpRecvSpec(t, port, "helper")), ModeEnforce); err != nil {
				t.Fatal(err)
			}
			_, next = startUDP(t, cg, fmt.Sprintf("udp-fork 65534 %s %s", addr, mode))
			if served(next) {
				t.Fatal("the worker was served; only the binder's node has the ingress")
			}
			dev := ev.wait(t, "receive deviation", func(x Event) bool { return isRecv(port)(x) && x.Deviation })
			if !dev.Blocked || dev.Node != "worker" || dev.UID != 65534 || dev.Src.Addr() != netip.MustParseAddr("127.0.0.1") {
				t.Fatalf("deviation %+v", dev)
			}
			if line == "" {
				line = next()
			}
			if got := line; got != "child signal 9" {
				t.Fatalf("worker: %q, want killed at its read", got)
			}
		})
	}
}

// servedThenKilled runs the receiver started by action (given its
// address, on host) in a cgroup whose policy gives the UDP ingress to node
// allow: its datagram is served and reported as no deviation; then in one
// that gives it to node deny only: not served, reported blocked, the
// receiving process killed. reader checks each event against the
// receiver's process.
func servedThenKilled(t *testing.T, e *Engine, host netip.Addr, action func(addr string) string, allow, deny string,
	reader func(x Event, srv *exec.Cmd) bool) {
	t.Helper()
	ev := collect(t, e)
	network := map[bool]string{true: "udp4", false: "udp6"}[host.Is4()]
	for i, to := range []string{allow, deny} {
		port := freePort(t, network, netip.AddrPortFrom(host, 0).String()) // the first receiver keeps its own
		addr := netip.AddrPortFrom(host, uint16(port)).String()
		cg := testCgroup(t)
		if _, err := e.Apply(cg, mustCompile(t, udpRecvSpec(t, port, to)), ModeEnforce); err != nil {
			t.Fatal(err)
		}
		srv, _ := startUDP(t, cg, action(addr))
		if got := udpEcho(t, netip.AddrPortFrom(host, 0).String(), addr); got != (i == 0) {
			t.Fatalf("ingress for %s: served %v", to, got)
		}
		x := ev.wait(t, "receive of "+addr, func(x Event) bool { return isRecv(port)(x) && x.Deviation == (i == 1) })
		if !reader(x, srv) || x.Blocked != (i == 1) || x.Src.Addr() != host {
			t.Fatalf("ingress for %s: event %+v of pid %d", to, x, srv.Process.Pid)
		}
		if i == 1 {
			if st := exitStatus(t, srv.Wait()); st != 128+9 {
				t.Fatalf("receiver: status %d, want killed at its read", st)
			}
		}
	}
}

// TestUDPRecvByBinder: the task that bound the socket reads it itself (Go's
// ReadFrom), over IPv4 and IPv6. The decision is taken when it reads, for
// its node, and carries the reader: allowed, it is served and reported
// with its pid; when only another node has the ingress the datagram passes
// the packet check and the reader is killed at its read, reported with its
// node.
func TestUDPRecvByBinder(t *testing.T) {
	e := openRecvEngine(t)
	binder := func(x Event, srv *exec.Cmd) bool { return x.Node == "helper" && x.PID == uint32(srv.Process.Pid) }
	serve := func(addr string) string { return "serve-udp " + addr }
	t.Run("IPv4", func(t *testing.T) {
		servedThenKilled(t, e, netip.MustParseAddr("127.0.0.1"), serve, "helper", "worker", binder)
	})
	t.Run("IPv6", func(t *testing.T) {
		servedThenKilled(t, e, netip.IPv6Loopback(), serve, "helper", "worker", binder)
	})
}

// TestUDPRecvByThread: one thread of the binding process changes its own
// uids (a node of its own, worker) and reads the socket the main thread
// bound (node helper): the datagram is decided for the reading thread's
// node.
func TestUDPRecvByThread(t *testing.T) {
	e := openRecvEngine(t)
	servedThenKilled(t, e, netip.MustParseAddr("127.0.0.1"), func(addr string) string { return "udp-thread 65534 " + addr }, "worker", "helper",
		func(x Event, srv *exec.Cmd) bool {
			return x.Node == "worker" && x.UID == 65534 && x.PID == uint32(srv.Process.Pid)
		})
}

// TestUDPRecvNoSourceTracing: on the tracing backend a read that asks for
// no source address cannot be decided at the read. It marks its socket, and
// from then on the packet check decides the socket's datagrams for the
// node bound to the port, as without the receive hooks: with the ingress
// given only to another node, the first datagram (checked against the
// union of nodes) is read, the second is dropped and reported with the
// binder's node.
func TestUDPRecvNoSourceTracing(t *testing.T) {
	e := openRecvEngine(t)
	if e.Backend() == BackendLSM {
		t.Skip("lsm backend: every read is decided at the read (TestUDPRecvByForkedChild/recv)")
	}
	port := freePort(t, "udp4", "127.0.0.1:0")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cg := testCgroup(t)
	ev := collect(t, e)
	if _, err := e.Apply(cg, mustCompile(t, udpRecvSpec(t, port, "worker")), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	// The child keeps root: it stays on the binder's node, helper.
	_, next := startUDP(t, cg, fmt.Sprintf("udp-fork 0 %s recv", addr))
	udpEcho(t, "127.0.0.1:0", addr)
	if got := next(); got != "got" {
		t.Fatalf("first datagram: receiver %q, want it read", got)
	}
	lines := make(chan string, 1)
	go func() { lines <- next() }()
	udpEcho(t, "127.0.0.1:0", addr)
	select {
	case l := <-lines:
		t.Fatalf("second datagram: receiver %q, want it dropped", l)
	case <-time.After(500 * time.Millisecond):
	}
	dev := ev.wait(t, "deviation at the packet", func(x Event) bool { return isRecv(port)(x) && x.Deviation })
	if !dev.Blocked || dev.Node != "helper" || dev.PID != 0 {
		t.Fatalf("deviation %+v", dev)
	}
}
