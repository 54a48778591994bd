package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
)

// nginxExe is the nginx image's program (Debian's, see images.sh).
const nginxExe = "/usr/sbin/nginx"

// TestNginxSeedExample is the seed's example workload (issue 10) in a
// container: Debian's nginx (images.sh), master as root forking two
// workers that become www-data and accept. Learned by the agent, its
// fingerprint has the seed's shape; the policy created from it serves with
// no deviation, in the learned pod and in a pod started under it; a
// hand-written policy of the seed's shape serves too, and blocks workers
// that turn into another user (nginx's own user setting).
func TestNginxSeedExample(t *testing.T) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	if rt.collector == "" {
		t.Fatal("e2e: BULWARK_COLLECTOR_SOCKET not set: start the runtime with test/e2e/up.sh")
	}
	base := os.Getenv("BULWARK_NGINX_IMAGE")
	if base == "" {
		t.Fatal("e2e: BULWARK_NGINX_IMAGE not set: start the runtime with test/e2e/up.sh")
	}
	n := nonce()
	image := "localhost/bulwark-nginx-" + n + ":1"
	rt.tagImage(t, base, image)
	ns := "e2e-nginx"
	run := func(pod, label string, command ...string) (*container, string) {
		t.Helper()
		p := rt.runPod(t, podSpec{Name: pod + "-" + n, Namespace: ns, Labels: map[string]string{"app": label}})
		c := p.Run(t, ctrSpec{Name: "nginx", Image: image, Command: command})
		return c, "http://" + p.IP(t) + ":8080/"
	}
	serve := func(what, url string) {
		t.Helper()
		for i := range 4 {
			if body, err := httpGet(url, 10*time.Second); err != nil || body != "nginx ok\n" {
				t.Fatalf("%s: request %d: %q, %v", what, i, body, err)
			}
		}
	}

	learned, learnedURL := run("learn", "nginx-learn-"+n)
	serve("learning", learnedURL)
	q := collector.NewQueryClient(rt.collector)
	poll(t, learnTimeout, "a fingerprint of the seed's shape in the collector", func() (bool, string) {
		groups, err := q.Fingerprints(collector.Filter{Image: image})
		if err != nil {
			return false, err.Error()
		}
		if len(groups) != 1 || len(groups[0].Instances) != 1 {
			return false, fmt.Sprintf("%d groups", len(groups))
		}
		why := seedShaped(&groups[0].Instances[0].Fingerprint, rt.subnet)
		return why == "", why
	})

	name := "nginx-learned-" + n
	polFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(polFile, []byte(rt.bulwark(t, "create", "policy", "--image", image, "--name", name, "--mode", "enforce")), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.removePolicy(t, cl, name) })
	rt.bulwark(t, "apply", "-f", polFile)
	waitArmed(t, cl, learned, name, policy.ModeEnforce)
	serve("the learned pod under the learned policy", learnedURL)
	fresh, freshURL := run("fresh", "nginx-learn-"+n) // a replica
	waitArmed(t, cl, fresh, name, policy.ModeEnforce)
	serve("a new pod under the learned policy", freshURL)
	noDeviations(t, cl, name)
	rt.removePolicy(t, cl, name)

	// The seed's example policy, its selector, peers and port adapted.
	seedName, seedLabel := "nginx-seed-"+n, "nginx-seed-"+n
	pol := rt.podPolicy(seedName, policy.ModeEnforce, seedLabel, policy.ProcessNode{
		ID: "nginx_0", Name: "nginx", Exe: []string{nginxExe}, Euser: []string{"root"},
		Children: []policy.ProcessNode{{ID: "nginx_1", Name: "nginx", Exe: []string{nginxExe}, Euser: []string{"www-data"}}},
	})
	pol.Spec.ContainerSelector.Image = image
	pol.Spec.NetworkPolicy = &policy.NetworkPolicy{Ingress: []policy.NetworkRule{ingressRule(rt.subnet.String(), 8080, "nginx_1")}}
	rt.writePolicy(t, cl, pol)
	t.Cleanup(func() { rt.removePolicy(t, cl, seedName) })
	seeded, seededURL := run("seed", seedLabel)
	waitArmed(t, cl, seeded, seedName, policy.ModeEnforce)
	serve("a pod under the seed-shaped policy", seededURL)
	noDeviations(t, cl, seedName)

	// The image's other config makes the workers nobody: the forked
	// worker's switch from root to nobody matches no node, so it is
	// stopped, nothing is served, and the agent records it.
	nobody, nobodyURL := run("nobody", seedLabel, nginxExe, "-e", "stderr", "-c", "/etc/nginx/nobody.conf")
	poll(t, waitTimeout, "a blocked deviation of a worker turning into nobody", func() (bool, string) {
		devs := deviationsOf(t, cl, seedName)
		return slices.ContainsFunc(devs, func(d policy.Deviation) bool {
			e := d.Metadata.Event
			return d.Metadata.ContainerID == nobody.ID && e != nil && e.Kind == "cred" && e.Verdict == "blocked" &&
				e.OldEUID != nil && *e.OldEUID == 0 && e.EUID == 65534 && e.Comm == "nginx" && e.ParentNode == "nginx_0"
		}), describeDeviations(devs)
	})
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		if body, err := getOnce(nobodyURL, 500*time.Millisecond); err == nil {
			t.Fatalf("nginx with its workers as nobody served %q under the seed-shaped policy", body)
		}
	}
}

// seedShaped returns why fp lacks the seed's shape, or "": nginx as root
// (listening on 8080) with one child, nginx as www-data, which alone
// accepts the ingress to 8080 from an address in subnet (the host).
func seedShaped(fp *policy.Fingerprint, subnet netip.Prefix) string {
	tree := fp.Spec.ProcessPolicy
	if len(tree) != 1 || len(tree[0].Children) != 1 {
		return fmt.Sprintf("want nginx with one child node, got %+v", tree)
	}
	m, w := tree[0], tree[0].Children[0]
	if m.Name != "nginx" || !slices.Equal(m.Exe, []string{nginxExe}) || !slices.Equal(m.Euser, []string{"root"}) ||
		!slices.Contains(m.ListeningSockets, policy.Port{Port: 8080, Protocol: policy.ProtocolTCP}) {
		return fmt.Sprintf("root node %+v, want nginx %s as root listening on 8080/TCP", m, nginxExe)
	}
	if w.Name != "nginx" || !slices.Equal(w.Exe, []string{nginxExe}) || !slices.Equal(w.Euser, []string{"www-data"}) || len(w.Children) != 0 {
		return fmt.Sprintf("worker node %+v, want nginx %s as www-data with no children", w, nginxExe)
	}
	in := fp.Spec.NetworkPolicy.Ingress
	if len(in) != 1 || !slices.Equal(in[0].Ports, []policy.Port{{Port: 8080, Protocol: policy.ProtocolTCP}}) ||
		!slices.Equal(in[0].Processes, []string{w.ID}) || len(in[0].From) != 1 || in[0].From[0].IPBlock == nil {
		return fmt.Sprintf("ingress %+v, want one rule to 8080/TCP accepted by %s", in, w.ID)
	}
	if from, err := netip.ParsePrefix(in[0].From[0].IPBlock.CIDR); err != nil || from.Bits() != 32 || !subnet.Contains(from.Addr()) {
		return fmt.Sprintf("ingress from %s, want the host's address in %s", in[0].From[0].IPBlock.CIDR, subnet)
	}
	if eg := fp.Spec.NetworkPolicy.Egress; len(eg) != 0 {
		return fmt.Sprintf("egress %+v, want none", eg)
	}
	return ""
}

// noDeviations fails the test if policy name has any deviation a second
// after the requests (the agent records one within milliseconds).
func noDeviations(t *testing.T, cl *agent.Client, name string) {
	t.Helper()
	time.Sleep(time.Second)
	if mine := deviationsOf(t, cl, name); len(mine) != 0 {
		t.Errorf("policy %s: %d deviations, want none: %s", name, len(mine), describeDeviations(mine))
	}
}
