// Command bulwark-runc is the runc wrapper Docker runs as its "bulwark"
// runtime (bulwark install docker): it adds Bulwark's createRuntime hook
// to the bundle of every `runc create` and `runc run`, then execs the
// real runc with the same arguments; every other call goes to runc at
// once. Docker calls it several times per container, so it is small.
//
// Usage: bulwark-runc [--runc PATH] [--hook PATH] [hook options] -- RUNC-ARGS...
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/bulwarkhq/bulwark/hook"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bulwark-runc:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	own, runcArgs := []string(nil), args
	if i := slices.Index(args, "--"); i >= 0 {
		own, runcArgs = args[:i], args[i+1:]
	}
	fs := flag.NewFlagSet(hook.WrapperBinary, flag.ContinueOnError)
	var o hook.Options
	hook.Flags(fs, &o)
	runc := fs.String("runc", "runc", "the real runc")
	hookBin := fs.String("hook", "", "the "+hook.HookBinary+" executable (default: the one beside this one)")
	if err := fs.Parse(own); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected %q before --", fs.Arg(0))
	}
	if *hookBin == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		*hookBin = filepath.Join(filepath.Dir(self), hook.HookBinary)
	}
	return hook.Wrap(*runc, runcArgs, *hookBin, o)
}
