package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/policy"
)

// TestAgentKillPodStopsSandbox is suite test 8: an enforce-mode policy
// whose response includes agentKillPod stops the pod sandbox through CRI
// when its workload deviates: the pod turns NotReady and its container
// exits, while a pod of the same image the policy does not select keeps
// running.
func TestAgentKillPodStopsSandbox(t *testing.T) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	n := nonce()
	const ns = "e2e-killpod"
	name, label := "e2e-killpod-"+n, "killpod-"+n

	pol := rt.podPolicy(name, policy.ModeEnforce, label, node("spawner_0", "spawner", "/bin/spawner", applet("echo")))
	pol.Spec.NetworkPolicy.Ingress = []policy.NetworkRule{ingressRule(rt.subnet.String(), 8080, "spawner_0")}
	pol.Spec.Response.Default = append(pol.Spec.Response.Default, policy.Action{AgentKillPod: &policy.KillAction{}})
	rt.writePolicy(t, cl, pol)

	bystanderPod := rt.runPod(t, podSpec{Name: "bystander", Namespace: ns, Labels: map[string]string{"app": "bystander-" + n}})
	bystander := bystanderPod.Run(t, ctrSpec{Name: "app", Command: []string{"/bin/spawner", "-listen", ":8080", "/bin/echo", "hi"}})
	p := rt.runPod(t, podSpec{Name: "victim", Namespace: ns, Labels: map[string]string{"app": label}})
	app := p.Run(t, ctrSpec{Name: "app", Command: []string{"/bin/spawner", "-listen", ":8080", "/bin/echo", "hi"}})
	waitArmed(t, cl, app, name, policy.ModeEnforce)
	base := fmt.Sprintf("http://%s:8080", p.IP(t))

	if got, want := spawn(t, base, "/bin/echo", "hi"), "spawn /bin/echo: exit 0: hi"; got != want {
		t.Fatalf("allowed child: %q, want %q; the pod must survive allowed behaviour", got, want)
	}
	if !p.Ready(t) {
		t.Fatal("pod not ready after allowed behaviour")
	}
	// One request, not retried: the pod may already be going away when
	// the spawner answers.
	if got, err := getOnce(spawnURL(base, "/bin/sh", "-c", "true"), 10*time.Second); err != nil {
		t.Logf("disallowed child: no answer (the pod is being stopped): %v", err)
	} else if want := denialOf(t, cl).spawned("/bin/sh") + "\n"; got != want {
		t.Errorf("disallowed child: %q, want %q", got, want)
	}
	waitDeviations(t, cl, devMatch{Container: app.ID, Policy: name, Kind: "exec", Verdict: "blocked", Comm: "sh", ParentNode: "spawner_0"})
	poll(t, waitTimeout, "agentKillPod stops the sandbox", func() (bool, string) {
		return !p.Ready(t), "pod still SANDBOX_READY"
	})
	t.Logf("container of the stopped pod exited %d", app.WaitExited(t, waitTimeout))
	if !bystanderPod.Ready(t) || bystander.State(t) != "CONTAINER_RUNNING" {
		t.Errorf("the bystander pod was stopped too: ready %v, container %s", bystanderPod.Ready(t), bystander.State(t))
	}
}
