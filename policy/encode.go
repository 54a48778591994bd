package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
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

// MarshalJSON writes m's fields and, beside them, its Extra keys.
func (m Metadata) MarshalJSON() ([]byte, error) {
	type plain Metadata
	return marshalWithExtra(plain(m), m.Extra)
}

// UnmarshalJSON reads m's fields and keeps the other keys in Extra.
func (m *Metadata) UnmarshalJSON(b []byte) error {
	type plain Metadata
	var p plain
	extra, err := unmarshalWithExtra(b, &p)
	*m = Metadata(p)
	m.Extra = extra
	return err
}

// MarshalJSON writes m's fields and its Extra keys.
func (m GroupMetadata) MarshalJSON() ([]byte, error) {
	type plain GroupMetadata
	return marshalWithExtra(plain(m), m.Extra)
}

// UnmarshalJSON reads m's fields and keeps the other keys in Extra.
func (m *GroupMetadata) UnmarshalJSON(b []byte) error {
	type plain GroupMetadata
	var p plain
	extra, err := unmarshalWithExtra(b, &p)
	*m = GroupMetadata(p)
	m.Extra = extra
	return err
}

// unmarshalWithExtra reads the JSON object b into dst, a pointer to a
// struct, and returns its keys that no field of dst is named by.
func unmarshalWithExtra(b []byte, dst any) (map[string]any, error) {
	if err := json.Unmarshal(b, dst); err != nil {
		return nil, err
	}
	return unknownJSONKeys(b, reflect.TypeOf(dst).Elem())
}

// marshalWithExtra marshals v, a struct, and adds the keys of extra that
// none of its fields uses.
func marshalWithExtra(v any, extra map[string]any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	obj := map[string]json.RawMessage{}
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, err
	}
	known := jsonNames(reflect.TypeOf(v))
	for k, x := range extra {
		if known[k] {
			continue
		}
		raw, err := json.Marshal(x)
		if err != nil {
			return nil, fmt.Errorf("metadata.%s: %w", k, err)
		}
		obj[k] = raw
	}
	return json.Marshal(obj)
}

// unknownJSONKeys returns the keys of the JSON object b that no field of
// struct type t is named by, with their values; nil when there are none.
func unknownJSONKeys(b []byte, t reflect.Type) (map[string]any, error) {
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, err
	}
	known := jsonNames(t)
	var extra map[string]any
	for k, v := range obj {
		if known[k] {
			continue
		}
		if extra == nil {
			extra = map[string]any{}
		}
		extra[k] = v
	}
	return extra, nil
}

// jsonNames is the set of JSON names of struct type t's fields.
func jsonNames(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" && f.IsExported() {
			out[name] = true
		}
	}
	return out
}
