package policy

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// mustLoad loads a fixture file and fails the test on any error.
func mustLoad(t *testing.T, path string) []Document {
	t.Helper()
	docs, err := LoadFile(path)
	if err != nil {
		t.Fatalf("LoadFile(%s): %v", path, err)
	}
	return docs
}

// problemsOf loads text and returns its problems, failing the test if it
// loads or fails with something other than Problems.
func problemsOf(t *testing.T, name, text string) Problems {
	t.Helper()
	docs, err := Load(name, []byte(text))
	if err == nil {
		t.Fatalf("Load(%s) succeeded with %d documents, want problems", name, len(docs))
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Load(%s) error %T %v, want Problems", name, err, err)
	}
	if docs != nil {
		t.Errorf("Load(%s) returned documents along with problems", name)
	}
	return ps
}

func TestLoadSeedFingerprint(t *testing.T) {
	docs := mustLoad(t, "testdata/load/seed-fingerprint.yaml")
	if len(docs) != 1 || docs[0].Fingerprint == nil {
		t.Fatalf("got %+v, want one fingerprint", docs)
	}
	d := docs[0]
	if d.APIVersion != APIVersionSpyderbat || d.Kind != KindSpyderbatFingerprint || d.Pos.Line != 1 {
		t.Errorf("document header %q %q at %v", d.APIVersion, d.Kind, d.Pos)
	}
	f := d.Fingerprint
	if f.Metadata.Name != "docker.io/library/nginx:latest" || f.Metadata.Type != TypeContainer || f.Metadata.ContainerName != "latencytest2" {
		t.Errorf("metadata = %+v", f.Metadata)
	}
	if got := f.Spec.PodSelector.MatchLabels["run"]; got != "latencytest2" {
		t.Errorf("podSelector run = %q", got)
	}
	pp := f.Spec.ProcessPolicy
	if len(pp) != 1 || pp[0].ID != "nginx_0" || len(pp[0].Children) != 1 || pp[0].Children[0].Euser[0] != "systemd-resolve" {
		t.Errorf("processPolicy = %+v", pp)
	}
	np := f.Spec.NetworkPolicy
	if np == nil || len(np.Egress) != 0 || len(np.Ingress) != 1 || len(np.Ingress[0].From) != 3 ||
		np.Ingress[0].From[2].IPBlock.CIDR != "192.168.92.6/32" || np.Ingress[0].Ports[0] != (Port{Port: 443, Protocol: ProtocolTCP}) ||
		!reflect.DeepEqual(np.Ingress[0].Processes, []string{"nginx_1"}) {
		t.Errorf("networkPolicy = %+v", np)
	}
}

func TestLoadSeedPolicyAsPrintedFailsOnItsLine(t *testing.T) {
	data, err := os.ReadFile("testdata/load/seed-policy-as-printed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ps := problemsOf(t, "seed-policy.yaml", string(data))
	if len(ps) != 1 {
		t.Fatalf("got %d problems, want 1:\n%v", len(ps), ps)
	}
	// Line 19 is "  networkPolicy:", wrongly indented under processPolicy.
	if !strings.HasPrefix(lineOf(string(data), 19), "  networkPolicy:") {
		t.Fatalf("fixture changed: line 19 is %q", lineOf(string(data), 19))
	}
	got := ps[0].String()
	if !strings.HasPrefix(got, "seed-policy.yaml:19:3: invalid YAML: ") || !strings.Contains(got, "starts on line 5") {
		t.Errorf("problem = %q, want it at seed-policy.yaml:19:3 naming the block of line 5", got)
	}
}

func lineOf(text string, n int) string {
	return strings.Split(text, "\n")[n-1]
}

func TestLoadSeedPolicyFixedIsABareSpec(t *testing.T) {
	docs := mustLoad(t, "testdata/load/seed-policy-fixed.yaml")
	if len(docs) != 1 || docs[0].Policy == nil {
		t.Fatalf("got %+v, want one policy", docs)
	}
	p := docs[0].Policy
	if p.APIVersion != APIVersionBulwark || p.Kind != KindWorkloadPolicy || docs[0].Kind != KindWorkloadPolicy {
		t.Errorf("header %q %q", p.APIVersion, p.Kind)
	}
	if p.Metadata.Name != "seed-policy-fixed" || p.Metadata.Type != TypeContainer {
		t.Errorf("metadata = %+v, want name from the file and type container", p.Metadata)
	}
	if p.Spec.Mode != ModeEnforce || p.Spec.Enabled == nil || !*p.Spec.Enabled {
		t.Errorf("mode %q enabled %v", p.Spec.Mode, p.Spec.Enabled)
	}
	if n := len(p.Spec.NetworkPolicy.Ingress[0].From); n != 5 {
		t.Errorf("ingress peers = %d, want 5", n)
	}
	want := []Action{{MakeRedFlag: &FlagAction{Severity: "high"}}}
	if !reflect.DeepEqual(p.Spec.Response.Default, want) || p.Spec.Response.Actions != nil {
		t.Errorf("response = %+v", p.Spec.Response)
	}
}

func TestLoadBareSpecTypes(t *testing.T) {
	svc := "serviceSelector: {cgroup: \"systemd:/system.slice/cron.service\"}\nmode: audit\n" +
		"processPolicy: [{name: cron, exe: [/usr/sbin/cron], euser: [root], id: cron_0}]\nnetworkPolicy: {ingress: [], egress: []}\n"
	docs, err := Load("dir/cron.policy.yaml", []byte(svc))
	if err != nil {
		t.Fatal(err)
	}
	if m := docs[0].Policy.Metadata; m.Name != "cron.policy" || m.Type != TypeLinuxService {
		t.Errorf("metadata = %+v, want cron.policy / linux-service", m)
	}
	ps := problemsOf(t, "x.yaml", "mode: audit\nnetworkPolicy: {ingress: [], egress: []}\n")
	if len(ps) != 1 || !strings.Contains(ps[0].Message, "containerSelector or serviceSelector") || ps[0].Pos.Line != 1 {
		t.Errorf("bare spec without selector: %v", ps)
	}
	ps = problemsOf(t, "x.yaml", "containerSelector: {image: nginx}\nmode: audit\nnetworkPolicy: {ingress: []}\nfoo: 1\n")
	want := []string{
		"x.yaml:3:1: spec.networkPolicy.egress: required in a policy (write egress: [] to allow none)",
		"x.yaml:4:1: spec.foo: unknown field",
	}
	if got := strings.Split(ps.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", ps, strings.Join(want, "\n"))
	}
}

func TestLoadMultiDocumentYAML(t *testing.T) {
	docs := mustLoad(t, "testdata/load/multi.yaml")
	kinds := []string{}
	for _, d := range docs {
		kinds = append(kinds, d.Kind)
	}
	if want := []string{KindFingerprint, KindWorkloadPolicy, KindGuardianDeviation, KindFlag}; !reflect.DeepEqual(kinds, want) {
		t.Fatalf("kinds %v, want %v", kinds, want)
	}
	if docs[0].Fingerprint == nil || docs[1].Policy == nil || docs[2].Deviation == nil || docs[3].Flag == nil {
		t.Fatalf("wrong pointers set: %+v", docs)
	}
	if docs[1].Pos.Line != 28 || docs[3].Pos.Line != 76 {
		t.Errorf("document positions %v %v, want lines 28 and 76", docs[1].Pos, docs[3].Pos)
	}
	if h := docs[0].Fingerprint.Spec.MachineSelector.Hostname; !reflect.DeepEqual(h, StringList{"node-1"}) {
		t.Errorf("single-string hostname = %v", h)
	}
	if h := docs[1].Policy.Spec.MachineSelector.Hostname; !reflect.DeepEqual(h, StringList{"node-1", "node-*"}) {
		t.Errorf("list hostname = %v", h)
	}
	if e := docs[1].Policy.Spec.Enabled; e == nil || *e {
		t.Errorf("enabled = %v, want false", e)
	}
	dev := docs[2].Deviation
	if pn := dev.Spec.ProcessPolicy[0].PolicyNode; pn == nil || pn.ID != "chronyd_0" || pn.Children[0].ID != "sh_0" {
		t.Errorf("policyNode = %+v", pn)
	}
	if dev.Spec.NetworkPolicy.Ingress != nil {
		t.Errorf("deviation ingress = %v, want nil", dev.Spec.NetworkPolicy.Ingress)
	}
	if f := docs[3].Flag.Metadata; f.Timestamp != 1700000000.25 || f.Class != FlagClassRed {
		t.Errorf("flag = %+v", f)
	}
}

func TestLoadJSON(t *testing.T) {
	docs := mustLoad(t, "testdata/load/multi.json")
	if len(docs) != 2 || docs[0].Policy == nil || docs[1].Flag == nil {
		t.Fatalf("got %+v, want a policy and a flag", docs)
	}
	p := docs[0].Policy
	if p.Spec.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "kube-system" ||
		p.Spec.Response.Actions[0].AgentKillPod.PodSelector.MatchLabels["app"] != "x" ||
		p.Spec.ProcessPolicy[0].ListeningSockets[0].Port != 53 {
		t.Errorf("policy = %+v", p)
	}
	if docs[1].Pos.Line != 24 {
		t.Errorf("flag at %v, want line 24", docs[1].Pos)
	}
	ps := problemsOf(t, "bad.json", `{"apiVersion": "bulwark/v1", "kind": "Flag", "metadata": {"uid": "u", "class": "redflag", "severity": "low", "timestamp": "now"}}`)
	if len(ps) != 1 || ps[0].String() != `bad.json:1:123: metadata.timestamp: must be a number, got "now"` {
		t.Errorf("problems = %v", ps)
	}
}

func TestLoadReportsAllProblems(t *testing.T) {
	data, err := os.ReadFile("testdata/load/several-problems.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ps := problemsOf(t, "several.yaml", string(data))
	want := []string{
		"several.yaml:10:3: spec.procesPolicy: unknown field",
		`several.yaml:13:10: spec.processPolicy[0].exe: must be a list, got "/usr/sbin/nginx"`,
		"several.yaml:22:35: spec.networkPolicy.egress[0].ports[1].endport: unknown field",
		"several.yaml:25:5: spec.response.default: duplicate key (first at line 24)",
	}
	if got := strings.Split(ps.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", ps, strings.Join(want, "\n"))
	}
}

// TestLoadSchema covers the strict schema check: each case must report the
// given problem.
func TestLoadSchema(t *testing.T) {
	const head = "apiVersion: bulwark/v1\nkind: WorkloadPolicy\nmetadata: {name: p, type: container}\n"
	cases := []struct {
		name, text, want string
	}{
		{"unknown top-level field", head + "status: {}\n", "x.yaml:4:1: status: unknown field"},
		{"unknown metadata field", "apiVersion: bulwark/v1\nkind: Flag\nmetadata: {uid: u, class: redflag, severity: low, colour: red}\n", "x.yaml:3:51: metadata.colour: unknown field"},
		{"string where mapping", head + "spec: nginx\n", `x.yaml:4:7: spec: must be a mapping, got "nginx"`},
		{"list where string", head + "spec:\n  mode: [audit]\n", "x.yaml:5:9: spec.mode: must be a string, got a list"},
		{"mapping where list", head + "spec:\n  processPolicy: {name: x}\n", "x.yaml:5:18: spec.processPolicy: must be a list, got a mapping"},
		{"string where int", head + "spec:\n  processPolicy:\n  - listeningSockets: [{port: \"80\"}]\n", `x.yaml:6:31: spec.processPolicy[0].listeningSockets[0].port: must be an integer, got "80"`},
		{"float where int", head + "spec:\n  processPolicy:\n  - listeningSockets: [{port: 8.5}]\n", `x.yaml:6:31: spec.processPolicy[0].listeningSockets[0].port: must be an integer, got a number (8.5)`},
		{"int overflow", head + "spec:\n  processPolicy:\n  - listeningSockets: [{port: 99999999999999999999}]\n", `spec.processPolicy[0].listeningSockets[0].port: must be an integer`},
		{"bad bool", head + "spec:\n  enabled: maybe\n", `x.yaml:5:12: spec.enabled: must be true or false, got "maybe"`},
		{"non-finite float", "apiVersion: bulwark/v1\nkind: Flag\nmetadata: {uid: u, class: redflag, severity: low, timestamp: .nan}\n", "metadata.timestamp: must be a finite number"},
		{"map value not a string", head + "spec:\n  podSelector: {matchLabels: {app: [x]}}\n", "x.yaml:5:36: spec.podSelector.matchLabels[app]: must be a string, got a list"},
		{"string list of mappings", head + "spec:\n  machineSelector: {hostname: {a: b}}\n", "spec.machineSelector.hostname: must be a string or a list of strings, got a mapping"},
		{"duplicate label", head + "spec:\n  podSelector: {matchLabels: {app: x, app: y}}\n", "x.yaml:5:39: spec.podSelector.matchLabels[app]: duplicate key (first at line 5)"},
		{"duplicate field", head + "spec:\n  mode: audit\n  mode: enforce\n", "x.yaml:6:3: spec.mode: duplicate key (first at line 5)"},
		{"alias", head + "spec:\n  podSelector: &s {matchLabels: {a: b}}\n  namespaceSelector: *s\n", "x.yaml:6:22: spec.namespaceSelector: YAML aliases are not supported"},
		{"custom tag", head + "spec:\n  mode: !secret audit\n", "spec.mode: unsupported YAML tag !secret"},
		{"binary", head + "spec:\n  mode: !!binary YXVkaXQ=\n", "spec.mode: must be a string"},
		{"document not a mapping", "- [1]\n", "x.yaml:1:3: a document must be a mapping, got a list"},
		{"missing kind", "apiVersion: bulwark/v1\n", "x.yaml:1:1: kind: required"},
		{"missing apiVersion", "kind: Flag\n", "x.yaml:1:1: apiVersion: required"},
		{"apiVersion not a string", "apiVersion: [bulwark/v1]\nkind: Flag\n", "x.yaml:1:13: apiVersion: must be a string, got a list"},
		{"kind not a string", "apiVersion: bulwark/v1\nkind: {a: b}\n", "x.yaml:2:7: kind: must be a string, got a mapping"},
		{"unknown apiVersion", "apiVersion: v1\nkind: Pod\n", `x.yaml:1:13: apiVersion: unknown apiVersion "v1"`},
		{"kind of the other apiVersion", "apiVersion: spyderbat/v1\nkind: Flag\n", `x.yaml:2:7: kind: unknown kind "Flag" for apiVersion spyderbat/v1`},
		{"empty file", "# nothing\n", "x.yaml:1:1: no documents found"},
		{"syntax error", "a: [1\n", "x.yaml:1:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ps := problemsOf(t, "x.yaml", c.text)
			if !strings.Contains(ps.Error(), c.want) {
				t.Errorf("problems:\n%s\nwant one containing %q", ps, c.want)
			}
		})
	}
}

func TestLoadKeepsGoingAcrossDocuments(t *testing.T) {
	text := "apiVersion: bulwark/v1\nkind: Flag\nmetadata: {uid: u, class: pink, severity: low}\n---\n" +
		"apiVersion: bulwark/v1\nkind: Flag\nmetadata: {uid: u, class: redflag, severity: low, x: 1}\n---\na: b: c\n"
	ps := problemsOf(t, "x.yaml", text)
	if len(ps) != 3 || ps[0].Pos.Line != 3 || ps[1].Pos.Line != 7 || ps[2].Pos.Line != 9 {
		t.Errorf("problems:\n%s\nwant three, on lines 3, 7 and 9", ps)
	}
}

func TestProblemString(t *testing.T) {
	cases := []struct {
		p    Problem
		want string
	}{
		{Problem{Pos: Position{File: "a.yaml", Line: 3, Column: 5}, Path: "spec.mode", Message: "required"}, "a.yaml:3:5: spec.mode: required"},
		{Problem{Path: "spec.mode", Message: "required"}, "spec.mode: required"},
		{Problem{Pos: Position{File: "a.yaml", Line: 1, Column: 1}, Message: "no documents found"}, "a.yaml:1:1: no documents found"},
	}
	for _, c := range cases {
		if got := c.p.String(); got != c.want {
			t.Errorf("String() = %q, want %q", got, c.want)
		}
	}
}

func TestParentPath(t *testing.T) {
	cases := map[string]string{
		"spec.networkPolicy.ingress[0].ports[1]": "spec.networkPolicy.ingress[0].ports",
		"spec.networkPolicy":                     "spec",
		"spec":                                   "",
		"spec.podSelector.matchLabels[k8s.io/name.x]": "spec.podSelector.matchLabels",
	}
	for in, want := range cases {
		if got := parentPath(in); got != want {
			t.Errorf("parentPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	data, err := os.ReadFile("testdata/load/multi.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Load("multi.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadSyntaxError(b *testing.B) {
	data, err := os.ReadFile("testdata/load/seed-policy-as-printed.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Load("seed.yaml", data); err == nil {
			b.Fatal("loaded")
		}
	}
}
