package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/agent"
)

func TestPrintStatusListsRejectedFilesInOrder(t *testing.T) {
	st := agent.Status{Backend: "tracing", Problems: map[string]string{
		"/etc/bulwark/policies/web.yaml": "web.yaml:3:5: spec.mode: want audit or enforce",
		"/etc/bulwark/policies/api.yaml": "api.yaml:1:1: kind: missing",
		"/etc/bulwark/policies/db.yaml":  "db.yaml:2:1: apiVersion: missing",
	}}
	for range 5 {
		var out bytes.Buffer
		if err := printStatus(&out, st); err != nil {
			t.Fatal(err)
		}
		api := strings.Index(out.String(), "api.yaml (previous")
		db := strings.Index(out.String(), "db.yaml (previous")
		web := strings.Index(out.String(), "web.yaml (previous")
		if api < 0 || !(api < db && db < web) {
			t.Fatalf("rejected files not listed by name:\n%s", out.String())
		}
	}
}

func TestPrintStatusShowsLosses(t *testing.T) {
	st := agent.Status{Backend: "tracing", Lost: 7, Unaggregated: 2, UnparsedDNS: 3, LinkRepairs: 1, Workloads: []agent.WorkloadStatus{
		{ID: "abc", Name: "web", CgroupID: 42, Policy: "web", Mode: "audit", Lost: 7, Unaggregated: 2, UnparsedDNS: 3},
	}}
	var out bytes.Buffer
	if err := printStatus(&out, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lost events: 7\n", "unaggregated deviations: 2\n", "unparsed DNS answers: 3\n", "link repairs: 1\n",
		"warning: the kernel lost events", "warning: enforcement links were removed", "warning: DNS answers the kernel could not parse"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	lines := strings.Split(out.String(), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "CONTAINER") {
			if f := strings.Fields(lines[i+1]); len(f) < 3 || strings.Join(f[len(f)-3:], " ") != "7 2 3" || !strings.HasSuffix(l, "LOST  UNAGGREGATED  UNPARSED-DNS") {
				t.Errorf("workload row %q under %q, want its losses 7, 2 and 3 last", lines[i+1], l)
			}
		}
	}
}

func TestPrintStatusShowsFailedClosedParts(t *testing.T) {
	st := agent.Status{Backend: "tracing", Workloads: []agent.WorkloadStatus{
		{ID: "c1", Name: "web", Policy: "web-policy", Mode: "enforce",
			Unreachable: []string{`node "id_0" and its children are unreachable: processPolicy[0].children[1].euser: no user "lxd" in the workload's or the host's passwd`}},
		{ID: "c2", Name: "db", Policy: "db-policy", Mode: "audit"},
	}}
	var out bytes.Buffer
	if err := printStatus(&out, st); err != nil {
		t.Fatal(err)
	}
	want := "\npolicy web-policy on web: armed with these parts failed closed (denied in enforce, reported in audit):\n" +
		`  node "id_0" and its children are unreachable: processPolicy[0].children[1].euser: no user "lxd" in the workload's or the host's passwd` + "\n"
	if !strings.Contains(out.String(), want) || strings.Contains(out.String(), "db-policy on") {
		t.Errorf("status:\n%s\nwant it to contain:\n%s", out.String(), want)
	}
}

func TestPrintStatusWarnsUDPAtBinder(t *testing.T) {
	const warning = "warning: UDP datagrams are decided for the process that bound the port"
	for _, at := range []bool{false, true} {
		var out bytes.Buffer
		if err := printStatus(&out, agent.Status{Backend: "tracing", UDPAtReceive: at}); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.String(), warning) == at {
			t.Errorf("UDPAtReceive %v: status\n%s", at, out.String())
		}
	}
}
