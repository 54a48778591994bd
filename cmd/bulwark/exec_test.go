package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/policy"
)

func TestExecRunsUnderPolicy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF programs and creates cgroups")
	}
	box, err := filepath.EvalSymlinks("/bin/busybox")
	if err != nil {
		t.Skipf("needs /bin/busybox: %v", err)
	}
	dir := t.TempDir()
	for _, a := range []string{"sh", "touch", "cat"} {
		if err := os.Symlink(box, filepath.Join(dir, a)); err != nil {
			t.Fatal(err)
		}
	}
	pol := &policy.WorkloadPolicy{
		Metadata: policy.Metadata{Name: "demo", Type: policy.TypeLinuxService},
		Spec: policy.Spec{Mode: policy.ModeEnforce, ProcessPolicy: []policy.ProcessNode{{
			Name: "sh", Exe: []string{box}, ID: "sh_0", Euser: []string{"root"},
			Children: []policy.ProcessNode{{Name: "touch", Exe: []string{box}, ID: "touch_0"}},
		}}},
	}
	f := filepath.Join(dir, "f")
	script := dir + "/touch " + f + "; " + dir + "/cat /dev/null; exit 3"
	var stderr bytes.Buffer
	err = runExec(context.Background(), pol, bpf.ModeEnforce, []string{dir + "/sh", "-c", script}, &stderr)
	var es *exitStatus
	if !errors.As(err, &es) || es.code != 3 {
		t.Fatalf("err %v, want exit status 3; stderr:\n%s", err, stderr.String())
	}
	if _, err := os.Stat(f); err != nil {
		t.Fatalf("allowed touch did not run: %v", err)
	}
	docs, err := policy.Load("stderr", stderr.Bytes())
	if err != nil {
		t.Fatalf("stderr is not YAML deviations: %v\n%s", err, stderr.String())
	}
	if len(docs) != 1 || docs[0].Deviation == nil {
		t.Fatalf("want one deviation, got %d documents:\n%s", len(docs), stderr.String())
	}
	d := docs[0].Deviation
	if d.Metadata.Event.Comm != "cat" || d.Metadata.Event.Verdict != "blocked" || !strings.Contains(stderr.String(), "policyNode") {
		t.Fatalf("deviation %+v", d.Metadata.Event)
	}
}
