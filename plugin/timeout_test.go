package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"

	"github.com/bulwarkhq/bulwark/agent"
)

// armingAgent stands in for the agent behind the plugin: arming the
// container named "slow" takes longer than any NRI request timeout unless
// its context ends first, as the agent's arming does (agent's
// TestContainerStartedWithinDeadline covers the real one).
type armingAgent struct {
	started atomic.Int32
}

func (a *armingAgent) ContainerCreated(agent.ContainerInfo) {}

func (a *armingAgent) ContainerStarted(ctx context.Context, info agent.ContainerInfo) error {
	a.started.Add(1)
	if info.Name != "slow" {
		return nil
	}
	select {
	case <-time.After(5 * time.Second):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("enforce-mode policy not armed in time (%w): refusing the start", ctx.Err())
	}
}

func (a *armingAgent) ContainerRemoved(string) error { return nil }

func (a *armingAgent) Synchronize([]agent.ContainerInfo) error { return nil }

// TestStartContainerWithinRuntimeTimeout runs the plugin against NRI's own
// runtime side (the adaptation containerd embeds, default 2 s request
// timeout): a start the agent cannot arm in time fails with the agent's
// error well before the timeout, instead of the runtime dropping the
// plugin and starting the container unarmed, and the plugin stays
// registered for the next start.
func TestStartContainerWithinRuntimeTimeout(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "nri.sock")
	syncFn := func(ctx context.Context, cb adaptation.SyncCB) error {
		_, err := cb(ctx, nil, nil)
		return err
	}
	updateFn := func(context.Context, []*adaptation.ContainerUpdate) ([]*adaptation.ContainerUpdate, error) {
		return nil, nil
	}
	r, err := adaptation.New("test-runtime", "v0", syncFn, updateFn, adaptation.WithSocketPath(sock),
		adaptation.WithPluginPath(filepath.Join(dir, "plugins")), adaptation.WithPluginConfigPath(filepath.Join(dir, "conf")))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)

	ag := &armingAgent{}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { ran <- New(ag, sock, log).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-ran
	})
	start := func(name string) (time.Duration, error) {
		t0 := time.Now()
		err := r.StartContainer(context.Background(), &api.StartContainerRequest{
			Pod:       &api.PodSandbox{Id: "pod"},
			Container: &api.Container{Id: name, Name: name, PodSandboxId: "pod"},
		})
		return time.Since(t0), err
	}
	// Registered once a start reaches the agent (the runtime lists the
	// plugin only after synchronizing it).
	for deadline := time.Now().Add(10 * time.Second); ag.started.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the plugin did not register")
		}
		start("probe")
	}
	ag.started.Store(0)
	took, err := start("slow")
	t.Logf("slow start: %v after %v", err, took)
	if err == nil || !strings.Contains(err.Error(), "not armed in time") {
		t.Errorf("slow start = %v, want the agent's refusal", err)
	}
	if took > 1500*time.Millisecond {
		t.Errorf("slow start answered after %v, want well under the 2 s request timeout", took)
	}
	if took, err := start("quick"); err != nil || took > 500*time.Millisecond {
		t.Errorf("quick start after it: %v after %v", err, took)
	}
	if n := ag.started.Load(); n != 2 {
		t.Errorf("the agent saw %d starts, want 2: the runtime dropped the plugin", n)
	}
}
