package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// agentArgs are the arguments of an agent that needs no runtime, collector,
// cluster or systemd, pinned under its own bpffs directory (removed when
// the test ends).
func agentArgs(t *testing.T, dir, socket, name string) []string {
	t.Helper()
	pins := filepath.Join("/sys/fs/bpf", "bulwark-agent-test-"+strconv.Itoa(os.Getpid())+"-"+name)
	t.Cleanup(func() {
		if err := os.RemoveAll(pins); err != nil {
			t.Errorf("remove pins: %v", err)
		}
	})
	return []string{"agent", "--no-nri", "--docker=false", "--no-collector", "--services=false", "--kubeconfig", "",
		"--socket", socket, "--policy-dir", filepath.Join(dir, "policies"), "--pin-dir", pins}
}

// TestAgentExitStatus checks that an agent that cannot run fails with the
// reason (here: another agent serves its socket), and that an agent asked
// to stop exits cleanly.
func TestAgentExitStatus(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF programs")
	}
	dir := t.TempDir()
	socket := filepath.Join(dir, "agent.sock")

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	first := newRootCmd()
	var logs bytes.Buffer
	first.SetOut(&logs)
	first.SetErr(&logs)
	first.SetArgs(agentArgs(t, dir, socket, "first"))
	done := make(chan error, 1)
	go func() { done <- first.ExecuteContext(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", socket)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the first agent stopped: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first agent never served %s: %v", socket, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	_, _, err := runCLI(t, agentArgs(t, dir, socket, "second")...)
	if err == nil || !strings.Contains(err.Error(), "another process is serving it") {
		t.Errorf("second agent on the same socket: err = %v, want it refused", err)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the first agent, asked to stop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first agent did not stop")
	}
	if _, err := os.Lstat(socket); !os.IsNotExist(err) {
		t.Errorf("the agent left its socket behind: %v", err)
	}
}
