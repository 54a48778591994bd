package bpf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/policy"
)

// The test binary doubles as a workload: run with helperEnv set it performs
// one action and exits (see runHelper), so tests need nothing but
// the test binary and busybox, also inside the qemu VM.
const helperEnv = "BULWARK_BPF_TEST_HELPER"

// busybox is the workload binary of the process-tree tests.
const busybox = "/bin/busybox"

// busyboxExe is busybox's path as the kernel resolves it (/usr/bin/busybox
// where /bin links to /usr/bin), which is what policies must name.
func busyboxExe() string {
	p, err := filepath.EvalSymlinks(busybox)
	if err != nil {
		return busybox
	}
	return p
}

func TestMain(m *testing.M) {
	if args := os.Getenv(helperEnv); args != "" {
		os.Exit(runHelper(strings.Fields(args)))
	}
	os.Exit(m.Run())
}

// Helper exit statuses.
const (
	helperOK      = 0
	helperEPERM   = 3
	helperFailed  = 4
	helperTimeout = 5
)

// runHelper performs one action: "connect tcp|udp|tcp6 ADDR",
// "connect-mapped IP PORT", "sendto ADDR", "serve ADDR" (answer "hi" to
// every connection), "serve-udp ADDR" (echo), "arm PINDIR CGROUP" (see
// TestPinsSurviveLoaderExit), "print-euid" (see TestExecSetuidEuser), or
// one of the task-state actions of taskHelper (task_test.go) or the
// io_uring actions of uringHelper (uring_test.go).
func runHelper(args []string) int {
	switch args[0] {
	case "print-euid":
		fmt.Printf("euid=%d\n", os.Geteuid())
		return helperOK
	case "connect":
		network, addr := args[1], args[2]
		var err error
		if network == "udp" {
			var c net.Conn
			if c, err = net.Dial("udp", addr); err == nil {
				_, err = c.Write([]byte("x"))
				c.Close()
			}
		} else {
			var c net.Conn
			if c, err = net.DialTimeout(network, addr, 2*time.Second); err == nil {
				c.Close()
			}
		}
		return statusOf(err)
	case "connect-mapped":
		// An AF_INET6 socket to ::ffff:a.b.c.d (Go's dialer refuses it).
		return statusOf(connectMapped(args[1], args[2]))
	case "sendto":
		// Unconnected UDP: the sendmsg hook decides.
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return helperFailed
		}
		defer c.Close()
		ua, err := net.ResolveUDPAddr("udp", args[1])
		if err != nil {
			return helperFailed
		}
		_, err = c.WriteTo([]byte("x"), ua)
		return statusOf(err)
	case "serve":
		l, err := net.Listen("tcp", args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return helperFailed
		}
		fmt.Println("listening")
		for {
			c, err := l.Accept()
			if err != nil {
				return helperFailed
			}
			c.Write([]byte("hi"))
			c.Close()
		}
	case "serve-udp":
		c, err := net.ListenPacket("udp", args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return helperFailed
		}
		fmt.Println("listening")
		buf := make([]byte, 64)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return helperFailed
			}
			c.WriteTo(buf[:n], from)
		}
	case "arm":
		return armHelper(args[1:])
	case "flood", "flood-spread":
		return floodHelper(args[0] == "flood-spread", args[1:])
	case "identity":
		return identityHelper(args[1:])
	case "thread-exec", "leader-exit-exec", "rename-exec", "wait-thread-exec":
		return taskHelper(args)
	case "fork-setuid", "serve-fork", "setuid-threads", "listen-autobind":
		return forkHelper(args)
	case "uring-accept", "uring-serve-fork":
		return uringHelper(args)
	}
	if f, ok := netHelpers[args[0]]; ok {
		return f(args[1:])
	}
	return helperFailed
}

func statusOf(err error) int {
	switch {
	case err == nil:
		return helperOK
	case errors.Is(err, unix.EPERM):
		return helperEPERM
	case os.IsTimeout(err):
		return helperTimeout
	}
	fmt.Fprintln(os.Stderr, err)
	return helperFailed
}

// needRoot skips tests that load BPF or create cgroups without root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF programs and creates cgroups")
	}
}

// testBackend is the backend under test: BULWARK_TEST_BACKEND, else auto.
func testBackend() string {
	if b := os.Getenv("BULWARK_TEST_BACKEND"); b != "" {
		return b
	}
	return BackendAuto
}

// testPinDir mounts a private bpffs for the test and removes it afterwards.
func testPinDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount bpffs: %v", err)
		}
	})
	return filepath.Join(dir, "bulwark")
}

// openTestEngine opens an engine on a private pin directory; it is
// unpinned and closed when the test ends.
func openTestEngine(t *testing.T) (*Engine, string) {
	t.Helper()
	return openTestEngineWith(t, Options{})
}

// openTestEngineWith is openTestEngine with opts (pin directory, backend
// and logger set here).
func openTestEngineWith(t *testing.T, opts Options) (*Engine, string) {
	t.Helper()
	needRoot(t)
	pins := testPinDir(t)
	opts.PinDir, opts.Backend = pins, testBackend()
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := Open(opts)
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	if want := os.Getenv("BULWARK_TEST_BACKEND"); want != "" && want != BackendAuto && e.Backend() != want {
		t.Fatalf("backend %s, want %s", e.Backend(), want)
	}
	t.Cleanup(func() {
		if err := e.Unpin(); err != nil {
			t.Errorf("unpin: %v", err)
		}
		if err := e.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return e, pins
}

// reopenEngine closes e and opens another engine on its pins (an agent
// restarting), closed before the first engine's cleanup unpins.
func reopenEngine(t *testing.T, e *Engine, pins string) *Engine {
	t.Helper()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2, err := Open(Options{PinDir: pins, Backend: e.Backend(), Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e2.Close() })
	return e2
}

// cgroupSeq tells apart the cgroups of one test.
var cgroupSeq atomic.Uint32

// testCgroup creates a cgroup for the test, removed (with anything left in
// it) when the test ends.
func testCgroup(t *testing.T) string {
	t.Helper()
	root, err := cgroup.Mountpoint()
	if err != nil {
		t.Skipf("no cgroup v2: %v", err)
	}
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	path := filepath.Join(root, fmt.Sprintf("bulwark-test-%s-%d-%d", name, os.Getpid(), cgroupSeq.Add(1)))
	if _, err := cgroup.Create(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cgroup.Remove(path); err != nil {
			t.Error(err)
		}
	})
	return path
}

// applets makes a directory of busybox applet links (name → /bin/busybox),
// so each applet runs with its own comm but the same exe.
func applets(t *testing.T, names ...string) string {
	t.Helper()
	if _, err := os.Stat(busybox); err != nil {
		t.Skipf("needs %s: %v", busybox, err)
	}
	dir := t.TempDir()
	// Reachable by the unprivileged users some tests run as.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		if err := os.Symlink(busybox, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// run runs argv inside cgroup path and returns its exit status (128+signal
// when killed) and combined output.
func run(t *testing.T, path string, env []string, argv ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cgroup.StartIn(cmd, path); err != nil {
		if errors.Is(err, unix.EPERM) {
			// The lsm backend refused the first exec: report it as
			// a shell would.
			return statusExecRefused, err.Error()
		}
		t.Fatal(err)
	}
	err := cmd.Wait()
	return exitStatus(t, err), out.String()
}

// statusExecRefused is how a shell reports an exec that failed with EPERM.
const statusExecRefused = 126

// deniedStatus is the status a shell reports for a denied exec: the
// tracing backend kills the new image (128+SIGKILL), the lsm backend
// fails the exec with EPERM.
func deniedStatus(backend string) string {
	if backend == BackendLSM {
		return strconv.Itoa(statusExecRefused)
	}
	return "137"
}

func exitStatus(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("run: %v", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// events collects the engine's events in the background.
type events struct {
	ch chan Event
}

func collect(t *testing.T, e *Engine) *events {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ev := &events{ch: make(chan Event, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			x, err := e.ReadEvent(ctx)
			if err != nil {
				return
			}
			ev.ch <- x
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ev
}

// wait returns the first event matching pred within timeout.
func (ev *events) wait(t *testing.T, what string, pred func(Event) bool) Event {
	t.Helper()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case x := <-ev.ch:
			if pred(x) {
				return x
			}
		case <-deadline:
			t.Fatalf("no event: %s", what)
		}
	}
}

// drain returns every event that arrives within d.
func (ev *events) drain(d time.Duration) []Event {
	var out []Event
	deadline := time.After(d)
	for {
		select {
		case x := <-ev.ch:
			out = append(out, x)
		case <-deadline:
			return out
		}
	}
}

// mustCompile compiles spec with a root/nobody passwd.
func mustCompile(t *testing.T, spec *policy.Spec) *Compiled {
	t.Helper()
	c, err := Compile(spec, map[string]uint32{"root": 0, "nobody": 65534})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return c
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// lastLine is the last line of a command's output (the shell prints
// "Killed" before the status of a killed child).
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// connectMapped connects an AF_INET6 TCP socket to the v4-mapped form of
// IPv4 address ip.
func connectMapped(ip, port string) error {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Connect(fd, &unix.SockaddrInet6{Port: p, Addr: netip.AddrFrom16(a.As16()).As16()})
}
