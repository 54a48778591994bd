package agent

import (
	"bytes"
	"net/netip"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/policy"
)

func TestBuildDeviation(t *testing.T) {
	pol := &policy.WorkloadPolicy{
		Metadata: policy.Metadata{Name: "web", UID: "pol:1", Type: policy.TypeContainer},
		Spec:     policy.Spec{Mode: policy.ModeEnforce},
	}
	names := func(uid uint32) string {
		if uid == 0 {
			return "root"
		}
		return strconv.FormatUint(uint64(uid), 10)
	}
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		ev      bpf.Event
		pol     *policy.WorkloadPolicy
		want    policy.Spec
		verdict string
	}{{
		name: "exec under a policy node",
		ev: bpf.Event{Kind: bpf.KindExec, Deviation: true, Blocked: true, Exe: "/bin/busybox", Comm: "sh",
			EUID: 0, ParentNode: "nginx_0", PID: 7, Time: at},
		pol: pol,
		want: policy.Spec{ProcessPolicy: []policy.ProcessNode{{PolicyNode: &policy.PolicyNodeRef{ID: "nginx_0",
			Children: []policy.ProcessNode{{Name: "sh", Exe: []string{"/bin/busybox"}, Euser: []string{"root"}, ID: "sh_0"}}}}}},
		verdict: "blocked",
	}, {
		name: "cred change under a policy node",
		ev: bpf.Event{Kind: bpf.KindCred, Deviation: true, Blocked: true, Exe: "/usr/sbin/nginx", Comm: "nginx",
			OldEUID: 0, EUID: 33, ParentNode: "nginx_0", PID: 8, Time: at},
		pol: pol,
		want: policy.Spec{ProcessPolicy: []policy.ProcessNode{{PolicyNode: &policy.PolicyNodeRef{ID: "nginx_0",
			Children: []policy.ProcessNode{{Name: "nginx", Exe: []string{"/usr/sbin/nginx"}, Euser: []string{"33"}, ID: "nginx_0"}}}}}},
		verdict: "blocked",
	}, {
		name: "exec without a node becomes a root",
		ev:   bpf.Event{Kind: bpf.KindExec, Deviation: true, Exe: "/usr/bin/curl", Comm: "curl", EUID: 1000, Time: at},
		pol:  nil,
		want: policy.Spec{ProcessPolicy: []policy.ProcessNode{
			{Name: "curl", Exe: []string{"/usr/bin/curl"}, Euser: []string{"1000"}, ID: "curl_0"}}},
		verdict: "allowed",
	}, {
		name: "exec of a name with glob characters",
		ev:   bpf.Event{Kind: bpf.KindExec, Deviation: true, Exe: "/opt/a[1]", Comm: "a[1]", EUID: 0, Time: at},
		pol:  pol,
		want: policy.Spec{ProcessPolicy: []policy.ProcessNode{
			{Name: "a*1*", Exe: []string{"/opt/a*1*"}, Euser: []string{"root"}, ID: "a_1__0"}}},
		verdict: "allowed",
	}, {
		name: "connect",
		ev: bpf.Event{Kind: bpf.KindConnect, Deviation: true, Blocked: true, Protocol: "TCP", Node: "nginx_0",
			Dst: netip.MustParseAddrPort("1.2.3.4:443"), Time: at},
		pol: pol,
		want: policy.Spec{ProcessPolicy: []policy.ProcessNode{{PolicyNode: &policy.PolicyNodeRef{ID: "nginx_0"}}},
			NetworkPolicy: &policy.NetworkPolicy{Egress: []policy.NetworkRule{{
				To:        []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "1.2.3.4/32"}}},
				Ports:     []policy.Port{{Port: 443, Protocol: "TCP"}},
				Processes: []string{"nginx_0"}}}}},
		verdict: "blocked",
	}, {
		name: "connect to a resolved name",
		ev: bpf.Event{Kind: bpf.KindConnect, Deviation: true, Blocked: true, Protocol: "TCP", Node: "nginx_0",
			Dst: netip.MustParseAddrPort("1.2.3.4:443"), DNSName: "api.example.com", Time: at},
		pol: pol,
		want: policy.Spec{ProcessPolicy: []policy.ProcessNode{{PolicyNode: &policy.PolicyNodeRef{ID: "nginx_0"}}},
			NetworkPolicy: &policy.NetworkPolicy{Egress: []policy.NetworkRule{{
				To:        []policy.Peer{{DNSSelector: []string{"api.example.com"}}},
				Ports:     []policy.Port{{Port: 443, Protocol: "TCP"}},
				Processes: []string{"nginx_0"}}}}},
		verdict: "blocked",
	}, {
		name: "accept over IPv6 without a listener node",
		ev: bpf.Event{Kind: bpf.KindAccept, Deviation: true, Protocol: "UDP",
			Src: netip.MustParseAddrPort("[fd00::1]:5353"), Dst: netip.MustParseAddrPort("[fd00::2]:53"), Time: at},
		pol: pol,
		want: policy.Spec{NetworkPolicy: &policy.NetworkPolicy{Ingress: []policy.NetworkRule{{
			From:  []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "fd00::1/128"}}},
			Ports: []policy.Port{{Port: 53, Protocol: "UDP"}}}}}},
		verdict: "allowed",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := BuildDeviation(tc.ev, tc.pol, names)
			if d.APIVersion != policy.APIVersionBulwark || d.Kind != policy.KindDeviation {
				t.Fatalf("header %s %s", d.APIVersion, d.Kind)
			}
			if !reflect.DeepEqual(d.Spec, tc.want) {
				t.Fatalf("spec\n got %+v\nwant %+v", d.Spec, tc.want)
			}
			// It reads back as a valid document: what merge consumes.
			var buf bytes.Buffer
			if err := policy.Encode(&buf, "yaml", &d); err != nil {
				t.Fatal(err)
			}
			if _, err := policy.Load("deviation.yaml", buf.Bytes()); err != nil {
				t.Fatalf("deviation does not load back: %v\n%s", err, buf.String())
			}
			if d.Metadata.Event == nil || d.Metadata.Event.Verdict != tc.verdict || d.Metadata.Event.Kind != tc.ev.Kind.String() {
				t.Fatalf("event %+v", d.Metadata.Event)
			}
			if tc.pol != nil && (d.Metadata.PolicyName != "web" || d.Metadata.PolicyUID != "pol:1" ||
				d.Metadata.PolicyMode != policy.ModeEnforce || d.Metadata.Type != policy.TypeContainer) {
				t.Fatalf("policy metadata %+v", d.Metadata)
			}
			if old := d.Metadata.Event.OldEUID; (tc.ev.Kind == bpf.KindCred) != (old != nil) || old != nil && *old != int(tc.ev.OldEUID) {
				t.Fatalf("oldEuid %v for a %s event", old, tc.ev.Kind)
			}
			// A repeat has the same checksum and a different uid.
			again := BuildDeviation(tc.ev, tc.pol, names)
			if again.Metadata.Checksum != d.Metadata.Checksum || len(d.Metadata.Checksum) != 32 {
				t.Fatalf("checksums %q, %q", d.Metadata.Checksum, again.Metadata.Checksum)
			}
			if again.Metadata.UID == d.Metadata.UID {
				t.Fatalf("uid %q repeated", d.Metadata.UID)
			}
		})
	}
	// Different deviations have different checksums.
	a := BuildDeviation(tests[0].ev, pol, names)
	b := BuildDeviation(tests[2].ev, pol, names)
	if a.Metadata.Checksum == b.Metadata.Checksum {
		t.Fatal("distinct deviations share a checksum")
	}
}

// TestDeviationNameMerges merges the deviation of a blocked connect to a
// resolved name into the policy of a learned workload: the policy gains the
// name, so another address of the name is then covered and the address
// itself, reached without the name, is not.
func TestDeviationNameMerges(t *testing.T) {
	fp := build(t, serviceID, append(scriptEvents(), resolvedEv(7, kNc, "192.0.2.7:443", "api.example.com")))
	pol, err := policy.PolicyFromFingerprints([]*policy.Fingerprint{fp}, policy.CreateOptions{Mode: policy.ModeEnforce})
	if err != nil {
		t.Fatal(err)
	}
	names := UserNames(fpUsers)
	blocked := func(dst, name string) policy.Deviation {
		return BuildDeviation(bpf.Event{Kind: bpf.KindConnect, Deviation: true, Blocked: true, Protocol: "TCP",
			Node: "nc_0", Dst: netip.MustParseAddrPort(dst), DNSName: name, Time: fpT0}, pol, names)
	}
	// The learned name at a new address is already allowed.
	d := blocked("192.0.2.8:443", "api.example.com")
	if ok, err := policy.Covers(pol, &d); err != nil || !ok {
		t.Fatalf("learned name not covered: %v %v", ok, err)
	}
	d = blocked("203.0.113.9:443", "other.example.org")
	if d.Metadata.Event.DNSName != "other.example.org" || d.Metadata.Event.DstAddr != "203.0.113.9" {
		t.Fatalf("event %+v", d.Metadata.Event)
	}
	merged, err := policy.Merge(pol, policy.Document{Deviation: &d})
	if err != nil {
		t.Fatal(err)
	}
	if got := rulesString(merged.Spec.NetworkPolicy.Egress); got != "{peers=[dns:api.example.com dns:other.example.org] ports=[{443 TCP 0}] processes=[nc_0]} {peers=[127.0.0.1/32] ports=[{8080 TCP 0}] processes=[nc_0]}" {
		t.Fatalf("merged egress %s", got)
	}
	if got, want := policy.DiffPolicies(pol, merged).String(), "+ egress to other.example.org on 443/TCP by nc_0\n"; got != want {
		t.Fatalf("diff %q, want %q", got, want)
	}
	again := blocked("203.0.113.10:443", "Other.Example.org")
	if ok, err := policy.Covers(merged, &again); err != nil || !ok {
		t.Fatalf("merged name at another address not covered: %v %v", ok, err)
	}
	direct := blocked("203.0.113.9:443", "")
	if ok, err := policy.Covers(merged, &direct); err != nil || ok {
		t.Fatalf("the address without a lookup is covered: %v %v", ok, err)
	}
}

func TestUserNames(t *testing.T) {
	name := UserNames(map[string]uint32{"root": 0, "toor": 0, "nobody": 65534})
	for range 20 { // map order varies: the answer must not
		if got := name(0); got != "root" {
			t.Fatalf("uid 0 named %q, want root (the smallest of its names)", got)
		}
	}
	if got := name(65534); got != "nobody" {
		t.Fatalf("uid 65534 named %q", got)
	}
	if got := name(1000); got != "1000" {
		t.Fatalf("unnamed uid 1000 written %q", got)
	}
}

// TestDeviationExeStatus: an exe the kernel could not resolve is reported
// as such, not as a path that could be allowed.
func TestDeviationExeStatus(t *testing.T) {
	names := func(uint32) string { return "root" }
	for _, tc := range []struct {
		ev   bpf.Event
		want string
	}{
		{bpf.Event{Kind: bpf.KindExec, Deviation: true, Exe: "/usr/bin/ls", Unresolved: true}, policy.ExeUnresolved},
		{bpf.Event{Kind: bpf.KindExec, Deviation: true, Exe: "/d/d/d", Truncated: true}, policy.ExeTruncated},
		{bpf.Event{Kind: bpf.KindExec, Deviation: true, Exe: "memfd:x"}, ""},
	} {
		if got := BuildDeviation(tc.ev, nil, names).Metadata.Event.ExeStatus; got != tc.want {
			t.Errorf("%+v: exeStatus %q, want %q", tc.ev, got, tc.want)
		}
	}
}
