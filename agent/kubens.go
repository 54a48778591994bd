package agent

import (
	"context"
	"fmt"
	"log/slog"
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeConfig returns how to reach the Kubernetes API for namespace labels:
// from kubeconfig, a kubeconfig file, or, when kubeconfig is "auto", from
// the pod's service account (nil when not running in a pod). The
// in-cluster config reads the token from its file, so a rotated token is
// picked up without a restart.
func KubeConfig(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	switch kubeconfig {
	case "":
		return nil, nil
	case "auto":
		cfg, err = rest.InClusterConfig()
		if err == rest.ErrNotInCluster {
			return nil, nil
		}
	default:
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes API: %w", err)
	}
	cfg.UserAgent = "bulwark-agent"
	return cfg, nil
}

// namespaceWatch keeps namespace labels current from the Kubernetes API
// through a client-go informer (a list, then a watch; relisting with
// backoff after errors). changed is called with the name of every
// namespace whose labels changed.
type namespaceWatch struct {
	informer cache.SharedIndexInformer
	log      *slog.Logger
	labels   *namespaceLabels
	changed  func(namespace string)
}

func newNamespaceWatch(cfg *rest.Config, labels *namespaceLabels, log *slog.Logger, changed func(string)) (*namespaceWatch, error) {
	client, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	lw := cache.NewListWatchFromClient(client.RESTClient(), "namespaces", "", fields.Everything())
	nw := &namespaceWatch{
		informer: cache.NewSharedIndexInformer(lw, &corev1.Namespace{}, 0, cache.Indexers{}),
		log:      log, labels: labels, changed: changed,
	}
	if _, err := nw.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    nw.update,
		UpdateFunc: func(_, obj any) { nw.update(obj) },
		DeleteFunc: nw.remove,
	}); err != nil {
		return nil, fmt.Errorf("kubernetes namespaces: %w", err)
	}
	if err := nw.informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		log.Warn("kubernetes namespaces: watch failed; relisting", "error", err)
	}); err != nil {
		return nil, fmt.Errorf("kubernetes namespaces: %w", err)
	}
	return nw, nil
}

// run lists and watches until ctx ends.
func (nw *namespaceWatch) run(ctx context.Context) error {
	nw.informer.RunWithContext(ctx)
	return nil
}

func (nw *namespaceWatch) update(obj any) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return
	}
	labels := ns.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	if nw.labels.set(ns.Name, labels) {
		nw.changed(ns.Name)
	}
}

func (nw *namespaceWatch) remove(obj any) {
	if gone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = gone.Obj
	}
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return
	}
	if nw.labels.set(ns.Name, nil) {
		nw.changed(ns.Name)
	}
}

// replace sets every namespace's labels at once and returns the names of
// those whose labels changed.
func (n *namespaceLabels) replace(all map[string]map[string]string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var changed []string
	for name, l := range all {
		if !maps.Equal(n.labels[name], l) {
			changed = append(changed, name)
		}
	}
	for name := range n.labels {
		if _, ok := all[name]; !ok {
			changed = append(changed, name)
		}
	}
	n.labels = all
	return changed
}

// set sets one namespace's labels (nil: the namespace is gone) and reports
// whether they changed.
func (n *namespaceLabels) set(name string, labels map[string]string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if maps.Equal(n.labels[name], labels) {
		_, had := n.labels[name]
		if had == (labels != nil) {
			return false
		}
	}
	if n.labels == nil {
		n.labels = map[string]map[string]string{}
	}
	if labels == nil {
		delete(n.labels, name)
	} else {
		n.labels[name] = labels
	}
	return true
}
