// Package hook brings Bulwark to runtimes whose containers never reach
// NRI (Docker) or where a failed NRI start is ignored (CRI-O): a runc
// wrapper adds Bulwark's OCI hook to each container's bundle, and the
// createRuntime hook, run by runc once the container's cgroup and init
// process exist and before anything of the image runs, has the agent arm
// the container and fails the container when it must not run unguarded.
//
// Both run as small executables of their own (cmd/bulwark-runc and
// cmd/bulwark-oci-hook, whose agent call is package createruntime),
// started for every runc call and every container: this package imports
// nothing heavier than the runtime-spec types, so they start in a few
// milliseconds. Docker runs the wrapper through a static C front
// (front/bulwark-runc-front.c) when it is installed, which sends every
// call but create and run straight to runc. What needs the policies (the
// hook's decision when the agent cannot be reached) runs in the bulwark
// binary instead.
package hook

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The executables of the hook and the runc wrapper, the wrapper's C
// front (built by make build from front/, optional: Docker runs it as its
// runtime when it is installed, and it passes every runc call but create
// and run straight to runc), and the verb of the bulwark binary that
// decides for the hook when the agent is away. They are installed side by
// side.
const (
	HookBinary    = "bulwark-oci-hook"
	WrapperBinary = "bulwark-runc"
	FrontBinary   = "bulwark-runc-front"
	FallbackVerb  = "hook-fallback"
)

// DefaultTimeout bounds the hook's wait for the agent, and
// FallbackTimeout what the fallback has to decide after it (Docker's
// container list).
const (
	DefaultTimeout  = 5 * time.Second
	FallbackTimeout = time.Second
)

// Options are the hook's settings, which the wrapper passes to every hook
// it adds.
type Options struct {
	// Socket is the agent's API socket.
	Socket string
	// PolicyDir is the agent's policy directory, read when the agent
	// cannot be reached.
	PolicyDir string
	// DockerHost is the Docker Engine API ("" for Docker's default).
	DockerHost string
	// Timeout bounds the hook's wait for the agent; runc kills a hook
	// still running a little after it.
	Timeout time.Duration
	// Bulwark is the bulwark executable, whose hook-fallback verb
	// decides when the agent cannot be reached.
	Bulwark string
}

// DefaultOptions are the hook's settings when nothing sets them.
func DefaultOptions() Options {
	return Options{Socket: "/run/bulwark/agent.sock", PolicyDir: "/etc/bulwark/policies", Timeout: DefaultTimeout,
		Bulwark: "/usr/bin/bulwark"}
}

// Flags adds the hook's settings to fs (the hook's and the install
// commands' flags), DefaultOptions their defaults.
func Flags(fs *flag.FlagSet, o *Options) {
	d := DefaultOptions()
	fs.StringVar(&o.Socket, "socket", d.Socket, "agent API socket")
	fs.StringVar(&o.PolicyDir, "policy-dir", d.PolicyDir, "the agent's policy directory, read when the agent cannot be reached")
	fs.StringVar(&o.DockerHost, "docker-host", d.DockerHost, "Docker Engine API (default: Docker's)")
	fs.DurationVar(&o.Timeout, "timeout", d.Timeout, "how long the hook waits for the agent to arm a container")
	fs.StringVar(&o.Bulwark, "bulwark", d.Bulwark, "the bulwark executable, which decides when the agent cannot be reached")
}

// StageCreateRuntime names the hook's stage, its first argument. It is
// the only one: the agent learns that a container ended from the runtime
// (NRI, Docker's events), so no poststop hook slows its removal.
const StageCreateRuntime = "createRuntime"

// Hook returns the createRuntime hook that runs binary (bulwark-oci-hook)
// with o.
func Hook(binary string, o Options) specs.Hook {
	// runc kills a hook that outlives its timeout (whole seconds); the
	// hook gives up on the agent before then and decides alone.
	kill := int((o.Timeout+FallbackTimeout)/time.Second) + 2
	args := []string{HookBinary, StageCreateRuntime,
		"--socket", o.Socket, "--policy-dir", o.PolicyDir, "--timeout", o.Timeout.String(), "--bulwark", o.Bulwark}
	if o.DockerHost != "" {
		args = append(args, "--docker-host", o.DockerHost)
	}
	return specs.Hook{Path: binary, Args: args, Timeout: &kill}
}

// IsBulwarkHook reports whether h runs Bulwark's OCI hook.
func IsBulwarkHook(h specs.Hook) bool {
	return filepath.Base(h.Path) == HookBinary || (len(h.Args) > 0 && h.Args[0] == HookBinary)
}

// AddHook adds Bulwark's hook to the bundle's config.json, unless it
// already holds it (a second wrapper, or NRI's hook injection), and
// writes it back atomically. Only "hooks" is decoded and rewritten: every
// other key keeps its value, including any a newer runtime-spec defines.
func AddHook(bundle, binary string, o Options) error {
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var hooks specs.Hooks
	if raw, ok := doc["hooks"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &hooks); err != nil {
			return fmt.Errorf("%s: hooks: %w", path, err)
		}
	}
	for _, h := range hooks.CreateRuntime {
		if IsBulwarkHook(h) {
			return nil
		}
	}
	hooks.CreateRuntime = append(hooks.CreateRuntime, Hook(binary, o))
	raw, err := json.Marshal(hooks)
	if err != nil {
		return err
	}
	doc["hooks"] = raw
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return writeAtomic(path, out)
}

// writeAtomic replaces path with data through a file renamed over it, so
// runc reads either the old config or the new one, never a part.
func writeAtomic(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp := path + ".bulwark-" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, data, fi.Mode().Perm()); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// RootfsOf returns the absolute root filesystem path of the bundle's
// config.json (root.path, relative to the bundle when not absolute), with
// symlinks resolved as runc resolves them.
func RootfsOf(bundle string) (string, error) {
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var spec struct {
		Root *specs.Root `json:"root"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return "", fmt.Errorf("%s: no root.path", path)
	}
	root := spec.Root.Path
	if !filepath.IsAbs(root) {
		root = filepath.Join(bundle, root)
	}
	return filepath.EvalSymlinks(root)
}
