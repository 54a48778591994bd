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
