package bpf

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/policy"
)

// Child exit statuses of forkHelper: a failed setresuid, execve or accept
// exits with its base plus the errno.
const (
	childSetuidFailed = 10
	childExecFailed   = 20
	childAcceptFailed = 30
)

var greeting = [2]byte{'h', 'i'}

// forkChild forks the way a pre-forking server does (fork(2), no exec):
// the child sets its uids to uid and then, with path, execs it, or with a
// listening descriptor lfd >= 0 answers greeting to each connection it
// accepts. Only raw syscalls run in the child (it has one thread and must
// not enter the Go runtime), as in syscall.forkAndExecInChild.
//
//go:nosplit
//go:norace
func forkChild(uid uintptr, path *byte, argv, envp **byte, lfd int) (uintptr, syscall.Errno) {
	pid, _, e := syscall.RawSyscall(syscall.SYS_FORK, 0, 0, 0)
	if e != 0 || pid != 0 {
		return pid, e
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uid, uid, uid); e != 0 {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, childSetuidFailed+uintptr(e), 0, 0)
	}
	if path != nil {
		_, _, e := syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(unsafe.Pointer(path)),
			uintptr(unsafe.Pointer(argv)), uintptr(unsafe.Pointer(envp)))
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, childExecFailed+uintptr(e), 0, 0)
	}
	for lfd >= 0 {
		fd, _, e := syscall.RawSyscall6(syscall.SYS_ACCEPT4, uintptr(lfd), 0, 0, 0, 0, 0)
		if e != 0 {
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, childAcceptFailed+uintptr(e), 0, 0)
		}
		syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&greeting[0])), 2)
		syscall.RawSyscall(syscall.SYS_CLOSE, fd, 0, 0)
	}
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	return 0, 0
}

// forkHelper performs the credential actions of runHelper:
//
//	fork-setuid UID [PATH ARG...]  fork; the child sets its uids to UID, then
//	                               execs PATH when given
//	listen-autobind UID            listen without bind, print "port N"
//	                               (UID unused)
//	setuid-threads UID             set the uids of every thread to UID
//	                               (syscall.Setresuid) while threads run
//	serve-fork UID ADDR            listen on TCP ADDR (as the caller), print
//	                               "listening", fork; the child sets its uids
//	                               to UID and greets each connection it accepts
//
// The forking actions print how the child ended: "child exit N" or
// "child signal N".
func forkHelper(args []string) int {
	uid, err := strconv.Atoi(args[1])
	if err != nil {
		return helperFailed
	}
	var path *byte
	var argv, envp []*byte
	lfd := -1
	switch args[0] {
	case "setuid-threads":
		// Threads busy in syscalls while the process changes user.
		for range 4 {
			go func() {
				for {
					time.Sleep(time.Millisecond)
				}
			}()
		}
		time.Sleep(20 * time.Millisecond)
		if err := syscall.Setresuid(uid, uid, uid); err != nil {
			return statusOf(err)
		}
		time.Sleep(50 * time.Millisecond)
		return helperOK
	case "fork-setuid":
		if len(args) > 2 {
			if path, err = syscall.BytePtrFromString(args[2]); err != nil {
				return helperFailed
			}
			if argv, err = syscall.SlicePtrFromStrings(args[3:]); err != nil {
				return helperFailed
			}
			if envp, err = syscall.SlicePtrFromStrings(nil); err != nil {
				return helperFailed
			}
		}
	case "listen-autobind":
		// listen() with no bind: the kernel picks the port.
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err == nil {
			err = syscall.Listen(fd, 1)
		}
		if err != nil {
			return statusOf(err)
		}
		sa, err := syscall.Getsockname(fd)
		if err != nil {
			return helperFailed
		}
		fmt.Printf("port %d\n", sa.(*syscall.SockaddrInet4).Port)
		return helperOK
	case "serve-fork":
		if lfd, err = listenRaw(args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return helperFailed
		}
		fmt.Println("listening")
	}
	var av, ev **byte
	if argv != nil {
		av, ev = &argv[0], &envp[0]
	}
	return reportChild(forkChild(uintptr(uid), path, av, ev, lfd))
}

// reportChild waits for the child pid that a fork returned (with errno)
// and prints how it ended: "child exit N" or "child signal N".
func reportChild(pid uintptr, errno syscall.Errno) int {
	if errno != 0 {
		fmt.Fprintln(os.Stderr, "fork:", errno)
		return helperFailed
	}
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(int(pid), &ws, 0, nil); err != nil {
		fmt.Fprintln(os.Stderr, "wait:", err)
		return helperFailed
	}
	if ws.Signaled() {
		fmt.Printf("child signal %d\n", ws.Signal())
	} else {
		fmt.Printf("child exit %d\n", ws.ExitStatus())
	}
	return helperOK
}

// listenRaw opens a TCP listener on addr (IPv4) as a plain descriptor the
// forked child can use.
func listenRaw(addr string) (int, error) {
	fd, err := bindRaw(syscall.SOCK_STREAM, addr)
	if err != nil {
		return -1, err
	}
	return fd, syscall.Listen(fd, 16)
}

// bindRaw opens a socket of type typ (SOCK_STREAM: TCP, SOCK_DGRAM: UDP)
// bound to addr (IPv4, SO_REUSEADDR) as a plain descriptor.
func bindRaw(typ int, addr string) (int, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return -1, err
	}
	fd, err := syscall.Socket(syscall.AF_INET, typ, 0)
	if err != nil {
		return -1, err
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return -1, err
	}
	return fd, syscall.Bind(fd, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()})
}

// credSpec is the helper as root node "helper" (root) with, when
// childUsers is set, a child "worker": the helper itself running as those
// users (a cred change), which may exec workerExecs (busybox applets).
func credSpec(t *testing.T, childUsers []string, workerExecs ...string) *policy.Spec {
	spec := helperSpec(t)
	if childUsers == nil {
		return spec
	}
	w := policy.ProcessNode{Name: "*", Exe: spec.ProcessPolicy[0].Exe, Euser: childUsers, ID: "worker"}
	for _, name := range workerExecs {
		w.Children = append(w.Children, policy.ProcessNode{Name: name, Exe: []string{busyboxExe()}, ID: name + "_w"})
	}
	spec.ProcessPolicy[0].Children = []policy.ProcessNode{w}
	return spec
}

// childEnd runs helper action in cg and returns how its forked child
// ended ("exit N" or "signal N").
func childEnd(t *testing.T, cg, action string) string {
	t.Helper()
	self, _ := os.Executable()
	st, out := run(t, cg, []string{helperEnv + "=" + action}, self)
	line := lastLine(out)
	if st != helperOK || !strings.HasPrefix(line, "child ") {
		t.Fatalf("helper %q: status %d, output %q", action, st, out)
	}
	return strings.TrimPrefix(line, "child ")
}

// credDenied is how a forked child's refused setresuid ends: EPERM on the
// lsm backend (task_fix_setuid), SIGKILL on the tracing backend.
func credDenied(backend string) string {
	if backend == BackendLSM {
		return "exit " + strconv.Itoa(childSetuidFailed+int(syscall.EPERM))
	}
	return "signal 9"
}

// TestForkSetuidNeedsChildNode: a forked child that turns into another
// user (setresuid, no exec) leaves its node for a child node with the new
// euser; with no such child the change is a cred deviation, blocked in
// enforce, reported in audit; with one, the change is allowed and the
// child's exec is checked against the child node's children.
func TestForkSetuidNeedsChildNode(t *testing.T) {
	e, _ := openTestEngine(t)
	bin := applets(t, "true", "false")
	helperID := func(ev Event) bool { return ev.Kind == KindCred && ev.EUID == 65534 }

	t.Run("no child node", func(t *testing.T) {
		cg := testCgroup(t)
		ev := collect(t, e)
		if _, err := e.Apply(cg, mustCompile(t, credSpec(t, nil)), ModeEnforce); err != nil {
			t.Fatal(err)
		}
		if got := childEnd(t, cg, "fork-setuid 65534"); got != credDenied(e.Backend()) {
			t.Fatalf("setresuid with no child node: child %s, want %s", got, credDenied(e.Backend()))
		}
		dev := ev.wait(t, "cred deviation", helperID)
		if !dev.Deviation || !dev.Blocked || dev.ParentNode != "helper" || dev.Node != "" || dev.OldEUID != 0 {
			t.Fatalf("deviation %+v", dev)
		}
		// A child node for another user allows only that user.
		if _, err := e.Apply(cg, mustCompile(t, credSpec(t, []string{"root"})), ModeEnforce); err != nil {
			t.Fatal(err)
		}
		if got := childEnd(t, cg, "fork-setuid 65534"); got != credDenied(e.Backend()) {
			t.Fatalf("setresuid to a user the child node lacks: child %s", got)
		}
		// Root to root changes no euid: nothing to check.
		if got := childEnd(t, cg, "fork-setuid 0"); got != "exit 0" {
			t.Fatalf("setresuid to the same euid: child %s", got)
		}
	})

	t.Run("audit", func(t *testing.T) {
		cg := testCgroup(t)
		ev := collect(t, e)
		if _, err := e.Apply(cg, mustCompile(t, credSpec(t, nil)), ModeAudit); err != nil {
			t.Fatal(err)
		}
		if got := childEnd(t, cg, "fork-setuid 65534"); got != "exit 0" {
			t.Fatalf("audit: child %s, want exit 0", got)
		}
		dev := ev.wait(t, "audited cred deviation", helperID)
		if !dev.Deviation || dev.Blocked || dev.ParentNode != "helper" {
			t.Fatalf("deviation %+v", dev)
		}
	})

	t.Run("child node", func(t *testing.T) {
		cg := testCgroup(t)
		ev := collect(t, e)
		if _, err := e.Apply(cg, mustCompile(t, credSpec(t, []string{"nobody"}, "true")), ModeEnforce); err != nil {
			t.Fatal(err)
		}
		if got := childEnd(t, cg, "fork-setuid 65534"); got != "exit 0" {
			t.Fatalf("setresuid to the child node's user: child %s, want exit 0", got)
		}
		seen := ev.wait(t, "cred observation", helperID)
		if seen.Deviation || seen.Node != "worker" || seen.ParentNode != "helper" {
			t.Fatalf("observation %+v", seen)
		}
		// The worker may exec what its node's children name, and only that.
		if got := childEnd(t, cg, "fork-setuid 65534 "+bin+"/true true"); got != "exit 0" {
			t.Fatalf("worker exec of true: child %s", got)
		}
		denied := "signal 9"
		if e.Backend() == BackendLSM {
			denied = "exit " + strconv.Itoa(childExecFailed+int(syscall.EPERM))
		}
		if got := childEnd(t, cg, "fork-setuid 65534 "+bin+"/false false"); got != denied {
			t.Fatalf("worker exec of false: child %s, want %s", got, denied)
		}
		dev := ev.wait(t, "worker exec deviation", func(x Event) bool { return x.Kind == KindExec && x.Deviation })
		if dev.ParentNode != "worker" || dev.Comm != "false" {
			t.Fatalf("exec deviation %+v", dev)
		}
	})
}

// TestThreadsSetuidTogether: a multithreaded process (the Go helper)
// changes its uids on every thread (syscall.Setresuid, as glibc's setuid
// does): each thread's change is seen, and with a child node for the new
// user all of them follow the process to it with no deviation; without
// one the change is refused.
func TestThreadsSetuidTogether(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	ev := collect(t, e)
	if _, err := e.Apply(cg, mustCompile(t, credSpec(t, []string{"nobody"})), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	if st := helper(t, cg, "setuid-threads 65534"); st != helperOK {
		t.Fatalf("threads to the child node's user: status %d, want 0", st)
	}
	seen := ev.wait(t, "cred observation", func(x Event) bool { return x.Kind == KindCred })
	if seen.Deviation || seen.Node != "worker" {
		t.Fatalf("cred event %+v", seen)
	}
	for _, x := range ev.drain(300 * time.Millisecond) {
		if x.Deviation {
			t.Fatalf("deviation while the threads followed: %+v", x)
		}
	}
	want := 128 + 9
	if e.Backend() == BackendLSM {
		want = helperEPERM
	}
	if st := helper(t, cg, "setuid-threads 1"); st != want {
		t.Fatalf("threads to uid 1: status %d, want %d", st, want)
	}
}

// TestListenWithoutBindReported: a TCP socket that listens with no bind
// (the kernel picks the port, no bind hook runs) is reported as a listening
// socket of the node that called listen().
func TestListenWithoutBindReported(t *testing.T) {
	e, _ := openTestEngine(t)
	cg := testCgroup(t)
	ev := collect(t, e)
	if _, err := e.Apply(cg, mustCompile(t, helperSpec(t)), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	st, out := run(t, cg, []string{helperEnv + "=listen-autobind 0"}, self)
	port, err := strconv.Atoi(strings.TrimPrefix(lastLine(out), "port "))
	if st != helperOK || err != nil {
		t.Fatalf("helper: status %d, output %q", st, out)
	}
	l := ev.wait(t, "listen event", func(x Event) bool { return x.Kind == KindListen && x.Dst.Port() == uint16(port) })
	if l.Node != "helper" || l.Protocol != "TCP" || l.Deviation {
		t.Fatalf("listen event %+v", l)
	}
}

// int80Setresuid is a static x86-64 ELF that calls setresuid32(UID, UID,
// UID) through the ia32 entry (int 0x80) and exits with the errno (0 when
// it succeeded).
func int80Setresuid(uid uint32) []byte {
	code := []byte{0xb8, 0xd0, 0, 0, 0}           // mov eax, 208 (setresuid32)
	for _, op := range []byte{0xbb, 0xb9, 0xba} { // mov ebx/ecx/edx, uid
		code = append(code, op)
		code = binary.LittleEndian.AppendUint32(code, uid)
	}
	code = append(code,
		0xcd, 0x80, // int 0x80
		0xf7, 0xd8, // neg eax
		0x89, 0xc7, // mov edi, eax
		0xb8, 0xe7, 0, 0, 0, // mov eax, 231 (exit_group)
		0x0f, 0x05, // syscall
	)
	return ia32ELF(nil, func(uint32) []byte { return code })
}

// ia32ELF is a static x86-64 ELF whose one loaded segment (read and
// execute) holds data and then the code that code returns for data at
// address addr: below 4 GiB, so ia32 syscalls take it as a pointer.
func ia32ELF(data []byte, code func(addr uint32) []byte) []byte {
	const base, hdr = 0x400000, 64 + 56
	body := append(append([]byte{}, data...), code(base+hdr)...)
	le := binary.LittleEndian
	elf := make([]byte, hdr)
	copy(elf, "\x7fELF\x02\x01\x01")
	le.PutUint16(elf[16:], 2)    // ET_EXEC
	le.PutUint16(elf[18:], 0x3e) // EM_X86_64
	le.PutUint32(elf[20:], 1)
	le.PutUint64(elf[24:], base+hdr+uint64(len(data))) // entry
	le.PutUint64(elf[32:], 64)                         // phoff
	le.PutUint16(elf[52:], 64)
	le.PutUint16(elf[54:], 56)
	le.PutUint16(elf[56:], 1)
	ph := elf[64:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], 5) // R+X
	le.PutUint64(ph[16:], base)
	le.PutUint64(ph[24:], base)
	le.PutUint64(ph[32:], uint64(hdr+len(body)))
	le.PutUint64(ph[40:], uint64(hdr+len(body)))
	le.PutUint64(ph[48:], 0x1000)
	return append(elf, body...)
}

// TestInt80SetresuidNeedsChildNode: the same rule for a process that
// drops privileges without forking, through the ia32 syscall entry, which
// syscall-number filters for the native table miss.
func TestInt80SetresuidNeedsChildNode(t *testing.T) {
	e, _ := openTestEngine(t)
	prog := filepath.Join(t.TempDir(), "drop32")
	if err := os.WriteFile(prog, int80Setresuid(65534), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(prog).CombinedOutput(); err != nil {
		t.Skipf("ia32 setresuid32 outside any workload: %v %s (no IA32 emulation?)", err, out)
	}
	root := policy.ProcessNode{Name: "drop32", Exe: []string{prog}, Euser: []string{"root"}, ID: "drop32_0"}
	spec := &policy.Spec{ProcessPolicy: []policy.ProcessNode{root}}
	cg := testCgroup(t)
	ev := collect(t, e)
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	want := "137"
	if e.Backend() == BackendLSM {
		want = strconv.Itoa(int(syscall.EPERM))
	}
	if st, out := run(t, cg, nil, prog); strconv.Itoa(st) != want {
		t.Fatalf("int 0x80 setresuid32 with no child node: status %d (%s), want %s", st, out, want)
	}
	dev := ev.wait(t, "cred deviation", func(x Event) bool { return x.Kind == KindCred && x.Deviation })
	if !dev.Blocked || dev.ParentNode != "drop32_0" || dev.EUID != 65534 || dev.Exe != prog {
		t.Fatalf("deviation %+v", dev)
	}
	root.Children = []policy.ProcessNode{{Name: "drop32", Exe: []string{prog}, Euser: []string{"nobody"}, ID: "drop32_1"}}
	spec.ProcessPolicy[0] = root
	if _, err := e.Apply(cg, mustCompile(t, spec), ModeEnforce); err != nil {
		t.Fatal(err)
	}
	if st, out := run(t, cg, nil, prog); st != 0 {
		t.Fatalf("int 0x80 setresuid32 with a child node: status %d (%s)", st, out)
	}
}

// serveFork starts the serve-fork helper in cg (the listener made by the
// helper as root, connections accepted by its forked child as uid) and
// returns a function that waits for the helper to report how the child
// ended (a child still serving is left to the cgroup's removal).
func serveFork(t *testing.T, cg string, uid int, addr string) func() string {
	t.Helper()
	return forkServer(t, cg, fmt.Sprintf("serve-fork %d %s", uid, addr))
}

// forkServer starts helper action in cg, waits for it to print
// "listening" and returns a function that waits for it to report how its
// forked child ended.
func forkServer(t *testing.T, cg, action string) func() string {
	t.Helper()
	self, _ := os.Executable()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), helperEnv+"="+action)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cgroup.StartIn(cmd, cg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); err != nil || line != "listening\n" {
		t.Fatalf("server did not start: %q, %v", line, err)
	}
	return func() string {
		line, _ := r.ReadString('\n')
		return strings.TrimSpace(strings.TrimPrefix(line, "child "))
	}
}

// TestAcceptByForkedChild: the listener is made by the helper as root (node
// helper), connections are accepted by its forked child as nobody (node
// worker). The inbound decision is the acceptor's: a policy giving the
// ingress to worker serves, one giving it only to helper stops the worker
// at its accept and reports the worker's node.
func TestAcceptByForkedChild(t *testing.T) {
	e, _ := openTestEngine(t)
	port := freePort(t, "tcp4", "127.0.0.1:0")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ingressFor := func(node string) *policy.Spec {
		spec := credSpec(t, []string{"nobody"})
		spec.NetworkPolicy = &policy.NetworkPolicy{Ingress: []policy.NetworkRule{{
			From:      []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.0.0.1/32"}}},
			Ports:     []policy.Port{{Port: port, Protocol: "TCP"}},
			Processes: []string{node},
		}}}
		return spec
	}

	t.Run("worker allowed", func(t *testing.T) {
		cg := testCgroup(t)
		ev := collect(t, e)
		if _, err := e.Apply(cg, mustCompile(t, ingressFor("worker")), ModeEnforce); err != nil {
			t.Fatal(err)
		}
		serveFork(t, cg, 65534, addr)
		if err := dialFrom("", addr); err != nil {
			t.Fatalf("connection to the worker: %v", err)
		}
		seen := ev.wait(t, "accept by the worker", func(x Event) bool { return x.Kind == KindAccept })
		if seen.Deviation || seen.Node != "worker" || seen.UID != 65534 || seen.Dst.Port() != uint16(port) {
			t.Fatalf("accept %+v", seen)
		}
		// Outsiders still reach nothing: a source no node may receive
		// is dropped at the packet.
		if err := dialFrom("127.0.0.2:0", addr); err == nil {
			t.Fatal("127.0.0.2 was served")
		}
	})

	t.Run("only the listener's node allowed", func(t *testing.T) {
		cg := testCgroup(t)
		ev := collect(t, e)
		if _, err := e.Apply(cg, mustCompile(t, ingressFor("helper")), ModeEnforce); err != nil {
			t.Fatal(err)
		}
		end := serveFork(t, cg, 65534, addr)
		if err := dialFrom("", addr); err == nil {
			t.Fatal("the worker was served; only the listener's node has the ingress")
		}
		dev := ev.wait(t, "accept deviation", func(x Event) bool { return x.Kind == KindAccept && x.Deviation })
		if !dev.Blocked || dev.Node != "worker" || dev.UID != 65534 || dev.Src.Addr() != netip.MustParseAddr("127.0.0.1") {
			t.Fatalf("deviation %+v", dev)
		}
		if got := end(); got != "signal 9" {
			t.Fatalf("worker ended %q, want killed at accept", got)
		}
	})
}
