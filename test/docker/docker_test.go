package docker

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/policy"
)

// httpserver is the policy's one allowed process in most tests.
var httpserver = node("httpserver", "/bin/httpserver")

// TestEnforceBeforeTheEntrypoint: in one enforce-mode policy (allowing
// only /bin/httpserver), a container whose entrypoint is httpserver runs
// and is armed in enforce mode; a container whose entrypoint is /bin/sh
// never runs it (the createRuntime hook armed the cgroup before runc
// started the entrypoint): nothing is printed, and the blocked exec is a
// deviation with the container's Docker identity.
func TestEnforceBeforeTheEntrypoint(t *testing.T) {
	e := newEnv(t)
	name := "dk-entry-" + nonce()
	e.apply(t, e.policyFor(name, policy.ModeEnforce, httpserver))

	id := e.start(t, name, e.image, "/bin/httpserver", "-listen", ":8080")
	w := e.armed(t, id, name, policy.ModeEnforce)
	if w.Name != name || w.Image != e.image {
		t.Errorf("workload identity %+v, want name %s image %s", w, name, e.image)
	}
	poll(t, "httpserver listening", func() (bool, string) {
		logs := e.run(t, "logs", name)
		return strings.Contains(logs.stdout+logs.stderr, "listening on"), logs.stdout + logs.stderr
	})
	if devs := e.deviations(t, name); len(devs) != 0 {
		t.Fatalf("allowed container raised deviations: %+v", devs)
	}
	e.run(t, "rm", "-f", name)

	const marker = "entrypoint-ran"
	t.Cleanup(func() { e.run(t, "rm", "-f", name) })
	r := e.run(t, "run", "--name", name, e.image, "/bin/sh", "-c", "echo "+marker)
	if strings.Contains(r.stdout, marker) {
		t.Fatalf("the disallowed entrypoint ran: %q", r.stdout)
	}
	if be := e.backend(t); !deniedExit(be, r.code) {
		t.Errorf("disallowed entrypoint exited %d (%s backend); stderr %q", r.code, be, r.stderr)
	}
	d := e.waitDeviation(t, name, "exec", "sh", true)
	if d.Metadata.ContainerName != name || d.Metadata.Image != e.image || d.Metadata.Event.ParentNode != "" {
		t.Errorf("deviation metadata %+v, want container %s, image %s, no parent node", d.Metadata, name, e.image)
	}
}

// TestExecOutsidePolicy: `docker exec` of a binary the enforce-mode policy
// does not allow prints nothing, ends as the backend ends denied execs and
// is a blocked deviation; the container goes on running.
func TestExecOutsidePolicy(t *testing.T) {
	e := newEnv(t)
	name := "dk-exec-" + nonce()
	e.apply(t, e.policyFor(name, policy.ModeEnforce, httpserver))
	id := e.start(t, name, e.image, "/bin/httpserver", "-listen", ":8080")
	e.armed(t, id, name, policy.ModeEnforce)

	r := e.run(t, "exec", name, "/bin/cat", "/etc/passwd")
	if r.stdout != "" || !deniedExit(e.backend(t), r.code) {
		t.Errorf("denied docker exec: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	e.waitDeviation(t, name, "exec", "cat", true)
	if st := e.mustRun(t, "inspect", "-f", "{{.State.Running}}", name); st != "true" {
		t.Errorf("container running = %s after the denied exec", st)
	}
}

// TestDeniedConnection: a connection the enforce-mode policy does not
// allow fails with EPERM inside the container (to the suite's bridge
// address: the denial is local, no packet leaves) and is a deviation.
func TestDeniedConnection(t *testing.T) {
	e := newEnv(t)
	name := "dk-net-" + nonce()
	e.apply(t, e.policyFor(name, policy.ModeEnforce, node("client", "/bin/client")))
	r := e.run(t, "run", "--rm", "--name", name, e.image, "/bin/client", "-timeout", "1s", "10.214.0.1:9")
	if !strings.Contains(r.stdout, "eperm") {
		t.Fatalf("denied connect: exit %d, stdout %q, stderr %q; want an eperm failure", r.code, r.stdout, r.stderr)
	}
	e.waitDeviation(t, name, "connect", "client", true)
}

// TestAuditBlocksNothing: under an audit-mode policy the entrypoint it
// does not allow runs to completion, and the exec is an allowed deviation.
func TestAuditBlocksNothing(t *testing.T) {
	e := newEnv(t)
	name := "dk-audit-" + nonce()
	e.apply(t, e.policyFor(name, policy.ModeAudit, httpserver))
	r := e.run(t, "run", "--rm", "--name", name, e.image, "/bin/sh", "-c", "echo audited")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "audited" {
		t.Fatalf("audited container: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	e.waitDeviation(t, name, "exec", "sh", false)
}

// TestRuntimes: `docker run` through the default runtime (bulwark) and
// through `--runtime bulwark` are armed by the hook. `--runtime runc`
// bypasses the shim (the benchmark's baseline): the agent, following
// Docker's events, arms such a container after it started, and kills one
// an enforce-mode policy selects, whose entrypoint ran unguarded.
func TestRuntimes(t *testing.T) {
	e := newEnv(t)
	n := nonce()
	for _, rt := range []string{"", "bulwark"} {
		name := "dk-rt-" + rt + n
		args := []string{e.image, "/bin/sleep", "30"}
		if rt != "" {
			args = append([]string{"--runtime", rt}, args...)
		}
		id := e.start(t, name, args...)
		e.armed(t, id, "", "observe")
	}
	id := e.start(t, "dk-rt-runc"+n, "--runtime", "runc", e.image, "/bin/sleep", "30")
	e.armed(t, id, "", "observe")

	name := "dk-bypass-" + n
	e.apply(t, e.policyFor(name, policy.ModeEnforce, node("sleep", "/bin/busybox")))
	e.start(t, name, "--runtime", "runc", e.image, "/bin/sleep", "30")
	poll(t, "the bypassing container killed", func() (bool, string) {
		st := strings.TrimSpace(e.run(t, "inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", name).stdout)
		return st == "false 137", st
	})
}

// TestAgentRestartAdopts: a container armed in enforce mode while the
// agent is stopped and started again is adopted from Docker's list: the
// agent knows it again, and a denied exec is its policy's deviation.
func TestAgentRestartAdopts(t *testing.T) {
	e := newEnv(t)
	name := "dk-adopt-" + nonce()
	e.apply(t, e.policyFor(name, policy.ModeEnforce, httpserver))
	id := e.start(t, name, e.image, "/bin/httpserver", "-listen", ":8080")
	e.armed(t, id, name, policy.ModeEnforce)
	e.agentDaemon(t, "stop")
	// Enforcement holds while the agent is away (its kernel state stays).
	if r := e.run(t, "exec", name, "/bin/cat", "/etc/passwd"); r.stdout != "" {
		t.Errorf("exec with the agent stopped printed %q", r.stdout)
	}
	e.agentDaemon(t, "start")
	e.armed(t, id, name, policy.ModeEnforce)
	e.run(t, "exec", name, "/bin/cat", "/etc/hostname")
	e.waitDeviation(t, name, "exec", "cat", true)
}

// TestAgentStopped: with the agent stopped, a container an enforce-mode
// policy (in the policy directory) selects does not start, and its
// entrypoint never runs; one no policy selects starts.
func TestAgentStopped(t *testing.T) {
	e := newEnv(t)
	name := "dk-down-" + nonce()
	e.apply(t, e.policyFor(name, policy.ModeEnforce, httpserver))
	if _, err := os.Stat(filepath.Join(e.policyDir, name+".yaml")); err != nil {
		t.Fatalf("policy file: %v", err)
	}
	e.agentDaemon(t, "stop")
	t.Cleanup(func() { e.agentDaemon(t, "start") })

	t.Cleanup(func() { e.run(t, "rm", "-f", name) })
	r := e.run(t, "run", "--name", name, e.image, "/bin/httpserver", "-listen", ":8080")
	if r.code == 0 || !strings.Contains(r.stderr, "refusing to start it unguarded") {
		t.Errorf("enforced container with the agent down: exit %d, stderr %q; want a refused start", r.code, r.stderr)
	}
	if st := e.run(t, "inspect", "-f", "{{.State.Running}}", name); strings.TrimSpace(st.stdout) == "true" {
		t.Errorf("refused container is running")
	}
	r = e.run(t, "run", "--rm", "--name", "dk-free-"+nonce(), e.image, "/bin/sh", "-c", "echo free")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "free" {
		t.Errorf("unpoliced container with the agent down: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestAgentHungHookTimesOut: with the agent stopped by SIGSTOP (its socket
// accepts, nothing answers), the hook gives up after its timeout (5 s)
// instead of hanging docker run: an enforced container is refused, an
// unpoliced one starts.
func TestAgentHungHookTimesOut(t *testing.T) {
	e := newEnv(t)
	name := "dk-hung-" + nonce()
	e.apply(t, e.policyFor(name, policy.ModeEnforce, httpserver))
	data, err := os.ReadFile(filepath.Join(os.Getenv("BULWARK_DOCKER_DIR"), "run", "agent.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)

	t.Cleanup(func() { e.run(t, "rm", "-f", name) })
	start := time.Now()
	r := e.run(t, "run", "--name", name, e.image, "/bin/httpserver", "-listen", ":8080")
	took := time.Since(start)
	if r.code == 0 || !strings.Contains(r.stderr, "refusing to start it unguarded") {
		t.Errorf("enforced container with the agent hung: exit %d, stderr %q; want a refused start", r.code, r.stderr)
	}
	if took > 15*time.Second {
		t.Errorf("docker run took %s with the agent hung; the hook's timeout is 5 s", took)
	}
	start = time.Now()
	r = e.run(t, "run", "--rm", e.image, "/bin/sh", "-c", "echo free")
	took = time.Since(start)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "free" || took > 15*time.Second {
		t.Errorf("unpoliced container with the agent hung: exit %d, stdout %q, stderr %q, took %s", r.code, r.stdout, r.stderr, took)
	}
	t.Logf("with the agent hung, an unpoliced docker run took %s", took)
	resume()
}
