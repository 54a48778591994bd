package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestNamespaceWatch runs the watcher against a stand-in for the
// Kubernetes API server (no cluster can run here): an HTTP server speaking
// the namespaces list and watch protocol. It checks the list, an update, a
// deletion, the bearer token, and the relist after the server ends a watch.
func TestNamespaceWatch(t *testing.T) {
	events := make(chan string, 4)
	var mu sync.Mutex
	lists, watches := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		if r.URL.Query().Get("watch") == "" {
			lists++
			mu.Unlock()
			fmt.Fprint(w, `{"metadata":{"resourceVersion":"7"},"items":[
				{"metadata":{"name":"prod","labels":{"tier":"gold"}}},
				{"metadata":{"name":"dev","labels":{"tier":"tin"}}}]}`)
			return
		}
		watches++
		n := watches
		mu.Unlock()
		if got := r.URL.Query().Get("resourceVersion"); got != "7" {
			t.Errorf("watch from resource version %q, want 7", got)
		}
		if n > 1 {
			<-r.Context().Done()
			return
		}
		w.(http.Flusher).Flush()
		io.WriteString(w, `{"type":"MODIFIED","object":{"metadata":{"name":"prod","labels":{"tier":"silver"}}}}`+"\n")
		io.WriteString(w, `{"type":"DELETED","object":{"metadata":{"name":"dev"}}}`+"\n")
		io.WriteString(w, `{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}`+"\n")
	}))
	defer srv.Close()

	var labels namespaceLabels
	nw, err := newNamespaceWatch(KubeAPI{URL: srv.URL, Token: "secret"}, &labels, slog.New(slog.DiscardHandler), func(ns string) { events <- ns })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nw.run(ctx) }()

	want := map[string]bool{"prod": true, "dev": true}
	for range 2 {
		select {
		case ns := <-events:
			if !want[ns] {
				t.Fatalf("unexpected change for %q", ns)
			}
			delete(want, ns)
		case <-time.After(5 * time.Second):
			t.Fatal("no change reported for the listed namespaces")
		}
	}
	seen := map[string]bool{}
	for range 2 {
		select {
		case ns := <-events:
			seen[ns] = true
		case <-time.After(5 * time.Second):
			t.Fatal("watch events not reported")
		}
	}
	if !seen["prod"] || !seen["dev"] {
		t.Fatalf("watch changes %v", seen)
	}
	if got := labels.get("prod")["tier"]; got != "silver" {
		t.Fatalf("prod tier %q, want silver", got)
	}
	if got := labels.get("dev"); got != nil {
		t.Fatalf("dev still has labels %v", got)
	}
	// The watch stream ended: the watcher lists again (after its backoff).
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := lists
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no relist after the watch ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
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
