package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// policyYAML is a container policy for image in mode.
func policyYAML(name, image, mode string) string {
	return `apiVersion: bulwark/v1
kind: WorkloadPolicy
metadata:
  name: ` + name + `
  type: container
spec:
  containerSelector:
    image: ` + image + `
  mode: ` + mode + `
  processPolicy:
    - name: sh
      id: sh_0
      exe: [/bin/busybox]
      euser: [root]
  networkPolicy:
    ingress: []
    egress: []
  response:
    default:
      - makeRedFlag:
          severity: high
`
}

// TestEnforcingPolicy is the OCI hook's decision without the agent: only
// an enforce-mode policy selecting the container refuses it; with the
// identity unknown any enforce-mode container policy does; a policy file
// the hook cannot read makes the decision impossible (an error); a
// missing policy directory holds no policy.
func TestEnforcingPolicy(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("web.yaml", policyYAML("web", "localhost/web:1", "enforce"))
	write("batch.yaml", policyYAML("batch", "localhost/batch:1", "audit"))
	for _, tc := range []struct {
		info *ContainerInfo
		want string
	}{
		{&ContainerInfo{ID: "a", Image: "localhost/web:1"}, "web"},
		{&ContainerInfo{ID: "b", Image: "localhost/batch:1"}, ""},
		{&ContainerInfo{ID: "c", Image: "localhost/other:1"}, ""},
		{nil, "web"},
	} {
		pol, err := EnforcingPolicy(dir, "node1", tc.info)
		got := ""
		if pol != nil {
			got = pol.Metadata.Name
		}
		if err != nil || got != tc.want {
			t.Errorf("EnforcingPolicy(%+v) = %q, %v; want %q", tc.info, got, err, tc.want)
		}
	}
	if pol, err := EnforcingPolicy(t.TempDir(), "node1", nil); err != nil || pol != nil {
		t.Errorf("empty policy directory: %v, %v; want no policy", pol, err)
	}
	write("broken.yaml", "kind: [")
	if _, err := EnforcingPolicy(dir, "node1", &ContainerInfo{ID: "c", Image: "localhost/other:1"}); err == nil || !strings.Contains(err.Error(), "broken.yaml") {
		t.Errorf("with an unreadable policy file: %v; want an error naming it", err)
	}
	if pol, err := EnforcingPolicy(filepath.Join(dir, "missing"), "node1", nil); err != nil || pol != nil {
		t.Errorf("missing policy directory: %v, %v; want no policy", pol, err)
	}
}

// TestHookFallback: with no agent (and no Docker to name the container),
// the fallback lets a container start, saying so, while no enforce-mode
// policy is in the policy directory, and refuses it, naming the policy,
// once one is.
func TestHookFallback(t *testing.T) {
	dir := t.TempDir()
	pdir := filepath.Join(dir, "policies")
	st := specs.State{ID: "c1", Pid: os.Getpid(), Annotations: map[string]string{}}
	noDocker := "unix://" + filepath.Join(dir, "no-docker.sock")
	var log strings.Builder
	if err := HookFallback(st, pdir, noDocker, time.Second, &log); err != nil {
		t.Fatalf("no policies: %v", err)
	}
	if !strings.Contains(log.String(), "starts unguarded") {
		t.Errorf("log %q does not say the container starts unguarded", log.String())
	}
	if err := os.Mkdir(pdir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pdir, "web.yaml"), []byte(policyYAML("web", "localhost/web:1", "enforce")), 0o600); err != nil {
		t.Fatal(err)
	}
	err := HookFallback(st, pdir, noDocker, time.Second, &log)
	if err == nil || !strings.Contains(err.Error(), "enforce-mode policy web") || !strings.Contains(err.Error(), "unknown identity") {
		t.Fatalf("enforce-mode policy present, identity unknown: %v; want a refusal naming web", err)
	}
}
