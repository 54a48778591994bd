package main

import (
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/hook"
)

// defaultHookTimeout bounds the OCI hook's wait for the agent.
const defaultHookTimeout = 5 * time.Second

// hookFlags adds the OCI hook's settings to fs.
func hookFlags(fs *pflag.FlagSet, o *hook.Options) {
	fs.StringVar(&o.Socket, "socket", agent.DefaultSocket, "agent API socket")
	fs.StringVar(&o.PolicyDir, "policy-dir", "/etc/bulwark/policies", "the agent's policy directory, read when the agent cannot be reached")
	fs.StringVar(&o.DockerHost, "docker-host", "", "Docker Engine API (default: Docker's)")
	fs.DurationVar(&o.Timeout, "timeout", defaultHookTimeout, "how long the hook waits for the agent to arm a container")
}

func newRuncCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "runc [--runc PATH] [hook options] -- RUNC-ARGS...",
		Short: "Run runc, adding Bulwark's OCI hook to each container created (a Docker runtime)",
		Long: "Registered as a Docker runtime (bulwark install docker), it adds Bulwark's createRuntime\n" +
			"hook to the bundle of every `runc create` and then execs the real runc with\n" +
			"the same arguments; other subcommands go straight to runc. Options before `--` are\n" +
			"Bulwark's (--runc, --socket, --policy-dir, --docker-host, --timeout); without `--` every\n" +
			"argument is runc's.",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			own, runcArgs := []string(nil), args
			if i := slices.Index(args, "--"); i >= 0 {
				own, runcArgs = args[:i], args[i+1:]
			}
			fs := pflag.NewFlagSet("runc", pflag.ContinueOnError)
			var o hook.Options
			hookFlags(fs, &o)
			runc := fs.String("runc", "runc", "the real runc")
			if err := fs.Parse(own); err != nil {
				return fmt.Errorf("bulwark runc: %w", err)
			}
			if fs.NArg() > 0 {
				return fmt.Errorf("bulwark runc: unexpected %q before --", fs.Arg(0))
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			return hook.Wrap(*runc, runcArgs, self, o)
		},
	}
}

func newOCIHookCmd() *cobra.Command {
	var o hook.Options
	cmd := &cobra.Command{
		Use:   "oci-hook createRuntime",
		Short: "The OCI hook runc runs: has the agent arm a container before it runs",
		Long: "createRuntime reads the OCI state on stdin and waits for the agent to arm the container;\n" +
			"it fails (and runc fails the container) when the agent refuses it, or when the agent\n" +
			"cannot be reached and an enforce-mode policy selects it.",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{hook.StageCreateRuntime},
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != hook.StageCreateRuntime {
				return fmt.Errorf("unknown hook stage %q (want %s)", args[0], hook.StageCreateRuntime)
			}
			return hook.CreateRuntime(os.Stdin, o, os.Stderr)
		},
	}
	hookFlags(cmd.Flags(), &o)
	return cmd
}
