package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// In-cluster service account files, as Kubernetes mounts them in a pod.
const (
	serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	kubeRetryMax      = 30 * time.Second
)

// KubeAPI says how to reach the Kubernetes API for namespace labels.
type KubeAPI struct {
	// URL is the API server's base URL ("https://10.96.0.1:443").
	URL string
	// Token is the bearer token; CA the PEM bundle that signs the API
	// server's certificate. Both are read from the pod's service account.
	Token string
	CA    []byte
}

// InClusterKubeAPI returns how to reach the API from a pod (the
// KUBERNETES_SERVICE_HOST/PORT environment and the mounted service
// account), or false when not running in a cluster.
func InClusterKubeAPI() (KubeAPI, bool, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return KubeAPI{}, false, nil
	}
	token, err := os.ReadFile(serviceAccountDir + "/token")
	if err != nil {
		return KubeAPI{}, true, fmt.Errorf("kubernetes service account: %w", err)
	}
	ca, err := os.ReadFile(serviceAccountDir + "/ca.crt")
	if err != nil {
		return KubeAPI{}, true, fmt.Errorf("kubernetes service account: %w", err)
	}
	return KubeAPI{URL: "https://" + net.JoinHostPort(host, port), Token: strings.TrimSpace(string(token)), CA: ca}, true, nil
}

// namespaceWatch keeps namespace labels current from the Kubernetes API:
// a list, then a watch from the list's resource version; on any error it
// lists again after a backoff. changed is called with the name of every
// namespace whose labels changed.
type namespaceWatch struct {
	api     KubeAPI
	client  *http.Client
	log     *slog.Logger
	labels  *namespaceLabels
	changed func(namespace string)
}

func newNamespaceWatch(api KubeAPI, labels *namespaceLabels, log *slog.Logger, changed func(string)) (*namespaceWatch, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(api.CA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(api.CA) {
			return nil, errors.New("kubernetes CA: no certificate in the bundle")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &namespaceWatch{api: api, client: &http.Client{Transport: tr}, log: log, labels: labels, changed: changed}, nil
}

// run lists and watches until ctx ends.
func (nw *namespaceWatch) run(ctx context.Context) error {
	backoff := time.Second
	for {
		rv, err := nw.list(ctx)
		if err == nil {
			backoff = time.Second
			err = nw.watch(ctx, rv)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			nw.log.Warn("kubernetes namespaces: relisting", "error", err, "in", backoff)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, kubeRetryMax)
	}
}

// kubeNamespace is the part of a Namespace object the agent reads.
type kubeNamespace struct {
	Metadata struct {
		Name            string            `json:"name"`
		Labels          map[string]string `json:"labels"`
		ResourceVersion string            `json:"resourceVersion"`
	} `json:"metadata"`
}

func (nw *namespaceWatch) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(nw.api.URL, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	if nw.api.Token != "" {
		req.Header.Set("Authorization", "Bearer "+nw.api.Token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := nw.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return resp, nil
}

// list replaces every namespace's labels and returns the list's resource
// version.
func (nw *namespaceWatch) list(ctx context.Context) (string, error) {
	resp, err := nw.get(ctx, "/api/v1/namespaces")
	if err != nil {
		return "", fmt.Errorf("list namespaces: %w", err)
	}
	defer resp.Body.Close()
	var list struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Items []kubeNamespace `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return "", fmt.Errorf("list namespaces: %w", err)
	}
	all := map[string]map[string]string{}
	for _, ns := range list.Items {
		all[ns.Metadata.Name] = ns.Metadata.Labels
	}
	for _, name := range nw.labels.replace(all) {
		nw.changed(name)
	}
	return list.Metadata.ResourceVersion, nil
}

// watch applies namespace events from resource version rv until the
// stream ends or fails. Every end is followed by a list, so the watch asks
// for no bookmarks (their resource version would go unused).
func (nw *namespaceWatch) watch(ctx context.Context, rv string) error {
	resp, err := nw.get(ctx, "/api/v1/namespaces?watch=1&resourceVersion="+rv)
	if err != nil {
		return fmt.Errorf("watch namespaces: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var ev struct {
			Type   string        `json:"type"`
			Object kubeNamespace `json:"object"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("watch namespaces: %w", err)
		}
		name := ev.Object.Metadata.Name
		switch ev.Type {
		case "ADDED", "MODIFIED":
			if nw.labels.set(name, ev.Object.Metadata.Labels) {
				nw.changed(name)
			}
		case "DELETED":
			if nw.labels.set(name, nil) {
				nw.changed(name)
			}
		case "ERROR":
			return errors.New("watch namespaces: the API server ended the watch (resource version too old)")
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("watch namespaces: %w", err)
	}
	return errors.New("watch namespaces: stream ended")
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
