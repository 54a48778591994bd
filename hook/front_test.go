package hook

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFront builds the C front (front/bulwark-runc-front.c) and checks
// where it sends each runc call: to bulwark-runc beside it for create,
// run and whatever it does not recognise, which would otherwise run
// without Bulwark's hook; to the real runc of bulwark-runc.json (or
// PATH's) for the subcommands that create nothing.
func TestFront(t *testing.T) {
	cc, err := exec.LookPath("clang")
	if err != nil {
		t.Skip("needs clang (test/deps.sh build) to build the front")
	}
	dir := t.TempDir()
	front := filepath.Join(dir, "bulwark-runc-front")
	if out, err := exec.Command(cc, "-O2", "-static", "-Wall", "-Werror", "-o", front, "front/bulwark-runc-front.c").CombinedOutput(); err != nil {
		t.Fatalf("build the front: %v\n%s", err, out)
	}
	log := filepath.Join(dir, "calls")
	script := func(path, name string) {
		t.Helper()
		if err := os.WriteFile(path, []byte("#!/bin/sh\necho \""+name+" $*\" >>"+log+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script(filepath.Join(dir, WrapperBinary), "wrapper")
	script(filepath.Join(dir, "real-runc"), "runc")
	pathDir := t.TempDir()
	script(filepath.Join(pathDir, "runc"), "path-runc")
	cfg := filepath.Join(dir, WrapperBinary+".json")
	call := func(args ...string) string {
		t.Helper()
		os.Remove(log)
		cmd := exec.Command(front, args...)
		cmd.Env = append(os.Environ(), "PATH="+pathDir+":/usr/bin:/bin")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("front %q: %v\n%s", args, err, out)
		}
		got, _ := os.ReadFile(log)
		return strings.TrimSpace(string(got))
	}
	if err := os.WriteFile(cfg, []byte("{\n  \"runc\": \""+filepath.Join(dir, "real-runc")+"\",\n  \"hook\": \"/h\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		to   string
	}{
		{[]string{"--root", "/r", "--log", "/l", "--log-format", "json", "create", "--bundle", "/b", "id"}, "wrapper"},
		{[]string{"--systemd-cgroup", "create", "-b", "/b", "id"}, "wrapper"},
		{[]string{"run", "id"}, "wrapper"},
		{[]string{"--root", "/r", "start", "id"}, "runc"},
		{[]string{"--root=/r", "--log-format=json", "delete", "--force", "id"}, "runc"},
		// A container named "create" is not the create subcommand.
		{[]string{"--root", "/r", "kill", "create", "KILL"}, "runc"},
		{[]string{"--version"}, "runc"},
		// An option it does not know may take a value that hides the
		// subcommand; a subcommand it does not know may create.
		{[]string{"--new-option", "start", "create", "id"}, "wrapper"},
		{[]string{"--new-option=x", "start", "id"}, "wrapper"},
		{[]string{"restore", "id"}, "wrapper"},
		// The old runtimeArgs: bulwark-runc refuses them.
		{[]string{"--runc", "/r", "--", "start", "id"}, "wrapper"},
	} {
		if got, want := call(tc.args...), tc.to+" "+strings.Join(tc.args, " "); got != want {
			t.Errorf("front %q ran %q, want %q", tc.args, got, want)
		}
	}
	// A "runc" that is not a plain string goes to bulwark-runc, which
	// decodes the file; no file means runc from PATH.
	if err := os.WriteFile(cfg, []byte(`{"runc": "/opt/\u0072unc"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := call("start", "id"); got != "wrapper start id" {
		t.Errorf("escaped runc: ran %q, want bulwark-runc", got)
	}
	os.Remove(cfg)
	if got := call("start", "id"); got != "path-runc start id" {
		t.Errorf("no settings file: ran %q, want runc from PATH", got)
	}
}
