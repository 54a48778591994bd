package e2e

import (
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/policy"
)

// TestRuntimeRestartPluginReconnects: containerd restarts under the
// agent. Running containers stay enforced (the kernel does it), the NRI
// plugin registers again, and a container started afterwards is armed
// before its entrypoint like any other.
func TestRuntimeRestartPluginReconnects(t *testing.T) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	deny := denialOf(t, cl)
	n := nonce()
	app := "reconnect-" + n
	name := "e2e-reconnect-" + n
	rt.writePolicy(t, cl, rt.podPolicy(name, policy.ModeEnforce, app, node("httpserver_0", "httpserver", "/bin/httpserver")))

	before := rt.runPod(t, podSpec{Name: "reconnect-a-" + n, Namespace: "e2e-reconnect", Labels: map[string]string{"app": app}})
	a := before.Run(t, ctrSpec{Name: "web", Command: []string{"/bin/httpserver", "-listen", ":8080"}})
	waitArmed(t, cl, a, name, policy.ModeEnforce)

	if err := rt.script("restart-containerd.sh"); err != nil {
		t.Fatal(err)
	}
	if err := deny.checkExec(a.Exec(10*time.Second, "/bin/sh", "-c", "echo ran")); err != nil {
		t.Errorf("container started before the restart: %v", err)
	}

	after := rt.runPod(t, podSpec{Name: "reconnect-b-" + n, Namespace: "e2e-reconnect", Labels: map[string]string{"app": app}})
	b := after.Run(t, ctrSpec{Name: "web", Command: []string{"/bin/httpserver", "-listen", ":8080"}})
	waitArmed(t, cl, b, name, policy.ModeEnforce)
	if err := deny.checkExec(b.Exec(10*time.Second, "/bin/sh", "-c", "echo ran")); err != nil {
		t.Errorf("container started after the restart: %v", err)
	}
}
