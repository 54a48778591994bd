package e2e

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/bulwarkhq/bulwark/policy"
)

// TestOCIHookInjected: the NRI plugin gives a CRI container Bulwark's OCI
// createRuntime hook (the one Docker's runtime wrapper adds, and the only
// point that blocks on CRI-O), exactly once; the container, armed by the
// hook inside runc create and then started by NRI, runs under its
// enforce-mode policy.
func TestOCIHookInjected(t *testing.T) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	n := nonce()
	name, label := "e2e-hook-"+n, "hook-"+n
	rt.writePolicy(t, cl, rt.podPolicy(name, policy.ModeEnforce, label, node("httpserver_0", "httpserver", "/bin/httpserver")))
	p := rt.runPod(t, podSpec{Name: "hook", Namespace: "e2e-hook", Labels: map[string]string{"app": label}})
	c := p.Run(t, ctrSpec{Name: "web", Command: []string{"/bin/httpserver", "-listen", ":8080"}})
	waitArmed(t, cl, c, name, policy.ModeEnforce)

	var st struct {
		Info struct {
			RuntimeSpec struct {
				Hooks struct {
					CreateRuntime []struct {
						Path string   `json:"path"`
						Args []string `json:"args"`
					} `json:"createRuntime"`
				} `json:"hooks"`
			} `json:"runtimeSpec"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(rt.mustRun(t, "inspect", c.ID)), &st); err != nil {
		t.Fatal(err)
	}
	var ours int
	for _, h := range st.Info.RuntimeSpec.Hooks.CreateRuntime {
		if filepath.Base(h.Path) == "bulwark-oci-hook" && len(h.Args) > 1 && h.Args[1] == "createRuntime" {
			ours++
		}
	}
	if ours != 1 {
		t.Fatalf("container's createRuntime hooks %+v: want Bulwark's once", st.Info.RuntimeSpec.Hooks.CreateRuntime)
	}
	if devs := deviationsOf(t, cl, name); len(devs) != 0 {
		t.Errorf("hooked container raised deviations: %s", describeDeviations(devs))
	}
}
