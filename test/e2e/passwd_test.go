package e2e

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/policy"
)

// TestWorkloadPasswdStaysInsideContainer: a container that turns its
// /etc/passwd into an absolute symlink to /etc/shadow (which the image
// lacks) does not make the agent read the host's file: a policy naming a
// user only the host has cannot be armed for it (not even in audit mode),
// while one naming root is. (A relative symlink cannot climb out here:
// ".." stops at the root of the container's own mount namespace; an
// absolute one was resolved against the agent's root.)
func TestWorkloadPasswdStaysInsideContainer(t *testing.T) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	hostUser := hostOnlyUser(t)
	n := nonce()
	app := "passwd-" + n
	p := rt.runPod(t, podSpec{Name: "passwd-" + n, Namespace: "e2e-passwd", Labels: map[string]string{"app": app}})
	c := p.Run(t, ctrSpec{Name: "app", Command: []string{"/bin/sh", "-c",
		"ln -sf /etc/shadow /etc/passwd && echo linked && exec sleep 3600"}})
	poll(t, waitTimeout, "the container links its /etc/passwd", func() (bool, string) {
		logs := c.Logs(t)
		return strings.Contains(logs, "linked"), logs
	})
	waitArmed(t, cl, c, "", agent.ModeObserve)

	tree := applet("sh", applet("ln"), applet("sleep"))
	tree.Euser = []string{hostUser}
	pol := rt.podPolicy("e2e-passwd-"+n, policy.ModeAudit, app, tree)
	rt.writePolicy(t, cl, pol)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		st, err := cl.Status()
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := workload(st, c.ID); ok && w.Policy == pol.Metadata.Name {
			t.Fatalf("policy naming host user %q armed for the container: the agent read a host file as the workload's users", hostUser)
		}
		time.Sleep(pollInterval)
	}

	pol.Spec.ProcessPolicy[0].Euser = []string{"root"}
	rt.writePolicy(t, cl, pol)
	waitArmed(t, cl, c, pol.Metadata.Name, policy.ModeAudit)
}

// hostOnlyUser returns a user of the host's /etc/passwd that the test
// image (root and nobody) does not have.
func hostOnlyUser(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/etc/passwd")
	if err != nil {
		t.Skipf("no host passwd: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, _, _ := strings.Cut(sc.Text(), ":")
		if name != "" && name != "root" && name != "nobody" && !strings.HasPrefix(name, "#") {
			return name
		}
	}
	t.Skip("the host's passwd has no user besides root and nobody")
	return ""
}
