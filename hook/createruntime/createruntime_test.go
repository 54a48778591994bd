package createruntime

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/hook"
	"github.com/bulwarkhq/bulwark/internal/unixapi"
)

// testBundle writes a bundle whose root is rootfs beside config.json and
// returns it with an OCI state of container c1 in it (this process's pid).
func testBundle(t *testing.T) (bundle, state string) {
	t.Helper()
	bundle = t.TempDir()
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"root":{"path":"rootfs"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return bundle, `{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":` + strconv.Itoa(os.Getpid()) + `,"bundle":"` + bundle + `"}`
}

// TestRunAsksTheAgent: the hook's own HTTP/1.0 call reaches the agent's
// API server (unixapi, as the agent serves it) with the container, and
// tells an armed container, a refused one and an agent that does not
// answer in time apart.
func TestRunAsksTheAgent(t *testing.T) {
	bundle, state := testBundle(t)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := unixapi.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	reply := make(chan func(http.ResponseWriter, Request), 1)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Path, func(w http.ResponseWriter, r *http.Request) {
		var req Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.Header.Get("Content-Type") != "application/json" {
			unixapi.WriteError(w, http.StatusBadRequest, errors.New("bad request"))
			return
		}
		(<-reply)(w, req)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- unixapi.Serve(ctx, l, mux, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
	o := hook.Options{Socket: sock, Timeout: time.Second}

	var got Request
	reply <- func(w http.ResponseWriter, req Request) {
		got = req
		unixapi.WriteJSON(w, http.StatusOK, Reply{Policy: "p", Mode: "enforce"})
	}
	if err := Run(strings.NewReader(state), o); err != nil {
		t.Fatalf("armed: %v", err)
	}
	root, _ := filepath.EvalSymlinks(filepath.Join(bundle, "rootfs"))
	if got.ID != "c1" || got.PID != os.Getpid() || got.Rootfs != root || got.TimeoutMillis != 1000 {
		t.Errorf("agent got %+v", got)
	}

	reply <- func(w http.ResponseWriter, _ Request) {
		unixapi.WriteError(w, http.StatusForbidden, errors.New("enforce-mode policy p not armed in time"))
	}
	err = Run(strings.NewReader(state), o)
	var u *Unreached
	if err == nil || errors.As(err, &u) || err.Error() != "agent refused container c1: enforce-mode policy p not armed in time" {
		t.Errorf("refused: %v; want the agent's refusal", err)
	}

	reply <- func(http.ResponseWriter, Request) { time.Sleep(1500 * time.Millisecond) }
	if err := Run(strings.NewReader(state), o); !errors.As(err, &u) || string(u.State) != state {
		t.Errorf("no answer in time: %v; want *Unreached carrying the state", err)
	}
}

// TestRunWithoutAgent: with no agent on the socket the hook
// hands the OCI state, unchanged, to the fallback; a state without an id
// or a pid is refused outright.
func TestRunWithoutAgent(t *testing.T) {
	bundle, state := testBundle(t)
	o := hook.Options{Socket: filepath.Join(t.TempDir(), "no-agent.sock"), Timeout: time.Second}
	err := Run(strings.NewReader(state), o)
	var u *Unreached
	if !errors.As(err, &u) || string(u.State) != state {
		t.Fatalf("no agent: %v; want *Unreached carrying the state", err)
	}
	for _, bad := range []string{`{"id":""}`, `{"id":"c2","bundle":"` + bundle + `"}`, `{"id":`} {
		if err := Run(strings.NewReader(bad), o); err == nil || errors.As(err, &u) {
			t.Errorf("state %s: %v; want a refusal", bad, err)
		}
	}
}
