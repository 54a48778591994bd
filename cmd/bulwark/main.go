// Command bulwark is Bulwark's one binary: the node agent, the collector,
// the OCI hook and runc shim, and the kubectl-like policy tools.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "bulwark:", err)
		os.Exit(exitCode(err))
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "bulwark",
		Short:         "Learn how workloads behave, then enforce it in the kernel",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		// Each verb is built by its own new*Cmd function in a file named after it.
		newCreateCmd(), newMergeCmd(), newDiffCmd(), newValidateCmd(),
		newExecCmd(), newAgentCmd(), newStatusCmd(), newApplyCmd(), newDeleteCmd(), newGetCmd(),
		newLearnCmd(), newCollectorCmd(), newInstallCmd(), newUninstallCmd(), newHookFallbackCmd(),
	)
	return root
}

// exitStatus is an error that carries the process exit status to use.
type exitStatus struct {
	code int
	err  error
}

func (e *exitStatus) Error() string { return e.err.Error() }
func (e *exitStatus) Unwrap() error { return e.err }

// exitCode returns the exit status for err: the one it carries, else 1.
func exitCode(err error) int {
	if es, ok := err.(*exitStatus); ok {
		return es.code
	}
	return 1
}
