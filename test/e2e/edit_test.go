package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/policy"
)

// TestPolicyEditAppliesToRunningPod is suite test 7: a spawner pod starts
// with no policy; an enforce-mode policy written into the policy directory
// then guards it (cat, outside the tree, is killed), an edit adding cat
// allows it and an edit removing echo denies echo: all in the same
// container and process, never restarted. A last, invalid edit is
// reported in the agent's status and the previous version stays in force.
func TestPolicyEditAppliesToRunningPod(t *testing.T) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	n := nonce()
	name, label := "e2e-edit-"+n, "edit-"+n

	p := rt.runPod(t, podSpec{Name: "edit", Namespace: "e2e-edit", Labels: map[string]string{"app": label}})
	app := p.Run(t, ctrSpec{Name: "app", Command: []string{"/bin/spawner", "-listen", ":8080", "/bin/echo", "hi"}})
	waitArmed(t, cl, app, "", agent.ModeObserve)
	pid := app.PID(t)
	base := fmt.Sprintf("http://%s:8080", p.IP(t))
	deny := denialOf(t, cl)
	echoOK, echoKilled := "spawn /bin/echo: exit 0: hi", deny.spawned("/bin/echo")
	catOK, catKilled := "spawn /bin/cat: exit 0: edit", deny.spawned("/bin/cat")

	check := func(stage, cmd, arg, want string) {
		t.Helper()
		if got := spawn(t, base, cmd, arg); got != want {
			t.Errorf("%s: spawn %s %s: %q, want %q", stage, cmd, arg, got, want)
		}
	}
	check("no policy", "/bin/cat", "/etc/hostname", catOK)

	// waitFor polls until the app spawning cmd gets want: the agent applies
	// a changed file asynchronously (after fsnotify and a short settle).
	waitFor := func(stage, cmd, arg, want string) {
		t.Helper()
		poll(t, waitTimeout, stage, func() (bool, string) {
			got := spawn(t, base, cmd, arg)
			return got == want, fmt.Sprintf("spawn %s %s: %q, want %q", cmd, arg, got, want)
		})
	}

	pol := func(children ...policy.ProcessNode) *policy.WorkloadPolicy {
		pol := rt.podPolicy(name, policy.ModeEnforce, label, node("spawner_0", "spawner", "/bin/spawner", children...))
		pol.Spec.NetworkPolicy.Ingress = []policy.NetworkRule{ingressRule(rt.subnet.String(), 8080, "spawner_0")}
		return pol
	}
	rt.writePolicy(t, cl, pol(applet("echo")))
	waitArmed(t, cl, app, name, policy.ModeEnforce)
	waitFor("policy written: cat denied", "/bin/cat", "/etc/hostname", catKilled)
	check("policy written", "/bin/echo", "hi", echoOK)

	rt.writePolicy(t, cl, pol(applet("echo"), applet("cat")))
	waitFor("edit adds cat: cat allowed", "/bin/cat", "/etc/hostname", catOK)
	check("edit adds cat", "/bin/echo", "hi", echoOK)

	rt.writePolicy(t, cl, pol(applet("cat")))
	waitFor("edit removes echo: echo denied", "/bin/echo", "hi", echoKilled)
	check("edit removes echo", "/bin/cat", "/etc/hostname", catOK)

	// An invalid edit is rejected and reported; the last valid version
	// stays in force.
	invalid := pol(applet("cat"), applet("echo"))
	invalid.Spec.Mode = "block"
	var sb strings.Builder
	if err := policy.Encode(&sb, "yaml", invalid); err != nil {
		t.Fatal(err)
	}
	file := filepath.Base(rt.writePolicyFile(t, cl, name, []byte(sb.String())))
	poll(t, waitTimeout, "agent reports the invalid edit", func() (bool, string) {
		st, err := cl.Status()
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(st.Problems[file], "block"), fmt.Sprintf("problems %v", st.Problems)
	})
	check("invalid edit rejected", "/bin/echo", "hi", echoKilled)
	check("invalid edit rejected", "/bin/cat", "/etc/hostname", catOK)
	waitArmed(t, cl, app, name, policy.ModeEnforce)

	if st, _, now := app.inspect(t); st != "CONTAINER_RUNNING" || now != pid {
		t.Errorf("after the edits: state %s pid %d, want CONTAINER_RUNNING and the same pid %d", st, now, pid)
	}
	if ids := rt.containerIDs(t); !slices.Contains(ids, app.ID) {
		t.Errorf("container %s no longer listed; containers: %v", app.ID, ids)
	}
}
