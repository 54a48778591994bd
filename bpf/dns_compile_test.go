package bpf

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/policy"
)

// dnsPatternText is the name or glob a compiled pattern holds.
func dnsPatternText(p networkDnsPattern) string {
	b := make([]byte, 0, p.PrefixLen+p.SuffixLen)
	for _, c := range p.Bytes[:p.PrefixLen+p.SuffixLen] {
		b = append(b, byte(c))
	}
	if p.Kind == patGlob {
		return string(b[:p.PrefixLen]) + "*" + string(b[p.PrefixLen:])
	}
	return string(b)
}

func TestCompileDNSSelector(t *testing.T) {
	names := func(ns ...string) policy.Peer { return policy.Peer{DNSSelector: ns} }
	spec := policy.Spec{NetworkPolicy: &policy.NetworkPolicy{
		Egress: []policy.NetworkRule{
			{To: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "10.0.0.0/8"}}}},
			{To: []policy.Peer{names("API.Example.com.", "*.cdn.example.net"), names("a?b.example.com", "x.[ab].com", "*.*.com")}},
			{To: []policy.Peer{names("api.example.com")}},
		},
		Ingress: []policy.NetworkRule{{From: []policy.Peer{names("client.example.com")}}},
	}}
	c, err := Compile(&spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.dns {
		got = append(got, fmt.Sprintf("%s rules=%b", dnsPatternText(p), p.Rules))
	}
	want := []string{"api.example.com rules=10", "*.cdn.example.net rules=10", "api.example.com rules=100"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("patterns %q, want %q", got, want)
	}
	// Globs the kernel cannot match, and names of ingress peers, are
	// warned about and allow nothing.
	if len(c.Warnings) != 4 {
		t.Fatalf("warnings %q, want 4", c.Warnings)
	}
	for i, w := range []string{`"a?b.example.com"`, `"x.[ab].com"`, `"*.*.com"`, "sources are not matched by name"} {
		if !strings.Contains(c.Warnings[i], w) || !strings.Contains(c.Warnings[i], "not allowed") {
			t.Errorf("warning %q, want %s and that it is not allowed", c.Warnings[i], w)
		}
	}

	many := make([]string, dnsMaxPatterns+1)
	for i := range many {
		many[i] = fmt.Sprintf("n%d.example.com", i)
	}
	for _, tc := range []struct {
		peer policy.Peer
		want string
	}{
		{names(strings.Repeat("a", 254)), "networkPolicy.egress[0].to[0].dnsSelector[0]: \"aaa"},
		{names(many...), "networkPolicy.egress: more than 256 dnsSelector names"},
		{names("."), "networkPolicy.egress[0].to[0].dnsSelector[0]: empty name"},
	} {
		s := policy.Spec{NetworkPolicy: &policy.NetworkPolicy{Egress: []policy.NetworkRule{{To: []policy.Peer{tc.peer}}}}}
		if _, err := Compile(&s, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one containing %q", err, tc.want)
		}
	}
}
