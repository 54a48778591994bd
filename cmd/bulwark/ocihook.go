package main

import (
	"flag"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/hook"
	"github.com/bulwarkhq/bulwark/hook/createruntime"
)

// hookFlags adds the OCI hook's settings (hook.Flags) to fs, for the
// install commands that write the hook into a runtime's configuration.
func hookFlags(fs *pflag.FlagSet, o *hook.Options) {
	g := flag.NewFlagSet("hook", flag.ContinueOnError)
	hook.Flags(g, o)
	fs.AddGoFlagSet(g)
	fs.Lookup("bulwark").Usage = "the bulwark executable, with " + hook.WrapperBinary + " and " + hook.HookBinary + " beside it (default: this one)"
}

// resolveHook completes o for an install command: the bulwark
// executable is this one unless --bulwark names another, and it and
// bulwark-oci-hook beside it, which it returns, must be executables.
func resolveHook(cmd *cobra.Command, o *hook.Options) (string, error) {
	if !cmd.Flags().Changed("bulwark") {
		self, err := os.Executable()
		if err != nil {
			return "", err
		}
		o.Bulwark = self
	}
	bin := filepath.Join(filepath.Dir(o.Bulwark), hook.HookBinary)
	for _, p := range []string{o.Bulwark, bin} {
		if err := isExecutable(p); err != nil {
			return "", err
		}
	}
	return bin, nil
}

func newHookFallbackCmd() *cobra.Command {
	var policyDir, dockerHost string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   hook.FallbackVerb,
		Short: "The OCI hook's decision when the agent cannot be reached (run by " + hook.HookBinary + ")",
		Long: hook.HookBinary + " runs it, with the OCI state on stdin, when the agent cannot be reached:\n" +
			"it fails (and runc fails the container) when an enforce-mode policy in the policy\n" +
			"directory selects the container, or could when its identity cannot be learned, and\n" +
			"lets any other container start unguarded, saying so.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := createruntime.ReadState(os.Stdin)
			if err != nil {
				return err
			}
			return agent.HookFallback(st, policyDir, dockerHost, timeout, os.Stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&policyDir, "policy-dir", "/etc/bulwark/policies", "the agent's policy directory")
	f.StringVar(&dockerHost, "docker-host", "", "Docker Engine API (default: Docker's)")
	f.DurationVar(&timeout, "timeout", time.Second, "how long to wait for Docker's container list")
	return cmd
}

// besideSelf returns the bulwark executable (this one) and the path of
// name, one of the small executables installed beside it
// (hook.HookBinary, hook.WrapperBinary), which must be there.
func besideSelf(name string) (self, path string, err error) {
	self, err = os.Executable()
	if err != nil {
		return "", "", err
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		return "", "", err
	}
	path = filepath.Join(filepath.Dir(self), name)
	return self, path, isExecutable(path)
}
