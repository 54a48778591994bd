package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// namespaceFileInterval is how often the namespace labels file is checked.
const namespaceFileInterval = time.Second

// namespaceLabels holds the labels of Kubernetes namespaces, read from a
// local YAML file mapping namespace name to labels. The
// kubernetes.io/metadata.name label is always implied
// (policy.NamespaceLabels).
type namespaceLabels struct {
	file string

	mu     sync.Mutex
	labels map[string]map[string]string
}

// reload rereads the file (no file setting means no labels) and returns
// the namespaces whose labels changed. A file that cannot be read or
// parsed changes nothing.
func (n *namespaceLabels) reload() ([]string, error) {
	if n.file == "" {
		return nil, nil
	}
	data, err := os.ReadFile(n.file)
	if err != nil {
		return nil, fmt.Errorf("namespace labels: %w", err)
	}
	var labels map[string]map[string]string
	if err := yaml.Unmarshal(data, &labels); err != nil {
		return nil, fmt.Errorf("namespace labels %s: %w", n.file, err)
	}
	if labels == nil {
		labels = map[string]map[string]string{}
	}
	return n.replace(labels), nil
}

// watchFile rereads the file whenever its size or modification time
// changes, calling changed for every namespace whose labels changed.
func (n *namespaceLabels) watchFile(ctx context.Context, log *slog.Logger, changed func(string)) error {
	var last os.FileInfo
	if fi, err := os.Stat(n.file); err == nil {
		last = fi
	}
	t := time.NewTicker(namespaceFileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		fi, err := os.Stat(n.file)
		if err != nil || (last != nil && fi.ModTime().Equal(last.ModTime()) && fi.Size() == last.Size()) {
			continue
		}
		last = fi
		names, err := n.reload()
		if err != nil {
			log.Warn("namespace labels file rejected; previous labels stay", "error", err)
			continue
		}
		for _, ns := range names {
			changed(ns)
		}
	}
}

// get returns the labels of namespace ns.
func (n *namespaceLabels) get(ns string) map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.labels[ns]
}
