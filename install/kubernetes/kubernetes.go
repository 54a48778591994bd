// Package kubernetes holds Bulwark's Kubernetes manifests (the YAML files
// beside this one, plain for kubectl and kustomize) and renders them as
// one stream with the image a cluster uses.
package kubernetes

import (
	"bytes"
	"embed"
	"fmt"
	"regexp"
	"strings"
)

// DefaultImage is the image the manifests name; `make image` builds it.
const DefaultImage = "localhost/bulwark:dev"

// Files lists the manifests in the order they are applied
// (kustomization.yaml names the same).
var Files = []string{"namespace.yaml", "rbac.yaml", "policies.yaml", "daemonset.yaml"}

//go:embed *.yaml
var manifests embed.FS

// imageRef is what an image reference may hold (a name, a tag, a digest).
var imageRef = regexp.MustCompile(`^[a-z0-9]+([._/:@-][a-zA-Z0-9_]+)*$`)

// Render returns every manifest, separated by "---", with each
// container's image set to image (DefaultImage when empty).
func Render(image string) ([]byte, error) {
	if image == "" {
		image = DefaultImage
	}
	if !imageRef.MatchString(image) {
		return nil, fmt.Errorf("image %q is not an image reference", image)
	}
	var out bytes.Buffer
	replaced := 0
	for i, name := range Files {
		data, err := manifests.ReadFile(name)
		if err != nil {
			return nil, err
		}
		lines := strings.SplitAfter(string(data), "\n")
		for j, l := range lines {
			if strings.TrimSpace(l) == "image: "+DefaultImage {
				lines[j] = strings.Replace(l, DefaultImage, image, 1)
				replaced++
			}
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.WriteString(strings.Join(lines, ""))
	}
	if replaced == 0 {
		return nil, fmt.Errorf("no image: %s line in the manifests", DefaultImage)
	}
	return out.Bytes(), nil
}
