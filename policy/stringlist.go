package policy

import (
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// UnmarshalYAML accepts a single string or a list of strings. An explicit
// null leaves the list empty.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			*l = nil
			return nil
		}
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*l = StringList{s}
		return nil
	case yaml.SequenceNode:
		var ss []string
		if err := n.Decode(&ss); err != nil {
			return err
		}
		*l = ss
		return nil
	default:
		return fmt.Errorf("line %d: expected a string or a list of strings", n.Line)
	}
}

// MarshalYAML writes a one-element list as a plain string and anything
// else as a list, the way Spyderbat writes machineSelector.hostname.
func (l StringList) MarshalYAML() (any, error) {
	if len(l) == 1 {
		return l[0], nil
	}
	return []string(l), nil
}

// UnmarshalJSON accepts a single string or an array of strings; null leaves
// the list empty.
func (l *StringList) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case nil:
		*l = nil
		return nil
	case string:
		*l = StringList{v}
		return nil
	case []any:
		out := make(StringList, 0, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("element %d: expected a string, got %T", i, e)
			}
			out = append(out, s)
		}
		*l = out
		return nil
	default:
		return fmt.Errorf("expected a string or an array of strings, got %T", v)
	}
}

// MarshalJSON writes a one-element list as a plain string and anything else
// as an array, mirroring MarshalYAML.
func (l StringList) MarshalJSON() ([]byte, error) {
	if len(l) == 1 {
		return json.Marshal(l[0])
	}
	return json.Marshal([]string(l))
}
