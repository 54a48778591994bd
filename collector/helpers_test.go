package collector

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/policy"
)

// childEnv makes the test binary run a collector instead of the tests: the
// kill test runs the collector as a separate process so that it can kill
// it with SIGKILL.
const childEnv = "BULWARK_COLLECTOR_TEST_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		var socket, db string
		if _, err := fmt.Sscanf(spec, "%s %s", &socket, &db); err != nil {
			fmt.Fprintln(os.Stderr, "bad", childEnv, err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		s, err := NewServer(Options{Socket: socket, DB: db})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := s.Serve(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testServer runs a collector in-process until the test ends.
type testServer struct {
	*Server
	socket, db string
	stop       func()
}

func startServer(t testing.TB, dir string, opts Options) *testServer {
	t.Helper()
	opts.Socket = filepath.Join(dir, "run", "collector.sock")
	opts.DB = filepath.Join(dir, "lib", "collector.db")
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	s, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	ts := &testServer{Server: s, socket: opts.Socket, db: opts.DB}
	stopped := false
	ts.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	t.Cleanup(ts.stop)
	return ts
}

func newClient(t *testing.T, socket, spool string, maxBytes int64) *Client {
	t.Helper()
	c, err := NewClient(ClientOptions{Socket: socket, SpoolDir: spool, MaxSpoolBytes: maxBytes, Agent: "node-1", FlushTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// spoolState is a client's spool as the tests check it.
type spoolState struct {
	// Depth is the number of records not yet acknowledged.
	Depth int
	// Bytes is the size of the spool's segments.
	Bytes int64
	// Dropped counts the records dropped because the spool was full.
	Dropped uint64
	// Acked is the highest sequence number the collector acknowledged.
	Acked uint64
}

// spoolStats reads the state of c's spool.
func spoolStats(c *Client) spoolState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return spoolState{Depth: c.sp.depth(), Bytes: c.sp.total, Dropped: c.sp.meta.Dropped, Acked: c.sp.meta.Acked}
}

func flush(t *testing.T, c *Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// fingerprint returns a container fingerprint of one instance of image
// running exe.
func fingerprint(image, containerID, exe string, version int) *policy.Fingerprint {
	name := filepath.Base(exe)
	return &policy.Fingerprint{
		APIVersion: policy.APIVersionBulwark,
		Kind:       policy.KindFingerprint,
		Metadata: policy.Metadata{
			Name: containerID, Type: policy.TypeContainer, Image: image, ContainerID: containerID,
			ContainerName: "c-" + containerID, Namespace: "default", Version: version,
		},
		Spec: policy.Spec{
			ContainerSelector: &policy.ContainerSelector{Image: image},
			ProcessPolicy:     []policy.ProcessNode{{Name: name, Exe: []string{exe}, Euser: []string{"root"}, ID: name + "_0"}},
			NetworkPolicy:     &policy.NetworkPolicy{Ingress: []policy.NetworkRule{}, Egress: []policy.NetworkRule{}},
		},
	}
}

// deviation returns an exec deviation of policy pol: exe started under
// the policy node parent.
func deviation(pol, parent, exe string) *policy.Deviation {
	name := filepath.Base(exe)
	d := &policy.Deviation{
		APIVersion: policy.APIVersionBulwark,
		Kind:       policy.KindDeviation,
		Metadata: policy.Metadata{
			Type: policy.TypeContainer, PolicyName: pol, PolicyMode: policy.ModeEnforce,
			Image: "docker.io/library/nginx:1.25", Namespace: "default", ContainerName: "web",
			Checksum: pol + ":" + exe, UID: "deviation:" + exe,
			Event: &policy.Event{Kind: "exec", Verdict: "blocked", Exe: exe, Comm: name},
		},
		Spec: policy.Spec{ProcessPolicy: []policy.ProcessNode{{PolicyNode: &policy.PolicyNodeRef{
			ID: parent, Children: []policy.ProcessNode{{Name: name, Exe: []string{exe}, Euser: []string{"root"}, ID: name + "_0"}},
		}}}},
	}
	return d
}
