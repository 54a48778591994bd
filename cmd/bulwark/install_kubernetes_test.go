package main

import (
	"strings"
	"testing"
)

// TestInstallKubernetesPrint: --print writes the manifests with the image
// given; without --print the command refuses (it applies nothing itself),
// and an image reference that could inject YAML is refused.
func TestInstallKubernetesPrint(t *testing.T) {
	out, _, err := runCLI(t, "install", "kubernetes", "--print", "--image", "registry.example/bulwark:2")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "image: registry.example/bulwark:2\n"); n != 2 || !strings.Contains(out, "kind: DaemonSet") {
		t.Fatalf("%d image lines, want 2, in:\n%s", n, out)
	}
	if _, _, err := runCLI(t, "install", "kubernetes"); err == nil || !strings.Contains(err.Error(), "--print") {
		t.Errorf("without --print: %v, want a refusal naming --print", err)
	}
	if _, _, err := runCLI(t, "install", "kubernetes", "--print", "--image", "x\nkind: Pod"); err == nil {
		t.Error("an image with a newline was accepted")
	}
}
