package policy

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// spyderbatCorpus holds documents in the shapes Spyderbat and spyctl
// export: policies and baselines without spec.mode, metadata keys Bulwark
// does not model, FingerprintGroups, fingerprints and deviations.
const spyderbatCorpus = "testdata/spyderbat"

// TestSpyderbatCorpusLoads: every document of the corpus loads as written.
func TestSpyderbatCorpusLoads(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(spyderbatCorpus, "*.yaml"))
	if err != nil || len(files) < 30 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	n := 0
	for _, f := range files {
		n += len(mustLoad(t, f))
	}
	if n < 30 {
		t.Errorf("corpus holds %d documents, want at least 30", n)
	}
}

// Item 1: a policy without spec.mode loads in audit mode, says so in a note
// placed at spec, and is written out with its mode. A mode that is given
// is kept and noted nowhere.
func TestLoadMissingModeIsAudit(t *testing.T) {
	for _, f := range []string{"nginx-policy.yaml", "nginx-baseline.yaml"} {
		docs := mustLoad(t, filepath.Join(spyderbatCorpus, f))
		p := docs[0].Policy
		if p == nil || p.Spec.Mode != ModeAudit {
			t.Fatalf("%s: policy %+v, want mode audit", f, p)
		}
		if len(docs[0].Notes) != 1 || docs[0].Notes[0].Path != "spec.mode" || docs[0].Notes[0].Pos.Line != 13 ||
			!strings.Contains(docs[0].Notes[0].String(), "loaded in audit mode") {
			t.Errorf("%s: notes %v, want one for spec.mode at line 13", f, docs[0].Notes)
		}
		var out bytes.Buffer
		if err := Encode(&out, FormatYAML, p); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "\n  mode: audit\n") {
			t.Errorf("%s: printed without its mode:\n%s", f, out.String())
		}
		back, err := Load("out.yaml", out.Bytes())
		if err != nil || len(back[0].Notes) != 0 || !reflect.DeepEqual(back[0].Policy, p) {
			t.Errorf("%s: round trip: %v, notes %v", f, err, back[0].Notes)
		}
	}
	docs := mustLoad(t, filepath.Join(spyderbatCorpus, "fluent-bit-enforce.yaml"))
	if docs[0].Policy.Spec.Mode != ModeEnforce || len(docs[0].Notes) != 0 {
		t.Errorf("given mode: %q, notes %v", docs[0].Policy.Spec.Mode, docs[0].Notes)
	}
	// A bare spec without mode too.
	bare, err := Load("bare.yaml", []byte("containerSelector: {image: x}\nprocessPolicy: [{name: a, exe: [/a], id: a_0, euser: [root]}]\nnetworkPolicy: {ingress: [], egress: []}\n"))
	if err != nil || bare[0].Policy.Spec.Mode != ModeAudit || len(bare[0].Notes) != 1 {
		t.Errorf("bare spec: %v, %+v", err, bare)
	}
	// In memory (not through the loader) mode stays required.
	p := *docs[0].Policy
	p.Spec.Mode = ""
	if err := ValidatePolicy(&p); err == nil || !strings.Contains(err.Error(), "spec.mode: required") {
		t.Errorf("in-memory policy without mode: %v", err)
	}
}

// Item 2: unknown metadata keys load, are kept, and are written back out
// in YAML and JSON; an unknown key in spec is still an error, and so is
// a misspelt known metadata key's wrong type.
func TestMetadataKeepsUnknownKeys(t *testing.T) {
	docs := mustLoad(t, filepath.Join(spyderbatCorpus, "coredns-policy.yaml"))
	m := docs[0].Policy.Metadata
	for k, v := range map[string]any{"org_uid": "ORG0002x7q", "cluster-uid": "clus:00000000003e", "pod-uid": "00000022-aaaa-4bbb-8ccc-000000000002"} {
		if m.Extra[k] != v {
			t.Errorf("metadata.%s = %v, want %v", k, m.Extra[k], v)
		}
	}
	if m.UID != "pol:0000000000000000006e17" || m.LatestTimestamp != 1712093601.25 {
		t.Errorf("known fields: %+v", m)
	}
	for _, format := range []string{FormatYAML, FormatJSON} {
		var out bytes.Buffer
		if err := Encode(&out, format, docs[0].Policy); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "pod-uid") {
			t.Errorf("%s output lost pod-uid:\n%s", format, out.String())
		}
		back, err := Load("out."+format, out.Bytes())
		if err != nil || !reflect.DeepEqual(back[0].Policy, docs[0].Policy) {
			t.Errorf("%s round trip: %v\n%+v\nwant\n%+v", format, err, back[0].Policy.Metadata, m)
		}
	}
	// Metadata read from JSON directly (the agent's API) keeps them too.
	b, err := json.Marshal(m)
	var m2 Metadata
	if err != nil || json.Unmarshal(b, &m2) != nil || !reflect.DeepEqual(m2, m) {
		t.Errorf("json round trip of metadata: %v\n%+v\nwant\n%+v", err, m2, m)
	}
	base := "apiVersion: spyderbat/v1\nkind: SpyderbatPolicy\nmetadata: {name: p, type: container, muid: m1, nested: {a: [1, 2]}}\n" +
		"spec:\n  containerSelector: {image: x}\n  mode: audit\n  processPolicy: [{name: a, exe: [/a], id: a_0, euser: [root]}]\n" +
		"  networkPolicy: {ingress: [], egress: []}\n"
	if _, err := Load("ok.yaml", []byte(base)); err != nil {
		t.Errorf("nested unknown metadata: %v", err)
	}
	for text, want := range map[string]string{
		strings.Replace(base, "  mode: audit\n", "  mode: audit\n  muid: m1\n", 1):                                                                 "spec.muid: unknown field",
		strings.Replace(strings.Replace(base, "kind: SpyderbatPolicy\n", "kind: SpyderbatPolicy\nx-anchor: &a 1\n", 1), "muid: m1", "muid: *a", 1): "alias",
		strings.Replace(base, "name: p,", "name: [p],", 1):                                                                                         "metadata.name: must be a string",
		strings.Replace(base, "euser: [root]", "euser: [root], eusr: [x]", 1):                                                                      "spec.processPolicy[0].eusr: unknown field",
		strings.Replace(base, "metadata: {", "metadata: {latestTimestamp: soon, ", 1):                                                              "metadata.latestTimestamp: must be a number",
	} {
		if ps := problemsOf(t, "p.yaml", text); !strings.Contains(ps.Error(), want) {
			t.Errorf("problems:\n%s\nwant one containing %q", ps, want)
		}
	}
}

// Item 3: a FingerprintGroup loads as its fingerprints, each placed where
// it starts and checked like a document of its own; a SpyderbatBaseline
// loads as a policy keeping its kind.
func TestLoadFingerprintGroupAndBaseline(t *testing.T) {
	docs := mustLoad(t, filepath.Join(spyderbatCorpus, "nginx-fingerprint-group.yaml"))
	if len(docs) != 2 {
		t.Fatalf("%d documents, want 2", len(docs))
	}
	for i, d := range docs {
		if d.Fingerprint == nil || d.Group != KindFingerprintGroup || d.Kind != KindSpyderbatFingerprint || d.Pos.Line == 0 {
			t.Errorf("doc %d: %+v", i, d)
		}
	}
	if docs[1].Fingerprint.Metadata.ContainerName != "web-2" || docs[1].Fingerprint.Metadata.Extra["pod-uid"] == nil {
		t.Errorf("second fingerprint metadata %+v", docs[1].Fingerprint.Metadata)
	}
	if docs[0].Pos.Line >= docs[1].Pos.Line {
		t.Errorf("positions %v, %v", docs[0].Pos, docs[1].Pos)
	}
	b := mustLoad(t, filepath.Join(spyderbatCorpus, "amazon-ssm-baseline.yaml"))
	if b[0].Policy == nil || b[0].Kind != KindSpyderbatBaseline || b[0].Policy.Kind != KindSpyderbatBaseline {
		t.Errorf("baseline %+v", b[0])
	}
	group := "apiVersion: spyderbat/v1\nkind: FingerprintGroup\nmetadata: {image: x, extra-key: 1}\ndata:\n  fingerprints:\n" +
		"  - apiVersion: spyderbat/v1\n    kind: SpyderbatFingerprint\n    metadata: {name: f, type: container}\n" +
		"    spec:\n      containerSelector: {image: x}\n      processPolicy: [{name: a, exe: [/a], id: a_0, euser: [root]}]\n"
	if docs, err := Load("g.yaml", []byte(group)); err != nil || len(docs) != 1 {
		t.Fatalf("group: %v", err)
	}
	noEuser := strings.Replace(group, "id: a_0, euser: [root]", "id: a_0", 1)
	for _, tc := range []struct{ text, want string }{
		{noEuser, "g.yaml:11:23: "}, // the node in the file
		{noEuser, "data.fingerprints[0].spec.processPolicy[0].euser: required on root nodes"},
		{strings.Replace(group, "kind: SpyderbatFingerprint", "kind: SpyderbatPolicy", 1), "data.fingerprints[0].kind"},
		{strings.Replace(group, "  fingerprints:\n", "  fingerprint:\n", 1), "data.fingerprint: unknown field"},
		{"apiVersion: spyderbat/v1\nkind: FingerprintGroup\nmetadata: {}\n", "data: required"},
		{"apiVersion: spyderbat/v1\nkind: FingerprintGroup\ndata: {fingerprints: []}\n", "without fingerprints"},
	} {
		if ps := problemsOf(t, "g.yaml", tc.text); !strings.Contains(ps.Error(), tc.want) {
			t.Errorf("problems:\n%s\nwant one containing %q", ps, tc.want)
		}
	}
}

// Item 6: an unknown kind is one problem, on one line, naming every kind
// the apiVersion has.
func TestUnknownKindIsOneProblem(t *testing.T) {
	ps := problemsOf(t, "k.yaml", "apiVersion: spyderbat/v1\nkind: SpyderbatRuleset\nmetadata: {name: r}\n")
	if len(ps) != 1 || strings.Contains(ps.Error(), "\n") {
		t.Fatalf("problems %q, want exactly one line", ps.Error())
	}
	want := `k.yaml:2:7: kind: unknown kind "SpyderbatRuleset" for apiVersion spyderbat/v1: want SpyderbatFingerprint, FingerprintGroup, SpyderbatPolicy, SpyderbatBaseline, GuardianDeviation`
	if ps.Error() != want {
		t.Errorf("got  %s\nwant %s", ps.Error(), want)
	}
}
