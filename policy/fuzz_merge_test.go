package policy

import (
	"bytes"
	"os"
	"path/filepath"
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
			if d.Deviation != nil && !Covers(merged, d.Deviation) {
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
