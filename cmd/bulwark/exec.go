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

func newExecCmd() *cobra.Command {
	var file, mode string
	cmd := &cobra.Command{
		Use:   "exec -f POLICY [--mode audit|enforce] -- CMD [ARGS...]",
		Short: "Run a command in a fresh cgroup under a policy, printing deviations",
		Long: "Runs CMD in a fresh cgroup armed with the first policy in POLICY, as the agent\n" +
			"arms a workload: CMD itself must match a root process node. Deviations are\n" +
			"printed to stderr as YAML Deviation documents; the exit status is CMD's\n" +
			"(137 when the kernel killed it). Selectors are ignored.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pol, err := firstPolicy(file)
			if err != nil {
				return err
			}
			if mode == "" {
				mode = pol.Spec.Mode
			}
			var m bpf.Mode
			switch mode {
			case policy.ModeAudit, "":
				m, mode = bpf.ModeAudit, policy.ModeAudit
			case policy.ModeEnforce:
				m = bpf.ModeEnforce
			default:
				return fmt.Errorf("--mode %q: want audit or enforce", mode)
			}
			pol.Spec.Mode = mode
			return runExec(cmd.Context(), pol, m, args, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "policy file (YAML or JSON); its first policy is used")
	cmd.Flags().StringVar(&mode, "mode", "", "audit or enforce (default: the policy's mode)")
	cmd.MarkFlagRequired("file")
	return cmd
}

// firstPolicy loads the first policy document of file.
func firstPolicy(file string) (*policy.WorkloadPolicy, error) {
	docs, err := policy.LoadFile(file)
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		if d.Policy != nil {
			return d.Policy, nil
		}
	}
	return nil, fmt.Errorf("%s: no policy document", file)
}

// runExec arms a fresh cgroup with pol, runs argv in it and streams its
// deviations to stderr. It uses its own pin directory and removes every pin,
// link and the cgroup when argv ends, leaving nothing behind.
func runExec(ctx context.Context, pol *policy.WorkloadPolicy, mode bpf.Mode, argv []string, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	users, err := readPasswd("/etc/passwd")
	if err != nil {
		return err
	}
	compiled, err := bpf.Compile(&pol.Spec, users)
	if err != nil {
		return fmt.Errorf("policy %s: %w", pol.Metadata.Name, err)
	}
	for _, w := range compiled.Warnings {
		log.Warn("not enforced", "policy", pol.Metadata.Name, "what", w)
	}
	root, err := cgroup.Mountpoint()
	if err != nil {
		return err
	}
	pid := strconv.Itoa(os.Getpid())
	engine, err := bpf.Open(bpf.Options{PinDir: filepath.Join("/sys/fs/bpf", "bulwark-exec-"+pid), Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := engine.Unpin(); err != nil {
			log.Warn("unpin", "err", err)
		}
		engine.Close()
	}()
	cgPath := filepath.Join(root, "bulwark-exec-"+pid)
	if _, err := cgroup.Create(cgPath); err != nil {
		return err
	}
	defer func() {
		if err := cgroup.Remove(cgPath); err != nil {
			log.Warn("remove cgroup", "err", err)
		}
	}()
	id, err := engine.Apply(cgPath, compiled, mode)
	if err != nil {
		return err
	}
	defer engine.Remove(id)

	evCtx, stopEvents := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		streamDeviations(evCtx, engine, id, pol, users, stderr)
	}()

	child := exec.Command(argv[0], argv[1:]...)
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cgroup.StartIn(child, cgPath); err != nil {
		stopEvents()
		<-done
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			child.Process.Signal(s)
		}
	}()
	waitErr := child.Wait()
	// Let the last events of the run arrive before stopping the reader.
	time.Sleep(100 * time.Millisecond)
	stopEvents()
	<-done
	if waitErr == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) {
		return waitErr
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return &exitStatus{code: 128 + int(ws.Signal()), err: fmt.Errorf("%s: killed by signal %d (%s)", argv[0], int(ws.Signal()), ws.Signal())}
	}
	return &exitStatus{code: ws.ExitStatus(), err: fmt.Errorf("%s: exit status %d", argv[0], ws.ExitStatus())}
}

// streamDeviations writes each deviation of cgroup id as a YAML document.
func streamDeviations(ctx context.Context, e *bpf.Engine, id uint64, pol *policy.WorkloadPolicy, users map[string]uint32, w io.Writer) {
	names := make(map[uint32]string, len(users))
	for n, u := range users {
		if _, dup := names[u]; !dup {
			names[u] = n
		}
	}
	uidName := func(uid uint32) string {
		if n, ok := names[uid]; ok {
			return n
		}
		return strconv.FormatUint(uint64(uid), 10)
	}
	for {
		ev, err := e.ReadEvent(ctx)
		if err != nil {
			return
		}
		if !ev.Deviation || ev.CgroupID != id {
			continue
		}
		d := agent.BuildDeviation(ev, pol, uidName)
		fmt.Fprintln(w, "---")
		policy.Encode(w, policy.FormatYAML, &d)
	}
}

// readPasswd reads the user table policies' euser names resolve against.
func readPasswd(path string) (map[string]uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	defer f.Close()
	return bpf.ParsePasswd(f)
}
