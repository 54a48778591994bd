package e2e

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
)

// pollInterval is how often the tests poll the agent and the runtime.
const pollInterval = 50 * time.Millisecond

// waitTimeout bounds every wait for the agent or a container to react.
const waitTimeout = 15 * time.Second

// nonce returns a short random string for policy names and label values:
// the agent de-duplicates deviations by policy name and spec checksum for
// its whole life, so a rerun against the same agent must not reuse a
// policy name, and a policy left by a crashed run must not select a later
// run's pods.
func nonce() string {
	return fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
}

// needAgent returns a client of the agent attached to the runtime; the
// test fails when the agent does not run (the suite's enforcement tests
// are meaningless without it).
func (rt *runtimeEnv) needAgent(t *testing.T) *agent.Client {
	t.Helper()
	if rt.agentSocket == "" || rt.policyDir == "" || rt.pinDir == "" {
		t.Fatal("e2e: BULWARK_AGENT_SOCKET, BULWARK_POLICY_DIR or BULWARK_PIN_DIR not set: start the runtime with test/e2e/up.sh")
	}
	if !rt.agentRunning() {
		t.Fatalf("e2e: the Bulwark agent is not running; see %s/log/agent.log", rt.dir)
	}
	return agent.NewClient(rt.agentSocket)
}

// needCollector returns a query client of the collector the agent streams
// to; the test fails when the runtime has none.
func (rt *runtimeEnv) needCollector(t *testing.T) *collector.QueryClient {
	t.Helper()
	if rt.collector == "" {
		t.Fatal("e2e: BULWARK_COLLECTOR_SOCKET not set: start the runtime with test/e2e/up.sh")
	}
	return collector.NewQueryClient(rt.collector)
}

// bulwark runs the bulwark binary the runtime's agent runs with args,
// pointed at the runtime's agent and collector, and returns its standard
// output; the test fails when it fails.
func (rt *runtimeEnv) bulwark(t *testing.T, args ...string) string {
	t.Helper()
	if rt.bulwarkBin == "" {
		t.Fatal("e2e: BULWARK_BIN not set: start the runtime with test/e2e/up.sh")
	}
	cmd := exec.Command(rt.bulwarkBin, args...)
	cmd.Env = append(os.Environ(), "BULWARK_COLLECTOR_SOCKET="+rt.collector, "BULWARK_AGENT_SOCKET="+rt.agentSocket)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("bulwark %s: %v: %s%s", strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

// tagImage tags the runtime's image src as dst, removed when the test
// ends: an image name of the test's own, so the collector's fingerprints of
// it are the test's only.
func (rt *runtimeEnv) tagImage(t *testing.T, src, dst string) {
	t.Helper()
	ctr := filepath.Join(filepath.Dir(rt.crictl), "ctr")
	args := []string{"--address", strings.TrimPrefix(rt.endpoint, "unix://"), "-n", "k8s.io", "images"}
	if out, err := exec.Command(ctr, append(args, "tag", src, dst)...).CombinedOutput(); err != nil {
		t.Fatalf("tag %s: %v: %s", dst, err, out)
	}
	t.Cleanup(func() { exec.Command(ctr, append(args, "rm", dst)...).Run() })
}

// poll calls check every pollInterval until it reports done or timeout
// passes; then the test fails with what and check's last explanation.
func poll(t *testing.T, timeout time.Duration, what string, check func() (done bool, why string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, why := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, timeout, why)
		}
		time.Sleep(pollInterval)
	}
}

// node is a process policy node matching comm name and executable exe.
func node(id, name, exe string, children ...policy.ProcessNode) policy.ProcessNode {
	return policy.ProcessNode{ID: id, Name: name, Exe: []string{exe}, Children: children}
}

// applet is a node for a busybox applet of the test image: its comm is
// the applet's name and its executable /bin/busybox (the applets are
// symlinks).
func applet(name string, children ...policy.ProcessNode) policy.ProcessNode {
	return node(name+"_0", name, "/bin/busybox", children...)
}

// podPolicy returns a container policy in mode for the test image in pods
// labelled app=app, allowing the process forest tree (its roots run as
// root) and nothing on the network; its response raises a high red flag.
func (rt *runtimeEnv) podPolicy(name, mode, app string, tree ...policy.ProcessNode) *policy.WorkloadPolicy {
	for i := range tree {
		if len(tree[i].Euser) == 0 {
			tree[i].Euser = []string{"root"}
		}
	}
	return &policy.WorkloadPolicy{
		APIVersion: policy.APIVersionBulwark,
		Kind:       policy.KindWorkloadPolicy,
		Metadata:   policy.Metadata{Name: name, Type: policy.TypeContainer},
		Spec: policy.Spec{
			ContainerSelector: &policy.ContainerSelector{Image: rt.image},
			PodSelector:       &policy.LabelSelector{MatchLabels: map[string]string{"app": app}},
			Mode:              mode,
			ProcessPolicy:     tree,
			NetworkPolicy:     &policy.NetworkPolicy{},
			Response: &policy.Response{Default: []policy.Action{
				{MakeRedFlag: &policy.FlagAction{Severity: "high"}},
			}},
		},
	}
}

// egressRule allows connections to the CIDR peer on TCP port, by the
// processes of the given policy nodes.
func egressRule(cidr string, port int, processes ...string) policy.NetworkRule {
	return policy.NetworkRule{
		Ports:     []policy.Port{{Port: port, Protocol: policy.ProtocolTCP}},
		Processes: processes,
		To:        []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: cidr}}},
	}
}

// ingressRule allows connections from the CIDR peer on TCP port, accepted
// by the processes of the given policy nodes.
func ingressRule(cidr string, port int, processes ...string) policy.NetworkRule {
	r := egressRule(cidr, port, processes...)
	r.From, r.To = r.To, nil
	return r
}

// policyFile is where the policy called name lives in the policy
// directory.
func (rt *runtimeEnv) policyFile(name string) string {
	return filepath.Join(rt.policyDir, name+".yaml")
}

// writePolicy validates p and writes it (writePolicyFile) as NAME.yaml in
// the agent's watched policy directory, then waits until the agent has it
// in force in p's mode. An edit that keeps the mode is in force once this
// returns only if the agent had already reloaded it: callers of an edit
// poll for its effect.
func (rt *runtimeEnv) writePolicy(t *testing.T, cl *agent.Client, p *policy.WorkloadPolicy) {
	t.Helper()
	if err := policy.ValidatePolicy(p); err != nil {
		t.Fatalf("policy %s is invalid: %v", p.Metadata.Name, err)
	}
	var sb strings.Builder
	if err := policy.Encode(&sb, "yaml", p); err != nil {
		t.Fatalf("encode policy %s: %v", p.Metadata.Name, err)
	}
	path := rt.writePolicyFile(t, cl, p.Metadata.Name, []byte(sb.String()))
	poll(t, waitTimeout, "agent loads policy "+p.Metadata.Name, func() (bool, string) {
		st, err := cl.Status()
		if err != nil {
			return false, err.Error()
		}
		if prob, ok := st.Problems[filepath.Base(path)]; ok {
			t.Fatalf("agent rejected %s: %s", path, prob)
		}
		for _, ps := range st.Policies {
			if ps.Name == p.Metadata.Name && ps.Mode == p.Spec.Mode {
				return true, ""
			}
		}
		return false, fmt.Sprintf("policies in force: %+v", st.Policies)
	})
}

// writePolicyFile writes data atomically (a hidden temporary file renamed
// into place) as the file of policy name in the agent's watched policy
// directory and returns its path. The first write of a file registers its
// removal for the end of the test.
func (rt *runtimeEnv) writePolicyFile(t *testing.T, cl *agent.Client, name string, data []byte) string {
	t.Helper()
	path := rt.policyFile(name)
	_, statErr := os.Stat(path)
	tmp := filepath.Join(rt.policyDir, ".tmp-"+name)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		t.Fatal(err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		t.Cleanup(func() { rt.removePolicy(t, cl, name) })
	}
	return path
}

// removePolicy deletes the policy file and, when the agent runs, waits
// until the policy is no longer in force.
func (rt *runtimeEnv) removePolicy(t *testing.T, cl *agent.Client, name string) {
	t.Helper()
	if err := os.Remove(rt.policyFile(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("remove policy %s: %v", name, err)
		return
	}
	if !rt.agentRunning() {
		return
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		st, err := cl.Status()
		if err == nil && !slices.ContainsFunc(st.Policies, func(p agent.PolicyStatus) bool { return p.Name == name }) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("policy %s still in force %s after its file was removed (status error: %v)", name, waitTimeout, err)
			return
		}
		time.Sleep(pollInterval)
	}
}

// workload returns the agent's status of container id, if it tracks it.
func workload(st agent.Status, id string) (agent.WorkloadStatus, bool) {
	for _, w := range st.Workloads {
		if w.ID == id {
			return w, true
		}
	}
	return agent.WorkloadStatus{}, false
}

// waitArmed waits until the agent reports container c armed (a cgroup)
// with policy name (or none: "") in mode, and returns its status.
func waitArmed(t *testing.T, cl *agent.Client, c *container, name, mode string) agent.WorkloadStatus {
	t.Helper()
	var got agent.WorkloadStatus
	poll(t, waitTimeout, fmt.Sprintf("agent arms %s with policy %q in %s mode", c.Name, name, mode), func() (bool, string) {
		st, err := cl.Status()
		if err != nil {
			return false, err.Error()
		}
		w, ok := workload(st, c.ID)
		if !ok {
			return false, "container not tracked by the agent"
		}
		got = w
		return w.CgroupID != 0 && w.Policy == name && w.Mode == mode, fmt.Sprintf("workload status %+v", w)
	})
	return got
}

// devMatch describes a deviation a test expects.
type devMatch struct {
	Container  string // container id
	Policy     string // policy name
	Kind       string // exec, connect or accept
	Verdict    string // blocked or allowed
	Comm       string // exec: the process name
	ParentNode string // exec: the parent's policy node ("" for none)
	Dst        string // connect: ADDR:PORT
	Src        string // accept: the source address
}

// matches reports whether d is the deviation m describes.
func (m devMatch) matches(d policy.Deviation) bool {
	e := d.Metadata.Event
	if e == nil || d.Metadata.ContainerID != m.Container || d.Metadata.PolicyName != m.Policy ||
		e.Kind != m.Kind || e.Verdict != m.Verdict {
		return false
	}
	switch m.Kind {
	case "exec":
		return e.Comm == m.Comm && e.ParentNode == m.ParentNode
	case "connect":
		return fmt.Sprintf("%s:%d", e.DstAddr, e.DstPort) == m.Dst
	case "accept":
		return e.SrcAddr == m.Src
	}
	return false
}

func (m devMatch) String() string {
	s := fmt.Sprintf("%s %s deviation of policy %s", m.Verdict, m.Kind, m.Policy)
	switch m.Kind {
	case "exec":
		s += fmt.Sprintf(" (comm %q, parent node %q)", m.Comm, m.ParentNode)
	case "connect":
		s += " to " + m.Dst
	case "accept":
		s += " from " + m.Src
	}
	return s
}

// waitDeviations waits until the agent has recorded a deviation for each
// of want and returns them in want's order.
func waitDeviations(t *testing.T, cl *agent.Client, want ...devMatch) []policy.Deviation {
	t.Helper()
	found := make([]policy.Deviation, len(want))
	poll(t, waitTimeout, "deviations recorded", func() (bool, string) {
		devs, err := cl.Deviations()
		if err != nil {
			return false, err.Error()
		}
		var missing []string
		for i, m := range want {
			j := slices.IndexFunc(devs, m.matches)
			if j < 0 {
				missing = append(missing, m.String())
				continue
			}
			found[i] = devs[j]
		}
		return len(missing) == 0, fmt.Sprintf("missing %s; recorded: %s", strings.Join(missing, "; "), describeDeviations(devs))
	})
	return found
}

// deviationsOf returns the deviations recorded for policy name.
func deviationsOf(t *testing.T, cl *agent.Client, name string) []policy.Deviation {
	t.Helper()
	out, err := cl.DeviationsOf(name)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// flagsOf returns the flags raised for policy name.
func flagsOf(t *testing.T, cl *agent.Client, name string) []policy.Flag {
	t.Helper()
	flags, err := cl.Flags()
	if err != nil {
		t.Fatal(err)
	}
	var out []policy.Flag
	for _, f := range flags {
		if f.Metadata.PolicyName == name {
			out = append(out, f)
		}
	}
	return out
}

// describeDeviations lists deviations briefly for failure messages.
func describeDeviations(devs []policy.Deviation) string {
	var parts []string
	for _, d := range devs {
		e := d.Metadata.Event
		if e == nil {
			parts = append(parts, d.Metadata.PolicyName+": no event")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s/%.12s: %s %s comm=%q parent=%q src=%s:%d dst=%s:%d",
			d.Metadata.PolicyName, d.Metadata.ContainerID, e.Verdict, e.Kind, e.Comm, e.ParentNode, e.SrcAddr, e.SrcPort, e.DstAddr, e.DstPort))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// denial says how an exec the policy denies ends under the agent's exec
// backend: the tracing backend SIGKILLs the new image before its first
// instruction (exit status 137), the lsm backend fails the execve with
// EPERM.
type denial struct{ backend string }

// denialOf returns how denied execs end under the agent cl talks to.
func denialOf(t *testing.T, cl *agent.Client) denial {
	t.Helper()
	st, err := cl.Status()
	if err != nil {
		t.Fatal(err)
	}
	return denial{st.Backend}
}

// spawned is the spawner's report of a denied child cmd.
func (d denial) spawned(cmd string) string {
	if d.backend == bpf.BackendLSM {
		return "spawn " + cmd + ": error fork/exec " + cmd + ": operation not permitted"
	}
	return "spawn " + cmd + ": signal killed"
}

// checkExec returns an error unless a crictl exec the policy denies
// printed nothing and ended as the backend ends it: exit 137 (tracing),
// or a failed exec (lsm).
func (d denial) checkExec(res execResult, err error) error {
	ok := err == nil && res.ExitCode == 137
	if d.backend == bpf.BackendLSM {
		ok = err != nil || res.ExitCode != 0
	}
	if ok && res.Stdout == "" {
		return nil
	}
	return fmt.Errorf("denied crictl exec (%s backend): exit %d, stdout %q, stderr %q, error %v; want nothing printed and a %s",
		d.backend, res.ExitCode, res.Stdout, res.Stderr, err, map[bool]string{true: "failed exec", false: "SIGKILL (137)"}[d.backend == bpf.BackendLSM])
}

// entrypointExit reports whether a container whose entrypoint the policy
// denies exited as the backend ends it.
func (d denial) entrypointExit(code int) bool {
	if d.backend == bpf.BackendLSM {
		return code != 0
	}
	return code == 137
}

// spawnURL is the spawner's /spawn URL that makes it run cmd with args.
func spawnURL(base, cmd string, args ...string) string {
	q := url.Values{"cmd": {cmd}, "arg": args}
	return base + "/spawn?" + q.Encode()
}

// spawn asks the spawner at base to run cmd with args and returns its
// report line, e.g. "spawn /bin/sh: signal killed".
func spawn(t *testing.T, base, cmd string, args ...string) string {
	t.Helper()
	out, err := httpGet(spawnURL(base, cmd, args...), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}
