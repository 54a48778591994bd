package agent

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/policy"
)

var fpUsers = map[string]uint32{"root": 0, "toor": 0, "www-data": 33}

var fpT0 = time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)

// Synthetic node keys of the test events (the kernel sets bit 63).
const (
	kSh   = 1<<63 | 0x10
	kTrue = 1<<63 | 0x11
	kCat  = 1<<63 | 0x12
	kNc   = 1<<63 | 0x13
	kSub  = 1<<63 | 0x14 // a second sh, under the first
	kLs   = 1<<63 | 0x15
	kSrv  = 1<<63 | 0x16
)

func execEv(at int, key, parent uint64, comm, exe string, euid uint32) bpf.Event {
	return bpf.Event{Kind: bpf.KindExec, NodeKey: key, ParentKey: parent, Comm: comm, Exe: exe, EUID: euid,
		Time: fpT0.Add(time.Duration(at) * time.Second)}
}

func connectEv(at int, key uint64, dst string, proto string) bpf.Event {
	return bpf.Event{Kind: bpf.KindConnect, NodeKey: key, Dst: netip.MustParseAddrPort(dst), Protocol: proto,
		Time: fpT0.Add(time.Duration(at) * time.Second)}
}

func acceptEv(at int, key uint64, src, local string, proto string) bpf.Event {
	return bpf.Event{Kind: bpf.KindAccept, NodeKey: key, Src: netip.MustParseAddrPort(src),
		Dst: netip.MustParseAddrPort(local), Protocol: proto, Time: fpT0.Add(time.Duration(at) * time.Second)}
}

func credEv(at int, key, parent uint64, comm, exe string, oldEUID, euid uint32) bpf.Event {
	return bpf.Event{Kind: bpf.KindCred, NodeKey: key, ParentKey: parent, Comm: comm, Exe: exe,
		OldEUID: oldEUID, EUID: euid, Time: fpT0.Add(time.Duration(at) * time.Second)}
}

// scriptEvents is what a shell script that runs true, cat, nc and a
// subshell running ls produces, in kernel order.
func scriptEvents() []bpf.Event {
	return []bpf.Event{
		execEv(0, kSh, 0, "sh", "/usr/bin/dash", 0),
		execEv(1, kTrue, kSh, "true", "/usr/bin/true", 0),
		execEv(2, kCat, kSh, "cat", "/usr/bin/cat", 0),
		execEv(3, kNc, kSh, "nc", "/usr/bin/busybox", 33),
		connectEv(4, kNc, "127.0.0.1:8080", "TCP"),
		execEv(5, kSub, kSh, "sh", "/usr/bin/dash", 0),
		execEv(6, kLs, kSub, "ls", "/usr/bin/ls", 0),
	}
}

func build(t *testing.T, id policy.Identity, evs []bpf.Event) *policy.Fingerprint {
	t.Helper()
	b := NewFingerprintBuilder(id, fpUsers)
	for _, ev := range evs {
		b.Observe(ev)
	}
	return b.Fingerprint()
}

var serviceID = policy.Identity{Type: policy.TypeLinuxService, ServiceName: "demo.service",
	ServiceCgroup: "systemd:/system.slice/demo.service", Hostname: "node-1"}

func TestFingerprintProcessTree(t *testing.T) {
	fp := build(t, serviceID, scriptEvents())
	want := []policy.ProcessNode{{
		Name: "sh", Exe: []string{"/usr/bin/dash"}, Euser: []string{"root"}, ID: "sh_0",
		Children: []policy.ProcessNode{
			{Name: "true", Exe: []string{"/usr/bin/true"}, Euser: []string{"root"}, ID: "true_0"},
			{Name: "cat", Exe: []string{"/usr/bin/cat"}, Euser: []string{"root"}, ID: "cat_0"},
			{Name: "nc", Exe: []string{"/usr/bin/busybox"}, Euser: []string{"www-data"}, ID: "nc_0"},
			{Name: "sh", Exe: []string{"/usr/bin/dash"}, Euser: []string{"root"}, ID: "sh_1",
				Children: []policy.ProcessNode{{Name: "ls", Exe: []string{"/usr/bin/ls"}, Euser: []string{"root"}, ID: "ls_0"}}},
		},
	}}
	if !reflect.DeepEqual(fp.Spec.ProcessPolicy, want) {
		t.Fatalf("process tree\n got %+v\nwant %+v", fp.Spec.ProcessPolicy, want)
	}
}

func TestFingerprintStableIDs(t *testing.T) {
	a := build(t, serviceID, scriptEvents())
	b := build(t, serviceID, scriptEvents())
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same events, different fingerprints:\n%+v\n%+v", a, b)
	}
	// Ids never change once given: more behaviour only adds nodes.
	bl := NewFingerprintBuilder(serviceID, fpUsers)
	evs := scriptEvents()
	for _, ev := range evs[:3] {
		bl.Observe(ev)
	}
	early := bl.Fingerprint()
	for _, ev := range evs[3:] {
		bl.Observe(ev)
	}
	late := bl.Fingerprint()
	if early.Spec.ProcessPolicy[0].ID != late.Spec.ProcessPolicy[0].ID ||
		early.Spec.ProcessPolicy[0].Children[1].ID != late.Spec.ProcessPolicy[0].Children[1].ID {
		t.Fatalf("ids changed as behaviour was added: %+v then %+v", early.Spec.ProcessPolicy, late.Spec.ProcessPolicy)
	}
	if early.Metadata.UID != late.Metadata.UID || early.Metadata.Version >= late.Metadata.Version {
		t.Fatalf("uid %s→%s version %d→%d", early.Metadata.UID, late.Metadata.UID, early.Metadata.Version, late.Metadata.Version)
	}
	if early.Metadata.Checksum == late.Metadata.Checksum {
		t.Fatal("checksum did not change with the spec")
	}
}

func TestFingerprintOrphansAttachAtRoot(t *testing.T) {
	b := NewFingerprintBuilder(serviceID, fpUsers)
	// The parent's exec was lost: the child is a root for now.
	b.Observe(execEv(1, kLs, kSub, "ls", "/usr/bin/ls", 0))
	b.Observe(execEv(2, kSh, 0, "sh", "/usr/bin/dash", 0))
	fp := b.Fingerprint()
	if got := ids(fp.Spec.ProcessPolicy); !slices.Equal(got, []string{"ls_0", "sh_0"}) {
		t.Fatalf("roots %v, want ls_0 and sh_0", got)
	}
	// It arrives later (reported again): the child moves under it, its id unchanged.
	b.Observe(execEv(3, kSub, kSh, "sh", "/usr/bin/dash", 0))
	fp = b.Fingerprint()
	if got := ids(fp.Spec.ProcessPolicy); !slices.Equal(got, []string{"sh_0"}) {
		t.Fatalf("roots %v, want sh_0", got)
	}
	sub := fp.Spec.ProcessPolicy[0].Children
	if len(sub) != 1 || sub[0].ID != "sh_1" || len(sub[0].Children) != 1 || sub[0].Children[0].ID != "ls_0" {
		t.Fatalf("tree %+v", fp.Spec.ProcessPolicy)
	}
	// Colliding keys that would make a cycle do not loop: the node stays a root.
	c := NewFingerprintBuilder(serviceID, fpUsers)
	c.Observe(execEv(0, kSh, kSh, "sh", "/usr/bin/dash", 0))
	if got := ids(c.Fingerprint().Spec.ProcessPolicy); !slices.Equal(got, []string{"sh_0"}) {
		t.Fatalf("self-parented node: roots %v", got)
	}
}

func ids(ns []policy.ProcessNode) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.ID)
	}
	return out
}

func TestFingerprintNetwork(t *testing.T) {
	evs := append(scriptEvents(),
		// nc and cat to the same peer and port: one entry, both processes.
		connectEv(7, kCat, "127.0.0.1:8080", "TCP"),
		connectEv(8, kNc, "10.1.2.3:8080", "TCP"),
		connectEv(9, kCat, "10.1.2.3:8080", "TCP"),
		// IPv6, v4-mapped and a repeat.
		connectEv(10, kNc, "[2001:db8::1]:443", "TCP"),
		connectEv(11, kNc, "[::ffff:192.0.2.7]:443", "TCP"),
		connectEv(12, kNc, "192.0.2.7:443", "TCP"),
		// UDP to the same port is another rule; a process without a node is any process.
		connectEv(13, 0, "192.0.2.53:53", "UDP"),
		// A server listening on 8443, accepting from two clients.
		execEv(14, kSrv, kSh, "server", "/srv/server", 33),
		listenEv(14, kSrv, "0.0.0.0:8443", "TCP"),
		acceptEv(15, kSrv, "192.0.2.10:40000", "192.0.2.1:8443", "TCP"),
		acceptEv(16, kSrv, "[2001:db8::10]:40001", "[2001:db8::1]:8443", "TCP"),
	)
	fp := build(t, serviceID, evs)
	to := func(cidrs ...string) []policy.Peer {
		var out []policy.Peer
		for _, c := range cidrs {
			out = append(out, policy.Peer{IPBlock: &policy.IPBlock{CIDR: c}})
		}
		return out
	}
	wantEgress := []policy.NetworkRule{
		{To: to("192.0.2.53/32"), Ports: []policy.Port{{Port: 53, Protocol: "UDP"}}},
		{To: to("192.0.2.7/32", "2001:db8::1/128"), Ports: []policy.Port{{Port: 443, Protocol: "TCP"}}, Processes: []string{"nc_0"}},
		{To: to("10.1.2.3/32", "127.0.0.1/32"), Ports: []policy.Port{{Port: 8080, Protocol: "TCP"}}, Processes: []string{"cat_0", "nc_0"}},
	}
	if !reflect.DeepEqual(fp.Spec.NetworkPolicy.Egress, wantEgress) {
		t.Errorf("egress\n got %s\nwant %s", rulesString(fp.Spec.NetworkPolicy.Egress), rulesString(wantEgress))
	}
	wantIngress := []policy.NetworkRule{
		{From: to("192.0.2.10/32", "2001:db8::10/128"), Ports: []policy.Port{{Port: 8443, Protocol: "TCP"}}, Processes: []string{"server_0"}},
	}
	if !reflect.DeepEqual(fp.Spec.NetworkPolicy.Ingress, wantIngress) {
		t.Errorf("ingress\n got %s\nwant %s", rulesString(fp.Spec.NetworkPolicy.Ingress), rulesString(wantIngress))
	}
	srv := fp.Spec.ProcessPolicy[0].Children[4]
	if srv.ID != "server_0" || !reflect.DeepEqual(srv.ListeningSockets, []policy.Port{{Port: 8443, Protocol: "TCP"}}) {
		t.Errorf("listener %+v, want server_0 listening on 8443/TCP", srv)
	}
}

func rulesString(rs []policy.NetworkRule) string {
	var out []string
	for _, r := range rs {
		var peers []string
		for _, p := range append(r.To, r.From...) {
			if p.IPBlock != nil {
				peers = append(peers, p.IPBlock.CIDR)
			} else {
				peers = append(peers, "dns:"+strings.Join(p.DNSSelector, ","))
			}
		}
		out = append(out, fmt.Sprintf("{peers=%v ports=%v processes=%v}", peers, r.Ports, r.Processes))
	}
	return strings.Join(out, " ")
}

// resolvedEv is a connect to an address the workload resolved name to.
func resolvedEv(at int, key uint64, dst, name string) bpf.Event {
	ev := connectEv(at, key, dst, "TCP")
	ev.DNSName = name
	return ev
}

func TestFingerprintDNSNames(t *testing.T) {
	evs := append(scriptEvents(),
		// Two addresses of one name, IPv4 and IPv6: one peer.
		resolvedEv(7, kNc, "192.0.2.7:443", "api.example.com"),
		resolvedEv(8, kNc, "[2001:db8::7]:443", "api.example.com"),
		// The kernel writes names in lower case; a trailing dot or upper
		// case from elsewhere is the same name.
		resolvedEv(9, kNc, "192.0.2.8:443", "API.Example.com."),
		// A second name, and an address reached without a lookup, on
		// the same port and process: names first, then the address.
		resolvedEv(10, kNc, "192.0.2.9:443", "cdn.example.net"),
		connectEv(11, kNc, "198.51.100.1:443", "TCP"),
		// A name with glob characters would allow more than itself: its
		// address is written instead; so is one of an empty label.
		resolvedEv(12, kCat, "203.0.113.5:80", "*.example.com"),
		resolvedEv(13, kCat, "203.0.113.6:80", "a..example.com"),
		// The name goes with the address it was resolved to only: the
		// same address reached directly is an address peer.
		connectEv(14, kCat, "192.0.2.7:80", "TCP"),
		resolvedEv(15, kCat, "192.0.2.7:80", "api.example.com"),
	)
	fp := build(t, serviceID, evs)
	dns := func(n string) policy.Peer { return policy.Peer{DNSSelector: []string{n}} }
	ip := func(c string) policy.Peer { return policy.Peer{IPBlock: &policy.IPBlock{CIDR: c}} }
	want := []policy.NetworkRule{
		{To: []policy.Peer{dns("api.example.com"), ip("192.0.2.7/32"), ip("203.0.113.5/32"), ip("203.0.113.6/32")},
			Ports: []policy.Port{{Port: 80, Protocol: "TCP"}}, Processes: []string{"cat_0"}},
		{To: []policy.Peer{dns("api.example.com"), dns("cdn.example.net"), ip("198.51.100.1/32")},
			Ports: []policy.Port{{Port: 443, Protocol: "TCP"}}, Processes: []string{"nc_0"}},
		{To: []policy.Peer{ip("127.0.0.1/32")}, Ports: []policy.Port{{Port: 8080, Protocol: "TCP"}}, Processes: []string{"nc_0"}},
	}
	if got := fp.Spec.NetworkPolicy.Egress; !reflect.DeepEqual(got, want) {
		t.Fatalf("egress\n got %s\nwant %s", rulesString(got), rulesString(want))
	}
	if err := policy.ValidateFingerprint(fp); err != nil {
		t.Fatalf("fingerprint does not validate: %v", err)
	}
	// A second address of a name already learned is no change.
	b := NewFingerprintBuilder(serviceID, fpUsers)
	for _, ev := range evs {
		b.Observe(ev)
	}
	if b.Observe(resolvedEv(16, kNc, "192.0.2.99:443", "api.example.com")) {
		t.Fatal("a new address of a learned name changed the fingerprint")
	}
	if !b.Observe(resolvedEv(17, kNc, "192.0.2.99:443", "new.example.com")) {
		t.Fatal("a new name did not change the fingerprint")
	}
}

// TestFingerprintDNSMerge creates a policy from fingerprints with names and
// merges more into it: one name per selector, a glob absorbs the names it
// matches, names before addresses.
func TestFingerprintDNSMerge(t *testing.T) {
	fp1 := build(t, serviceID, append(scriptEvents(),
		resolvedEv(7, kNc, "192.0.2.7:443", "b.example.com"),
		resolvedEv(8, kNc, "192.0.2.8:443", "a.example.com"),
		connectEv(9, kNc, "198.51.100.1:443", "TCP")))
	// Another instance resolved the same names to other addresses.
	fp2 := build(t, serviceID, append(scriptEvents(),
		resolvedEv(7, kNc, "192.0.2.70:443", "a.example.com"),
		resolvedEv(8, kNc, "192.0.2.71:443", "c.example.org")))
	pol, err := policy.PolicyFromFingerprints([]*policy.Fingerprint{fp1, fp2}, policy.CreateOptions{Mode: policy.ModeEnforce})
	if err != nil {
		t.Fatal(err)
	}
	r := egressTo(pol, 443)
	if r == nil || rulesString([]policy.NetworkRule{*r}) != "{peers=[dns:a.example.com dns:b.example.com dns:c.example.org 198.51.100.1/32] ports=[{443 TCP 0}] processes=[nc_0]}" {
		t.Fatalf("443 rule of the created policy: %v", rulesString(pol.Spec.NetworkPolicy.Egress))
	}
	// A glob absorbs the names it matches, case-insensitively.
	glob := &policy.Deviation{Spec: policy.Spec{
		ProcessPolicy: []policy.ProcessNode{{PolicyNode: &policy.PolicyNodeRef{ID: "nc_0"}}},
		NetworkPolicy: &policy.NetworkPolicy{Egress: []policy.NetworkRule{{
			To:    []policy.Peer{{DNSSelector: []string{"*.EXAMPLE.com"}}},
			Ports: []policy.Port{{Port: 443, Protocol: "TCP"}}, Processes: []string{"nc_0"}}}}}}
	merged, err := policy.Merge(pol, policy.Document{Deviation: glob})
	if err != nil {
		t.Fatal(err)
	}
	if got := rulesString([]policy.NetworkRule{*egressTo(merged, 443)}); got != "{peers=[dns:*.EXAMPLE.com dns:c.example.org 198.51.100.1/32] ports=[{443 TCP 0}] processes=[nc_0]}" {
		t.Fatalf("after merging a glob: %s", got)
	}
	// A fingerprint with a name the glob matches adds nothing.
	again, err := policy.Merge(merged, policy.Document{Fingerprint: build(t, serviceID,
		append(scriptEvents(), resolvedEv(7, kNc, "192.0.2.9:443", "z.example.com")))})
	if err != nil {
		t.Fatal(err)
	}
	if d := policy.DiffPolicies(merged, again); !d.Empty() {
		t.Fatalf("a name under the glob added %+v", d)
	}
}

// egressTo is the policy's egress rule for TCP port, nil if none.
func egressTo(p *policy.WorkloadPolicy, port int) *policy.NetworkRule {
	for i, r := range p.Spec.NetworkPolicy.Egress {
		if len(r.Ports) == 1 && r.Ports[0].Port == port {
			return &p.Spec.NetworkPolicy.Egress[i]
		}
	}
	return nil
}

func TestFingerprintObserveReportsChanges(t *testing.T) {
	b := NewFingerprintBuilder(serviceID, fpUsers)
	steps := []struct {
		what string
		ev   bpf.Event
		want bool
	}{
		{"first exec", execEv(0, kSh, 0, "sh", "/usr/bin/dash", 0), true},
		{"same exec again", execEv(1, kSh, 0, "sh", "/usr/bin/dash", 0), false},
		{"same node, another user", execEv(2, kSh, 0, "sh", "/usr/bin/dash", 33), true},
		{"blocked exec", bpf.Event{Kind: bpf.KindExec, Blocked: true, Deviation: true, NodeKey: kLs, ParentKey: kSh, Comm: "ls", Exe: "/usr/bin/ls"}, false},
		{"audited deviation", bpf.Event{Kind: bpf.KindExec, Deviation: true, NodeKey: kCat, ParentKey: kSh, Comm: "cat", Exe: "/usr/bin/cat"}, true},
		{"connect", connectEv(3, kSh, "10.0.0.1:80", "TCP"), true},
		{"same connect", connectEv(4, kSh, "10.0.0.1:80", "TCP"), false},
		{"same connect, another process", connectEv(5, kCat, "10.0.0.1:80", "TCP"), true},
		{"blocked connect", bpf.Event{Kind: bpf.KindConnect, Blocked: true, Deviation: true, Dst: netip.MustParseAddrPort("10.9.9.9:22"), Protocol: "TCP"}, false},
		{"unknown kind", bpf.Event{Kind: 42}, false},
	}
	for _, s := range steps {
		if got := b.Observe(s.ev); got != s.want {
			t.Errorf("%s: changed=%v, want %v", s.what, got, s.want)
		}
	}
	fp := b.Fingerprint()
	if got := fp.Spec.ProcessPolicy[0].Euser; !slices.Equal(got, []string{"root", "www-data"}) {
		t.Errorf("eusers %v", got)
	}
	if n := len(fp.Spec.ProcessPolicy[0].Children); n != 1 {
		t.Errorf("%d children, want only the audited cat", n)
	}
	if n := len(fp.Spec.NetworkPolicy.Egress); n != 1 {
		t.Errorf("%d egress rules, want 1 (the blocked connect is not behaviour)", n)
	}
	if fp.Metadata.Version != 5 {
		t.Errorf("version %d, want 5 (one per change)", fp.Metadata.Version)
	}
	if fp.Metadata.FirstTimestamp != unixSeconds(fpT0) || fp.Metadata.LatestTimestamp != unixSeconds(fpT0.Add(5*time.Second)) {
		t.Errorf("timestamps %f..%f", fp.Metadata.FirstTimestamp, fp.Metadata.LatestTimestamp)
	}
}

func TestFingerprintUnknownUserAndGlobNames(t *testing.T) {
	fp := build(t, serviceID, []bpf.Event{execEv(0, kSh, 0, "a[1]*", "/opt/we?rd/bin", 4242)})
	n := fp.Spec.ProcessPolicy[0]
	if n.Name != "a*1**" || n.Exe[0] != "/opt/we*rd/bin" || n.Euser[0] != "4242" || n.ID != "a_1___0" {
		t.Fatalf("node %+v", n)
	}
}

func TestFingerprintMetadataAndPolicy(t *testing.T) {
	container := policy.Identity{
		Type: policy.TypeContainer, Image: "docker.io/library/nginx:1.27", ImageID: "sha256:abcd",
		ContainerName: "web", ContainerID: "c0ffee", PodName: "web-0", PodUID: "uid-1", Namespace: "shop",
		PodLabels: map[string]string{"app": "web"}, NamespaceLabels: map[string]string{"team": "a"}, Hostname: "node-1",
	}
	evs := append(scriptEvents(), acceptEv(8, kNc, "10.0.0.9:5000", "10.0.0.2:80", "TCP"))
	for _, tc := range []struct {
		name string
		id   policy.Identity
		want policy.Metadata
	}{
		{"container", container, policy.Metadata{Name: "docker.io/library/nginx:1.27", Type: policy.TypeContainer,
			Hostname: "node-1", Image: container.Image, ImageID: "sha256:abcd", ContainerName: "web", ContainerID: "c0ffee",
			PodName: "web-0", PodUID: "uid-1", Namespace: "shop", PodLabels: map[string]string{"app": "web"},
			NamespaceLabels: map[string]string{"team": "a", "kubernetes.io/metadata.name": "shop"}}},
		{"service", serviceID, policy.Metadata{Name: "demo.service", Type: policy.TypeLinuxService, Hostname: "node-1",
			ServiceName: "demo.service", Cgroup: "systemd:/system.slice/demo.service"}},
		{"service by cgroup only", policy.Identity{Type: policy.TypeLinuxService, ServiceCgroup: "systemd:/system.slice/x.service"},
			policy.Metadata{Name: "x.service", Type: policy.TypeLinuxService, Cgroup: "systemd:/system.slice/x.service"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := build(t, tc.id, evs)
			if fp.APIVersion != policy.APIVersionSpyderbat || fp.Kind != policy.KindSpyderbatFingerprint {
				t.Fatalf("header %s %s", fp.APIVersion, fp.Kind)
			}
			got := fp.Metadata
			if got.FirstTimestamp != unixSeconds(fpT0) || got.LatestTimestamp != unixSeconds(fpT0.Add(8*time.Second)) {
				t.Errorf("timestamps %f..%f", got.FirstTimestamp, got.LatestTimestamp)
			}
			if len(got.UID) < len("fprint:")+8 || got.Checksum == "" || got.Version != 8 {
				t.Errorf("uid %q checksum %q version %d", got.UID, got.Checksum, got.Version)
			}
			got.FirstTimestamp, got.LatestTimestamp, got.UID, got.Checksum, got.Version = 0, 0, "", "", 0
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("metadata\n got %+v\nwant %+v", got, tc.want)
			}
			if err := policy.ValidateFingerprint(fp); err != nil {
				t.Fatalf("invalid fingerprint: %v", err)
			}
			p, err := policy.PolicyFromFingerprints([]*policy.Fingerprint{fp}, policy.CreateOptions{})
			if err != nil {
				t.Fatalf("create policy: %v", err)
			}
			if err := policy.ValidatePolicy(p); err != nil {
				t.Fatalf("created policy invalid: %v", err)
			}
			if _, err := bpf.Compile(&p.Spec, fpUsers); err != nil {
				t.Fatalf("created policy does not compile: %v", err)
			}
			if len(p.Spec.ProcessPolicy) != 1 || len(p.Spec.NetworkPolicy.Egress) != 1 || len(p.Spec.NetworkPolicy.Ingress) != 1 {
				t.Fatalf("policy lost behaviour: %+v", p.Spec)
			}
		})
	}
	// Different instances have different uids; the container's selectors are Spyderbat's.
	other := container
	other.ContainerID = "beef"
	a, b := build(t, container, nil), build(t, other, nil)
	if a.Metadata.UID == b.Metadata.UID {
		t.Error("two containers share a fingerprint uid")
	}
	cs := a.Spec.ContainerSelector
	if cs == nil || cs.Image != container.Image || cs.ImageID != "sha256:abcd" || cs.ContainerName != "" ||
		a.Spec.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "shop" || a.Spec.PodSelector.MatchLabels["app"] != "web" {
		t.Errorf("selectors %+v %+v %+v", cs, a.Spec.NamespaceSelector, a.Spec.PodSelector)
	}
	if err := policy.ValidateFingerprint(a); err != nil {
		t.Errorf("empty fingerprint invalid: %v", err)
	}
}

func listenEv(at int, key uint64, local, proto string) bpf.Event {
	return bpf.Event{Kind: bpf.KindListen, NodeKey: key, Dst: netip.MustParseAddrPort(local), Protocol: proto,
		Time: fpT0.Add(time.Duration(at) * time.Second)}
}

func TestFingerprintListeningSockets(t *testing.T) {
	b := NewFingerprintBuilder(serviceID, fpUsers)
	steps := []struct {
		what string
		ev   bpf.Event
		want bool
	}{
		{"root", execEv(0, kSh, 0, "sh", "/usr/bin/dash", 0), true},
		// A bind before the server's exec was seen (lost, or reordered).
		{"listen of a node not seen yet", listenEv(1, kSrv, "0.0.0.0:8080", "TCP"), true},
		{"server", execEv(2, kSrv, kSh, "server", "/srv/server", 0), true},
		{"UDP on the same port", listenEv(3, kSrv, "[::]:8080", "UDP"), true},
		{"same socket again", listenEv(4, kSrv, "127.0.0.1:8080", "TCP"), false},
		{"accept on a listening port", acceptEv(5, kSrv, "10.0.0.1:1234", "10.0.0.2:8080", "TCP"), true},
		{"a lower port", listenEv(6, kSrv, "0.0.0.0:53", "UDP"), true},
		{"listen without a node", listenEv(7, 0, "0.0.0.0:9", "TCP"), false},
	}
	for _, s := range steps {
		if got := b.Observe(s.ev); got != s.want {
			t.Errorf("%s: changed=%v, want %v", s.what, got, s.want)
		}
	}
	fp := b.Fingerprint()
	srv := fp.Spec.ProcessPolicy[0].Children[0]
	want := []policy.Port{{Port: 53, Protocol: "UDP"}, {Port: 8080, Protocol: "TCP"}, {Port: 8080, Protocol: "UDP"}}
	if srv.ID != "server_0" || !reflect.DeepEqual(srv.ListeningSockets, want) {
		t.Fatalf("server %+v, want listening sockets %v", srv, want)
	}
	if fp.Spec.ProcessPolicy[0].ListeningSockets != nil {
		t.Errorf("sh got listening sockets %v", fp.Spec.ProcessPolicy[0].ListeningSockets)
	}
	// Only the accepted connection is a network rule; a bound port is not.
	if len(fp.Spec.NetworkPolicy.Ingress) != 1 || len(fp.Spec.NetworkPolicy.Egress) != 0 {
		t.Errorf("network %+v, want the one ingress rule", fp.Spec.NetworkPolicy)
	}
	if err := policy.ValidateFingerprint(fp); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkFingerprint measures Observe per event (100 processes in a
// chain of 10-wide levels, 1000 distinct peers, then every event again as
// the kernel would after a policy change) and building the fingerprint.
func BenchmarkFingerprint(b *testing.B) {
	var evs []bpf.Event
	for i := 0; i < 100; i++ {
		parent := uint64(0)
		if i >= 10 {
			parent = 1<<63 | uint64(i/10-1)
		}
		evs = append(evs, execEv(i, 1<<63|uint64(i), parent, fmt.Sprintf("p%d", i%7), "/usr/bin/p", uint32(i%2)))
	}
	for i := 0; i < 1000; i++ {
		evs = append(evs, connectEv(i, 1<<63|uint64(i%100), netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 443).String(), "TCP"))
	}
	evs = append(evs, evs...)
	b.Run("observe", func(b *testing.B) {
		for n := 0; n < b.N; n++ {
			fb := NewFingerprintBuilder(serviceID, fpUsers)
			for _, ev := range evs {
				fb.Observe(ev)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
	})
	fb := NewFingerprintBuilder(serviceID, fpUsers)
	for _, ev := range evs {
		fb.Observe(ev)
	}
	b.Run("fingerprint", func(b *testing.B) {
		for n := 0; n < b.N; n++ {
			fb.Fingerprint()
		}
	})
}

// TestFingerprintForkedWorkers: a pre-forking server as the kernel reports
// it (nginx: the master binds as root, forks workers that setuid to
// www-data and accept): the workers are a child node of the master with the
// same name and exe and their own user; the listening socket is the
// master's, the ingress the workers'. A TCP accept puts no listening socket
// on the acceptor.
func TestFingerprintForkedWorkers(t *testing.T) {
	const kMaster, kWorker = 1<<63 | 0x20, 1<<63 | 0x21
	evs := []bpf.Event{
		execEv(0, kMaster, 0, "nginx", "/usr/sbin/nginx", 0),
		listenEv(1, kMaster, "0.0.0.0:80", "TCP"),
		credEv(2, kWorker, kMaster, "nginx", "/usr/sbin/nginx", 0, 33),
		credEv(2, kWorker, kMaster, "nginx", "/usr/sbin/nginx", 0, 33), // the second worker
		acceptEv(3, kWorker, "192.0.2.10:40000", "192.0.2.1:80", "TCP"),
	}
	fp := build(t, serviceID, evs)
	want := []policy.ProcessNode{{
		Name: "nginx", Exe: []string{"/usr/sbin/nginx"}, Euser: []string{"root"}, ID: "nginx_0",
		ListeningSockets: []policy.Port{{Port: 80, Protocol: "TCP"}},
		Children: []policy.ProcessNode{
			{Name: "nginx", Exe: []string{"/usr/sbin/nginx"}, Euser: []string{"www-data"}, ID: "nginx_1"},
		},
	}}
	if !reflect.DeepEqual(fp.Spec.ProcessPolicy, want) {
		t.Fatalf("process tree\n got %+v\nwant %+v", fp.Spec.ProcessPolicy, want)
	}
	wantIngress := []policy.NetworkRule{{From: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "192.0.2.10/32"}}},
		Ports: []policy.Port{{Port: 80, Protocol: "TCP"}}, Processes: []string{"nginx_1"}}}
	if !reflect.DeepEqual(fp.Spec.NetworkPolicy.Ingress, wantIngress) {
		t.Fatalf("ingress\n got %s\nwant %s", rulesString(fp.Spec.NetworkPolicy.Ingress), rulesString(wantIngress))
	}
}
