package agent

import (
	"fmt"
	"os"
	"sync"

	"go.yaml.in/yaml/v3"
)

// namespaceLabels holds the labels of Kubernetes namespaces, read from a
// local YAML file mapping namespace name to labels. The
// kubernetes.io/metadata.name label is always implied by identityOf.
type namespaceLabels struct {
	file string

	mu     sync.Mutex
	labels map[string]map[string]string
}

// reload rereads the file; a missing file setting means no labels.
func (n *namespaceLabels) reload() error {
	if n.file == "" {
		return nil
	}
	data, err := os.ReadFile(n.file)
	if err != nil {
		return fmt.Errorf("namespace labels: %w", err)
	}
	var labels map[string]map[string]string
	if err := yaml.Unmarshal(data, &labels); err != nil {
		return fmt.Errorf("namespace labels %s: %w", n.file, err)
	}
	n.mu.Lock()
	n.labels = labels
	n.mu.Unlock()
	return nil
}

// get returns the labels of namespace ns.
func (n *namespaceLabels) get(ns string) map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.labels[ns]
}
