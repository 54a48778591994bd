package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/bpf"
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

// execQuiet is how long exec keeps printing deviations after CMD exits,
// for the last events of the run to arrive.
const execQuiet = 100 * time.Millisecond

// runExec arms a fresh cgroup with pol, runs argv in it and streams its
// deviations to stderr. It uses its own pin directory and removes every pin,
// link and the cgroup when argv ends, leaving nothing behind.
func runExec(ctx context.Context, pol *policy.WorkloadPolicy, mode bpf.Mode, argv []string, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	users, err := agent.ReadUsers("/")
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
	box, err := openSandbox("exec", compiled, mode, log)
	if err != nil {
		return err
	}
	defer box.close()
	child := exec.Command(argv[0], argv[1:]...)
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := box.start(ctx, child, printDeviations(pol, users, stderr)); err != nil {
		return err
	}
	status, _ := box.wait(execQuiet)
	return status
}

// printDeviations returns a sandbox observer that writes each deviation
// event as a YAML Deviation document to w.
func printDeviations(pol *policy.WorkloadPolicy, users map[string]uint32, w io.Writer) func(bpf.Event) {
	uidName := agent.UserNames(users)
	return func(ev bpf.Event) {
		if !ev.Deviation {
			return
		}
		d := agent.BuildDeviation(ev, pol, uidName)
		fmt.Fprintln(w, "---")
		policy.Encode(w, policy.FormatYAML, &d)
	}
}
