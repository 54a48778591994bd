package agent

import (
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/policy"
)

// TestUnknownEuserFailsClosedAndShows: a Spyderbat-shaped policy (extra
// metadata keys) whose node names an euser no passwd has arms: the rest
// of the policy runs, that node is denied in enforce, and Status lists why
// for the workload.
func TestUnknownEuserFailsClosedAndShows(t *testing.T) {
	p := startPipeline(t)
	dir := p.service(t, "fc")
	svc := cgroup.ServiceCgroup(filepath.Dir(p.slice), dir)
	box, err := filepath.EvalSymlinks(busybox)
	if err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`apiVersion: spyderbat/v1
kind: SpyderbatPolicy
metadata:
  name: fc
  type: linux-service
  org_uid: ORG0001
  muid: mach:0001
spec:
  serviceSelector:
    cgroup: %q
  mode: enforce
  processPolicy:
  - name: sh
    exe: [%s]
    id: sh_0
    euser: [root]
    children:
    - {name: "tru?", exe: [%s], id: true_0}
    - {name: id, exe: [%s], id: id_0, euser: [no-such-user-h14]}
  networkPolicy: {ingress: [], egress: []}
`, svc, box, box, box)
	if _, err := p.agent.ApplyPolicy([]byte(doc)); err != nil {
		t.Fatalf("apply: %v", err)
	}
	var why []string
	waitFor(t, "the policy armed with its failed-closed node", func() bool {
		for _, w := range p.agent.Status().Workloads {
			if w.Policy == "fc" && w.Mode == policy.ModeEnforce {
				why = w.Unreachable
				return true
			}
		}
		return false
	})
	if len(why) != 1 || !strings.Contains(why[0], `node "id_0"`) || !strings.Contains(why[0], "no-such-user-h14") {
		t.Fatalf("unreachable %q, want id_0's unknown euser", why)
	}
	if st := p.run(t, dir, "$B/true || exit 3; $B/id -u >/dev/null; exit $?"); st == 0 || st == 3 {
		t.Fatalf("status %d: want true allowed and id denied", st)
	}
}

// TestWithHostUsers: the host's names fill in the workload's table; the
// workload's own names win and its table is not changed.
func TestWithHostUsers(t *testing.T) {
	host, err := ReadUsers("/")
	if err != nil || len(host) < 2 {
		t.Skipf("host passwd: %v", err)
	}
	var name string
	for n := range host {
		if n != "root" {
			name = n
			break
		}
	}
	wl := map[string]uint32{"root": 0, "app": 4242}
	if _, clash := host["app"]; clash {
		t.Skip("host has a user app")
	}
	before := maps.Clone(wl)
	got := withHostUsers(wl)
	if !maps.Equal(wl, before) {
		t.Errorf("workload table changed: %v", wl)
	}
	if got["app"] != 4242 || got[name] != host[name] || len(got) != len(host)+1 {
		t.Errorf("merged %v, want the workload's app and the host's %s", got, name)
	}
}
