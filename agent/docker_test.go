package agent

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeDocker serves the container list of Docker's Engine API on a unix
// socket, with one container, and counts the lists.
func fakeDocker(t *testing.T, id string) (host string, lists *atomic.Int32) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	lists = new(atomic.Int32)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.43")
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			w.Write([]byte("OK"))
		case strings.HasSuffix(r.URL.Path, "/containers/json"):
			lists.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`[{"Id":"` + id + `","Names":["/web"],"Image":"nginx:1","ImageID":"sha256:abc","Labels":{"app":"web"}}]`))
		default:
			http.NotFound(w, r)
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock, lists
}

// TestDockerSourceLearnsAtCreation: an identity learned when Docker
// created the container answers the hook without a list; once forgotten
// (destroyed, renamed) Docker's list is asked again.
func TestDockerSourceLearnsAtCreation(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	host, lists := fakeDocker(t, id)
	d := NewDockerSource(host)
	ctx := context.Background()
	if err := d.Learn(ctx, id); err != nil {
		t.Fatal(err)
	}
	want := ContainerInfo{ID: id, Name: "web", Image: "nginx:1", ImageID: "sha256:abc", PodLabels: map[string]string{"app": "web"}, Runtime: RuntimeDocker}
	for range 2 {
		info, err := d.Container(ctx, id)
		if err != nil || info.Name != want.Name || info.Image != want.Image || info.ImageID != want.ImageID || info.PodLabels["app"] != "web" || info.Runtime != want.Runtime {
			t.Fatalf("Container = %+v, %v; want %+v", info, err, want)
		}
	}
	if n := lists.Load(); n != 1 {
		t.Errorf("%d lists for a learned container, want 1 (Learn's)", n)
	}
	d.Forget(id)
	if info, err := d.Container(ctx, id); err != nil || info.Name != "web" {
		t.Fatalf("after Forget: %+v, %v", info, err)
	}
	if n := lists.Load(); n != 2 {
		t.Errorf("%d lists after Forget, want 2", n)
	}
	if _, err := d.Container(ctx, strings.Repeat("f", 64)); err == nil {
		t.Error("a container Docker does not list was found")
	}
}
