package e2e

import (
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/policy"
)

// TestEnforcePolicyThatCannotBeArmedFailsStart: when an enforce-mode policy
// selects a container but cannot be armed for it (here its root node names
// more eusers than the kernel checks, so the policy cannot be compiled),
// the start fails: the container never runs unguarded. The same policy in
// audit mode guards nothing and lets the container start.
func TestEnforcePolicyThatCannotBeArmedFailsStart(t *testing.T) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	n := nonce()
	app := "failclosed-" + n
	tree := node("httpserver_0", "httpserver", "/bin/httpserver")
	tree.Euser = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8"}
	pol := rt.podPolicy("e2e-failclosed-"+n, policy.ModeEnforce, app, tree)
	rt.writePolicy(t, cl, pol)

	p := rt.runPod(t, podSpec{Name: "failclosed-" + n, Namespace: "e2e-failclosed", Labels: map[string]string{"app": app}})
	c := p.Create(t, ctrSpec{Name: "web", Command: []string{"/bin/httpserver", "-listen", ":8080"}})
	err := c.Start()
	if err == nil {
		t.Fatalf("container started although its enforce-mode policy cannot be armed (state %s)", c.State(t))
	}
	if !strings.Contains(err.Error(), "the kernel checks at most 8") {
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

// TestUnknownEuserFailsClosedForItsNode: a node whose euser neither the
// image's nor the host's passwd names does not stop an enforce-mode policy
// from arming: the container starts under the rest of the policy, and the
// agent's status says which node was failed closed and why.
func TestUnknownEuserFailsClosedForItsNode(t *testing.T) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	n := nonce()
	app := "unknownuser-" + n
	ghost := applet("sh")
	ghost.Euser = []string{"no-such-user-" + n}
	pol := rt.podPolicy("e2e-unknownuser-"+n, policy.ModeEnforce, app, node("httpserver_0", "httpserver", "/bin/httpserver"), ghost)
	rt.writePolicy(t, cl, pol)

	p := rt.runPod(t, podSpec{Name: "unknownuser-" + n, Namespace: "e2e-failclosed", Labels: map[string]string{"app": app}})
	c := p.Create(t, ctrSpec{Name: "web", Command: []string{"/bin/httpserver", "-listen", ":8080"}})
	if err := c.Start(); err != nil {
		t.Fatalf("start refused: %v", err)
	}
	w := waitArmed(t, cl, c, pol.Metadata.Name, policy.ModeEnforce)
	if len(w.Unreachable) != 1 || !strings.Contains(w.Unreachable[0], `node "sh_0"`) || !strings.Contains(w.Unreachable[0], "no-such-user-"+n) {
		t.Errorf("unreachable %q, want sh_0's unknown euser", w.Unreachable)
	}
	if st := c.State(t); st != "CONTAINER_RUNNING" {
		t.Fatalf("container state %s", st)
	}
}
