package docker

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
)

// TestLearnThenEnforce: containers no policy selects are fingerprinted
// (the collector gets a fingerprint when the container stops: the agent
// follows Docker's die events); `bulwark create policy --image` turns them into an
// enforce-mode policy; the same workload then runs clean under it, and a
// process it never ran is blocked. (The workload is not a busybox shell
// script: busybox runs its applets through /proc/self/exe, so a learned
// applet child would allow every applet.)
func TestLearnThenEnforce(t *testing.T) {
	e := newEnv(t)
	n := nonce()
	image := "localhost/bulwark-dk-learn-" + n + ":1"
	e.mustRun(t, "tag", e.image, image)
	t.Cleanup(func() { e.run(t, "rmi", image) })
	for i := range 2 {
		name := fmt.Sprintf("dk-learning-%d-%s", i, n)
		e.start(t, name, image, "/bin/httpserver", "-listen", ":8080")
		poll(t, name+" listening", func() (bool, string) {
			logs := e.run(t, "logs", name)
			return strings.Contains(logs.stdout+logs.stderr, "listening on"), logs.stdout + logs.stderr
		})
		e.mustRun(t, "rm", "-f", name)
	}
	q := collector.NewQueryClient(e.collectorSock)
	poll(t, "the fingerprints of "+image+" in the collector", func() (bool, string) {
		groups, err := q.Fingerprints(collector.Filter{Image: image})
		if err != nil {
			return false, err.Error()
		}
		if len(groups) != 1 {
			return false, fmt.Sprintf("%d groups", len(groups))
		}
		return len(groups[0].Instances) == 2, fmt.Sprintf("%d instances", len(groups[0].Instances))
	})

	pol := "dk-learn-" + n
	polFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(polFile, []byte(e.bulwark(t, "create", "policy", "--image", image, "--name", pol, "--mode", "enforce")), 0o600); err != nil {
		t.Fatal(err)
	}
	e.bulwark(t, "apply", "-f", polFile)
	t.Cleanup(func() { e.cl.DeletePolicy(pol) })

	name := "dk-enforced-" + n
	id := e.start(t, name, image, "/bin/httpserver", "-listen", ":8080")
	e.armed(t, id, pol, policy.ModeEnforce)
	poll(t, name+" listening under its learned policy", func() (bool, string) {
		logs := e.run(t, "logs", name)
		return strings.Contains(logs.stdout+logs.stderr, "listening on"), logs.stdout + logs.stderr
	})
	if devs := e.deviations(t, pol); len(devs) != 0 {
		t.Fatalf("learned workload raised deviations: %+v", devs)
	}
	if r := e.run(t, "exec", name, "/bin/sh", "-c", "echo never-learned"); strings.Contains(r.stdout, "never-learned") {
		t.Errorf("a process never learned ran: exit %d, stdout %q", r.code, r.stdout)
	}
	e.waitDeviation(t, pol, "exec", "sh", true)
}

// TestKillPodKillsTheContainer: an enforce-mode policy whose response is
// agentKillPod kills the Docker container (Docker has no pod) when it
// deviates.
func TestKillPodKillsTheContainer(t *testing.T) {
	e := newEnv(t)
	name := "dk-kill-" + nonce()
	p := e.policyFor(name, policy.ModeEnforce, httpserver)
	p.Spec.Response = &policy.Response{Default: []policy.Action{{AgentKillPod: &policy.KillAction{}}}}
	e.apply(t, p)
	id := e.start(t, name, e.image, "/bin/httpserver", "-listen", ":8080")
	e.armed(t, id, name, policy.ModeEnforce)
	e.run(t, "exec", name, "/bin/cat", "/etc/passwd")
	poll(t, "container killed", func() (bool, string) {
		st := strings.TrimSpace(e.run(t, "inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", name).stdout)
		return st == "false 137", st
	})
}
