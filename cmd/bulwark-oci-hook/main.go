// Command bulwark-oci-hook is Bulwark's OCI createRuntime hook, which
// runc runs inside `runc create` for every container the runc wrapper or
// the NRI plugin gave it: it reads the container's state on stdin and
// waits for the agent to arm the container, failing (so runc fails the
// container) when the agent refuses it. When the agent cannot be reached
// it hands over to `bulwark hook-fallback`, which decides from the policy
// directory. It runs for every container, so it is small.
//
// Usage: bulwark-oci-hook createRuntime [hook options]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/bulwarkhq/bulwark/hook"
	"github.com/bulwarkhq/bulwark/hook/createruntime"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bulwark-oci-hook:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || args[0] != hook.StageCreateRuntime {
		return fmt.Errorf("usage: %s %s [options]: the first argument is the hook's stage", hook.HookBinary, hook.StageCreateRuntime)
	}
	fs := flag.NewFlagSet(hook.HookBinary, flag.ContinueOnError)
	var o hook.Options
	hook.Flags(fs, &o)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	err := createruntime.Run(os.Stdin, o)
	var unreached *createruntime.Unreached
	if errors.As(err, &unreached) {
		fmt.Fprintln(os.Stderr, "bulwark-oci-hook:", err)
		return createruntime.Fallback(unreached, o)
	}
	return err
}
