package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/policy"
)

// spyderbatCorpus is the policy package's corpus of documents in the
// shapes Spyderbat and spyctl export.
const spyderbatCorpus = "../../policy/testdata/spyderbat"

// TestValidateNotesDefaultMode: validate accepts a library-shaped policy
// without spec.mode and says, on its output, that it loads in audit mode.
func TestValidateNotesDefaultMode(t *testing.T) {
	f := filepath.Join(spyderbatCorpus, "coredns-policy.yaml")
	out, errOut, err := runValidate(t, "", "-f", f)
	if err != nil {
		t.Fatalf("validate: %v\n%s", err, errOut)
	}
	want := f + ":13:1: spec.mode: not set: loaded in audit mode (deviations are reported, nothing is blocked)\n" +
		f + ": 1 policy valid\n"
	if out != want || errOut != "" {
		t.Errorf("stdout:\n%s\nwant:\n%s\nstderr:\n%s", out, want, errOut)
	}
	g := filepath.Join(spyderbatCorpus, "nginx-fingerprint-group.yaml")
	if out, _, err := runValidate(t, "", g); err != nil || out != g+": 2 fingerprints valid\n" {
		t.Errorf("group: %q, %v", out, err)
	}
}

// TestCreatePolicyFromGroupAndBaseline: create policy -f of a
// FingerprintGroup merges its fingerprints (the second one's sh child and
// egress rule are in the policy); a baseline counts as a fingerprint.
func TestCreatePolicyFromGroupAndBaseline(t *testing.T) {
	out, errOut, err := runCLI(t, "create", "policy", "--name", "web", "-f", filepath.Join(spyderbatCorpus, "nginx-fingerprint-group.yaml"))
	if err != nil {
		t.Fatalf("create policy: %v\n%s", err, errOut)
	}
	docs, err := policy.Load("out.yaml", []byte(out))
	if err != nil || len(docs) != 1 || docs[0].Policy == nil {
		t.Fatalf("output does not load as one policy: %v\n%s", err, out)
	}
	p := docs[0].Policy
	root := p.Spec.ProcessPolicy[0]
	var kids []string
	for _, c := range root.Children {
		kids = append(kids, c.Name)
	}
	if p.Spec.Mode != policy.ModeAudit || len(p.Spec.ProcessPolicy) != 1 || strings.Join(kids, ",") != "nginx,sh" ||
		len(p.Spec.NetworkPolicy.Egress) != 1 {
		t.Errorf("policy from the group:\n%s", out)
	}
	out, errOut, err = runCLI(t, "create", "policy", "-f", filepath.Join(spyderbatCorpus, "mongo-baseline.yaml"))
	if err != nil || !strings.Contains(out, "- name: mongod\n") {
		t.Errorf("create policy from a baseline: %v\n%s\n%s", err, errOut, out)
	}
}

// TestUnknownKindPrintedOnce: every verb that reads documents reports an
// unknown kind once, as one line ending in a newline.
func TestUnknownKindPrintedOnce(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "rules.yaml", "apiVersion: spyderbat/v1\nkind: SpyderbatRuleset\nmetadata: {name: r}\n")
	msg := `kind: unknown kind "SpyderbatRuleset"`
	for _, args := range [][]string{
		{"validate", "-f", f},
		{"create", "policy", "-f", f},
		{"merge", "-f", f, "--with", f},
		{"diff", "-f", f, "--with", f},
	} {
		out, errOut, err := runCLI(t, args...)
		all := out + errOut
		if err != nil {
			all += "bulwark: " + err.Error() + "\n" // as main prints it
		}
		if strings.Count(all, msg) != 1 || !strings.Contains(all, msg+" for apiVersion spyderbat/v1: want SpyderbatFingerprint, FingerprintGroup, SpyderbatPolicy, SpyderbatBaseline, GuardianDeviation\n") {
			t.Errorf("%v printed:\n%s", args, all)
		}
	}
}

// TestSpyderbatCorpusArms is the corpus measurement: every document
// validates, and every policy in it (baselines too, and a policy created
// from each file of fingerprints) compiles against the host's users and
// arms in the real engine in audit mode on a cgroup of its own. What each
// policy had failed closed is logged; the totals are the README's figures.
func TestSpyderbatCorpusArms(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF programs and creates cgroups")
	}
	files, err := filepath.Glob(filepath.Join(spyderbatCorpus, "*.yaml"))
	if err != nil || len(files) < 30 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	users, err := agent.ReadUsers("/")
	if err != nil {
		t.Fatal(err)
	}
	name := "bulwark-corpus-" + strconv.Itoa(os.Getpid())
	engine, err := bpf.Open(bpf.Options{PinDir: filepath.Join("/sys/fs/bpf", name), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := engine.Unpin(); err != nil {
			t.Error(err)
		}
		engine.Close()
	})
	root, err := cgroup.Mountpoint()
	if err != nil {
		t.Skipf("no cgroup v2: %v", err)
	}
	var docs, validFiles, policies, armed, partial int
	arm := func(label string, p *policy.WorkloadPolicy) {
		policies++
		c, err := bpf.Compile(&p.Spec, users)
		if err != nil {
			t.Errorf("%s: compile: %v", label, err)
			return
		}
		cg := filepath.Join(root, fmt.Sprintf("%s-%d", name, policies))
		if _, err := cgroup.Create(cg); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := cgroup.Remove(cg); err != nil {
				t.Error(err)
			}
		}()
		id, err := engine.Apply(cg, c, bpf.ModeAudit)
		if err != nil {
			t.Errorf("%s: arm: %v", label, err)
			return
		}
		if err := engine.Remove(id); err != nil {
			t.Error(err)
		}
		armed++
		if len(c.Unreachable) > 0 {
			partial++
			t.Logf("%s: armed, failed closed: %s", label, strings.Join(c.Unreachable, "; "))
		}
	}
	for _, f := range files {
		ds, err := policy.LoadFile(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		docs += len(ds)
		validFiles++
		var fps []*policy.Fingerprint
		for _, d := range ds {
			switch {
			case d.Policy != nil:
				arm(f, d.Policy)
			case d.Fingerprint != nil:
				fps = append(fps, d.Fingerprint)
			}
		}
		if len(fps) > 0 {
			p, err := policy.PolicyFromFingerprints(fps, policy.CreateOptions{Mode: policy.ModeAudit})
			if err != nil {
				t.Errorf("%s: create policy: %v", f, err)
				continue
			}
			arm(f+" (created)", p)
		}
	}
	t.Logf("corpus: %d of %d files valid, %d documents; %d policies, %d armed in audit mode, %d of them with parts failed closed",
		validFiles, len(files), docs, policies, armed, partial)
	if validFiles != len(files) || docs < 30 || armed != policies {
		t.Errorf("%d of %d files valid (%d documents), %d of %d policies armed", validFiles, len(files), docs, armed, policies)
	}
}
