package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/bulwarkhq/bulwark/policy"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// watchDocker follows the Docker daemon, when there is one, for the
// containers the OCI hook did not report: those running when the agent
// starts (started through Bulwark's runtime before a restart: their
// kernel state held, the agent adopts them), and any started later
// without Bulwark's runtime (`docker run --runtime runc`), which are armed
// late and, when an enforce-mode policy selects them, killed: their
// entrypoint ran unguarded. Containers that die are forgotten. It retries
// while Docker cannot be reached.
func (a *Agent) watchDocker(ctx context.Context) error {
	backoff, told := time.Second, false
	for {
		err := a.followDocker(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if !told {
			a.log.Info("not following Docker (retrying)", "error", err)
			told = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// followDocker adopts the running containers, then handles start and die
// events, and learns the identity of each container Docker creates (for
// its OCI hook, moments later) until it is destroyed or renamed, until the
// connection fails or ctx ends.
func (a *Agent) followDocker(ctx context.Context) error {
	cli, err := a.docker.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Subscribed before listing, so no start falls between the two.
	msgs, errs := cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("event", string(events.ActionStart)), filters.Arg("event", string(events.ActionDie)),
		filters.Arg("event", string(events.ActionCreate)), filters.Arg("event", string(events.ActionDestroy)),
		filters.Arg("event", string(events.ActionRename)))})
	running, err := cli.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		return fmt.Errorf("docker: list containers: %w", err)
	}
	a.log.Info("following Docker", "running", len(running))
	for _, c := range running {
		a.adoptDocker(ctx, c.ID, false)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return err
		case m := <-msgs:
			switch m.Action {
			case events.ActionCreate:
				if err := a.docker.Learn(ctx, m.Actor.ID); err != nil {
					a.log.Debug("Docker container's identity not learned at its creation", "container", m.Actor.ID, "error", err)
				}
			case events.ActionDestroy, events.ActionRename:
				a.docker.Forget(m.Actor.ID)
			case events.ActionStart:
				a.adoptDocker(ctx, m.Actor.ID, true)
			case events.ActionDie:
				a.mu.Lock()
				w := a.workloads[m.Actor.ID]
				a.mu.Unlock()
				if w != nil && w.Info.Runtime == RuntimeDocker {
					if err := a.ContainerRemoved(m.Actor.ID); err != nil {
						a.log.Warn("forget Docker container", "container", m.Actor.ID, "error", err)
					}
				}
			}
		}
	}
}

// adoptDocker arms a running Docker container the agent does not track.
// started says it has just started without Bulwark's runtime: then an
// enforce-mode policy selecting it means its entrypoint ran unguarded, and
// it is killed.
func (a *Agent) adoptDocker(ctx context.Context, id string, started bool) {
	a.mu.Lock()
	_, known := a.workloads[id]
	a.mu.Unlock()
	if known {
		return
	}
	info, err := a.docker.Container(ctx, id)
	if err == nil {
		info.PID, err = a.docker.runningPID(ctx, id)
	}
	if err != nil || info.PID == 0 { // ended meanwhile
		if err != nil {
			a.log.Warn("Docker container not armed", "container", id, "error", err)
		}
		return
	}
	armErr := a.ContainerStarted(context.WithoutCancel(ctx), info)
	a.mu.Lock()
	var mode string
	if w := a.workloads[id]; w != nil {
		mode = w.Mode
	}
	a.mu.Unlock()
	if !started {
		if armErr != nil {
			a.log.Error("running Docker container not adopted", "container", id, "error", armErr)
		}
		return
	}
	if armErr == nil && mode != policy.ModeEnforce {
		a.log.Warn("Docker container started without Bulwark's runtime: armed after its entrypoint started",
			"container", id, "name", info.Name, "mode", mode)
		return
	}
	a.log.Error("Docker container started without Bulwark's runtime under an enforce-mode policy: killing it",
		"container", id, "name", info.Name, "error", armErr)
	if err := a.docker.Kill(context.WithoutCancel(ctx), id); err != nil {
		a.log.Error("kill Docker container", "container", id, "error", err)
	}
}
