package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/bpf"
)

// openTestSandbox opens an observing sandbox named bulwark-test-PID and
// closes it when the test ends unless the test closed it (*closed).
func openTestSandbox(t *testing.T) (box *sandbox, closed *bool, logs *bytes.Buffer) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF programs and creates cgroups")
	}
	for _, p := range []string{"/bin/sh", "/bin/true", "/bin/sleep"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs %s: %v", p, err)
		}
	}
	logs = &bytes.Buffer{}
	box, err := openSandbox("test", nil, bpf.ModeObserve, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	closed = new(bool)
	t.Cleanup(func() {
		if !*closed {
			box.close()
		}
	})
	return box, closed, logs
}

// closeAndCheckGone closes box and checks that its cgroup and its pin
// directory are gone and that closing logged nothing.
func closeAndCheckGone(t *testing.T, box *sandbox, closed *bool, logs *bytes.Buffer) {
	t.Helper()
	cgPath := box.cgPath
	box.close()
	*closed = true
	pinDir := filepath.Join("/sys/fs/bpf", "bulwark-test-"+strconv.Itoa(os.Getpid()))
	for _, p := range []string{cgPath, pinDir} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
	if logs.Len() != 0 {
		t.Errorf("close logged:\n%s", logs)
	}
}

// TestSandboxRun runs a script that execs true, leaves a sleep behind and
// exits 4: the sandbox reports the script's exec events, its status, and
// close removes the cgroup (with the sleep) and the pins.
func TestSandboxRun(t *testing.T) {
	box, closed, logs := openTestSandbox(t)
	var events []bpf.Event
	child := exec.Command("/bin/sh", "-c", "/bin/sleep 30 & /bin/true; exit 4")
	if err := box.start(context.Background(), child, func(ev bpf.Event) { events = append(events, ev) }); err != nil {
		t.Fatal(err)
	}
	status, complete := box.wait(100 * time.Millisecond)
	var es *exitStatus
	if !errors.As(status, &es) || es.code != 4 || !complete {
		t.Fatalf("status %v, complete %v; want exit status 4, complete", status, complete)
	}
	seen := map[string]bool{}
	for _, ev := range events {
		if ev.CgroupID != box.id {
			t.Errorf("event of cgroup %d passed on, want only %d's: %+v", ev.CgroupID, box.id, ev)
		}
		if ev.Kind == bpf.KindExec {
			seen[ev.Comm] = true
		}
	}
	if !seen["sh"] || !seen["true"] || !seen["sleep"] {
		t.Errorf("exec events seen for %v, want sh, true and sleep", seen)
	}
	closeAndCheckGone(t, box, closed, logs)
}

// TestSandboxStartFails checks that a command that cannot start is an
// error of start, and that close still leaves nothing behind.
func TestSandboxStartFails(t *testing.T) {
	box, closed, logs := openTestSandbox(t)
	missing := filepath.Join(t.TempDir(), "missing")
	err := box.start(context.Background(), exec.Command(missing), func(bpf.Event) {})
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("start of %s: %v, want not exist", missing, err)
	}
	closeAndCheckGone(t, box, closed, logs)
}

// TestSandboxForwardsSignals sends SIGTERM to the test process while the
// child sleeps: it goes to the child, which dies of it (status 143), and
// the test process lives on.
func TestSandboxForwardsSignals(t *testing.T) {
	box, closed, logs := openTestSandbox(t)
	if err := box.start(context.Background(), exec.Command("/bin/sleep", "10"), func(bpf.Event) {}); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	status, _ := box.wait(0)
	var es *exitStatus
	if !errors.As(status, &es) || es.code != 128+int(syscall.SIGTERM) {
		t.Fatalf("status %v, want killed by SIGTERM (143)", status)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Fatalf("the child ended after %v: the signal was not forwarded", d)
	}
	closeAndCheckGone(t, box, closed, logs)
}

// TestSandboxReaderEndsWithContext checks that wait reports an incomplete
// observation when the reader stopped (its context ended) before the child
// exited.
func TestSandboxReaderEndsWithContext(t *testing.T) {
	box, closed, logs := openTestSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := box.start(ctx, exec.Command("/bin/sleep", "1"), func(bpf.Event) {}); err != nil {
		t.Fatal(err)
	}
	cancel()
	status, complete := box.wait(time.Second)
	if status != nil || complete {
		t.Fatalf("status %v, complete %v; want exit 0, incomplete", status, complete)
	}
	closeAndCheckGone(t, box, closed, logs)
}
