package k8s

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Images the suite runs (built and imported by the e2e harness and make image).
const (
	bulwarkImage = "localhost/bulwark:dev"
	testImage    = "localhost/bulwark-test:1"
)

// The policy the suite enforces: in namespaces labelled team=shop, the
// entrypoint (busybox's sleep) and exec'd busybox may run, nothing else.
const shopPolicy = `apiVersion: bulwark/v1
kind: WorkloadPolicy
metadata: {name: shop, type: container}
spec:
  containerSelector: {containerName: "*"}
  namespaceSelector: {matchLabels: {team: shop}}
  mode: enforce
  processPolicy:
  - {name: sleep, exe: [/bin/busybox], euser: [root], id: sleep}
  - {name: busybox, exe: [/bin/busybox], euser: [root], id: busybox}
  networkPolicy: {ingress: [], egress: []}
  response: {default: [], actions: []}
`

type cluster struct {
	kubeconfig, k8sDir, e2eDir, bulwark string
}

func newCluster(t *testing.T) *cluster {
	c := &cluster{kubeconfig: os.Getenv("BULWARK_KUBECONFIG"), k8sDir: os.Getenv("BULWARK_K8S_DIR"),
		e2eDir: os.Getenv("BULWARK_E2E_DIR"), bulwark: os.Getenv("BULWARK_BIN")}
	if c.kubeconfig == "" || c.k8sDir == "" || c.e2eDir == "" || c.bulwark == "" {
		t.Skip("no cluster: run through test/k8s/run.sh (make k8s-e2e)")
	}
	return c
}

// kubectl runs the built kubectl and returns its output and exit status.
func (c *cluster) kubectl(args ...string) (string, int, error) {
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode(), nil
	}
	return string(out), 0, err
}

// must runs kubectl and fails the test unless it succeeds.
func (c *cluster) must(t *testing.T, args ...string) string {
	t.Helper()
	out, code, err := c.kubectl(args...)
	if err != nil || code != 0 {
		t.Fatalf("kubectl %s: exit %d %v\n%s", strings.Join(args, " "), code, err, out)
	}
	return out
}

// eventually retries check for up to d, failing with its last message.
func eventually(t *testing.T, d time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// execIn runs argv in the first container of the shop Deployment and
// returns its exit status.
func (c *cluster) execIn(t *testing.T, ns, deploy string, argv ...string) (int, string) {
	t.Helper()
	out, code, err := c.kubectl(append([]string{"-n", ns, "exec", "deploy/" + deploy, "--"}, argv...)...)
	if err != nil {
		t.Fatal(err)
	}
	return code, out
}

// overlay writes a kustomization over the rendered manifests that fits
// this node: the e2e containerd's NRI and CRI sockets and bpffs, state
// under the cluster's directory, the API server on 127.0.0.1 (no
// kube-proxy here), offline images, and the shop policy in the ConfigMap.
func (c *cluster) overlay(t *testing.T) string {
	dir := t.TempDir()
	rendered, err := exec.Command(c.bulwark, "install", "kubernetes", "--print", "--image", bulwarkImage).Output()
	if err != nil {
		t.Fatalf("bulwark install kubernetes --print: %v", err)
	}
	files := map[string]string{
		"bulwark.yaml": string(rendered),
		"kustomization.yaml": `resources: [bulwark.yaml]
patches:
- path: node.yaml
- path: policies.yaml
`,
		"node.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: bulwark, namespace: bulwark}
spec:
  template:
    spec:
      containers:
      - name: agent
        imagePullPolicy: Never
        env:
        - {name: KUBERNETES_SERVICE_HOST, value: 127.0.0.1}
        - {name: KUBERNETES_SERVICE_PORT, value: "6443"}
      - name: collector
        imagePullPolicy: Never
      volumes:
      - {name: run, hostPath: {path: %[1]s/bulwark-run}}
      - {name: state, hostPath: {path: %[1]s/bulwark-state}}
      - {name: bpffs, hostPath: {path: %[2]s/bpf}}
      - {name: nri, hostPath: {path: %[2]s/run}}
      - {name: cri, hostPath: {path: %[2]s/run/containerd.sock}}
`, c.k8sDir, c.e2eDir),
		"policies.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bulwark-policies, namespace: bulwark}\ndata:\n  shop.yaml: |\n" +
			indent(shopPolicy, "    "),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+prefix) + "\n"
}

// deployment creates namespace ns (with labels) and a one-replica
// Deployment name running argv in the test image, and waits until it is
// available.
func (c *cluster) deployment(t *testing.T, ns, labels, name string, argv ...string) {
	t.Helper()
	cmd, _ := json.Marshal(argv)
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s, labels: {%[2]s}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[3]s, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[3]s}}
  template:
    metadata: {labels: {app: %[3]s}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: app, image: %[4]s, imagePullPolicy: Never, command: %[5]s}
`, ns, labels, name, testImage, cmd)
	f := filepath.Join(t.TempDir(), "app.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	c.must(t, "apply", "-f", f)
	c.must(t, "-n", ns, "rollout", "status", "deploy/"+name, "--timeout=120s")
}

// agentPod returns the name of the Ready agent pod.
func (c *cluster) agentPod(t *testing.T) string {
	t.Helper()
	c.must(t, "-n", "bulwark", "rollout", "status", "ds/bulwark", "--timeout=180s")
	return strings.TrimPrefix(strings.TrimSpace(c.must(t, "-n", "bulwark", "get", "pod", "-l", "app.kubernetes.io/name=bulwark",
		"--field-selector=status.phase=Running", "-o", "name")), "pod/")
}

// neverDisarmed fails unless the log of agent pod shows the shop
// workload adopted under its policy and never armed without it (which a
// restarted agent re-arming before it knows the namespace labels would
// do).
func (c *cluster) neverDisarmed(t *testing.T, pod string) {
	t.Helper()
	logs := c.must(t, "-n", "bulwark", "logs", pod, "-c", "agent")
	enforced := false
	for _, l := range strings.Split(logs, "\n") {
		if !strings.Contains(l, "workload=shop/") || !strings.Contains(l, `msg="workload armed"`) {
			continue
		}
		if !strings.Contains(l, "policy=shop mode=enforce") {
			t.Errorf("agent %s armed the shop workload without its policy: %s", pod, l)
		}
		enforced = true
	}
	if !enforced {
		t.Errorf("agent %s never adopted the shop workload:\n%s", pod, logs)
	}
}

// denied and allowed are the exit statuses of /bin/client with no
// arguments: SIGKILLed before its first instruction, or its usage error.
const (
	denied  = 137
	allowed = 2
)

// TestCluster runs the suite in order on one cluster: the DaemonSet comes
// up Ready; a Deployment in a namespace a namespaceSelector policy picks
// is enforced; relabelling the namespace disarms and re-arms it; deleting
// the agent pod and a rollout restart keep enforcement (the new agent
// adopts the pins); with the agent off the node a new pod is refused by
// the runtime's NRI validator while the agent's own pod still starts;
// fingerprints of another Deployment become a policy through kubectl exec
// in the agent pod.
func TestCluster(t *testing.T) {
	c := newCluster(t)
	c.must(t, "apply", "-k", c.overlay(t))
	t.Cleanup(func() {
		c.kubectl("delete", "namespace", "shop", "learn", "--wait=false")
	})
	agent := c.agentPod(t)
	t.Logf("agent pod %s Ready", agent)

	c.deployment(t, "shop", "team: shop", "shop", "/bin/sleep", "3600")
	c.deployment(t, "learn", "team: learn", "learn", "/bin/spawner", "-every", "300ms", "/bin/echo", "tick")

	expect := func(t *testing.T, what string, want int) {
		t.Helper()
		eventually(t, 60*time.Second, what, func() error {
			if code, out := c.execIn(t, "shop", "shop", "/bin/client"); code != want {
				return fmt.Errorf("/bin/client exit %d, want %d: %s", code, want, out)
			}
			return nil
		})
	}
	t.Run("enforced", func(t *testing.T) {
		if code, out := c.execIn(t, "shop", "shop", "/bin/busybox", "true"); code != 0 {
			t.Fatalf("allowed busybox: exit %d: %s", code, out)
		}
		expect(t, "disallowed binary in the shop namespace", denied)
		if code, _ := c.execIn(t, "learn", "learn", "/bin/client"); code != allowed {
			t.Fatalf("/bin/client in an unselected namespace: exit %d, want %d", code, allowed)
		}
	})
	t.Run("relabel", func(t *testing.T) {
		c.must(t, "label", "namespace", "shop", "team=elsewhere", "--overwrite")
		expect(t, "after relabelling the namespace out of the selector", allowed)
		c.must(t, "label", "namespace", "shop", "team=shop", "--overwrite")
		expect(t, "after relabelling it back", denied)
	})
	t.Run("agent pod deleted", func(t *testing.T) {
		c.must(t, "-n", "bulwark", "delete", "pod", agent, "--wait=true", "--timeout=60s")
		// No agent runs now; the pinned programs still enforce.
		if code, _ := c.execIn(t, "shop", "shop", "/bin/client"); code != denied {
			t.Errorf("without an agent: /bin/client exit %d, want %d", code, denied)
		}
		agent = c.agentPod(t)
		expect(t, "after the new agent pod", denied)
		c.neverDisarmed(t, agent)
	})
	t.Run("rollout restart", func(t *testing.T) {
		c.must(t, "-n", "bulwark", "rollout", "restart", "ds/bulwark")
		agent = c.agentPod(t)
		expect(t, "after the rollout", denied)
		c.neverDisarmed(t, agent)
		var st struct {
			Ready     bool `json:"ready"`
			Workloads []struct {
				Namespace, Policy, Mode string
			} `json:"workloads"`
		}
		out := c.must(t, "-n", "bulwark", "exec", agent, "-c", "agent", "--", "bulwark", "status", "-o", "json")
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status: %v\n%s", err, out)
		}
		adopted := false
		for _, w := range st.Workloads {
			if w.Namespace == "bulwark" {
				t.Errorf("the agent tracks its own pod: %+v", w)
			}
			adopted = adopted || (w.Namespace == "shop" && w.Policy == "shop" && w.Mode == "enforce")
		}
		if !st.Ready || !adopted {
			t.Errorf("new agent: ready %v, shop workload adopted %v\n%s", st.Ready, adopted, out)
		}
	})
	t.Run("fail closed without the agent", func(t *testing.T) {
		// A node selector nothing matches takes the agent off the node.
		c.must(t, "-n", "bulwark", "patch", "ds", "bulwark", "--type", "merge",
			"-p", `{"spec":{"template":{"spec":{"nodeSelector":{"bulwark.test/nowhere":"x"}}}}}`)
		c.must(t, "-n", "bulwark", "wait", "--for=delete", "pod", "-l", "app.kubernetes.io/name=bulwark", "--timeout=90s")
		c.must(t, "-n", "learn", "run", "latecomer", "--image", testImage, "--image-pull-policy", "Never",
			"--restart", "Never", "--command", "--", "/bin/sleep", "3600")
		eventually(t, 60*time.Second, "a pod created while the agent is away", func() error {
			out, _, err := c.kubectl("-n", "learn", "get", "pod", "latecomer", "-o",
				"jsonpath={.status.containerStatuses[0].state.waiting.message}")
			if err != nil || !strings.Contains(out, `required plugin "bulwark"`) {
				return fmt.Errorf("container not refused by the NRI validator: %q %v", out, err)
			}
			return nil
		})
		// The agent's own pod starts although its plugin is missing (it is
		// the plugin: its pods tolerate that), and the waiting pod follows.
		c.must(t, "-n", "bulwark", "patch", "ds", "bulwark", "--type", "json",
			"-p", `[{"op":"remove","path":"/spec/template/spec/nodeSelector"}]`)
		agent = c.agentPod(t)
		c.must(t, "-n", "learn", "wait", "--for=condition=Ready", "pod/latecomer", "--timeout=120s")
	})
	t.Run("policy from fingerprints", func(t *testing.T) {
		eventually(t, 90*time.Second, "policy from the learn Deployment's fingerprints", func() error {
			out, code, err := c.kubectl("-n", "bulwark", "exec", agent, "-c", "agent", "--",
				"bulwark", "create", "policy", "--image", testImage, "--name", "learned")
			if err != nil || code != 0 {
				return fmt.Errorf("exit %d %v: %s", code, err, out)
			}
			for _, want := range []string{"kind: WorkloadPolicy", "name: learned", "/bin/spawner"} {
				if !strings.Contains(out, want) {
					return fmt.Errorf("policy lacks %q:\n%s", want, out)
				}
			}
			return nil
		})
	})
}
