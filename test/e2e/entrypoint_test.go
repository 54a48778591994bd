package e2e

import (
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/policy"
)

// TestEntrypointOutsidePolicyNeverRuns is suite test 5: a container whose
// entrypoint (/bin/sh printing a line) is not in its enforce-mode policy
// (which allows only /bin/httpserver) is armed before the entrypoint's
// first instruction: nothing is printed, the container either fails to
// start or exits (137, SIGKILL, on the tracing backend), and a blocked
// exec deviation with no
// parent node is recorded. A second container in the same pod whose
// entrypoint the policy allows runs normally.
func TestEntrypointOutsidePolicyNeverRuns(t *testing.T) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	n := nonce()
	const ns = "e2e-entrypoint"
	name, label := "e2e-entry-"+n, "entry-"+n

	rt.writePolicy(t, cl, rt.podPolicy(name, policy.ModeEnforce, label, node("httpserver_0", "httpserver", "/bin/httpserver")))
	p := rt.runPod(t, podSpec{Name: "entry", Namespace: ns, Labels: map[string]string{"app": label}})

	deny := denialOf(t, cl)
	const marker = "entrypoint-ran"
	bad := p.Create(t, ctrSpec{Name: "sh", Command: []string{"/bin/sh", "-c", "echo " + marker + "; sleep 30"}})
	if err := bad.Start(); err != nil {
		t.Logf("start refused: %v", err)
		if st, _, _ := bad.inspect(t); st == "CONTAINER_RUNNING" {
			t.Fatalf("start reported an error but the container runs")
		}
	} else {
		code := bad.WaitExited(t, waitTimeout)
		t.Logf("started; exited %d", code)
		if !deny.entrypointExit(code) {
			t.Errorf("container with a disallowed entrypoint exited %d under the %s backend", code, deny.backend)
		}
	}
	if logs := bad.Logs(t); strings.Contains(logs, marker) {
		t.Errorf("the disallowed entrypoint ran: logs %q", logs)
	}
	waitDeviations(t, cl, devMatch{Container: bad.ID, Policy: name, Kind: "exec", Verdict: "blocked", Comm: "sh"})

	good := p.Run(t, ctrSpec{Name: "web", Command: []string{"/bin/httpserver", "-listen", ":8080"}})
	waitArmed(t, cl, good, name, policy.ModeEnforce)
	poll(t, waitTimeout, "allowed entrypoint logs its listening line", func() (bool, string) {
		logs := good.Logs(t)
		return strings.Contains(logs, "listening on [::]:8080"), "logs: " + logs
	})
	if st := good.State(t); st != "CONTAINER_RUNNING" {
		t.Errorf("container with an allowed entrypoint: state %s, want CONTAINER_RUNNING", st)
	}
	if all := deviationsOf(t, cl, name); len(all) != 1 {
		t.Errorf("policy %s has %d deviations, want only the blocked entrypoint: %s", name, len(all), describeDeviations(all))
	}
}
