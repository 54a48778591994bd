package e2e

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/policy"
)

// TestSelectorsPickExactPods is suite test 6: three pods in two
// namespaces, two policies. "web" (enforce) selects pods labelled
// app=web in namespaces labelled team=blue (a label from the agent's
// namespace labels file, added while the pods run); "nsb" (audit) selects
// every pod of namespace B by its implied kubernetes.io/metadata.name label. Pod a1 (app=web, in
// blue namespace A) gets web, pod b1 (app=web, namespace B) gets nsb, pod
// a2 (app=db, namespace A) gets none. The agent's status (API and
// `bulwark status`) says so, and crictl exec of a shell is killed in a1
// only, recorded as allowed in b1 and not recorded at all in a2.
func TestSelectorsPickExactPods(t *testing.T) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	n := nonce()
	nsA, nsB := "e2e-sel-a-"+n, "e2e-sel-b-"+n
	web, db := "web-"+n, "db-"+n
	blue := "blue-" + n

	webName, nsbName := "e2e-sel-web-"+n, "e2e-sel-nsb-"+n
	httpserver := node("httpserver_0", "httpserver", "/bin/httpserver")
	webPol := rt.podPolicy(webName, policy.ModeEnforce, web, httpserver)
	webPol.Spec.NamespaceSelector = &policy.LabelSelector{MatchLabels: map[string]string{"team": blue}}
	rt.writePolicy(t, cl, webPol)
	nsbPol := rt.podPolicy(nsbName, policy.ModeAudit, "", httpserver)
	nsbPol.Spec.PodSelector = nil
	nsbPol.Spec.NamespaceSelector = &policy.LabelSelector{MatchExpressions: []policy.Requirement{
		{Key: "kubernetes.io/metadata.name", Operator: "In", Values: []string{nsB}},
	}}
	rt.writePolicy(t, cl, nsbPol)

	run := func(name, ns, app string) *container {
		p := rt.runPod(t, podSpec{Name: name, Namespace: ns, Labels: map[string]string{"app": app}})
		return p.Run(t, ctrSpec{Name: "web", Command: []string{"/bin/httpserver", "-listen", ":8080"}})
	}
	a1, a2, b1 := run("a1", nsA, web), run("a2", nsA, db), run("b1", nsB, web)
	// Namespace A has no team label yet: web does not select a1. The
	// labels come from a file the agent rereads when it changes, and
	// re-arms the namespace's running pods.
	waitArmed(t, cl, a1, "", agent.ModeObserve)
	rt.setNamespaceLabels(t, nsA, map[string]string{"team": blue})
	waitArmed(t, cl, a1, webName, policy.ModeEnforce)
	waitArmed(t, cl, a2, "", agent.ModeObserve)
	waitArmed(t, cl, b1, nsbName, policy.ModeAudit)

	st, err := cl.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{webName, nsbName} {
		found := false
		for _, p := range st.Policies {
			if p.Name == name {
				found = true
				if p.Workloads != 1 {
					t.Errorf("status: policy %s guards %d workloads, want 1", name, p.Workloads)
				}
			}
		}
		if !found {
			t.Errorf("status lacks policy %s: %+v", name, st.Policies)
		}
	}

	// `bulwark status` shows the same.
	out := rt.bulwark(t, "status")
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 10 { // CONTAINER ... MODE LOST UNAGGREGATED UNPARSED-DNS
			rows[f[0]] = f
		}
	}
	for _, w := range []struct {
		c              *container
		pod, pol, mode string
	}{
		{a1, nsA + "/a1", webName, policy.ModeEnforce},
		{a2, nsA + "/a2", "-", agent.ModeObserve},
		{b1, nsB + "/b1", nsbName, policy.ModeAudit},
	} {
		f := rows[w.c.ID[:12]]
		if f == nil || f[2] != w.pod || f[5] != w.pol || f[6] != w.mode {
			t.Errorf("bulwark status row of %s: %q, want pod %s, policy %s, mode %s\n%s", w.pod, f, w.pod, w.pol, w.mode, out)
		}
	}

	if err := denialOf(t, cl).checkExec(a1.Exec(10*time.Second, "/bin/sh", "-c", "echo hi")); err != nil {
		t.Errorf("a1: %v", err)
	}
	for _, c := range []*container{a2, b1} {
		res, err := c.Exec(10*time.Second, "/bin/sh", "-c", "echo hi")
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 0 || res.Stdout != "hi\n" {
			t.Errorf("crictl exec sh in %s: exit %d stdout %q, want 0 and \"hi\"", c.ID[:12], res.ExitCode, res.Stdout)
		}
	}
	waitDeviations(t, cl,
		devMatch{Container: a1.ID, Policy: webName, Kind: "exec", Verdict: "blocked", Comm: "sh"},
		devMatch{Container: b1.ID, Policy: nsbName, Kind: "exec", Verdict: "allowed", Comm: "sh"},
	)
	devs, err := cl.Deviations()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.Metadata.ContainerID == a2.ID {
			t.Errorf("a deviation was recorded for a2, which no policy selects: %s", describeDeviations([]policy.Deviation{d}))
		}
	}
}

// setNamespaceLabels adds namespace ns with labels to the agent's
// namespace labels file and restores the file at the end of the test. The
// agent rereads the file when it changes.
func (rt *runtimeEnv) setNamespaceLabels(t *testing.T, ns string, labels map[string]string) {
	t.Helper()
	if rt.nsLabels == "" {
		t.Fatal("e2e: BULWARK_NAMESPACE_LABELS not set: start the runtime with test/e2e/up.sh")
	}
	old, err := os.ReadFile(rt.nsLabels)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	existed := err == nil
	all := map[string]map[string]string{}
	if err := yaml.Unmarshal(old, &all); err != nil {
		t.Fatalf("namespace labels %s: %v", rt.nsLabels, err)
	}
	if all == nil {
		all = map[string]map[string]string{}
	}
	all[ns] = labels
	data, err := yaml.Marshal(all)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rt.nsLabels, data, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var err error
		if existed {
			err = os.WriteFile(rt.nsLabels, old, 0o600)
		} else {
			err = os.Remove(rt.nsLabels)
		}
		if err != nil {
			t.Errorf("restore %s: %v", rt.nsLabels, err)
		}
	})
}
