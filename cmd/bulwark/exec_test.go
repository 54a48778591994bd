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

// execApplets skips without root or busybox, else returns busybox's path
// and a directory of links to it named as the applets.
func execApplets(t *testing.T, applets ...string) (box, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF programs and creates cgroups")
	}
	box, err := filepath.EvalSymlinks("/bin/busybox")
	if err != nil {
		t.Skipf("needs /bin/busybox: %v", err)
	}
	dir = t.TempDir()
	for _, a := range applets {
		if err := os.Symlink(box, filepath.Join(dir, a)); err != nil {
			t.Fatal(err)
		}
	}
	return box, dir
}

func TestExecRunsUnderPolicy(t *testing.T) {
	box, dir := execApplets(t, "sh", "touch", "cat")
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
	err := runExec(context.Background(), pol, bpf.ModeEnforce, []string{dir + "/sh", "-c", script}, &stderr)
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

// TestExecSummaryCountsRepeats: an audited run execs a binary outside the
// policy 50 times. The deviation is printed once and the summary counts 50
// occurrences (the kernel reported the first, counted the rest).
func TestExecSummaryCountsRepeats(t *testing.T) {
	box, dir := execApplets(t, "sh", "cat")
	pol := &policy.WorkloadPolicy{
		Metadata: policy.Metadata{Name: "demo", Type: policy.TypeLinuxService},
		Spec: policy.Spec{Mode: policy.ModeAudit, ProcessPolicy: []policy.ProcessNode{{
			Name: "sh", Exe: []string{box}, ID: "sh_0", Euser: []string{"root"},
		}}},
	}
	script := "i=0; while [ $i -lt 50 ]; do " + dir + "/cat /dev/null; i=$((i+1)); done"
	var stderr bytes.Buffer
	if err := runExec(context.Background(), pol, bpf.ModeAudit, []string{dir + "/sh", "-c", script}, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	docs, err := policy.Load("stderr", stderr.Bytes())
	if err != nil || len(docs) != 1 || docs[0].Deviation == nil {
		t.Fatalf("want one deviation document (%v):\n%s", err, stderr.String())
	}
	want := "# bulwark exec: 1 deviations, 50 occurrences\n#   50 × exec " + box + " (cat)\n"
	if !strings.HasSuffix(stderr.String(), want) {
		t.Fatalf("summary missing, want %q at the end:\n%s", want, stderr.String())
	}
	if strings.Contains(stderr.String(), "lost") {
		t.Fatalf("losses reported:\n%s", stderr.String())
	}
}

// TestExecReportWarnsOfLosses: the first poll that sees the workload's
// loss counters grow prints a warning, once per increase, and the summary
// repeats the totals.
func TestExecReportWarnsOfLosses(t *testing.T) {
	var out bytes.Buffer
	rep := newExecReport(&policy.WorkloadPolicy{}, nil, &out)
	rep.noteLosses(bpf.Losses{})
	if out.Len() != 0 {
		t.Fatalf("warning without losses: %q", out.String())
	}
	rep.noteLosses(bpf.Losses{Events: 12, Unaggregated: 3})
	rep.noteLosses(bpf.Losses{Events: 12, Unaggregated: 3})
	rep.noteLosses(bpf.Losses{Events: 20, Unaggregated: 3, DNS: 2})
	rep.summary()
	want := "# warning: the kernel lost 12 events (ring buffer full); deviations may be missing details\n" +
		"# warning: 3 deviations reported one by one (aggregation table full)\n" +
		"# warning: the kernel lost 8 events (ring buffer full); deviations may be missing details\n" +
		"# warning: 2 DNS answers not parsed in the kernel; they allowed no dnsSelector peer\n" +
		"# bulwark exec: 0 deviations, 0 occurrences\n" +
		"# bulwark exec: lost 20 events, 3 deviations not aggregated, 2 DNS answers not parsed\n"
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
