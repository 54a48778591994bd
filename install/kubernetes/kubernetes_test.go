package kubernetes

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/bulwarkhq/bulwark/plugin"
)

// TestRender: the rendered stream holds every manifest, each a valid YAML
// document, with the given image in both containers and no trace of the
// default one; the DaemonSet's pods carry the annotation that exempts them
// from the NRI required-plugin check; a reference that could break the
// YAML is refused.
func TestRender(t *testing.T) {
	out, err := Render("registry.example/bulwark:1.2@sha256:abc")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte(DefaultImage)) {
		t.Fatal("the default image is still named")
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	var kinds []string
	images := 0
	for {
		var doc struct {
			Kind string `yaml:"kind"`
			Spec struct {
				Template struct {
					Metadata struct {
						Annotations map[string]string `yaml:"annotations"`
					} `yaml:"metadata"`
					Spec struct {
						Containers []struct {
							Image string `yaml:"image"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, doc.Kind)
		if doc.Kind == "DaemonSet" && doc.Spec.Template.Metadata.Annotations[plugin.TolerateMissingAnnotation] != "true" {
			t.Errorf("DaemonSet pods lack %s: \"true\" (a runtime requiring Bulwark would refuse them)", plugin.TolerateMissingAnnotation)
		}
		for _, c := range doc.Spec.Template.Spec.Containers {
			if c.Image != "registry.example/bulwark:1.2@sha256:abc" {
				t.Errorf("%s container image %q", doc.Kind, c.Image)
			}
			images++
		}
	}
	want := []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"}
	if !slices.Equal(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
	if images != 2 {
		t.Errorf("%d container images, want 2 (agent, collector)", images)
	}
	for _, bad := range []string{"x\nkind: Pod", "a b", "-x"} {
		if _, err := Render(bad); err == nil {
			t.Errorf("image %q accepted", bad)
		}
	}
}

// TestKustomizationListsFiles: kustomization.yaml names the same files as
// Render, so kubectl apply -k and the rendered stream agree.
func TestKustomizationListsFiles(t *testing.T) {
	data, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(k.Resources, Files) {
		t.Fatalf("kustomization resources %v, Files %v", k.Resources, Files)
	}
}
