package unixapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestListenIsRootOnlyAndRefusesALiveServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	path := filepath.Join(dir, "api.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}
	if l2, err := Listen(path); err == nil {
		l2.Close()
		t.Fatal("a second Listen took the socket of a live server")
	} else if !strings.Contains(err.Error(), "another process is serving it") {
		t.Errorf("second Listen: %v", err)
	}
	l.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("closing the listener left the socket behind: %v", err)
	}
}

func TestListenReplacesAStaleSocketOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	l, err := Listen(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l.Close()

	file := filepath.Join(t.TempDir(), "not-a-socket")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if l, err := Listen(file); err == nil {
		l.Close()
		t.Fatal("Listen replaced a regular file")
	} else if !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("Listen on a file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Errorf("the file was touched: %q, %v", b, err)
	}
}

// serve runs h on a socket under the test's temp dir and returns the
// socket and a stop function that ends Serve's context and returns what
// Serve returned; the test's cleanup stops it too.
func serve(t *testing.T, h http.Handler) (string, func() error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "api.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, h, time.Second) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(5 * time.Second):
				serveErr = errors.New("Serve did not return after its context ended")
			}
		})
		return serveErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path, stop
}

type reply struct {
	Name string `json:"name"`
}

func TestClientDecodesRepliesAndErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, reply{"web"})
	})
	mux.HandleFunc("PUT /bad", func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			WriteError(w, http.StatusUnsupportedMediaType, errors.New("content type "+ct))
			return
		}
		WriteError(w, http.StatusBadRequest, errors.New("p.yaml:3:5: spec.mode: want audit or enforce"))
	})
	mux.HandleFunc("GET /plain", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not json", http.StatusTeapot)
	})
	socket, _ := serve(t, mux)
	c := NewClient("agent", socket, 5*time.Second)

	var got reply
	if err := c.Do(http.MethodGet, "/ok", nil, &got); err != nil || got.Name != "web" {
		t.Errorf("GET /ok: %+v, %v", got, err)
	}
	if err := c.Do(http.MethodGet, "/ok", nil, nil); err != nil {
		t.Errorf("GET /ok without a reply value: %v", err)
	}

	err := c.Do(http.MethodPut, "/bad", strings.NewReader("{}"), nil)
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest ||
		err.Error() != "p.yaml:3:5: spec.mode: want audit or enforce" {
		t.Errorf("PUT /bad: %#v", err)
	}

	err = c.Do(http.MethodGet, "/plain", nil, &got)
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusTeapot ||
		!strings.Contains(err.Error(), "GET /plain: 418") {
		t.Errorf("GET /plain: %v", err)
	}

	err = c.Do(http.MethodGet, "/missing", nil, &got)
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Errorf("GET /missing: %v", err)
	}
}

func TestClientNamesAMissingServer(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "none.sock")
	err := NewClient("collector", socket, time.Second).Do(http.MethodGet, "/v1/agents", nil, nil)
	want := "no collector at " + socket + ` (is "bulwark collector" running?)`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %v, want it to start with %q", err, want)
	}
}

func TestServeStopsWithItsContextAndRemovesTheSocket(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, reply{"up"})
	})
	path, stop := serve(t, mux)
	var got reply
	if err := NewClient("agent", path, 5*time.Second).Do(http.MethodGet, "/ok", nil, &got); err != nil || got.Name != "up" {
		t.Fatalf("GET /ok: %+v, %v", got, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Serve after its context ended: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after Serve: %v", err)
	}
}
