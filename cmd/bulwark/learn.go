package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/policy"
)

func newLearnCmd() *cobra.Command {
	var output, name string
	cmd := &cobra.Command{
		Use:   "learn [-o yaml|json] [--name NAME] -- CMD [ARGS...]",
		Short: "Run a command in a fresh cgroup and print the fingerprint of what it did",
		Long: "Runs CMD in a fresh cgroup that the kernel observes from CMD's first\n" +
			"instruction, with everything it starts, and when CMD exits prints its\n" +
			"fingerprint (a linux-service SpyderbatFingerprint named NAME, by default\n" +
			"CMD's base name): the processes it ran, the connections it made and\n" +
			"accepted. `bulwark create policy -f` turns it into a policy that\n" +
			"`bulwark exec -f` of the same CMD runs under without deviations.\n" +
			"CMD's standard output goes to standard error, so standard output holds\n" +
			"only the fingerprint; processes CMD leaves behind are killed. The exit\n" +
			"status is CMD's.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != policy.FormatYAML && output != policy.FormatJSON {
				return fmt.Errorf("-o %q: want %s or %s", output, policy.FormatYAML, policy.FormatJSON)
			}
			if name == "" {
				name = filepath.Base(args[0])
			}
			return runLearn(cmd.Context(), name, args, cmd.OutOrStdout(), cmd.ErrOrStderr(), output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", policy.FormatYAML, "output format: yaml or json")
	cmd.Flags().StringVar(&name, "name", "", "the workload's name (default: CMD's base name)")
	return cmd
}

// learnQuiet is how long learn keeps reading events after CMD exits: the
// kernel queued CMD's events before its system calls returned, so the ring
// buffer only has to be drained.
const learnQuiet = 250 * time.Millisecond

// runLearn runs argv in a fresh cgroup armed in observe mode, feeds the
// kernel's observations of it to a fingerprint builder and writes the
// fingerprint to stdout when argv exits. Like runExec it uses its own pin
// directory and cgroup and removes both.
func runLearn(ctx context.Context, name string, argv []string, stdout, stderr io.Writer, format string) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	users, err := readPasswd("/etc/passwd")
	if err != nil {
		return err
	}
	root, err := cgroup.Mountpoint()
	if err != nil {
		return err
	}
	pid := strconv.Itoa(os.Getpid())
	engine, err := bpf.Open(bpf.Options{PinDir: filepath.Join("/sys/fs/bpf", "bulwark-learn-"+pid), Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := engine.Unpin(); err != nil {
			log.Warn("unpin", "err", err)
		}
		engine.Close()
	}()
	cgPath := filepath.Join(root, "bulwark-learn-"+pid)
	if _, err := cgroup.Create(cgPath); err != nil {
		return err
	}
	defer func() {
		if err := cgroup.Remove(cgPath); err != nil {
			log.Warn("remove cgroup", "err", err)
		}
	}()
	id, err := engine.Apply(cgPath, nil, bpf.ModeObserve)
	if err != nil {
		return err
	}
	defer engine.Remove(id)

	host, _ := os.Hostname()
	fb := agent.NewFingerprintBuilder(policy.Identity{Type: policy.TypeLinuxService, ServiceName: name, Hostname: host}, users)
	evCtx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	events := make(chan bpf.Event, 256)
	go func() {
		defer close(events)
		for {
			ev, err := engine.ReadEvent(evCtx)
			if err != nil {
				return
			}
			if ev.CgroupID == id {
				events <- ev
			}
		}
	}()

	child := exec.Command(argv[0], argv[1:]...)
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, stderr, stderr
	// Processes CMD leaves behind may hold a copied output open: stop
	// copying soon after CMD exits instead of waiting for them.
	child.WaitDelay = time.Second
	if err := cgroup.StartIn(child, cgPath); err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()

	var waitErr error
	var drained <-chan time.Time // fires learnQuiet after CMD exits
	for events != nil || exited != nil {
		select {
		case s := <-sigs:
			child.Process.Signal(s)
		case waitErr = <-exited:
			exited = nil
			drained = time.After(learnQuiet)
		case ev, ok := <-events:
			if !ok {
				events = nil
				if exited != nil {
					log.Warn("kernel event reader stopped before the command exited; the fingerprint is incomplete")
				}
				continue
			}
			fb.Observe(ev)
		case <-drained:
			stopEvents() // the reader closes events once it has stopped
		}
	}
	if lost, err := engine.Lost(); err == nil && lost > 0 {
		log.Warn("the kernel dropped events (ring buffer full); the fingerprint is incomplete", "lost", lost)
	}
	if err := policy.Encode(stdout, format, fb.Fingerprint()); err != nil {
		return err
	}
	return childStatus(argv[0], waitErr)
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
