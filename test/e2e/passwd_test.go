package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/policy"
)

// TestWorkloadPasswdStaysInsideContainer: a container that turns its
// /etc/passwd into an absolute symlink to a file only the host has does
// not make the agent read that host file as the workload's users: a policy
// naming a user only that file lists arms with that node failed closed
// (the name resolves through neither the container's passwd nor the
// host's /etc/passwd), while one naming root arms whole. (A relative
// symlink cannot climb out here: ".." stops at the root of the
// container's own mount namespace; an absolute one was resolved against
// the agent's root.)
func TestWorkloadPasswdStaysInsideContainer(t *testing.T) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	n := nonce()
	app := "passwd-" + n
	hostFile := filepath.Join(os.TempDir(), "bulwark-e2e-passwd-"+n)
	hostUser := "hostfile-" + n
	if err := os.WriteFile(hostFile, []byte(hostUser+":x:4242:4242::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(hostFile) })
	p := rt.runPod(t, podSpec{Name: "passwd-" + n, Namespace: "e2e-passwd", Labels: map[string]string{"app": app}})
	c := p.Run(t, ctrSpec{Name: "app", Command: []string{"/bin/sh", "-c",
		"ln -sf " + hostFile + " /etc/passwd && echo linked && exec sleep 3600"}})
	poll(t, waitTimeout, "the container links its /etc/passwd", func() (bool, string) {
		logs := c.Logs(t)
		return strings.Contains(logs, "linked"), logs
	})
	waitArmed(t, cl, c, "", agent.ModeObserve)

	tree := applet("sh", applet("ln"), applet("sleep"))
	tree.Euser = []string{hostUser}
	pol := rt.podPolicy("e2e-passwd-"+n, policy.ModeAudit, app, tree)
	rt.writePolicy(t, cl, pol)
	w := waitArmed(t, cl, c, pol.Metadata.Name, policy.ModeAudit)
	if len(w.Unreachable) != 1 || !strings.Contains(w.Unreachable[0], `no user "`+hostUser+`"`) {
		t.Fatalf("unreachable %q: the agent read the host file %s as the workload's users", w.Unreachable, hostFile)
	}

	pol.Spec.ProcessPolicy[0].Euser = []string{"root"}
	rt.writePolicy(t, cl, pol)
	poll(t, waitTimeout, "the policy naming root armed whole", func() (bool, string) {
		st, err := cl.Status()
		if err != nil {
			return false, err.Error()
		}
		w, ok := workload(st, c.ID)
		return ok && w.Policy == pol.Metadata.Name && len(w.Unreachable) == 0, fmt.Sprintf("%+v", w)
	})
}
