package policy

import (
	"reflect"
	"strings"
	"testing"
)

func TestWildcard(t *testing.T) {
	tests := []struct{ a, b, want string }{
		{"celery-worker-1", "celery-worker-2", "celery-worker-*"},
		{"python3.11", "python3.12", "python3.1*"},
		{"worker-a", "other-a", "*er-a"},
		{"xxnginxyy", "aanginxbb", "*nginx*"},
		{"sh", "bash", ""},
		{"abc", "xyz", ""},
		{"", "abc", ""},
	}
	for _, tt := range tests {
		if got := wildcard(tt.a, tt.b); got != tt.want {
			t.Errorf("wildcard(%q, %q) = %q, want %q", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestSplitID(t *testing.T) {
	tests := []struct {
		id     string
		prefix string
		n      int
	}{
		{"nginx_0", "nginx", 0},
		{"nginx_12", "nginx", 12},
		{"celery-worker-1_3", "celery-worker-1", 3},
		{"nginx", "nginx", -1},
		{"nginx_", "nginx_", -1},
		{"a_b", "a_b", -1},
		{"a_01", "a_01", -1},
		{"a_-1", "a_-1", -1},
	}
	for _, tt := range tests {
		if p, n := splitID(tt.id); p != tt.prefix || n != tt.n {
			t.Errorf("splitID(%q) = %q, %d; want %q, %d", tt.id, p, n, tt.prefix, tt.n)
		}
	}
}

func TestFreshID(t *testing.T) {
	p := &WorkloadPolicy{Spec: Spec{ProcessPolicy: []ProcessNode{
		{Name: "nginx", ID: "nginx_0", Children: []ProcessNode{{Name: "nginx", ID: "nginx_2"}}},
		{Name: "sh", ID: "sh"},
	}}}
	m := newMerger(false, p)
	for _, tt := range []struct{ name, want string }{
		{"nginx", "nginx_3"}, // one past the highest, never reusing nginx_1
		{"nginx", "nginx_4"},
		{"sh", "sh_0"}, // the id "sh" has no number: sh_0 is free
		{"python*", "python_0"},
		{"***", "process_0"},
		{"curl", "curl_0"},
	} {
		if got := m.freshID(tt.name); got != tt.want {
			t.Errorf("freshID(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestPeerCovers(t *testing.T) {
	ip := func(cidr string, except ...string) Peer { return Peer{IPBlock: &IPBlock{CIDR: cidr, Except: except}} }
	dns := func(name string) Peer { return Peer{DNSSelector: []string{name}} }
	tests := []struct {
		name string
		a, b Peer
		want bool
	}{
		{"same /32", ip("10.0.0.1/32"), ip("10.0.0.1/32"), true},
		{"supernet", ip("10.0.0.0/8"), ip("10.1.2.3/32"), true},
		{"unmasked supernet", ip("10.1.2.3/8"), ip("10.200.0.0/16"), true},
		{"subnet does not cover", ip("10.1.2.3/32"), ip("10.0.0.0/8"), false},
		{"disjoint", ip("10.0.0.0/8"), ip("192.168.0.1/32"), false},
		{"families differ", ip("0.0.0.0/0"), ip("::1/128"), false},
		{"v6", ip("2001:db8::/32"), ip("2001:db8:1::/48"), true},
		{"except hits", ip("10.0.0.0/8", "10.1.0.0/16"), ip("10.1.2.3/32"), false},
		{"except elsewhere", ip("10.0.0.0/8", "10.1.0.0/16"), ip("10.2.0.0/16"), true},
		{"except inside, also excepted", ip("10.0.0.0/8", "10.1.1.0/24"), ip("10.1.0.0/16", "10.1.0.0/20", "10.1.1.0/24"), true},
		{"except inside, not excepted", ip("10.0.0.0/8", "10.1.1.0/24"), ip("10.1.0.0/16"), false},
		{"except covers all of b", ip("10.0.0.0/8", "10.1.0.0/16"), ip("10.1.0.0/16"), false},
		{"dns same", dns("a.example.com"), dns("a.example.com"), true},
		{"dns glob", dns("*.example.com"), dns("a.b.example.com"), true},
		{"dns glob of glob", dns("*.example.com"), dns("*.a.example.com"), true},
		{"dns case", dns("*.Example.com"), dns("A.example.COM"), true},
		{"dns apex", dns("*.example.com"), dns("example.com"), false},
		{"dns vs ip", dns("*"), ip("10.0.0.1/32"), false},
		{"bad cidr same", ip("bogus"), ip("bogus"), true},
		{"bad cidr differs", ip("bogus"), ip("10.0.0.1/32"), false},
	}
	for _, tt := range tests {
		if got := peerCovers(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: peerCovers = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestAddPeersOrderAndDedup(t *testing.T) {
	in := []Peer{
		{IPBlock: &IPBlock{CIDR: "2001:db8::1/128"}},
		{IPBlock: &IPBlock{CIDR: "10.0.0.9/32"}},
		{DNSSelector: []string{"b.example.com", "a.example.com"}},
		{IPBlock: &IPBlock{CIDR: "9.0.0.0/8"}},
		{IPBlock: &IPBlock{CIDR: "10.0.0.0/24"}},
		{DNSSelector: []string{"*.example.com"}},
		{IPBlock: &IPBlock{CIDR: "9.9.9.9/32"}},
	}
	got := addPeers(nil, splitPeers(in))
	var desc []string
	for _, p := range got {
		desc = append(desc, formatPeer(p))
	}
	want := []string{"*.example.com", "9.0.0.0/8", "10.0.0.0/24", "2001:db8::1/128"}
	if !reflect.DeepEqual(desc, want) {
		t.Errorf("addPeers = %v, want %v", desc, want)
	}
}

func rule(peers []string, processes []string, ports ...Port) NetworkRule {
	r := NetworkRule{Ports: ports, Processes: processes}
	for _, p := range peers {
		if strings.ContainsAny(p, "/:") {
			r.To = append(r.To, Peer{IPBlock: &IPBlock{CIDR: p}})
		} else {
			r.To = append(r.To, Peer{DNSSelector: []string{p}})
		}
	}
	return r
}

func tcp(port int) Port           { return Port{Port: port, Protocol: ProtocolTCP} }
func tcpRange(port, end int) Port { return Port{Port: port, EndPort: end, Protocol: ProtocolTCP} }

func TestMergeRules(t *testing.T) {
	tests := []struct {
		name    string
		dst, in []NetworkRule
		ids     map[string]string
		want    []NetworkRule
	}{
		{
			name: "same ports and processes fold peers",
			dst:  []NetworkRule{rule([]string{"10.0.0.2/32"}, []string{"a_0"}, tcp(443))},
			in:   []NetworkRule{rule([]string{"10.0.0.1/32", "10.0.0.2/32"}, []string{"a_0"}, tcp(443))},
			want: []NetworkRule{rule([]string{"10.0.0.1/32", "10.0.0.2/32"}, []string{"a_0"}, tcp(443))},
		},
		{
			name: "peer covered by a wider rule adds nothing",
			dst:  []NetworkRule{rule([]string{"10.0.0.0/8"}, nil, tcpRange(1, 1024))},
			in:   []NetworkRule{rule([]string{"10.1.1.1/32"}, []string{"a_0"}, tcp(443))},
			want: []NetworkRule{rule([]string{"10.0.0.0/8"}, nil, tcpRange(1, 1024))},
		},
		{
			// spyctl would fold 10.9.9.9 into the 1000-2000 rule; Bulwark
			// keeps it to the port it was seen on.
			name: "range rule does not absorb a new peer",
			dst:  []NetworkRule{rule([]string{"10.0.0.1/32"}, nil, tcpRange(1000, 2000))},
			in:   []NetworkRule{rule([]string{"10.9.9.9/32"}, nil, tcp(1500))},
			want: []NetworkRule{
				rule([]string{"10.0.0.1/32"}, nil, tcpRange(1000, 2000)),
				rule([]string{"10.9.9.9/32"}, nil, tcp(1500)),
			},
		},
		{
			name: "other process gets its own rule",
			dst:  []NetworkRule{rule([]string{"10.0.0.1/32"}, []string{"a_0"}, tcp(443))},
			in:   []NetworkRule{rule([]string{"10.0.0.1/32"}, []string{"b_0"}, tcp(443))},
			want: []NetworkRule{
				rule([]string{"10.0.0.1/32"}, []string{"a_0"}, tcp(443)),
				rule([]string{"10.0.0.1/32"}, []string{"b_0"}, tcp(443)),
			},
		},
		{
			name: "rule for any process covers one for a process",
			dst:  []NetworkRule{rule([]string{"*.example.com"}, nil, tcp(443))},
			in:   []NetworkRule{rule([]string{"api.example.com"}, []string{"b_0"}, tcp(443))},
			want: []NetworkRule{rule([]string{"*.example.com"}, nil, tcp(443))},
		},
		{
			name: "protocol differs",
			dst:  []NetworkRule{rule([]string{"10.0.0.1/32"}, nil, tcp(53))},
			in:   []NetworkRule{rule([]string{"10.0.0.1/32"}, nil, Port{Port: 53, Protocol: ProtocolUDP})},
			want: []NetworkRule{
				rule([]string{"10.0.0.1/32"}, nil, tcp(53)),
				rule([]string{"10.0.0.1/32"}, nil, Port{Port: 53, Protocol: ProtocolUDP}),
			},
		},
		{
			name: "processes renamed, sorted and de-duplicated",
			in:   []NetworkRule{rule([]string{"10.0.0.1/32"}, []string{"x_0", "sh_0", "x_0"}, tcp(80))},
			ids:  map[string]string{"sh_0": "sh_3"},
			want: []NetworkRule{rule([]string{"10.0.0.1/32"}, []string{"sh_3", "x_0"}, tcp(80))},
		},
		{
			name: "only uncovered peers form the new rule",
			dst:  []NetworkRule{rule([]string{"10.0.0.0/8"}, nil, tcp(443))},
			in:   []NetworkRule{rule([]string{"10.1.1.1/32", "192.168.1.1/32"}, []string{"a_0"}, tcp(443))},
			want: []NetworkRule{
				rule([]string{"10.0.0.0/8"}, nil, tcp(443)),
				rule([]string{"192.168.1.1/32"}, []string{"a_0"}, tcp(443)),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mergeRules(tt.dst, tt.in, false, tt.ids)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("mergeRules =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func nginxFingerprint(name string) *Fingerprint {
	return &Fingerprint{
		APIVersion: APIVersionSpyderbat, Kind: KindSpyderbatFingerprint,
		Metadata: Metadata{Name: name, Type: TypeContainer},
		Spec: Spec{
			ContainerSelector: &ContainerSelector{Image: "docker.io/library/nginx:1.25", ImageID: "sha256:aaaa", ContainerID: "c1"},
			PodSelector:       &LabelSelector{MatchLabels: map[string]string{"app": "web", "pod-template-hash": "1"}},
			MachineSelector:   &MachineSelector{Hostname: StringList{"node-1"}},
			ProcessPolicy: []ProcessNode{{Name: "nginx", Exe: []string{"/usr/sbin/nginx"}, Euser: []string{"root"}, ID: "nginx_0",
				ListeningSockets: []Port{tcp(80)}}},
		},
	}
}

func TestPolicyFromFingerprintsSelectors(t *testing.T) {
	a, b := nginxFingerprint("a"), nginxFingerprint("b")
	b.Spec.ContainerSelector.Image = "docker.io/library/nginx:1.26"
	b.Spec.ContainerSelector.ContainerID = "c2"
	b.Spec.PodSelector.MatchLabels["pod-template-hash"] = "2"
	b.Spec.MachineSelector.Hostname = StringList{"node-2"}
	p, err := PolicyFromFingerprints([]*Fingerprint{a, b}, CreateOptions{IncludeImageID: true})
	if err != nil {
		t.Fatal(err)
	}
	want := &ContainerSelector{Image: "docker.io/library/nginx:1.2*", ImageID: "sha256:aaaa"}
	if !reflect.DeepEqual(p.Spec.ContainerSelector, want) {
		t.Errorf("containerSelector = %+v, want %+v", p.Spec.ContainerSelector, want)
	}
	if want := map[string]string{"app": "web"}; !reflect.DeepEqual(p.Spec.PodSelector.MatchLabels, want) {
		t.Errorf("podSelector = %v, want %v", p.Spec.PodSelector.MatchLabels, want)
	}
	if want := (StringList{"node-1", "node-2"}); !reflect.DeepEqual(p.Spec.MachineSelector.Hostname, want) {
		t.Errorf("hostname = %v, want %v", p.Spec.MachineSelector.Hostname, want)
	}
	if p.Metadata.Name != "docker.io/library/nginx:1.2*" || p.Spec.Mode != ModeAudit || p.Spec.Enabled == nil || !*p.Spec.Enabled {
		t.Errorf("metadata/spec = %q %q %v", p.Metadata.Name, p.Spec.Mode, p.Spec.Enabled)
	}
	if !reflect.DeepEqual(p.Spec.Response, DefaultResponse()) {
		t.Errorf("response = %+v", p.Spec.Response)
	}
	if err := ValidatePolicy(p); err != nil {
		t.Errorf("ValidatePolicy: %v", err)
	}

	// imageID is dropped by default; a fingerprint without pod labels drops
	// the podSelector.
	c := nginxFingerprint("c")
	c.Spec.PodSelector = nil
	p, err = PolicyFromFingerprints([]*Fingerprint{a, c}, CreateOptions{Name: "web", Mode: ModeEnforce})
	if err != nil {
		t.Fatal(err)
	}
	want = &ContainerSelector{Image: "docker.io/library/nginx:1.25", ContainerID: "c1"}
	if !reflect.DeepEqual(p.Spec.ContainerSelector, want) || p.Spec.PodSelector != nil {
		t.Errorf("selectors = %+v, pod %+v", p.Spec.ContainerSelector, p.Spec.PodSelector)
	}
	if p.Metadata.Name != "web" || p.Spec.Mode != ModeEnforce {
		t.Errorf("name %q mode %q, want web enforce", p.Metadata.Name, p.Spec.Mode)
	}
	// The inputs are not modified.
	if a.Spec.ContainerSelector.ImageID != "sha256:aaaa" || len(a.Spec.PodSelector.MatchLabels) != 2 {
		t.Error("PolicyFromFingerprints modified its input")
	}
}

func TestPolicyFromFingerprintsErrors(t *testing.T) {
	svc := &Fingerprint{Metadata: Metadata{Name: "svc", Type: TypeLinuxService},
		Spec: Spec{ServiceSelector: &ServiceSelector{Cgroup: "systemd:/system.slice/x.service"}}}
	redis := nginxFingerprint("redis")
	redis.Spec.ContainerSelector.Image = "quay.io/redis"
	tests := []struct {
		name string
		fps  []*Fingerprint
		opts CreateOptions
		want string
	}{
		{"none", nil, CreateOptions{}, "no fingerprints"},
		{"bad mode", []*Fingerprint{nginxFingerprint("a")}, CreateOptions{Mode: "block"}, `mode "block"`},
		{"mixed types", []*Fingerprint{nginxFingerprint("a"), svc}, CreateOptions{}, `fingerprint "svc" is of type linux-service`},
		{"unrelated images", []*Fingerprint{nginxFingerprint("a"), redis}, CreateOptions{}, "not of one repository"},
		{"unknown type", []*Fingerprint{{Metadata: Metadata{Type: "cluster"}}}, CreateOptions{}, `unknown workload type "cluster"`},
	}
	for _, tt := range tests {
		_, err := PolicyFromFingerprints(tt.fps, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestPolicyFromFingerprintsProcesses(t *testing.T) {
	a, b := nginxFingerprint("a"), nginxFingerprint("b")
	// b's master runs from another directory (matched by base name), as
	// another user, and listens on a range containing a's port.
	b.Spec.ProcessPolicy[0].Exe = []string{"/usr/local/sbin/nginx"}
	b.Spec.ProcessPolicy[0].Euser = []string{"www-data", "root"}
	b.Spec.ProcessPolicy[0].ListeningSockets = []Port{tcpRange(80, 90)}
	// and its shell child, which b's egress rule names.
	b.Spec.ProcessPolicy[0].Children = []ProcessNode{{Name: "sh", Exe: []string{"/bin/sh"}, ID: "nginx_1"}}
	b.Spec.NetworkPolicy = &NetworkPolicy{Egress: []NetworkRule{rule([]string{"10.0.0.1/32"}, []string{"nginx_1"}, tcp(80))}}
	// a has a root shell as sh_0, so b's child shell gets sh_1...
	a.Spec.ProcessPolicy = append(a.Spec.ProcessPolicy, ProcessNode{Name: "sh", Exe: []string{"/bin/sh"}, Euser: []string{"root"}, ID: "sh_0"})
	p, err := PolicyFromFingerprints([]*Fingerprint{a, b}, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root := p.Spec.ProcessPolicy[0]
	if want := []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"}; !reflect.DeepEqual(root.Exe, want) {
		t.Errorf("exe = %v, want %v", root.Exe, want)
	}
	if want := []string{"root", "www-data"}; !reflect.DeepEqual(root.Euser, want) {
		t.Errorf("euser = %v, want %v", root.Euser, want)
	}
	if want := []Port{tcpRange(80, 90)}; !reflect.DeepEqual(root.ListeningSockets, want) {
		t.Errorf("listeningSockets = %v, want %v", root.ListeningSockets, want)
	}
	if len(root.Children) != 1 || root.Children[0].ID != "sh_1" {
		t.Fatalf("children = %+v, want the shell as sh_1", root.Children)
	}
	// ...and the rule follows it.
	if got := p.Spec.NetworkPolicy.Egress[0].Processes; !reflect.DeepEqual(got, []string{"sh_1"}) {
		t.Errorf("egress processes = %v, want [sh_1]", got)
	}
	if err := ValidatePolicy(p); err != nil {
		t.Errorf("ValidatePolicy: %v", err)
	}
}

func mongoPolicy() *WorkloadPolicy {
	enabled := false
	return &WorkloadPolicy{
		APIVersion: APIVersionBulwark, Kind: KindWorkloadPolicy,
		Metadata: Metadata{Name: "mongo", Type: TypeContainer},
		Spec: Spec{
			ContainerSelector: &ContainerSelector{Image: "mongo:*"},
			Mode:              ModeEnforce, Enabled: &enabled, DisableConnections: "ingress",
			ProcessPolicy: []ProcessNode{{Name: "mongo*", Exe: []string{"/usr/bin/mongo*"}, Euser: []string{"mongodb"}, ID: "mongod_0"}},
			NetworkPolicy: &NetworkPolicy{Ingress: []NetworkRule{}, Egress: []NetworkRule{}},
			Response:      &Response{Default: []Action{{AgentKillPod: &KillAction{}}}, Actions: []Action{}},
		},
	}
}

func TestMergeKeepsBase(t *testing.T) {
	base := mongoPolicy()
	fp := &Fingerprint{
		Metadata: Metadata{Type: TypeContainer},
		Spec: Spec{
			ContainerSelector: &ContainerSelector{Image: "mongo:7"},
			Mode:              ModeAudit,
			ProcessPolicy: []ProcessNode{
				// Joins mongod_0: its name and exe match the patterns.
				{Name: "mongod", Exe: []string{"/usr/bin/mongod"}, Euser: []string{"root"}, ID: "mongod_0"},
				// A pattern-wider name does not join in an add-only merge.
				{Name: "m*", Exe: []string{"/usr/bin/mongod"}, Euser: []string{"root"}, ID: "m_0"},
			},
		},
	}
	got, err := Merge(base, Document{Fingerprint: fp})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Mode != ModeEnforce || *got.Spec.Enabled || got.Spec.DisableConnections != "ingress" ||
		got.Spec.ContainerSelector.Image != "mongo:*" || got.Spec.Response.Default[0].AgentKillPod == nil {
		t.Errorf("base settings not kept: %+v", got.Spec)
	}
	nodes := got.Spec.ProcessPolicy
	if len(nodes) != 2 || nodes[0].Name != "mongo*" || !reflect.DeepEqual(nodes[0].Exe, []string{"/usr/bin/mongo*"}) ||
		!reflect.DeepEqual(nodes[0].Euser, []string{"mongodb", "root"}) || nodes[1].ID != "m_0" {
		t.Errorf("processPolicy = %+v", nodes)
	}
	if len(base.Spec.ProcessPolicy) != 1 || len(base.Spec.ProcessPolicy[0].Euser) != 1 {
		t.Error("Merge modified its base")
	}
}

func TestMergeErrors(t *testing.T) {
	svc := &Fingerprint{Metadata: Metadata{Type: TypeLinuxService}}
	bad := &Deviation{Spec: Spec{ProcessPolicy: []ProcessNode{{PolicyNode: &PolicyNodeRef{ID: "nope_0"}}}}}
	tests := []struct {
		name string
		base *WorkloadPolicy
		with []Document
		want string
	}{
		{"no base", nil, nil, "no policy"},
		{"flag", mongoPolicy(), []Document{{Kind: KindFlag, Flag: &Flag{}}}, "only fingerprints, deviations and policies"},
		{"type", mongoPolicy(), []Document{{Fingerprint: svc}}, "of type linux-service"},
		{"unknown policyNode", mongoPolicy(), []Document{{Deviation: bad}}, `policyNode "nope_0"`},
	}
	for _, tt := range tests {
		_, err := Merge(tt.base, tt.with...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

// mustCover reports whether p covers d; a d that does not merge into p is
// a test error (and not covered).
func mustCover(t testing.TB, p *WorkloadPolicy, d *Deviation) bool {
	t.Helper()
	covered, err := Covers(p, d)
	if err != nil {
		t.Errorf("deviation does not merge: %v", err)
	}
	return covered
}

func TestCovers(t *testing.T) {
	p := mongoPolicy()
	p.Spec.NetworkPolicy.Egress = []NetworkRule{rule([]string{"*.example.com", "10.0.0.0/8"}, nil, tcpRange(443, 444))}
	graft := func(children ...ProcessNode) []ProcessNode {
		return []ProcessNode{{PolicyNode: &PolicyNodeRef{ID: "mongod_0", Children: children}}}
	}
	tests := []struct {
		name        string
		spec        Spec
		want        bool
		unmergeable bool
	}{
		{"empty", Spec{}, true, false},
		{"known egress", Spec{NetworkPolicy: &NetworkPolicy{Egress: []NetworkRule{
			rule([]string{"db.example.com", "10.1.2.3/32"}, []string{"mongod_0"}, tcp(443))}}}, true, false},
		{"new port", Spec{NetworkPolicy: &NetworkPolicy{Egress: []NetworkRule{
			rule([]string{"db.example.com"}, nil, tcp(80))}}}, false, false},
		{"new peer", Spec{NetworkPolicy: &NetworkPolicy{Egress: []NetworkRule{
			rule([]string{"example.org"}, nil, tcp(443))}}}, false, false},
		{"known root", Spec{ProcessPolicy: []ProcessNode{{Name: "mongos", Exe: []string{"/usr/bin/mongos"}, Euser: []string{"mongodb"}, ID: "x_0"}}}, true, false},
		{"new euser", Spec{ProcessPolicy: []ProcessNode{{Name: "mongod", Exe: []string{"/usr/bin/mongod"}, Euser: []string{"root"}, ID: "x_0"}}}, false, false},
		{"new child", Spec{ProcessPolicy: graft(ProcessNode{Name: "sh", Exe: []string{"/bin/sh"}, ID: "sh_0"})}, false, false},
		{"unknown graft", Spec{ProcessPolicy: []ProcessNode{{PolicyNode: &PolicyNodeRef{ID: "zz_0"}}}}, false, true},
	}
	for _, tt := range tests {
		d := &Deviation{Metadata: Metadata{Type: TypeContainer}, Spec: tt.spec}
		got, err := Covers(p, d)
		if got != tt.want || (err != nil) != tt.unmergeable {
			t.Errorf("%s: Covers = %v, %v; want %v (unmergeable %v)", tt.name, got, err, tt.want, tt.unmergeable)
		}
		if tt.want || tt.unmergeable {
			continue
		}
		// Once merged, the deviation is covered.
		merged, err := Merge(p, Document{Deviation: d})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !mustCover(t, merged, d) {
			t.Errorf("%s: not covered after merging it", tt.name)
		}
	}
}

func TestDiffString(t *testing.T) {
	base := mongoPolicy()
	merged := mongoPolicy()
	merged.Spec.ProcessPolicy[0].Exe = append(merged.Spec.ProcessPolicy[0].Exe, "/opt/mongod")
	merged.Spec.ProcessPolicy[0].ListeningSockets = []Port{tcpRange(27017, 27019)}
	merged.Spec.ProcessPolicy[0].Children = []ProcessNode{{Name: "sh", Exe: []string{"/bin/sh"}, ID: "sh_0",
		Children: []ProcessNode{{Name: "curl", Exe: []string{"/usr/bin/curl"}, Euser: []string{"root"}, ID: "curl_0"}}}}
	merged.Spec.ProcessPolicy = append(merged.Spec.ProcessPolicy, ProcessNode{Name: "tini", Exe: []string{"/tini"}, Euser: []string{"root"}, ID: "tini_0"})
	merged.Spec.NetworkPolicy.Ingress = []NetworkRule{{From: []Peer{{IPBlock: &IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.9.0.0/16"}}}}, Ports: []Port{tcp(27017)}}}
	merged.Spec.NetworkPolicy.Egress = []NetworkRule{rule([]string{"a.example.com", "1.2.3.4/32"}, []string{"curl_0", "sh_0"}, tcp(443), Port{Port: 53, Protocol: ProtocolUDP})}
	d := DiffPolicies(base, merged)
	want := `+ process sh_0 (/bin/sh, euser mongodb) under mongod_0
+ process curl_0 (/usr/bin/curl, euser root) under sh_0
+ process tini_0 (/tini, euser root) at the top level
~ process mongod_0: + exe /opt/mongod, + listening 27017-27019/TCP
+ ingress from 10.0.0.0/8 except 10.9.0.0/16 on 27017/TCP by any process
+ egress to a.example.com, 1.2.3.4/32 on 443/TCP, 53/UDP by curl_0, sh_0
`
	if got := d.String(); got != want {
		t.Errorf("String =\n%s\nwant\n%s", got, want)
	}
	if d.Empty() {
		t.Error("Empty = true")
	}
	if got := DiffPolicies(merged, base); !got.Empty() || got.String() != "no changes\n" {
		t.Errorf("reverse diff = %q, want no changes", got.String())
	}
}

func TestMergeImages(t *testing.T) {
	tests := []struct{ a, b, want string }{
		{"nginx", "nginx", "nginx"},
		{"nginx", "docker.io/library/nginx:latest", "docker.io/library/nginx:latest"},
		{"docker.io/library/nginx:*", "nginx:1.25", "docker.io/library/nginx:*"},
		{"nginx:1.25", "docker.io/library/nginx:*", "docker.io/library/nginx:*"},
		{"nginx:1.25", "nginx:1.26", "docker.io/library/nginx:1.2*"},
		{"nginx:latest", "nginx:1.25", "docker.io/library/nginx:*"},
		{"registry:5000/app:v1", "registry:5000/app:v2", "registry:5000/app:v*"},
		{"nginx", "redis", ""},
		{"registry:5000/app:v1", "registry:5001/app:v1", ""},
		{"nginx", "", ""},
	}
	for _, tt := range tests {
		got, err := mergeImages(tt.a, tt.b)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("mergeImages(%q, %q) = %q, %v; want %q", tt.a, tt.b, got, err, tt.want)
		}
	}
}

// BenchmarkPolicyFromFingerprints creates one policy from 50 generated
// fingerprints (a workload with 50 instances).
func BenchmarkPolicyFromFingerprints(b *testing.B) {
	g := newGen(1)
	fps := make([]*Fingerprint, 50)
	for i := range fps {
		fps[i] = g.fingerprint()
		fps[i].Spec.ContainerSelector.Image = "app:1"
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := PolicyFromFingerprints(fps, CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCovers checks a deviation against a policy, as a collector does
// for every deviation it stores.
func BenchmarkCovers(b *testing.B) {
	g := newGen(2)
	fps := make([]*Fingerprint, 10)
	for i := range fps {
		fps[i] = g.fingerprint()
		fps[i].Spec.ContainerSelector.Image = "app:1"
	}
	p, err := PolicyFromFingerprints(fps, CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	d := g.deviation(p)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Covers(p, d); err != nil {
			b.Fatal(err)
		}
	}
}
