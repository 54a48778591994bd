package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

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
			var n yaml.Node
			if err := n.Encode(o); err != nil {
				return fmt.Errorf("encode yaml: %w", err)
			}
			plainFloats(&n)
			if err := enc.Encode(&n); err != nil {
				return fmt.Errorf("encode yaml: %w", err)
			}
		}
		if err := enc.Close(); err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
		return nil
	case FormatJSON:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		var v any = objs
		if len(objs) == 1 {
			v = objs[0]
		}
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		if _, err := w.Write(escapeForYAML(buf.Bytes())); err != nil {
			return fmt.Errorf("write json: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("unknown output format %q (want %s or %s)", format, FormatYAML, FormatJSON)
	}
}

// plainFloats rewrites float scalars the YAML encoder put in exponent form
// (timestamps: 1.7956580678436809e+09) as plain decimals, the way
// Spyderbat documents write them; the value is unchanged. A whole number
// keeps a ".0" so that it still reads as a float without a !!float tag;
// magnitudes from 1e21 up keep their exponent, as in JSON.
func plainFloats(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!float" && strings.ContainsAny(n.Value, "eE") {
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil && math.Abs(f) < 1e21 {
			n.Value = strconv.FormatFloat(f, 'f', -1, 64)
			if !strings.Contains(n.Value, ".") {
				n.Value += ".0"
			}
		}
	}
	for _, c := range n.Content {
		plainFloats(c)
	}
}

// escapeForYAML writes as \uXXXX escapes the characters that encoding/json
// leaves raw but a YAML parser would not read back unchanged: DEL, the C1
// controls (U+0085 is a YAML line break), U+FEFF and the non-characters
// U+FFFE and U+FFFF. JSON's own syntax is ASCII, so such characters only
// occur inside strings, where the escape means the same.
func escapeForYAML(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == 0x7f || r >= 0x80 && r <= 0x9f || r == 0xfeff || r == 0xfffe || r == 0xffff {
			if out == nil {
				out = append(make([]byte, 0, len(b)+16), b[:i]...)
			}
			out = fmt.Appendf(out, `\u%04x`, r)
		} else if out != nil {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	if out == nil {
		return b
	}
	return out
}
