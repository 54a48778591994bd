package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/internal/dnstest"
	"github.com/bulwarkhq/bulwark/policy"
)

// TestLearnDNSNameThenEnforce: a container whose resolver is a DNS server
// the test runs (on the CNI bridge's gateway, the pod's only nameserver)
// fetches a peer by name. Its fingerprint in the collector allows the
// name, not the address; `create policy --image` turns it into a policy
// that, enforced, lets the same fetch through. A name outside the policy
// (of a second peer: an answer for an allowed name grants its address
// whatever name is asked later) is refused (EPERM) with a deviation
// carrying the name; merged back with --with-deviations and applied, that
// name works too. (An address reached without a lookup is refused:
// cmd/bulwark's TestLearnResolvedName.)
func TestLearnDNSNameThenEnforce(t *testing.T) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	q := rt.needCollector(t)
	n := nonce()
	image := "localhost/bulwark-dns-" + n + ":1"
	rt.tagImage(t, rt.image, image)

	peer := rt.runPod(t, podSpec{Name: "dns-peer-" + n, Namespace: "e2e-dns"})
	peer.Run(t, ctrSpec{Name: "peer", Command: []string{"/bin/httpserver", "-listen", ":8080"}})
	peerIP := peer.IP(t)
	// The bridge has its gateway address once a pod is on it.
	gateway := rt.subnet.Masked().Addr().Next()
	dns, err := dnstest.Start(netip.AddrPortFrom(gateway, 53).String())
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	peer2 := rt.runPod(t, podSpec{Name: "dns-peer2-" + n, Namespace: "e2e-dns"})
	peer2.Run(t, ctrSpec{Name: "peer", Command: []string{"/bin/httpserver", "-listen", ":8080"}})
	peer2IP := peer2.IP(t)
	api, other := "api-"+n+".bulwark.test", "other-"+n+".bulwark.test"
	if err := dns.Add(api+". 300 IN A "+peerIP, other+". 300 IN A "+peer2IP); err != nil {
		t.Fatal(err)
	}
	app := rt.runPod(t, podSpec{Name: "dns-app-" + n, Namespace: "e2e-dns", DNSServers: []string{gateway.String()}})
	c := app.Run(t, ctrSpec{Name: "app", Image: image, Command: []string{"/bin/spawner", "-listen", ":8080"}})
	base := "http://" + app.IP(t) + ":8080"
	if _, err := httpGet(base+"/", waitTimeout); err != nil {
		t.Fatalf("app not serving: %v", err)
	}
	fetch := func(host string) string {
		return spawn(t, base, "/bin/client", "-http", host+":8080")
	}
	if out := fetch(api); !strings.Contains(out, "exit 0: ok") {
		t.Fatalf("fetch %s while learning: %s (queries %+v)", api, out, dns.Queries())
	}

	wantPeer := fmt.Sprintf("%s:8080/TCP", api)
	poll(t, learnTimeout, "the fingerprint with "+wantPeer+" in the collector", func() (bool, string) {
		groups, err := q.Fingerprints(collector.Filter{Image: image})
		if err != nil || len(groups) != 1 || len(groups[0].Instances) != 1 {
			return false, fmt.Sprintf("%d groups, %v", len(groups), err)
		}
		peers := egressPeers(groups[0].Instances[0].Fingerprint.Spec.NetworkPolicy.Egress)
		return slices.Contains(peers, wantPeer) && !slices.Contains(peers, peerIP+"/32:8080/TCP"), fmt.Sprint(peers)
	})

	name := "dns-" + n
	work := t.TempDir()
	polFile := filepath.Join(work, "policy.yaml")
	if err := os.WriteFile(polFile, []byte(rt.bulwark(t, "create", "policy", "--image", image, "--name", name, "--mode", "enforce")), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.removePolicy(t, cl, name) })
	rt.bulwark(t, "apply", "-f", polFile)
	waitArmed(t, cl, c, name, policy.ModeEnforce)

	// Enforced: the learned fetch works, nothing deviates.
	if out := fetch(api); !strings.Contains(out, "exit 0: ok") {
		t.Fatalf("fetch %s under the policy: %s", api, out)
	}
	if ds := deviationsOf(t, cl, name); len(ds) != 0 {
		t.Fatalf("the learned fetch deviated: %+v", ds[0].Metadata.Event)
	}
	// A name outside the policy: refused, the deviation has the name.
	if out := fetch(other); !strings.Contains(out, "eperm") {
		t.Fatalf("fetch %s under the policy: %s, want EPERM", other, out)
	}
	poll(t, learnTimeout, "the blocked connect to "+other+" in bulwark get deviations", func() (bool, string) {
		out := rt.bulwark(t, "get", "deviations", "--policy", name)
		return strings.Contains(out, "("+other+")") && strings.Contains(out, "blocked"), out
	})
	ds := deviationsOf(t, cl, name)
	if len(ds) != 1 || ds[0].Metadata.Event.DNSName != other ||
		!slices.Equal(egressPeers(ds[0].Spec.NetworkPolicy.Egress), []string{other + ":8080/TCP"}) {
		t.Fatalf("deviations %+v, want one connect to %s by name", ds, other)
	}

	// Merged back by name and applied: the other name works.
	merged := filepath.Join(work, "merged.yaml")
	out := rt.bulwark(t, "merge", "-f", polFile, "--with-deviations")
	if !strings.Contains(out, "- "+other) || strings.Contains(out, peerIP+"/32") || strings.Contains(out, peer2IP+"/32") {
		t.Fatalf("merged policy does not allow %s by name only:\n%s", other, out)
	}
	if err := os.WriteFile(merged, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	rt.bulwark(t, "apply", "-f", merged)
	poll(t, waitTimeout, "the merged policy in force", func() (bool, string) {
		out := fetch(other)
		return strings.Contains(out, "exit 0: ok"), out
	})
}

// egressPeers lists the peers of egress rules as NAME-or-CIDR:PORT/PROTO.
func egressPeers(rules []policy.NetworkRule) []string {
	var out []string
	for _, r := range rules {
		for _, p := range r.To {
			peer := strings.Join(p.DNSSelector, ",")
			if p.IPBlock != nil {
				peer = p.IPBlock.CIDR
			}
			for _, port := range r.Ports {
				out = append(out, fmt.Sprintf("%s:%d/%s", peer, port.Port, port.Protocol))
			}
		}
	}
	return out
}
