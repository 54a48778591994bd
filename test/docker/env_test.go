package docker

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/policy"
)

// waitTimeout bounds every wait of the suite.
const waitTimeout = 20 * time.Second

// env is the Docker runtime up.sh started, from the variables it exports.
type env struct {
	docker, host, image, bin, policyDir, agentSock, collectorSock, scripts string
	cl                                                                     *agent.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{docker: os.Getenv("BULWARK_DOCKER"), host: os.Getenv("DOCKER_HOST"), image: os.Getenv("BULWARK_TEST_IMAGE"),
		bin: os.Getenv("BULWARK_BIN"), policyDir: os.Getenv("BULWARK_POLICY_DIR"), agentSock: os.Getenv("BULWARK_AGENT_SOCKET"),
		collectorSock: os.Getenv("BULWARK_COLLECTOR_SOCKET"), scripts: os.Getenv("BULWARK_DOCKER_SCRIPTS")}
	if e.docker == "" || e.host == "" || e.agentSock == "" || e.scripts == "" {
		t.Fatal("docker e2e: environment not set: run `eval \"$(make -s docker-up)\"` or make docker-e2e")
	}
	e.cl = agent.NewClient(e.agentSock)
	return e
}

// nonce is a fresh suffix for names, so reruns never collide.
func nonce() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// result is a finished command's outcome.
type result struct {
	code           int
	stdout, stderr string
}

// run runs the Docker CLI against the suite's dockerd; a failure to run
// it at all fails the test, a non-zero exit is the caller's to judge.
func (e *env) run(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(e.docker, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.host)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// mustRun runs the Docker CLI and fails the test unless it exits 0.
func (e *env) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	r := e.run(t, args...)
	if r.code != 0 {
		t.Fatalf("docker %s: exit %d: %s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return strings.TrimSpace(r.stdout)
}

// start runs a detached container called name (removed at the end of the
// test) and returns its id.
func (e *env) start(t *testing.T, name string, args ...string) string {
	t.Helper()
	t.Cleanup(func() { e.run(t, "rm", "-f", name) })
	return e.mustRun(t, append([]string{"run", "-d", "--name", name}, args...)...)
}

// bulwark runs the bulwark binary against the suite's agent and
// collector and returns its standard output.
func (e *env) bulwark(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Env = append(os.Environ(), "BULWARK_AGENT_SOCKET="+e.agentSock, "BULWARK_COLLECTOR_SOCKET="+e.collectorSock)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bulwark %s: %v: %s%s", strings.Join(args, " "), err, out, errb.String())
	}
	return string(out)
}

// poll calls check until it reports done or waitTimeout passes.
func poll(t *testing.T, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		done, why := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// policyFor is an enforce- or audit-mode policy for the test image in
// containers named name, allowing the processes of tree (as root) and no
// connection.
func (e *env) policyFor(name, mode string, tree ...policy.ProcessNode) *policy.WorkloadPolicy {
	for i := range tree {
		tree[i].Euser = []string{"root"}
	}
	return &policy.WorkloadPolicy{
		APIVersion: policy.APIVersionBulwark,
		Kind:       policy.KindWorkloadPolicy,
		Metadata:   policy.Metadata{Name: name, Type: policy.TypeContainer},
		Spec: policy.Spec{
			ContainerSelector: &policy.ContainerSelector{Image: e.image, ContainerName: name},
			Mode:              mode,
			ProcessPolicy:     tree,
			NetworkPolicy:     &policy.NetworkPolicy{},
			Response:          &policy.Response{Default: []policy.Action{{MakeRedFlag: &policy.FlagAction{Severity: "high"}}}},
		},
	}
}

// node is a process node for comm name running exe.
func node(name, exe string, children ...policy.ProcessNode) policy.ProcessNode {
	return policy.ProcessNode{ID: name + "_0", Name: name, Exe: []string{exe}, Children: children}
}

// apply puts p in force through the agent's API (which also writes it in
// the policy directory, where the hook reads it when the agent is away)
// and removes it at the end of the test.
func (e *env) apply(t *testing.T, p *policy.WorkloadPolicy) {
	t.Helper()
	var sb strings.Builder
	if err := policy.Encode(&sb, "yaml", p); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.ApplyPolicy(strings.NewReader(sb.String())); err != nil {
		t.Fatalf("apply policy %s: %v", p.Metadata.Name, err)
	}
	t.Cleanup(func() {
		if err := e.cl.DeletePolicy(p.Metadata.Name); err != nil {
			// The agent may be stopped: remove the file it would have.
			files, _ := filepath.Glob(filepath.Join(e.policyDir, p.Metadata.Name+".*"))
			for _, f := range files {
				os.Remove(f)
			}
		}
	})
}

// armed waits until the agent has container id armed in mode under
// policy pol ("" for none) and returns its status.
func (e *env) armed(t *testing.T, id, pol, mode string) agent.WorkloadStatus {
	t.Helper()
	var got agent.WorkloadStatus
	poll(t, fmt.Sprintf("container %.12s armed (%s, %s)", id, pol, mode), func() (bool, string) {
		st, err := e.cl.Status()
		if err != nil {
			return false, err.Error()
		}
		for _, w := range st.Workloads {
			if w.ID == id {
				got = w
				return w.CgroupID != 0 && w.Policy == pol && w.Mode == mode, fmt.Sprintf("%+v", w)
			}
		}
		return false, "not tracked"
	})
	return got
}

// deviations returns the deviations of policy pol the agent recorded.
func (e *env) deviations(t *testing.T, pol string) []policy.Deviation {
	t.Helper()
	out, err := e.cl.DeviationsOf(pol)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitDeviation waits for a deviation of policy pol of kind (exec,
// connect…) by comm, blocked or not, and returns it.
func (e *env) waitDeviation(t *testing.T, pol, kind, comm string, blocked bool) policy.Deviation {
	t.Helper()
	var found policy.Deviation
	poll(t, fmt.Sprintf("%s deviation of %s by %s (blocked %v)", kind, pol, comm, blocked), func() (bool, string) {
		devs := e.deviations(t, pol)
		for _, d := range devs {
			if matchesDeviation(d, kind, comm, blocked) {
				found = d
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d deviations: %+v", len(devs), devs)
	})
	return found
}

// backend is the agent's enforcement backend: on tracing a denied exec is
// SIGKILLed (exit 137), on lsm the execve fails.
func (e *env) backend(t *testing.T) string {
	t.Helper()
	st, err := e.cl.Status()
	if err != nil {
		t.Fatal(err)
	}
	return st.Backend
}

// deniedExit reports whether code is how a denied entrypoint or exec ends
// under backend.
func deniedExit(backend string, code int) bool {
	if backend == bpf.BackendLSM {
		return code != 0
	}
	return code == 137
}

// agentDaemon runs the suite's daemon.sh for the agent (start, stop).
func (e *env) agentDaemon(t *testing.T, verb string) {
	t.Helper()
	cmd := exec.Command("bash", "-c", `. "$0/lib.sh" && dk_daemon agent "$1"`, e.scripts, verb)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("agent %s: %v: %s", verb, err, out)
	}
}

// matchesDeviation reports whether d is a kind deviation by comm (exec)
// or from comm's process (connect), blocked or allowed.
func matchesDeviation(d policy.Deviation, kind, comm string, blocked bool) bool {
	e := d.Metadata.Event
	verdict := "allowed"
	if blocked {
		verdict = "blocked"
	}
	return e != nil && e.Kind == kind && e.Comm == comm && e.Verdict == verdict
}
