package main

import (
	"os"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/policy"
)

// memfdScript is a python3 program that copies busybox into a memfd named
// name and executes it as `true` through /proc/self/fd.
func memfdScript(name string) string {
	return `import os
fd = os.memfd_create("` + name + `", 0)
os.write(fd, open("/bin/busybox", "rb").read())
os.execv("/proc/self/fd/%d" % fd, ["true"])`
}

// TestLearnMemfdExec: learn records a memfd exec as memfd:NAME (not "/"),
// and the policy created from it allows that memfd and no other.
func TestLearnMemfdExec(t *testing.T) {
	needLearnTools(t)
	// The system's python, not a version manager's shim script.
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skipf("needs %s: %v", python, err)
	}
	out, stderr, err := runCLI(t, "learn", "--name", "memfd", "--", python, "-c", memfdScript("payload"))
	if err != nil {
		t.Fatalf("learn: %v\n%s", err, stderr)
	}
	docs, err := policy.Load("learn", []byte(out))
	if err != nil || len(docs) != 1 || docs[0].Fingerprint == nil {
		t.Fatalf("learn printed no fingerprint (%v):\n%s", err, out)
	}
	tree := docs[0].Fingerprint.Spec.ProcessPolicy
	if len(tree) != 1 || len(tree[0].Children) != 1 {
		t.Fatalf("want python3 with one child, got %+v", tree)
	}
	if exe := tree[0].Children[0].Exe; len(exe) != 1 || exe[0] != "memfd:payload" {
		t.Fatalf("the memfd exec was recorded with exe %q, want memfd:payload", exe)
	}

	polFile := enforcePolicyFrom(t, out)
	_, stderr, err = runCLI(t, "exec", "-f", polFile, "--", python, "-c", memfdScript("payload"))
	if err != nil || len(deviations(t, stderr)) != 0 {
		t.Fatalf("exec of the learned memfd: %v\n%s", err, stderr)
	}
	_, stderr, err = runCLI(t, "exec", "-f", polFile, "--", python, "-c", memfdScript("other"))
	if st := statusOf(err); st != 137 && st != 126 {
		t.Fatalf("another memfd: status %d (%v), want 137 or 126\n%s", st, err, stderr)
	}
	devs := deviations(t, stderr)
	if len(devs) != 1 || devs[0].Metadata.Event.Exe != "memfd:other" || devs[0].Metadata.Event.Verdict != "blocked" {
		t.Fatalf("want one blocked exec deviation for memfd:other, got:\n%s", stderr)
	}
	if strings.Contains(out, "exe: /\n") {
		t.Fatalf("the fingerprint still names the memfd exe \"/\":\n%s", out)
	}
}
