package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/policy"
)

// TestNetworkPolicyEgressIngress is suite test 3: a "web" pod under an
// enforce-mode policy may connect to api:8080 only (a connect to another
// port of api or to another pod is refused with EPERM) and accept
// connections on 8080 only from the "allowed" pod (given as a /32): the
// "denied" pod's SYN is dropped, so its connect times out. Each refused
// connection is a blocked deviation.
func TestNetworkPolicyEgressIngress(t *testing.T) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	n := nonce()
	const ns = "e2e-net"
	name, label := "e2e-net-"+n, "net-web-"+n

	server := func(name string, port int) ctrSpec {
		return ctrSpec{Name: name, Command: []string{"/bin/httpserver", "-listen", fmt.Sprintf(":%d", port)}}
	}
	api := rt.runPod(t, podSpec{Name: "api", Namespace: ns})
	api.Run(t, server("http8080", 8080))
	api.Run(t, server("http9090", 9090))
	other := rt.runPod(t, podSpec{Name: "other", Namespace: ns})
	other.Run(t, server("http", 8080))
	allowedPod := rt.runPod(t, podSpec{Name: "allowed", Namespace: ns})
	allowed := allowedPod.Run(t, server("http", 8080))
	deniedPod := rt.runPod(t, podSpec{Name: "denied", Namespace: ns})
	denied := deniedPod.Run(t, server("http", 8080))
	webPod := rt.runPod(t, podSpec{Name: "web", Namespace: ns, Labels: map[string]string{"app": label}})
	apiIP, otherIP, allowedIP, deniedIP, webIP := api.IP(t), other.IP(t), allowedPod.IP(t), deniedPod.IP(t), webPod.IP(t)

	// The web pod serves with httpserver and runs client through crictl
	// exec (client is a root of the tree, so the exec itself is allowed).
	pol := rt.podPolicy(name, policy.ModeEnforce, label,
		node("httpserver_0", "httpserver", "/bin/httpserver"), node("client_0", "client", "/bin/client"))
	pol.Spec.NetworkPolicy = &policy.NetworkPolicy{
		Ingress: []policy.NetworkRule{ingressRule(allowedIP+"/32", 8080, "httpserver_0")},
		Egress:  []policy.NetworkRule{egressRule(apiIP+"/32", 8080, "client_0")},
	}
	rt.writePolicy(t, cl, pol)
	web := webPod.Run(t, server("web", 8080))
	waitArmed(t, cl, web, name, policy.ModeEnforce)

	clientCases := []struct {
		from     *container
		args     []string
		exit     int
		stdout   string
		describe string
	}{
		{web, []string{"-http", apiIP + ":8080"}, 0, "ok " + apiIP + ":8080 hello from api", "allowed egress to api:8080"},
		{web, []string{apiIP + ":9090"}, 1, "fail " + apiIP + ":9090 eperm", "egress to api:9090 (port not allowed)"},
		{web, []string{otherIP + ":8080"}, 1, "fail " + otherIP + ":8080 eperm", "egress to other:8080 (peer not allowed)"},
		{allowed, []string{"-http", webIP + ":8080"}, 0, "ok " + webIP + ":8080 hello from web", "ingress from the allowed pod"},
		{denied, []string{"-timeout", "1s", webIP + ":8080"}, 1, "fail " + webIP + ":8080 timeout", "ingress from the denied pod (SYN dropped)"},
	}
	for _, c := range clientCases {
		res, err := c.from.Exec(10*time.Second, append([]string{"/bin/client"}, c.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != c.exit || !strings.HasPrefix(res.Stdout, c.stdout) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d and %q...", c.describe, res.ExitCode, res.Stdout, res.Stderr, c.exit, c.stdout)
		}
	}

	// The denied pod can reach the other pod: only web's ingress drops it.
	res, err := denied.Exec(10*time.Second, "/bin/client", "-http", otherIP+":8080")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Errorf("denied pod to other:8080 (no policy there): exit %d, stdout %q", res.ExitCode, res.Stdout)
	}

	want := []devMatch{
		{Container: web.ID, Policy: name, Kind: "connect", Verdict: "blocked", Dst: apiIP + ":9090"},
		{Container: web.ID, Policy: name, Kind: "connect", Verdict: "blocked", Dst: otherIP + ":8080"},
		{Container: web.ID, Policy: name, Kind: "accept", Verdict: "blocked", Src: deniedIP},
	}
	devs := waitDeviations(t, cl, want...)
	for _, d := range devs[:2] {
		if d.Metadata.Event.Node != "client_0" {
			t.Errorf("connect deviation to %s:%d: node %q, want client_0", d.Metadata.Event.DstAddr, d.Metadata.Event.DstPort, d.Metadata.Event.Node)
		}
	}
	if e := devs[2].Metadata.Event; e.DstPort != 8080 || e.DstAddr != webIP {
		t.Errorf("accept deviation: destination %s:%d, want %s:8080", e.DstAddr, e.DstPort, webIP)
	}
	if all := deviationsOf(t, cl, name); len(all) != len(want) {
		t.Errorf("policy %s has %d deviations, want exactly %d: %s", name, len(all), len(want), describeDeviations(all))
	}
}
