// Command bulwark-runc is the runc wrapper Docker runs as its "bulwark"
// runtime (bulwark install docker): it adds Bulwark's createRuntime hook
// to the bundle of every `runc create` and `runc run`, then execs the
// real runc with the same arguments; every other call goes to runc at
// once. Docker calls it several times per container, so it is small, and
// all its arguments are runc's: its settings are in bulwark-runc.json
// beside it (wrapper.File).
//
// Usage: bulwark-runc RUNC-ARGS...
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bulwarkhq/bulwark/hook"
	"github.com/bulwarkhq/bulwark/hook/wrapper"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bulwark-runc:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "--runc" {
		// runc has no such option: daemon.json still passes the
		// wrapper's settings as runtimeArgs.
		return errors.New("settings given as arguments (runtimeArgs of an older `bulwark install docker`): run `bulwark install docker` again, which writes them to " + wrapper.File)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	c, err := wrapper.Read(filepath.Join(filepath.Dir(self), wrapper.File))
	if err != nil {
		return err
	}
	return hook.Wrap(c.Runc, args, c.Hook, c.Options)
}
