package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goldenDir holds the policy package's merge cases, used here as fixtures.
const goldenDir = "../../policy/testdata/merge"

// run executes the bulwark command line in-process and returns its
// standard output and the error.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, _, err := runCLI(t, args...)
	return out, err
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCreatePolicySeedStory(t *testing.T) {
	out, err := run(t, "create", "policy", "-f", filepath.Join(goldenDir, "seed-story/fingerprints.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := readFile(t, filepath.Join(goldenDir, "seed-story/want.yaml")); out != want {
		t.Errorf("create policy printed:\n%s\nwant:\n%s", out, want)
	}
}

func TestCreatePolicyFlags(t *testing.T) {
	dir := t.TempDir()
	// The seed's three fingerprints, one per file, given as -f plus
	// arguments.
	docs := strings.Split(readFile(t, filepath.Join(goldenDir, "seed-story/fingerprints.yaml")), "---\n")
	var files []string
	for i, d := range docs {
		files = append(files, writeFile(t, dir, "fp"+string(rune('a'+i))+".yaml", d))
	}
	args := append([]string{"create", "policy", "--name", "web", "--mode", "enforce", "--include-imageid", "-o", "json", "-f"}, files...)
	out, err := run(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"name": "web"`, `"mode": "enforce"`, `"imageID": "sha256:10d1f5b5`, `"cidr": "192.168.92.8/32"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}

func TestCreatePolicyErrors(t *testing.T) {
	dir := t.TempDir()
	fp := readFile(t, filepath.Join(goldenDir, "seed-story/fingerprints.yaml"))
	good := writeFile(t, dir, "good.yaml", fp)
	svc := writeFile(t, dir, "svc.yaml", `apiVersion: bulwark/v1
kind: Fingerprint
metadata: {name: chronyd, type: linux-service}
spec:
  serviceSelector: {cgroup: "systemd:/system.slice/chronyd.service"}
  processPolicy:
  - {name: chronyd, exe: [/usr/sbin/chronyd], euser: [chrony], id: chronyd_0}
`)
	pol := filepath.Join(goldenDir, "deviation-graft/base.yaml")
	bad := writeFile(t, dir, "bad.yaml", "apiVersion: bulwark/v1\nkind: Fingerprint\nmetadata: {type: container}\nspec:\n  bogus: 1\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no files", []string{"create", "policy"}, "no fingerprints"},
		{"missing file", []string{"create", "policy", "-f", filepath.Join(dir, "nope.yaml")}, "nope.yaml"},
		{"invalid file", []string{"create", "policy", "-f", bad}, "bad.yaml:5:3"},
		{"not a fingerprint", []string{"create", "policy", "-f", good, pol}, "base.yaml:1:1: a WorkloadPolicy, not a fingerprint"},
		{"mixed types", []string{"create", "policy", "-f", good, "-f", svc}, "svc.yaml:1:1: create policy: fingerprint \"chronyd\" is of type linux-service"},
		{"bad mode", []string{"create", "policy", "-f", good, "--mode", "block"}, `--mode "block"`},
		{"bad output", []string{"create", "policy", "-f", good, "-o", "xml"}, `unknown output format "xml"`},
	}
	for _, tt := range tests {
		_, err := run(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestMergeCommand(t *testing.T) {
	for _, c := range []string{"deviation-graft", "merge-fingerprint"} {
		dir := filepath.Join(goldenDir, c)
		out, err := run(t, "merge", "-f", filepath.Join(dir, "base.yaml"), "--with", filepath.Join(dir, "with.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if want := readFile(t, filepath.Join(dir, "want.yaml")); out != want {
			t.Errorf("%s: merge printed:\n%s\nwant:\n%s", c, out, want)
		}
	}
}

func TestMergeCommandErrors(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(goldenDir, "deviation-graft/base.yaml")
	fps := filepath.Join(goldenDir, "seed-story/fingerprints.yaml")
	dev := writeFile(t, dir, "dev.yaml", `apiVersion: spyderbat/v1
kind: GuardianDeviation
metadata: {type: container}
spec:
  containerSelector: {image: "mongo:*"}
  processPolicy:
  - policyNode: {id: redis_0, children: [{name: sh, exe: [/bin/sh], id: sh_0}]}
`)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no with", []string{"merge", "-f", base}, "nothing to merge"},
		{"no policy flag", []string{"merge", "--with", dev}, `"file" not set`},
		{"not a policy", []string{"merge", "-f", fps, "--with", dev}, "fingerprints.yaml: must hold exactly one policy"},
		{"unknown node", []string{"merge", "-f", base, "--with", dev}, `dev.yaml:1:1: merge deviation into policy "mongo": policyNode "redis_0"`},
	}
	for _, tt := range tests {
		_, err := run(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestDiffCommand(t *testing.T) {
	dir := filepath.Join(goldenDir, "deviation-graft")
	base, with := filepath.Join(dir, "base.yaml"), filepath.Join(dir, "with.yaml")
	out, err := run(t, "diff", "-f", base, "--with", with)
	if err != nil {
		t.Fatal(err)
	}
	if want := readFile(t, filepath.Join(dir, "diff.txt")); out != want {
		t.Errorf("diff printed:\n%s\nwant:\n%s", out, want)
	}
	out, err = run(t, "diff", "-f", base, "--with", with, "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := readFile(t, filepath.Join(dir, "diff.yaml")); out != want {
		t.Errorf("diff -o yaml printed:\n%s\nwant:\n%s", out, want)
	}
	// Against the merged policy there is nothing left to add: exit 0.
	merged := writeFile(t, t.TempDir(), "merged.yaml", readFile(t, filepath.Join(dir, "want.yaml")))
	out, err = run(t, "diff", "-f", merged, with)
	if err != nil || out != "no changes\n" {
		t.Errorf("diff against the merged policy = %q, %v; want no changes", out, err)
	}
}
