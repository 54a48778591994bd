package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNoPolicyPodServesHTTP is suite test 1: a pod no policy selects runs,
// its HTTP server answers the host on the pod IP, and the container works
// normally (exec, logs, its cgroup under the runtime's cgroup parent, stop,
// remove).
func TestNoPolicyPodServesHTTP(t *testing.T) {
	rt := newRuntime(t)
	t.Logf("agent attached: %v", rt.agentRunning())

	p := rt.runPod(t, podSpec{
		Name:      "nopolicy-web",
		Namespace: "e2e-nopolicy",
		Labels:    map[string]string{"app": "nopolicy-web", "bulwark-e2e/test": "1"},
	})
	c := p.Run(t, ctrSpec{Name: "web", Command: []string{"/bin/httpserver", "-listen", ":8080"}})
	if st := c.State(t); st != "CONTAINER_RUNNING" {
		t.Fatalf("container state %s, want CONTAINER_RUNNING", st)
	}

	ip := p.IP(t)
	body, err := httpGet(fmt.Sprintf("http://%s:8080/", ip), 10*time.Second)
	if err != nil {
		t.Fatalf("host -> pod: %v", err)
	}
	if want := "hello from nopolicy-web\n"; body != want {
		t.Fatalf("host -> pod body %q, want %q", body, want)
	}

	res, err := c.Exec(10*time.Second, "/bin/client", "-http", "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || strings.TrimSpace(res.Stdout) != "ok 127.0.0.1:8080 hello from nopolicy-web" {
		t.Fatalf("client in pod: exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}

	res, err = c.Exec(10*time.Second, "/bin/sh", "-c", "cat /proc/self/cgroup; echo oops >&2; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || strings.TrimSpace(res.Stderr) != "oops" {
		t.Fatalf("exec exit %d stderr %q, want 3 and \"oops\"", res.ExitCode, res.Stderr)
	}
	if want := "0::" + rt.cgroupParent + "/" + c.ID; !slices.Contains(strings.Split(res.Stdout, "\n"), want) {
		t.Fatalf("container cgroups:\n%s\nwant a line %q", res.Stdout, want)
	}

	if logs := c.Logs(t); !strings.Contains(logs, "listening on [::]:8080") {
		t.Fatalf("container logs %q lack the listening line", logs)
	}

	c.Stop(t, 5)
	if st := c.State(t); st != "CONTAINER_EXITED" {
		t.Fatalf("after stop: state %s, want CONTAINER_EXITED", st)
	}
	c.Remove(t)
	if slices.Contains(rt.containerIDs(t), c.ID) {
		t.Fatalf("container %s still listed after remove", c.ID)
	}
	p.Stop(t)
	if p.Ready(t) {
		t.Fatal("pod still ready after stopp")
	}
}
