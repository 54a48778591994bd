package policy

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// mergeSeeds returns the golden merge cases as fuzz seeds: every policy
// there (bases and results) and every other input file.
func mergeSeeds(f *testing.F) (policies, inputs [][]byte) {
	for _, pattern := range []string{"testdata/merge/*/base.yaml", "testdata/merge/*/want.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			policies = append(policies, readSeed(f, file))
		}
	}
	for _, pattern := range []string{"testdata/merge/*/with.yaml", "testdata/merge/*/fingerprints.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			inputs = append(inputs, readSeed(f, file))
		}
	}
	if len(policies) == 0 || len(inputs) == 0 {
		f.Fatal("no seeds under testdata/merge")
	}
	return policies, inputs
}

func readSeed(f *testing.F, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func encodeYAML(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	if err := Encode(&b, FormatYAML, v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// FuzzMerge merges documents into a policy. Whenever both inputs load (and
// so validate), the merge must not panic, must leave its base alone, must
// give a valid policy unless it reports an error, and must be idempotent:
// merging the same documents again adds nothing, and every merged deviation
// is then covered.
func FuzzMerge(f *testing.F) {
	policies, inputs := mergeSeeds(f)
	for _, base := range policies {
		for _, with := range inputs {
			f.Add(base, with)
		}
	}
	f.Fuzz(func(t *testing.T, baseData, withData []byte) {
		bases, err := Load("base.yaml", baseData)
		if err != nil || len(bases) != 1 || bases[0].Policy == nil {
			return
		}
		with, err := Load("with.yaml", withData)
		if err != nil {
			return
		}
		base := bases[0].Policy
		before := encodeYAML(t, base)
		merged, err := Merge(base, with...)
		if after := encodeYAML(t, base); after != before {
			t.Fatalf("Merge modified its base:\n%s\nwas\n%s", after, before)
		}
		if err != nil {
			return
		}
		if err := ValidatePolicy(merged); err != nil {
			t.Fatalf("merged policy does not validate: %v\n%s", err, encodeYAML(t, merged))
		}
		again, err := Merge(merged, with...)
		if err != nil {
			t.Fatalf("merging again: %v", err)
		}
		if d := DiffPolicies(merged, again); !d.Empty() {
			t.Fatalf("merging again adds:\n%s", d)
		}
		if a, m := encodeYAML(t, again), encodeYAML(t, merged); a != m {
			t.Fatalf("merging again changed the policy:\n%s\nwas\n%s", a, m)
		}
		for _, d := range with {
			if d.Deviation != nil && !mustCover(t, merged, d.Deviation) {
				t.Fatalf("merged deviation not covered:\n%s", encodeYAML(t, d.Deviation))
			}
		}
	})
}

// FuzzPolicyFromFingerprints creates a policy from fingerprints. Whenever
// the fingerprints load, creating must not panic and, unless it reports an
// error, must give a valid policy that already allows everything each
// fingerprint saw (merging any of them into it adds nothing).
func FuzzPolicyFromFingerprints(f *testing.F) {
	_, inputs := mergeSeeds(f)
	for _, in := range inputs {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Load("fingerprints.yaml", data)
		if err != nil {
			return
		}
		var fps []*Fingerprint
		for _, d := range docs {
			if d.Fingerprint == nil {
				return
			}
			fps = append(fps, d.Fingerprint)
		}
		p, err := PolicyFromFingerprints(fps, CreateOptions{})
		if err != nil {
			return
		}
		if err := ValidatePolicy(p); err != nil {
			t.Fatalf("created policy does not validate: %v\n%s", err, encodeYAML(t, p))
		}
		for i, d := range docs {
			merged, err := Merge(p, d)
			if err != nil {
				t.Fatalf("merging fingerprint %d into the created policy: %v", i+1, err)
			}
			if diff := DiffPolicies(p, merged); !diff.Empty() {
				t.Fatalf("fingerprint %d is not covered by the created policy; merging adds:\n%s", i+1, diff)
			}
		}
	})
}

// gen builds random but valid fingerprints and deviations from small
// vocabularies, so that names, exes, eusers, peers and ports collide often.
type gen struct {
	r   *rand.Rand
	ids map[string]int

	names, exes, users, peers, images []string
	ports                             []Port
}

func newGen(seed int64) *gen {
	return &gen{
		r:      rand.New(rand.NewSource(seed)),
		names:  []string{"sh", "bash", "nginx", "python3", "py*", "worker-1", "worker-2"},
		exes:   []string{"/bin/sh", "/usr/bin/bash", "/usr/sbin/nginx", "/usr/bin/python3", "/usr/local/bin/python3", "/usr/bin/py*"},
		users:  []string{"root", "app", "www"},
		peers:  []string{"10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32", "192.168.0.1/32", "2001:db8::/32", "2001:db8::1/128", "*.example.com", "a.example.com", "b.example.org"},
		images: []string{"app:1", "app:2", "docker.io/library/app:1"},
		ports:  []Port{{Port: 443, Protocol: ProtocolTCP}, {Port: 80, Protocol: ProtocolTCP}, {Port: 53, Protocol: ProtocolUDP}, {Port: 1000, EndPort: 2000, Protocol: ProtocolTCP}},
	}
}

func pick[T any](g *gen, from []T) T { return from[g.r.Intn(len(from))] }

func (g *gen) some(from []string, max int) []string {
	n := 1 + g.r.Intn(max)
	var out []string
	for range n {
		out = append(out, pick(g, from))
	}
	return out
}

func (g *gen) nodes(depth int, root bool) []ProcessNode {
	var out []ProcessNode
	for range g.r.Intn(3) + boolInt(root) {
		name := pick(g, g.names)
		prefix := idFromName(name)
		n := ProcessNode{Name: name, Exe: g.some(g.exes, 2), ID: prefix + "_" + strconv.Itoa(g.ids[prefix])}
		g.ids[prefix]++
		if root || g.r.Intn(2) == 0 {
			n.Euser = g.some(g.users, 2)
		}
		if g.r.Intn(3) == 0 {
			n.ListeningSockets = []Port{pick(g, g.ports)}
		}
		if depth > 0 {
			n.Children = g.nodes(depth-1, false)
		}
		out = append(out, n)
	}
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (g *gen) rules(ids []string, ingress bool) []NetworkRule {
	var out []NetworkRule
	for range g.r.Intn(3) {
		var peers []Peer
		for _, p := range g.some(g.peers, 3) {
			if strings.Contains(p, "/") {
				b := &IPBlock{CIDR: p}
				if p == "10.0.0.0/8" && g.r.Intn(2) == 0 {
					b.Except = []string{"10.1.0.0/16"}
				}
				peers = append(peers, Peer{IPBlock: b})
			} else {
				peers = append(peers, Peer{DNSSelector: []string{p}})
			}
		}
		r := NetworkRule{Ports: []Port{pick(g, g.ports)}}
		if len(ids) > 0 && g.r.Intn(3) > 0 {
			r.Processes = g.some(ids, 2)
		}
		if ingress {
			r.From = peers
		} else {
			r.To = peers
		}
		out = append(out, r)
	}
	return out
}

func allIDs(nodes []ProcessNode) []string {
	var ids []string
	walkNodes(nodes, func(n *ProcessNode) { ids = append(ids, n.ID) })
	return ids
}

func (g *gen) fingerprint() *Fingerprint {
	g.ids = map[string]int{}
	fp := &Fingerprint{APIVersion: APIVersionBulwark, Kind: KindFingerprint, Metadata: Metadata{Name: "fp", Type: TypeContainer},
		Spec: Spec{ContainerSelector: &ContainerSelector{Image: pick(g, g.images)}, ProcessPolicy: g.nodes(2, true)}}
	ids := allIDs(fp.Spec.ProcessPolicy)
	fp.Spec.NetworkPolicy = &NetworkPolicy{Ingress: g.rules(ids, true), Egress: g.rules(ids, false)}
	return fp
}

// deviation grafts new children under random nodes of p and adds rules for
// them or for p's nodes.
func (g *gen) deviation(p *WorkloadPolicy) *Deviation {
	g.ids = map[string]int{}
	d := &Deviation{APIVersion: APIVersionSpyderbat, Kind: KindGuardianDeviation, Metadata: Metadata{Type: TypeContainer},
		Spec: Spec{ContainerSelector: &ContainerSelector{Image: "app:*"}}}
	targets := allIDs(p.Spec.ProcessPolicy)
	var ids []string
	for range g.r.Intn(3) {
		children := g.nodes(1, true)
		target := pick(g, targets)
		ids = append(ids, target)
		ids = append(ids, allIDs(children)...)
		d.Spec.ProcessPolicy = append(d.Spec.ProcessPolicy, ProcessNode{PolicyNode: &PolicyNodeRef{ID: target, Children: children}})
	}
	d.Spec.NetworkPolicy = &NetworkPolicy{Ingress: g.rules(ids, true), Egress: g.rules(ids, false)}
	return d
}

// FuzzMergeGenerated checks create and merge on generated documents:
// valid inputs give a valid policy that covers every fingerprint, merging
// deviations is idempotent, leaves the base alone and makes them covered.
func FuzzMergeGenerated(f *testing.F) {
	for seed := range int64(16) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed int64) {
		g := newGen(seed)
		var fps []*Fingerprint
		var docs []Document
		for range 1 + g.r.Intn(3) {
			fp := g.fingerprint()
			if err := ValidateFingerprint(fp); err != nil {
				t.Fatalf("generated fingerprint does not validate: %v\n%s", err, encodeYAML(t, fp))
			}
			fps = append(fps, fp)
			docs = append(docs, Document{Fingerprint: fp})
		}
		p, err := PolicyFromFingerprints(fps, CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidatePolicy(p); err != nil {
			t.Fatalf("created policy does not validate: %v\n%s", err, encodeYAML(t, p))
		}
		for i, d := range docs {
			merged, err := Merge(p, d)
			if err != nil {
				t.Fatal(err)
			}
			if diff := DiffPolicies(p, merged); !diff.Empty() {
				t.Fatalf("fingerprint %d not covered by the created policy; merging adds:\n%s\nfingerprint:\n%s\npolicy:\n%s",
					i+1, diff, encodeYAML(t, fps[i]), encodeYAML(t, p))
			}
		}
		var devs []Document
		for range 1 + g.r.Intn(2) {
			d := g.deviation(p)
			if err := ValidateDeviation(d); err != nil {
				t.Fatalf("generated deviation does not validate: %v\n%s", err, encodeYAML(t, d))
			}
			devs = append(devs, Document{Deviation: d})
		}
		before := encodeYAML(t, p)
		merged, err := Merge(p, devs...)
		if err != nil {
			t.Fatal(err)
		}
		if encodeYAML(t, p) != before {
			t.Fatal("Merge modified its base")
		}
		if err := ValidatePolicy(merged); err != nil {
			t.Fatalf("merged policy does not validate: %v\n%s", err, encodeYAML(t, merged))
		}
		again, err := Merge(merged, devs...)
		if err != nil {
			t.Fatal(err)
		}
		if diff := DiffPolicies(merged, again); !diff.Empty() || encodeYAML(t, again) != encodeYAML(t, merged) {
			t.Fatalf("merging again changes the policy:\n%s", diff)
		}
		for _, d := range devs {
			if !mustCover(t, merged, d.Deviation) {
				t.Fatalf("deviation not covered after merging:\n%s", encodeYAML(t, d.Deviation))
			}
		}
	})
}
