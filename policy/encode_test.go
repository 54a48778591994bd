package policy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// sameDocuments reports whether two loads hold equal documents, ignoring
// positions.
func sameDocuments(a, b []Document) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].APIVersion != b[i].APIVersion || a[i].Kind != b[i].Kind || !reflect.DeepEqual(a[i].Object(), b[i].Object()) {
			return false
		}
	}
	return true
}

// roundTrip encodes docs in format and loads the result back.
func roundTrip(t *testing.T, format string, docs []Document) ([]Document, string) {
	t.Helper()
	var buf bytes.Buffer
	args := make([]any, len(docs))
	for i, d := range docs {
		args[i] = d
	}
	if err := Encode(&buf, format, args...); err != nil {
		t.Fatalf("Encode(%s): %v", format, err)
	}
	again, err := Load("again."+format, buf.Bytes())
	if err != nil {
		t.Fatalf("Load of encoded %s: %v\n%s", format, err, buf.String())
	}
	return again, buf.String()
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, file := range []string{"seed-fingerprint.yaml", "seed-policy-fixed.yaml", "multi.yaml", "multi.json"} {
		docs := mustLoad(t, "testdata/load/"+file)
		for _, format := range []string{FormatYAML, FormatJSON} {
			t.Run(file+"/"+format, func(t *testing.T) {
				again, out := roundTrip(t, format, docs)
				if !sameDocuments(docs, again) {
					t.Errorf("round trip changed the documents:\n%s", out)
				}
			})
		}
	}
}

func TestEncodeYAMLMultiDocument(t *testing.T) {
	docs := mustLoad(t, "testdata/load/multi.yaml")
	var buf bytes.Buffer
	if err := Encode(&buf, FormatYAML, docs[0], &docs[1], docs[3].Flag); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if n := strings.Count(out, "\n---\n"); n != 2 {
		t.Errorf("got %d document separators, want 2:\n%s", n, out)
	}
	if !strings.HasPrefix(out, "apiVersion: bulwark/v1\nkind: Fingerprint\n") {
		t.Errorf("output starts %q", out[:40])
	}
	// A one-element StringList is written as a plain string, as Spyderbat does.
	if !strings.Contains(out, "hostname: node-1\n") || !strings.Contains(out, "- node-*\n") {
		t.Errorf("hostname lists not written as expected:\n%s", out)
	}
	// Policies always spell out both rule lists.
	if !strings.Contains(out, "    ingress: []\n") {
		t.Errorf("empty ingress not written:\n%s", out)
	}
}

func TestEncodeJSON(t *testing.T) {
	docs := mustLoad(t, "testdata/load/multi.yaml")
	var one, many bytes.Buffer
	if err := Encode(&one, FormatJSON, docs[1]); err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(one.Bytes(), &obj); err != nil || obj["kind"] != KindWorkloadPolicy {
		t.Errorf("single document is not one JSON object: %v %v", err, obj["kind"])
	}
	if err := Encode(&many, FormatJSON, docs[0], docs[1]); err != nil {
		t.Fatal(err)
	}
	var arr []map[string]any
	if err := json.Unmarshal(many.Bytes(), &arr); err != nil || len(arr) != 2 {
		t.Errorf("two documents are not a JSON array of 2: %v %d", err, len(arr))
	}
	if strings.Contains(many.String(), `\u003c`) {
		t.Errorf("HTML escaping left on")
	}
}

func TestEncodeUnknownFormat(t *testing.T) {
	err := Encode(&bytes.Buffer{}, "toml", &Flag{})
	if err == nil || !strings.Contains(err.Error(), `unknown output format "toml"`) {
		t.Errorf("Encode(toml) = %v", err)
	}
}

// TestEncodeAwkwardCharacters round-trips strings holding characters that
// JSON leaves raw but YAML reads differently (DEL, NEL and other C1
// controls, BOM) or that JSON escapes (line and paragraph separators).
func TestEncodeAwkwardCharacters(t *testing.T) {
	f := &Flag{APIVersion: APIVersionBulwark, Kind: KindFlag, Metadata: FlagMetadata{
		UID: "flag:1", Class: FlagClassRed, Severity: "low",
		Description: "a\x7fb\u0085c\u0080d\ufeffe\u2028f\u2029g\ttab \"quote\" <html> é 日本 🙂",
	}}
	docs := []Document{{APIVersion: f.APIVersion, Kind: f.Kind, Flag: f}}
	for _, format := range []string{FormatYAML, FormatJSON} {
		again, out := roundTrip(t, format, docs)
		if !sameDocuments(docs, again) {
			t.Errorf("%s round trip: got %q\n%s", format, again[0].Flag.Metadata.Description, out)
		}
	}
}

func TestEncodeTimestampsPlainDecimal(t *testing.T) {
	fp := &Fingerprint{APIVersion: APIVersionSpyderbat, Kind: KindFingerprint}
	fp.Metadata.FirstTimestamp = 1795658067.8436809
	fp.Metadata.LatestTimestamp = 1795658100
	var buf bytes.Buffer
	if err := Encode(&buf, FormatYAML, fp); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "firstTimestamp: 1795658067.8436809\n") || !strings.Contains(out, "latestTimestamp: 1795658100.0\n") ||
		strings.Contains(out, "e+09") || strings.Contains(out, "!!float") {
		t.Fatalf("timestamps not plain decimals:\n%s", out)
	}
	var back Fingerprint
	if err := yaml.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Metadata.FirstTimestamp != fp.Metadata.FirstTimestamp || back.Metadata.LatestTimestamp != fp.Metadata.LatestTimestamp {
		t.Fatalf("read back %v %v", back.Metadata.FirstTimestamp, back.Metadata.LatestTimestamp)
	}
}
