package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/cgroup"
)

// sandbox is a fresh cgroup armed by a BPF engine of its own, in which
// `bulwark exec` and `bulwark learn` run one command and read what the
// kernel reports about it. Its cgroup and its pins are named
// bulwark-VERB-PID and nothing of it outlives close.
type sandbox struct {
	log    *slog.Logger
	engine *bpf.Engine
	cgPath string // the cgroup directory, once created
	id     uint64 // the cgroup's id (events carry it), once armed

	// Set by start for wait.
	child      *exec.Cmd
	sigs       chan os.Signal
	stopEvents context.CancelFunc
	eventsDone chan struct{} // closed when the event reader has stopped
}

// openSandbox opens a BPF engine pinned in its own directory under
// /sys/fs/bpf, creates a cgroup under the cgroup v2 root and arms it with
// c in mode (c may be nil only for bpf.ModeObserve). Whatever it made is
// undone when it fails.
func openSandbox(verb string, c *bpf.Compiled, mode bpf.Mode, log *slog.Logger) (*sandbox, error) {
	root, err := cgroup.Mountpoint()
	if err != nil {
		return nil, err
	}
	name := "bulwark-" + verb + "-" + strconv.Itoa(os.Getpid())
	engine, err := bpf.Open(bpf.Options{PinDir: filepath.Join("/sys/fs/bpf", name), Logger: log})
	if err != nil {
		return nil, err
	}
	s := &sandbox{log: log, engine: engine}
	cgPath := filepath.Join(root, name)
	if _, err := cgroup.Create(cgPath); err != nil {
		s.close()
		return nil, err
	}
	s.cgPath = cgPath
	if s.id, err = engine.Apply(cgPath, c, mode); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// close disarms the cgroup, removes it (killing what is left in it),
// removes every pin and closes the engine. Failures are logged.
func (s *sandbox) close() {
	if s.id != 0 {
		if err := s.engine.Remove(s.id); err != nil {
			s.log.Warn("disarm", "err", err)
		}
	}
	if s.cgPath != "" {
		if err := cgroup.Remove(s.cgPath); err != nil {
			s.log.Warn("remove cgroup", "err", err)
		}
	}
	if err := s.engine.Unpin(); err != nil {
		s.log.Warn("unpin", "err", err)
	}
	s.engine.Close()
}

// start starts a reader that passes each kernel event of the sandbox's
// cgroup to observe, from one goroutine, until wait stops it or ctx ends;
// then it starts child inside the cgroup, so the kernel sees child from
// its first instruction. From then until wait returns, SIGINT, SIGTERM and
// SIGHUP are forwarded to child. Call wait after a nil return.
func (s *sandbox) start(ctx context.Context, child *exec.Cmd, observe func(bpf.Event)) error {
	evCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ev, err := s.engine.ReadEvent(evCtx)
			if err != nil {
				return
			}
			if ev.CgroupID == s.id {
				observe(ev)
			}
		}
	}()
	if err := cgroup.StartIn(child, s.cgPath); err != nil {
		stop()
		<-done
		return err
	}
	s.child, s.stopEvents, s.eventsDone = child, stop, done
	s.sigs = make(chan os.Signal, 1)
	signal.Notify(s.sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	return nil
}

// wait waits for the child start started to exit, then for quiet more (the
// kernel queued the child's events before its system calls returned, so
// the ring buffer only has to be drained), and stops the event reader.
// It returns the child's status as childStatus makes it, and complete:
// false when the reader stopped before the child exited, so observe did not
// see every event.
func (s *sandbox) wait(quiet time.Duration) (status error, complete bool) {
	defer signal.Stop(s.sigs)
	exited := make(chan error, 1)
	go func() { exited <- s.child.Wait() }()
	complete = true
	events := s.eventsDone
	var waitErr error
running:
	for {
		select {
		case sig := <-s.sigs:
			s.child.Process.Signal(sig)
		case <-events:
			complete, events = false, nil
		case waitErr = <-exited:
			break running
		}
	}
	select {
	case <-time.After(quiet):
	case <-s.eventsDone:
	}
	s.stopEvents()
	<-s.eventsDone
	return childStatus(s.child.Args[0], waitErr), complete
}

// childStatus turns what Wait returned into the error bulwark exits with:
// nil, or an exitStatus carrying the child's status (128+signal when killed).
func childStatus(name string, waitErr error) error {
	if waitErr == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) {
		return waitErr
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return &exitStatus{code: 128 + int(ws.Signal()), err: fmt.Errorf("%s: killed by signal %d (%s)", name, int(ws.Signal()), ws.Signal())}
	}
	return &exitStatus{code: ws.ExitStatus(), err: fmt.Errorf("%s: exit status %d", name, ws.ExitStatus())}
}
