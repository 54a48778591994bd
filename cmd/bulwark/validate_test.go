package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loadFixtures holds the policy package's loader fixtures.
const loadFixtures = "../../policy/testdata/load"

// runValidate runs "bulwark validate ARGS" in-process with stdin as
// standard input and returns what it printed and its error.
func runValidate(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runCLIWithInput(t, stdin, append([]string{"validate"}, args...)...)
}

func TestValidateCommandValidFiles(t *testing.T) {
	fp := filepath.Join(loadFixtures, "seed-fingerprint.yaml")
	multi := filepath.Join(loadFixtures, "multi.yaml")
	pol := filepath.Join(loadFixtures, "seed-policy-fixed.yaml")
	out, errOut, err := runValidate(t, "", "-f", fp, "-f", multi, pol)
	if err != nil {
		t.Fatalf("validate: %v\n%s", err, errOut)
	}
	want := fp + ": 1 fingerprint valid\n" +
		multi + ": 1 fingerprint, 1 policy, 1 deviation, 1 flag valid\n" +
		pol + ": 1 policy valid\n"
	if out != want || errOut != "" {
		t.Errorf("stdout:\n%s\nwant:\n%s\nstderr:\n%s", out, want, errOut)
	}
}

func TestValidateCommandReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	printed := filepath.Join(loadFixtures, "seed-policy-as-printed.yaml")
	several := filepath.Join(loadFixtures, "several-problems.yaml")
	good := filepath.Join(loadFixtures, "multi.json")
	missing := filepath.Join(dir, "missing.yaml")
	out, errOut, err := runValidate(t, "", "-f", printed, "-f", several, "-f", good, "-f", missing)
	var es *exitStatus
	if !errors.As(err, &es) || es.code != 1 || err.Error() != "3 of 4 files invalid" {
		t.Fatalf("error = %v, want exit status 1 and 3 of 4 files invalid", err)
	}
	if out != good+": 1 policy, 1 flag valid\n" {
		t.Errorf("stdout = %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	wantPrefixes := []string{
		printed + ":19:3: invalid YAML: ",
		several + ":10:3: spec.procesPolicy: unknown field",
		several + `:13:10: spec.processPolicy[0].exe: must be a list`,
		several + ":22:35: spec.networkPolicy.egress[0].ports[1].endport: unknown field",
		several + ":25:5: spec.response.default: duplicate key (first at line 24)",
		missing + ": open " + missing + ": no such file or directory",
	}
	if len(lines) != len(wantPrefixes) {
		t.Fatalf("stderr has %d lines, want %d:\n%s", len(lines), len(wantPrefixes), errOut)
	}
	for i, w := range wantPrefixes {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("stderr line %d = %q, want prefix %q", i+1, lines[i], w)
		}
	}
}

func TestValidateCommandStdin(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(loadFixtures, "seed-fingerprint.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := runValidate(t, string(data), "-f", "-")
	if err != nil || out != "<stdin>: 1 fingerprint valid\n" {
		t.Errorf("valid stdin: %q, %v", out, err)
	}
	bad := strings.Replace(string(data), "port: 443", "port: 70000", 1)
	_, errOut, err := runValidate(t, bad, "-f", "-")
	want := "<stdin>:44:9: spec.networkPolicy.ingress[0].ports[0].port: must be between 0 and 65535, got 70000\n"
	if err == nil || errOut != want {
		t.Errorf("invalid stdin: stderr %q, error %v; want %q", errOut, err, want)
	}
}

func TestValidateCommandNeedsFiles(t *testing.T) {
	if _, _, err := runValidate(t, ""); err == nil || !strings.Contains(err.Error(), "no files") {
		t.Errorf("validate without files: %v", err)
	}
}

// TestApplyNamesTheFileOfAProblem: bulwark apply reports an invalid policy
// by its file and line before anything reaches the agent.
func TestApplyNamesTheFileOfAProblem(t *testing.T) {
	file := writeFile(t, t.TempDir(), "bad.yaml", "apiVersion: bulwark/v1\nkind: WorkloadPolicy\nmetadata: {name: x, type: container}\nspec: {mode: sometimes}\n")
	_, _, err := runCLI(t, "apply", "-f", file, "--socket", filepath.Join(t.TempDir(), "no-agent.sock"))
	if err == nil || !strings.Contains(err.Error(), file+":4:") {
		t.Fatalf("apply of an invalid file: %v, want a problem at %s:4", err, file)
	}
}
