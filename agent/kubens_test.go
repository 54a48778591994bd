package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// TestNamespaceWatch runs the watcher against a real API server: the
// cluster of test/k8s (make k8s-e2e runs this test with
// BULWARK_KUBECONFIG set to its admin kubeconfig; without a cluster the
// test is skipped). It creates a namespace, relabels it and deletes it,
// and checks that each change reaches the labels and the callback.
func TestNamespaceWatch(t *testing.T) {
	file := os.Getenv("BULWARK_KUBECONFIG")
	if file == "" {
		t.Skip("BULWARK_KUBECONFIG not set: no cluster (make k8s-e2e runs this test)")
	}
	cfg, err := KubeConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	client, err := corev1client.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	name := fmt.Sprintf("bulwark-nswatch-%d", time.Now().UnixNano())
	ns, err := client.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: name, Labels: map[string]string{"tier": "gold"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})

	events := make(chan string, 64)
	var labels namespaceLabels
	nw, err := newNamespaceWatch(cfg, &labels, slog.New(slog.DiscardHandler), func(ns string) { events <- ns })
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- nw.run(ctx) }()

	// waitFor waits for a change of our namespace after which check holds.
	waitFor := func(what string, check func(map[string]string) bool) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			if check(labels.get(name)) {
				return
			}
			select {
			case <-events:
			case <-deadline:
				t.Fatalf("%s: labels of %s are %v", what, name, labels.get(name))
			}
		}
	}
	waitFor("listed", func(l map[string]string) bool { return l["tier"] == "gold" })
	ns.Labels["tier"] = "silver"
	if _, err := client.Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("relabelled", func(l map[string]string) bool { return l["tier"] == "silver" })
	if err := client.Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Deletion goes through Terminating (an update) before the object is
	// removed; with no finalizers left it is gone within seconds.
	waitFor("deleted", func(l map[string]string) bool { return l == nil })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNamespaceLabelsSet(t *testing.T) {
	var n namespaceLabels
	if !n.set("a", map[string]string{"x": "1"}) || n.set("a", map[string]string{"x": "1"}) {
		t.Fatal("set reports changes wrongly")
	}
	if !n.set("a", map[string]string{}) || !n.set("a", nil) || n.set("a", nil) {
		t.Fatal("empty and deleted labels are changes once each")
	}
}
