package policy

import (
	"encoding/json"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// Output formats understood by Encode.
const (
	FormatYAML = "yaml"
	FormatJSON = "json"
)

// Encode writes docs to w in format FormatYAML (documents separated by
// "---") or FormatJSON (one object, or an array when there are several).
// A doc is a Document, a *Document, or a *Fingerprint, *WorkloadPolicy,
// *Deviation or *Flag (or any value with yaml and json tags). What Encode
// writes, Load reads back to equal documents.
func Encode(w io.Writer, format string, docs ...any) error {
	objs := make([]any, len(docs))
	for i, d := range docs {
		switch d := d.(type) {
		case Document:
			objs[i] = d.Object()
		case *Document:
			objs[i] = d.Object()
		default:
			objs[i] = d
		}
	}
	switch format {
	case FormatYAML:
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		for _, o := range objs {
			if err := enc.Encode(o); err != nil {
				return fmt.Errorf("encode yaml: %w", err)
			}
		}
		if err := enc.Close(); err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
		return nil
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		var v any = objs
		if len(objs) == 1 {
			v = objs[0]
		}
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("unknown output format %q (want %s or %s)", format, FormatYAML, FormatJSON)
	}
}
