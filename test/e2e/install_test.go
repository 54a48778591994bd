package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/plugin"
)

// TestInstallRequireFailsClosed: `bulwark install containerd --require`
// on the e2e runtime's own configuration, containerd restarted on it.
// With the agent stopped, creating a container is refused, also when the
// container (not its pod) carries the exemption annotation; a pod that
// carries it starts its container (Bulwark's own pods). With the agent
// back, creation works again. Uninstall brings the file back byte for
// byte.
func TestInstallRequireFailsClosed(t *testing.T) {
	rt := newRuntime(t)
	rt.needAgent(t)
	cfg := filepath.Join(rt.dir, "containerd.toml")
	orig, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Whatever failed: the original file, containerd on it, the agent.
		exec.Command(rt.bulwarkBin, "uninstall", "containerd", "--config", cfg).Run()
		if now, _ := os.ReadFile(cfg); !bytes.Equal(now, orig) {
			t.Errorf("%s not restored by uninstall; writing it back", cfg)
			os.WriteFile(cfg, orig, 0o644)
		}
		registered := rt.pluginStarts()
		if err := rt.script("restart-containerd.sh"); err != nil {
			t.Error(err)
		}
		if !rt.agentRunning() {
			if err := rt.agent("start"); err != nil {
				t.Error(err)
			}
		}
		// Leave the runtime as the next test expects it: the agent
		// registered again, not still reconnecting.
		for deadline := time.Now().Add(20 * time.Second); rt.pluginStarts() == registered; {
			if time.Now().After(deadline) {
				t.Error("the agent did not register with the restarted containerd")
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	rt.bulwark(t, "install", "containerd", "--require", "--config", cfg)
	if err := rt.script("restart-containerd.sh"); err != nil {
		t.Fatal(err)
	}
	if err := rt.agent("stop"); err != nil {
		t.Fatal(err)
	}
	n := nonce()
	web := ctrSpec{Name: "web", Command: []string{"/bin/httpserver", "-listen", ":8080"}}

	p := rt.runPod(t, podSpec{Name: "require-" + n, Namespace: "e2e-require"})
	if _, err := p.TryCreate(t, web); !missingPlugin(err) {
		t.Fatalf("container created without the agent, or refused for another reason: %v", err)
	}
	self := web
	self.Name = "self-exempt"
	self.Annotations = map[string]string{plugin.TolerateMissingAnnotation: "true"}
	if _, err := p.TryCreate(t, self); !missingPlugin(err) {
		t.Fatalf("a container exempted itself with a container annotation: %v", err)
	}

	exempt := rt.runPod(t, podSpec{Name: "require-exempt-" + n, Namespace: "e2e-require",
		Annotations: map[string]string{plugin.TolerateMissingAnnotation: "true"}})
	exempt.Run(t, web)

	if err := rt.agent("start"); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "a container created once the agent is back", func() (bool, string) {
		c := web
		c.Name = "web-" + nonce()
		if _, err := p.TryCreate(t, c); err != nil {
			return false, err.Error()
		}
		return true, ""
	})

	rt.bulwark(t, "uninstall", "containerd", "--config", cfg)
	if now, _ := os.ReadFile(cfg); !bytes.Equal(now, orig) {
		t.Errorf("uninstall did not restore %s byte for byte", cfg)
	}
}

// missingPlugin reports whether err is NRI's validator refusing for want
// of Bulwark (crictl quotes it: required plugin \"bulwark\" not present).
func missingPlugin(err error) bool {
	return err != nil && strings.Contains(err.Error(), "required plugin") &&
		strings.Contains(err.Error(), plugin.Name) && strings.Contains(err.Error(), "not present")
}

// pluginStarts counts the times containerd's log (appended to across
// restarts) says Bulwark's NRI plugin connected and was synchronized.
func (rt *runtimeEnv) pluginStarts() int {
	b, _ := os.ReadFile(filepath.Join(rt.dir, "log", "containerd.log"))
	return bytes.Count(b, []byte(plugin.Index+"-"+plugin.Name+`\" connected and synchronized`))
}
