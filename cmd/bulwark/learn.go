package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/bpf"
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
	users, err := agent.ReadUsers("/")
	if err != nil {
		return err
	}
	box, err := openSandbox("learn", nil, bpf.ModeObserve, log)
	if err != nil {
		return err
	}
	defer box.close()

	host, _ := os.Hostname()
	fb := agent.NewFingerprintBuilder(policy.Identity{Type: policy.TypeLinuxService, ServiceName: name, Hostname: host}, users)
	child := exec.Command(argv[0], argv[1:]...)
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, stderr, stderr
	// Processes CMD leaves behind may hold a copied output open: stop
	// copying soon after CMD exits instead of waiting for them.
	child.WaitDelay = time.Second
	if err := box.start(ctx, child, func(ev bpf.Event) { fb.Observe(ev) }); err != nil {
		return err
	}
	status, complete := box.wait(learnQuiet)
	if !complete {
		log.Warn("kernel event reader stopped before the command exited; the fingerprint is incomplete")
	}
	if lost, err := box.engine.Lost(); err == nil && lost > 0 {
		log.Warn("the kernel dropped events (ring buffer full); the fingerprint is incomplete", "lost", lost)
	}
	if err := policy.Encode(stdout, format, fb.Fingerprint()); err != nil {
		return err
	}
	return status
}
