package e2e

import (
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/policy"
)

// TestEnforcePolicyThatCannotBeArmedFailsStart: when an enforce-mode policy
// selects a container but cannot be armed for it (here its euser names a
// user the image does not have, so the policy cannot be compiled for this
// workload), the start fails: the container never runs unguarded. The same
// policy in audit mode guards nothing and lets the container start.
func TestEnforcePolicyThatCannotBeArmedFailsStart(t *testing.T) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	n := nonce()
	app := "failclosed-" + n
	tree := node("httpserver_0", "httpserver", "/bin/httpserver")
	tree.Euser = []string{"no-such-user-" + n}
	pol := rt.podPolicy("e2e-failclosed-"+n, policy.ModeEnforce, app, tree)
	rt.writePolicy(t, cl, pol)

	p := rt.runPod(t, podSpec{Name: "failclosed-" + n, Namespace: "e2e-failclosed", Labels: map[string]string{"app": app}})
	c := p.Create(t, ctrSpec{Name: "web", Command: []string{"/bin/httpserver", "-listen", ":8080"}})
	err := c.Start()
	if err == nil {
		t.Fatalf("container started although its enforce-mode policy cannot be armed (state %s)", c.State(t))
	}
	if !strings.Contains(err.Error(), "no-such-user-"+n) {
		t.Errorf("start error does not say why: %v", err)
	}
	if st := c.State(t); st == "CONTAINER_RUNNING" {
		t.Fatalf("container running after a refused start")
	}

	// Audit mode: the failure is logged, the container starts.
	pol.Spec.Mode = policy.ModeAudit
	rt.writePolicy(t, cl, pol)
	c2 := p.Create(t, ctrSpec{Name: "web2", Command: []string{"/bin/httpserver", "-listen", ":8081"}})
	if err := c2.Start(); err != nil {
		t.Fatalf("audit mode: start refused: %v", err)
	}
	if st := c2.State(t); st != "CONTAINER_RUNNING" {
		t.Fatalf("audit mode: container state %s", st)
	}
}
