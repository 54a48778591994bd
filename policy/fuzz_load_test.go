package policy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad checks that Load never panics, that it fails only with Problems,
// and that whatever it accepts survives Encode → Load unchanged in both
// formats. Run it with
//
//	go test ./policy -run '^$' -fuzz '^FuzzLoad$' -fuzztime 20s
func FuzzLoad(f *testing.F) {
	files, err := filepath.Glob("testdata/load/*")
	if err != nil {
		f.Fatal(err)
	}
	more, err := filepath.Glob("testdata/spyderbat/*")
	if err != nil {
		f.Fatal(err)
	}
	files = append(files, more...)
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(basePolicy))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Load("fuzz.yaml", data)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("Load error %T %v, want Problems", err, err)
			}
			return
		}
		args := make([]any, len(docs))
		for i, d := range docs {
			args[i] = d
		}
		for _, format := range []string{FormatYAML, FormatJSON} {
			var buf bytes.Buffer
			if err := Encode(&buf, format, args...); err != nil {
				t.Fatalf("Encode(%s) of loaded documents: %v", format, err)
			}
			again, err := Load("again", buf.Bytes())
			if err != nil {
				t.Fatalf("Load of encoded %s: %v\n%s", format, err, buf.Bytes())
			}
			if !sameDocuments(docs, again) {
				t.Fatalf("%s round trip changed the documents:\n%s", format, buf.Bytes())
			}
		}
	})
}
