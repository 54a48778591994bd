package policy

import (
	"encoding/json"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestStringListYAML(t *testing.T) {
	cases := []struct {
		in   string
		want StringList
		err  bool
	}{
		{"v: a\n", StringList{"a"}, false},
		{"v: [a, b]\n", StringList{"a", "b"}, false},
		{"v: null\n", nil, false},
		{"v: 12\n", StringList{"12"}, false},
		{"v: {a: b}\n", nil, true},
		{"v: [[a]]\n", nil, true},
	}
	for _, c := range cases {
		var got struct{ V StringList }
		err := yaml.Unmarshal([]byte(c.in), &got)
		if (err != nil) != c.err || !reflect.DeepEqual(got.V, c.want) {
			t.Errorf("yaml %q: got %#v, %v; want %#v, error %v", c.in, got.V, err, c.want, c.err)
		}
	}
	for _, c := range []struct {
		in   StringList
		want string
	}{{StringList{"a"}, "v: a\n"}, {StringList{"a", "b"}, "v:\n    - a\n    - b\n"}, {StringList{}, "v: []\n"}} {
		out, err := yaml.Marshal(struct{ V StringList }{c.in})
		if err != nil || string(out) != c.want {
			t.Errorf("marshal %#v = %q, %v; want %q", c.in, out, err, c.want)
		}
	}
}

func TestStringListJSON(t *testing.T) {
	cases := []struct {
		in   string
		want StringList
		err  bool
	}{
		{`"a"`, StringList{"a"}, false},
		{`["a","b"]`, StringList{"a", "b"}, false},
		{`null`, nil, false},
		{`[]`, StringList{}, false},
		{`1`, nil, true},
		{`["a",1]`, nil, true},
	}
	for _, c := range cases {
		var got StringList
		err := json.Unmarshal([]byte(c.in), &got)
		if (err != nil) != c.err || !reflect.DeepEqual(got, c.want) {
			t.Errorf("json %s: got %#v, %v; want %#v, error %v", c.in, got, err, c.want, c.err)
		}
	}
	for _, c := range []struct {
		in   StringList
		want string
	}{{StringList{"a"}, `"a"`}, {StringList{"a", "b"}, `["a","b"]`}, {nil, `null`}} {
		out, err := json.Marshal(c.in)
		if err != nil || string(out) != c.want {
			t.Errorf("marshal %#v = %s, %v; want %s", c.in, out, err, c.want)
		}
	}
}
