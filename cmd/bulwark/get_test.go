package main

import (
	"testing"

	"github.com/bulwarkhq/bulwark/policy"
)

// TestDeviationWhatShowsName: get deviations shows the resolved name of a
// connect, quoted when it is not a plain host name.
func TestDeviationWhatShowsName(t *testing.T) {
	for name, want := range map[string]string{
		"":                "/usr/bin/curl -> 192.0.2.7:443/TCP",
		"api.example.com": "/usr/bin/curl -> 192.0.2.7:443/TCP (api.example.com)",
		"x\x1b[2J.com":    `/usr/bin/curl -> 192.0.2.7:443/TCP ("x\x1b[2J.com")`,
	} {
		d := &policy.Deviation{Metadata: policy.Metadata{Event: &policy.Event{Kind: "connect", Verdict: "blocked",
			Exe: "/usr/bin/curl", Protocol: "TCP", DstAddr: "192.0.2.7", DstPort: 443, DNSName: name}}}
		if _, _, what := deviationWhat(d); what != want {
			t.Errorf("name %q: %s, want %s", name, what, want)
		}
	}
}
