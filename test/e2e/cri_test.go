package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// crictlTimeout bounds every crictl call.
const crictlTimeout = 60 * time.Second

// runtimeEnv is the e2e runtime started by up.sh, as described by the
// environment it prints.
type runtimeEnv struct {
	crictl       string       // crictl binary
	endpoint     string       // CRI endpoint, unix://...
	dir          string       // the runtime's directory ($BULWARK_E2E_DIR)
	scripts      string       // test/e2e, for agent.sh
	cgroupParent string       // cgroup parent of every pod
	image        string       // test image with busybox applets and the Go helpers
	subnet       netip.Prefix // the pods' subnet on the CNI bridge
	agentSocket  string       // the agent's API socket
	collector    string       // the collector's socket
	policyDir    string       // the agent's watched policy directory
	nsLabels     string       // the agent's namespace labels file
	pinDir       string       // the agent's bpffs pin directory
	bulwarkBin   string       // the bulwark binary the agent runs ($BULWARK_BIN)
}

// newRuntime returns the running e2e runtime, or skips the test with the
// reason it cannot run.
func newRuntime(t *testing.T) *runtimeEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("e2e: needs root")
	}
	rt := &runtimeEnv{
		crictl:       os.Getenv("BULWARK_CRICTL"),
		endpoint:     os.Getenv("CONTAINER_RUNTIME_ENDPOINT"),
		dir:          os.Getenv("BULWARK_E2E_DIR"),
		scripts:      os.Getenv("BULWARK_E2E_SCRIPTS"),
		cgroupParent: os.Getenv("BULWARK_E2E_CGROUP_PARENT"),
		image:        os.Getenv("BULWARK_TEST_IMAGE"),
		agentSocket:  os.Getenv("BULWARK_AGENT_SOCKET"),
		collector:    os.Getenv("BULWARK_COLLECTOR_SOCKET"),
		policyDir:    os.Getenv("BULWARK_POLICY_DIR"),
		nsLabels:     os.Getenv("BULWARK_NAMESPACE_LABELS"),
		pinDir:       os.Getenv("BULWARK_PIN_DIR"),
		bulwarkBin:   os.Getenv("BULWARK_BIN"),
	}
	if rt.crictl == "" || rt.endpoint == "" || rt.dir == "" || rt.cgroupParent == "" || rt.image == "" {
		t.Skip("e2e: runtime not up; run: eval \"$(test/e2e/up.sh)\" (or test/e2e/run.sh)")
	}
	subnet, err := netip.ParsePrefix(os.Getenv("BULWARK_E2E_SUBNET"))
	if err != nil {
		t.Fatalf("BULWARK_E2E_SUBNET: %v", err)
	}
	rt.subnet = subnet
	// The environment says the runtime is up: one that does not answer is
	// a failure, not a reason to skip.
	if _, err := rt.run(context.Background(), "info"); err != nil {
		t.Fatalf("e2e: runtime at %s not answering: %v", rt.endpoint, err)
	}
	return rt
}

// run runs crictl with args against the runtime and returns its stdout.
func (rt *runtimeEnv) run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, crictlTimeout)
	defer cancel()
	// crictl's own per-call timeout defaults to 2s, which a loaded machine
	// exceeds (removing a pod): give it the same bound.
	full := append([]string{"--config", os.DevNull, "--timeout", crictlTimeout.String(),
		"--runtime-endpoint", rt.endpoint, "--image-endpoint", rt.endpoint}, args...)
	cmd := exec.CommandContext(ctx, rt.crictl, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("crictl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// mustRun is run that fails the test on error and returns trimmed stdout.
func (rt *runtimeEnv) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := rt.run(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// writeJSON writes v as JSON to a new file in the test's temp dir.
func writeJSON(t *testing.T, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %s: %v", name, err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	return p
}

// The CRI config subsets crictl reads (JSON names of the CRI protobufs).
type (
	criMetadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace,omitempty"`
		UID       string `json:"uid,omitempty"`
	}
	criPortMapping struct {
		ContainerPort int32  `json:"container_port"`
		HostPort      int32  `json:"host_port"`
		HostIP        string `json:"host_ip,omitempty"`
	}
	criPodConfig struct {
		Metadata     criMetadata       `json:"metadata"`
		Hostname     string            `json:"hostname"`
		LogDirectory string            `json:"log_directory"`
		Labels       map[string]string `json:"labels,omitempty"`
		Annotations  map[string]string `json:"annotations,omitempty"`
		PortMappings []criPortMapping  `json:"port_mappings,omitempty"`
		DNSConfig    *criDNSConfig     `json:"dns_config,omitempty"`
		Linux        struct {
			CgroupParent string `json:"cgroup_parent"`
		} `json:"linux"`
	}
	criDNSConfig struct {
		Servers []string `json:"servers"`
		Options []string `json:"options,omitempty"`
	}
	criKeyValue struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	criContainerConfig struct {
		Metadata criMetadata `json:"metadata"`
		Image    struct {
			Image string `json:"image"`
		} `json:"image"`
		Command     []string          `json:"command,omitempty"`
		Envs        []criKeyValue     `json:"envs,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
		LogPath     string            `json:"log_path"`
		Linux       struct{}          `json:"linux"`
	}
)

// podSpec describes a pod to run. Namespace defaults to "default".
type podSpec struct {
	Name        string
	Namespace   string
	Labels      map[string]string
	Annotations map[string]string
	// HostPorts maps host ports (on 127.0.0.1) to container ports.
	HostPorts map[int32]int32
	// DNSServers, when set, are the only nameservers of the pod's
	// resolv.conf (otherwise the runtime copies the host's).
	DNSServers []string
}

// pod is a running pod sandbox.
type pod struct {
	rt     *runtimeEnv
	ID     string
	Name   string
	config string // path of the pod config JSON, needed by crictl create
}

// runPod runs a pod sandbox and registers its forced removal (with all its
// containers) for the end of the test.
func (rt *runtimeEnv) runPod(t *testing.T, spec podSpec) *pod {
	t.Helper()
	var cfg criPodConfig
	cfg.Metadata = criMetadata{Name: spec.Name, Namespace: spec.Namespace, UID: fmt.Sprintf("%s-%d", spec.Name, time.Now().UnixNano())}
	if cfg.Metadata.Namespace == "" {
		cfg.Metadata.Namespace = "default"
	}
	cfg.Hostname = spec.Name
	cfg.LogDirectory = filepath.Join(rt.dir, "logs", cfg.Metadata.UID)
	cfg.Labels = spec.Labels
	cfg.Annotations = spec.Annotations
	for host, ctr := range spec.HostPorts {
		cfg.PortMappings = append(cfg.PortMappings, criPortMapping{ContainerPort: ctr, HostPort: host, HostIP: "127.0.0.1"})
	}
	if len(spec.DNSServers) > 0 {
		cfg.DNSConfig = &criDNSConfig{Servers: spec.DNSServers, Options: []string{"attempts:1", "timeout:2"}}
	}
	cfg.Linux.CgroupParent = rt.cgroupParent
	path := writeJSON(t, "pod.json", cfg)
	id := rt.mustRun(t, "runp", path)
	p := &pod{rt: rt, ID: id, Name: spec.Name, config: path}
	t.Cleanup(func() {
		if _, err := rt.run(context.Background(), "rmp", "--force", id); err != nil {
			t.Errorf("remove pod %s: %v", spec.Name, err)
		}
	})
	return p
}

// IP returns the pod's IP on the CNI bridge.
func (p *pod) IP(t *testing.T) string {
	t.Helper()
	var st struct {
		Status struct {
			Network struct {
				IP string `json:"ip"`
			} `json:"network"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(p.rt.mustRun(t, "inspectp", p.ID)), &st); err != nil {
		t.Fatalf("inspectp %s: %v", p.Name, err)
	}
	if st.Status.Network.IP == "" {
		t.Fatalf("pod %s has no IP", p.Name)
	}
	return st.Status.Network.IP
}

// Stop stops the pod sandbox and all its containers.
func (p *pod) Stop(t *testing.T) {
	t.Helper()
	p.rt.mustRun(t, "stopp", p.ID)
}

// Ready reports whether the pod sandbox is SANDBOX_READY.
func (p *pod) Ready(t *testing.T) bool {
	t.Helper()
	var st struct {
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(p.rt.mustRun(t, "inspectp", p.ID)), &st); err != nil {
		t.Fatalf("inspectp %s: %v", p.Name, err)
	}
	return st.Status.State == "SANDBOX_READY"
}

// ctrSpec describes a container. Image defaults to the test image.
type ctrSpec struct {
	Name        string
	Image       string
	Command     []string
	Env         map[string]string
	Labels      map[string]string
	Annotations map[string]string
}

// container is a created (and maybe started) container.
type container struct {
	rt   *runtimeEnv
	ID   string
	Name string
}

// Create creates a container in the pod without starting it.
func (p *pod) Create(t *testing.T, spec ctrSpec) *container {
	t.Helper()
	c, err := p.TryCreate(t, spec)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TryCreate is Create returning the runtime's error (NRI's validator can
// refuse a creation).
func (p *pod) TryCreate(t *testing.T, spec ctrSpec) (*container, error) {
	t.Helper()
	var cfg criContainerConfig
	cfg.Metadata = criMetadata{Name: spec.Name}
	cfg.Image.Image = spec.Image
	if cfg.Image.Image == "" {
		cfg.Image.Image = p.rt.image
	}
	cfg.Command = spec.Command
	for k, v := range spec.Env {
		cfg.Envs = append(cfg.Envs, criKeyValue{Key: k, Value: v})
	}
	cfg.Labels = spec.Labels
	cfg.Annotations = spec.Annotations
	cfg.LogPath = spec.Name + ".log"
	out, err := p.rt.run(context.Background(), "create", p.ID, writeJSON(t, "ctr-"+spec.Name+".json", cfg), p.config)
	if err != nil {
		return nil, err
	}
	return &container{rt: p.rt, ID: strings.TrimSpace(out), Name: spec.Name}, nil
}

// Start starts a created container; it returns the runtime's error (an NRI
// plugin can fail a start).
func (c *container) Start() error {
	_, err := c.rt.run(context.Background(), "start", c.ID)
	return err
}

// Run creates and starts a container, failing the test if either fails.
func (p *pod) Run(t *testing.T, spec ctrSpec) *container {
	t.Helper()
	c := p.Create(t, spec)
	if err := c.Start(); err != nil {
		t.Fatalf("start container %s: %v", spec.Name, err)
	}
	return c
}

// execResult is the outcome of a command run in a container.
type execResult struct {
	Stdout   string
	Stderr   string // the command's stderr, without crictl's own log lines
	ExitCode int    // the command's exit status (137 when SIGKILLed)
}

// isCrictlLog reports whether a stderr line is crictl's (or its CRI
// client's) own log line rather than the command's output.
func isCrictlLog(line string) bool {
	if strings.HasPrefix(line, `time="`) && strings.Contains(line, " level=") {
		return true
	}
	// klog: E1125 22:04:59.486453 ...
	return len(line) > 5 && strings.ContainsRune("EWI", rune(line[0])) && strings.Trim(line[1:5], "0123456789") == "" && line[5] == ' '
}

// exitCodeIn extracts the command's exit status from crictl's error text.
func exitCodeIn(log string) (int, bool) {
	const marker = "command terminated with exit code "
	i := strings.Index(log, marker)
	if i < 0 {
		return 0, false
	}
	rest := log[i+len(marker):]
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	code, err := strconv.Atoi(rest[:end])
	return code, err == nil
}

// Exec runs cmd in the container (crictl exec) with a timeout. It returns
// an error only when the command could not be run or did not finish in
// time; a command that ran and failed yields its exit code.
func (c *container) Exec(timeout time.Duration, cmd ...string) (execResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := append([]string{"--config", os.DevNull, "--timeout", timeout.String(), "--runtime-endpoint", c.rt.endpoint, "exec", c.ID}, cmd...)
	x := exec.CommandContext(ctx, c.rt.crictl, args...)
	var stdout, stderr bytes.Buffer
	x.Stdout, x.Stderr = &stdout, &stderr
	runErr := x.Run()
	res := execResult{Stdout: stdout.String()}
	var crictlLog []string
	for _, l := range strings.SplitAfter(stderr.String(), "\n") {
		if isCrictlLog(l) {
			crictlLog = append(crictlLog, l)
		} else {
			res.Stderr += l
		}
	}
	if runErr == nil {
		return res, nil
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("exec %q in %s: timed out after %s", cmd, c.Name, timeout)
	}
	if code, ok := exitCodeIn(strings.Join(crictlLog, "")); ok {
		res.ExitCode = code
		return res, nil
	}
	return res, fmt.Errorf("exec %q in %s: %w: %s", cmd, c.Name, runErr, strings.TrimSpace(strings.Join(crictlLog, "")))
}

// State returns the container's CRI state, e.g. CONTAINER_RUNNING.
func (c *container) State(t *testing.T) string {
	t.Helper()
	state, _, _ := c.inspect(t)
	return state
}

// inspect returns the parts of crictl inspect the tests read: the CRI
// state and exit code, and the pid of the container's first process.
func (c *container) inspect(t *testing.T) (state string, exitCode, pid int) {
	t.Helper()
	var st struct {
		Status struct {
			State    string `json:"state"`
			ExitCode int    `json:"exitCode"`
		} `json:"status"`
		Info struct {
			PID int `json:"pid"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(c.rt.mustRun(t, "inspect", c.ID)), &st); err != nil {
		t.Fatalf("inspect %s: %v", c.Name, err)
	}
	return st.Status.State, st.Status.ExitCode, st.Info.PID
}

// PID returns the host pid of the container's first process (0 when it
// does not run).
func (c *container) PID(t *testing.T) int {
	t.Helper()
	_, _, pid := c.inspect(t)
	return pid
}

// WaitExited waits up to timeout for the container to exit and returns its
// exit code.
func (c *container) WaitExited(t *testing.T, timeout time.Duration) int {
	t.Helper()
	var code int
	poll(t, timeout, "container "+c.Name+" exits", func() (bool, string) {
		var state string
		state, code, _ = c.inspect(t)
		return state == "CONTAINER_EXITED", "still " + state
	})
	return code
}

// Logs returns the container's stdout and stderr so far.
func (c *container) Logs(t *testing.T) string {
	t.Helper()
	out, err := c.rt.run(context.Background(), "logs", c.ID)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Stop stops the container, SIGKILLing it after timeout seconds.
func (c *container) Stop(t *testing.T, timeout int) {
	t.Helper()
	c.rt.mustRun(t, "stop", "--timeout", strconv.Itoa(timeout), c.ID)
}

// Remove removes the container, stopping it first if needed.
func (c *container) Remove(t *testing.T) {
	t.Helper()
	c.rt.mustRun(t, "rm", "--force", c.ID)
}

// containerIDs lists the IDs of all containers (any state) in the runtime.
func (rt *runtimeEnv) containerIDs(t *testing.T) []string {
	t.Helper()
	return strings.Fields(rt.mustRun(t, "ps", "-a", "-q", "--no-trunc"))
}

// httpGet fetches url, retrying until it answers 200 or timeout passes,
// and returns the body.
func httpGet(url string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		body, err := getOnce(url, 2*time.Second)
		if err == nil {
			return body, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("GET %s: %w", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// getOnce fetches url once, waiting at most timeout, and returns the body
// of a 200 answer.
func getOnce(url string, timeout time.Duration) (string, error) {
	resp, err := (&http.Client{Timeout: timeout}).Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s: %s", resp.Status, b)
	}
	return string(b), nil
}

// agent runs test/e2e/agent.sh VERB: start, stop, kill (SIGKILL) or status.
func (rt *runtimeEnv) agent(verb string) error {
	return rt.script("agent.sh", verb)
}

// script runs the runtime script name of test/e2e with args.
func (rt *runtimeEnv) script(name string, args ...string) error {
	out, err := exec.Command(filepath.Join(rt.scripts, name), args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// agentRunning reports whether the Bulwark agent is attached to the runtime.
func (rt *runtimeEnv) agentRunning() bool {
	return rt.agent("status") == nil
}
