package policy

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/merge")

// TestMergeGolden runs every case under testdata/merge. A case with
// fingerprints.yaml creates a policy from them (default options); a case
// with base.yaml merges with.yaml into it and also checks the diff. The
// results are compared with want.yaml (and diff.txt, diff.yaml); run with
// -update to rewrite those.
func TestMergeGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/merge/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no golden cases under testdata/merge")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var got *WorkloadPolicy
			var with []Document
			var base *WorkloadPolicy
			if _, err := os.Stat(filepath.Join(dir, "fingerprints.yaml")); err == nil {
				var fps []*Fingerprint
				for _, d := range loadFixture(t, filepath.Join(dir, "fingerprints.yaml")) {
					if d.Fingerprint == nil {
						t.Fatalf("fingerprints.yaml holds a %s", d.Kind)
					}
					fps = append(fps, d.Fingerprint)
					with = append(with, d)
				}
				got, err = PolicyFromFingerprints(fps, CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
			} else {
				docs := loadFixture(t, filepath.Join(dir, "base.yaml"))
				if len(docs) != 1 || docs[0].Policy == nil {
					t.Fatal("base.yaml must hold one policy")
				}
				base = docs[0].Policy
				with = loadFixture(t, filepath.Join(dir, "with.yaml"))
				got, err = Merge(base, with...)
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := ValidatePolicy(got); err != nil {
				t.Errorf("result does not validate: %v", err)
			}
			var out bytes.Buffer
			if err := Encode(&out, FormatYAML, got); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join(dir, "want.yaml"), out.Bytes())

			// The golden file loads back to the same policy.
			back := loadFixture(t, filepath.Join(dir, "want.yaml"))
			if len(back) != 1 || back[0].Policy == nil {
				t.Fatal("want.yaml must hold one policy")
			}
			if !*update && normalised(t, back[0].Policy) != normalised(t, got) {
				t.Error("want.yaml loads back to a different policy")
			}

			// Merging the same input again changes nothing.
			again, err := Merge(got, with...)
			if err != nil {
				t.Fatal(err)
			}
			if d := DiffPolicies(got, again); !d.Empty() {
				t.Errorf("merging again adds:\n%s", d)
			}
			if normalised(t, again) != normalised(t, got) {
				t.Error("merging again changed the policy")
			}

			// Every deviation merged is covered by the result, and was not
			// by the base if the merge changed anything.
			for _, w := range with {
				if w.Deviation == nil {
					continue
				}
				if !mustCover(t, got, w.Deviation) {
					t.Errorf("deviation at %s is not covered after the merge", w.Pos)
				}
				if base == nil {
					continue
				}
				// A deviation that does not merge into base is not covered by it.
				if covered, _ := Covers(base, w.Deviation); covered && !DiffPolicies(base, got).Empty() {
					t.Errorf("deviation at %s was covered before the merge that changed the policy", w.Pos)
				}
			}

			if base != nil {
				d := DiffPolicies(base, got)
				checkGolden(t, filepath.Join(dir, "diff.txt"), []byte(d.String()))
				var dy bytes.Buffer
				if err := Encode(&dy, FormatYAML, d); err != nil {
					t.Fatal(err)
				}
				checkGolden(t, filepath.Join(dir, "diff.yaml"), dy.Bytes())
			}
		})
	}
}

func loadFixture(t *testing.T, path string) []Document {
	t.Helper()
	docs, err := LoadFile(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	return docs
}

// normalised encodes a policy as YAML, in which nil and empty lists look
// the same.
func normalised(t *testing.T, p *WorkloadPolicy) string {
	t.Helper()
	var b bytes.Buffer
	if err := Encode(&b, FormatYAML, p); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./policy -run TestMergeGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
