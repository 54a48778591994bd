package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
)

// learnTimeout bounds waits for records to travel agent → collector.
const learnTimeout = 20 * time.Second

// TestLearnReplicasThenEnforce is the learning workflow end to end: three
// replicas of one image, each talking to a different peer, are observed; one
// `bulwark create policy --image` yields a policy covering all three; in
// enforce mode a new behaviour in one replica is blocked and shows in
// `bulwark get deviations`; `bulwark merge --with-deviations` and `bulwark
// apply` allow it. Then the collector is killed while deviations stream and
// restarted: what it stores equals what the agent produced.
func TestLearnReplicasThenEnforce(t *testing.T) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	q := rt.needCollector(t)
	n := nonce()
	// The replicas' own image: the test image under a new name, so the
	// collector's fingerprints of this image are this test's only.
	image := "localhost/bulwark-learn-" + n + ":1"
	rt.tagImage(t, rt.image, image)

	// Three peers, then three replicas (spawners).
	var peers []string
	for i := range 3 {
		p := rt.runPod(t, podSpec{Name: fmt.Sprintf("learn-peer-%d-%s", i, n), Namespace: "e2e-learn", Labels: map[string]string{"app": "peer-" + n}})
		p.Run(t, ctrSpec{Name: "peer", Command: []string{"/bin/httpserver", "-listen", ":8080"}})
		peers = append(peers, p.IP(t))
	}
	var bases []string
	var replicas []*container
	for i := range 3 {
		p := rt.runPod(t, podSpec{Name: fmt.Sprintf("learn-app-%d-%s", i, n), Namespace: "e2e-learn", Labels: map[string]string{"app": "learn-" + n}})
		c := p.Run(t, ctrSpec{Name: "app", Image: image, Command: []string{"/bin/spawner", "-listen", ":8080"}})
		replicas = append(replicas, c)
		bases = append(bases, "http://"+p.IP(t)+":8080")
	}
	for i, base := range bases {
		if _, err := httpGet(base+"/", waitTimeout); err != nil {
			t.Fatalf("replica %d not serving: %v", i, err)
		}
		// Replica i talks to peer i only.
		if out := spawn(t, base, "/bin/client", "-http", peers[i]+":8080"); !strings.Contains(out, "exit 0: ok") {
			t.Fatalf("replica %d -> peer %d: %s", i, i, out)
		}
	}

	// The collector holds one fingerprint per replica, grouped by image.
	poll(t, learnTimeout, "three fingerprints with their peers in the collector", func() (bool, string) {
		groups, err := q.Fingerprints(collector.Filter{Image: image})
		if err != nil {
			return false, err.Error()
		}
		if len(groups) != 1 || len(groups[0].Instances) != 3 {
			if len(groups) == 1 {
				return false, fmt.Sprintf("%d instances", len(groups[0].Instances))
			}
			return false, fmt.Sprintf("%d groups", len(groups))
		}
		for _, in := range groups[0].Instances {
			if np := len(in.Fingerprint.Spec.NetworkPolicy.Egress); np != 1 {
				return false, fmt.Sprintf("instance %s has %d egress rules", in.Fingerprint.Metadata.ContainerID, np)
			}
		}
		return true, ""
	})

	name := "learn-" + n
	work := t.TempDir()
	polFile := filepath.Join(work, "policy.yaml")
	if err := os.WriteFile(polFile, []byte(rt.bulwark(t, "create", "policy", "--image", image, "--name", name, "--mode", "enforce")), 0o600); err != nil {
		t.Fatal(err)
	}
	docs, err := policy.LoadFile(polFile)
	if err != nil || len(docs) != 1 || docs[0].Policy == nil {
		t.Fatalf("created policy: %v (%d documents)", err, len(docs))
	}
	pol := docs[0].Policy
	var allowed []string
	for _, r := range pol.Spec.NetworkPolicy.Egress {
		for _, to := range r.To {
			allowed = append(allowed, to.IPBlock.CIDR)
		}
	}
	for _, ip := range peers {
		if !slices.Contains(allowed, ip+"/32") {
			t.Fatalf("created policy allows egress to %v; want all three peers %v", allowed, peers)
		}
	}
	t.Cleanup(func() { rt.removePolicy(t, cl, name) })
	rt.bulwark(t, "apply", "-f", polFile)
	for _, c := range replicas {
		waitArmed(t, cl, c, name, policy.ModeEnforce)
	}

	// Learned: every replica may reach every peer of the image's policy.
	if out := spawn(t, bases[0], "/bin/client", "-http", peers[2]+":8080"); !strings.Contains(out, "exit 0: ok") {
		t.Fatalf("replica 0 -> peer 2 under the union policy: %s", out)
	}
	// New: replica 0 to peer 0 on 9090 is refused, and recorded.
	if out := spawn(t, bases[0], "/bin/client", peers[0]+":9090"); !strings.Contains(out, "not permitted") {
		t.Fatalf("replica 0 -> peer 0:9090 under the policy: %s, want EPERM", out)
	}
	poll(t, learnTimeout, "the blocked connect in bulwark get deviations", func() (bool, string) {
		out := rt.bulwark(t, "get", "deviations", "--policy", name)
		return strings.Contains(out, peers[0]+":9090") && strings.Contains(out, "blocked"), out
	})

	// Accepted: merged back and applied, the connection is Bulwark's to
	// allow (the peer does not listen on 9090, so it is refused there).
	merged := filepath.Join(work, "merged.yaml")
	if err := os.WriteFile(merged, []byte(rt.bulwark(t, "merge", "-f", polFile, "--with-deviations")), 0o600); err != nil {
		t.Fatal(err)
	}
	rt.bulwark(t, "apply", "-f", merged)
	poll(t, waitTimeout, "the merged policy in force", func() (bool, string) {
		out := spawn(t, bases[0], "/bin/client", peers[0]+":9090")
		return !strings.Contains(out, "not permitted"), out
	})

	// The collector is killed while deviations stream, and restarted:
	// nothing the agent produced is lost or doubled.
	const count = 12
	for i := range count {
		switch i {
		case 3:
			if err := rt.script("collector.sh", "kill"); err != nil {
				t.Fatal(err)
			}
		case 9:
			if err := rt.script("collector.sh", "start"); err != nil {
				t.Fatal(err)
			}
		}
		port := 9100 + i
		if out := spawn(t, bases[1], "/bin/client", fmt.Sprintf("%s:%d", peers[1], port)); !strings.Contains(out, "not permitted") {
			t.Fatalf("replica 1 -> peer 1:%d: %s, want EPERM", port, out)
		}
	}
	agentCount := func() int {
		n := 0
		for _, d := range deviationsOf(t, cl, name) {
			if e := d.Metadata.Event; e != nil && e.DstAddr == peers[1] {
				n++
			}
		}
		return n
	}
	poll(t, learnTimeout, "the agent's deviations", func() (bool, string) {
		n := agentCount()
		return n == count, fmt.Sprint(n)
	})
	poll(t, learnTimeout, "the collector's deviations equal the agent's", func() (bool, string) {
		ds, err := q.Deviations(collector.Filter{Policy: name})
		if err != nil {
			return false, err.Error()
		}
		stored, occurrences := 0, uint64(0)
		for _, d := range ds {
			if e := d.Deviation.Metadata.Event; e != nil && e.DstAddr == peers[1] {
				stored++
				occurrences += d.Count
			}
		}
		n := agentCount()
		return stored == n && occurrences == count, fmt.Sprintf("collector %d deviations (%d occurrences), agent %d", stored, occurrences, n)
	})
}
