package hook

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// runcValueFlags are runc's global options that take a value as the next
// argument; the subcommand is the first argument that is not an option.
var runcValueFlags = map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}

// ParseRuncArgs returns the runc subcommand of args ("" when none) and,
// for create and run, the bundle directory (--bundle or -b, else the
// working directory, as runc defaults).
func ParseRuncArgs(args []string) (sub, bundle string) {
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			break
		}
		if runcValueFlags[a] {
			i++
		}
	}
	if i >= len(args) {
		return "", ""
	}
	sub = args[i]
	if sub != "create" && sub != "run" {
		return sub, ""
	}
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		switch {
		case a == "--":
			j = len(rest)
		case a == "--bundle" || a == "-b":
			if j+1 < len(rest) {
				bundle = rest[j+1]
			}
			j++
		case strings.HasPrefix(a, "--bundle="):
			bundle = strings.TrimPrefix(a, "--bundle=")
		case strings.HasPrefix(a, "-b="):
			bundle = strings.TrimPrefix(a, "-b=")
		}
	}
	if bundle == "" {
		bundle = "."
	}
	return sub, bundle
}

// Wrap runs runc with args, as the runtime that called the wrapper asked,
// after adding Bulwark's hook (bulwark-oci-hook at binary, with o) to the
// bundle of a create or run. It replaces the process with runc, so runc's exit status,
// output and signals reach the caller unchanged. A bundle that cannot be
// given the hook fails the command: the container would run unguarded.
func Wrap(runc string, args []string, binary string, o Options) error {
	path, err := exec.LookPath(runc)
	if err != nil {
		return fmt.Errorf("runc: %w", err)
	}
	if sub, bundle := ParseRuncArgs(args); bundle != "" {
		if err := AddHook(bundle, binary, o); err != nil {
			return fmt.Errorf("runc %s: add Bulwark's hook: %w", sub, err)
		}
	}
	return syscall.Exec(path, append([]string{runc}, args...), os.Environ())
}
