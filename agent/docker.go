package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// RuntimeDocker marks the containers the agent learned of from the OCI
// hook and Docker's API (ContainerInfo.Runtime); the NRI runtime's
// Synchronize does not know them.
const RuntimeDocker = "docker"

// DockerSource reads Docker containers' identities from the Docker
// Engine API. It uses only the container list, which dockerd answers from
// a lock-free snapshot: inspecting a container from its OCI hook would
// wait for the lock `docker start` holds while the hook runs.
type DockerSource struct {
	host string
	once sync.Once
	cli  *client.Client
	err  error

	mu sync.Mutex
	// known holds the identities of containers learned when Docker
	// created them (Learn), so that the OCI hook, which runs when the
	// container starts, need not wait for Docker's list.
	known map[string]ContainerInfo
}

// NewDockerSource returns a source for the Docker daemon at host (for
// example unix:///run/docker.sock; "" for Docker's default).
func NewDockerSource(host string) *DockerSource {
	return &DockerSource{host: host}
}

// client connects on first use, so an agent on a host without Docker
// never needs one.
func (d *DockerSource) client() (*client.Client, error) {
	d.once.Do(func() {
		opts := []client.Opt{client.WithAPIVersionNegotiation()}
		if d.host != "" {
			opts = append(opts, client.WithHost(d.host))
		}
		d.cli, d.err = client.NewClientWithOpts(opts...)
	})
	return d.cli, d.err
}

// maxKnown bounds how many containers' identities a DockerSource keeps
// (created and not yet destroyed); past it, Learn forgets the others.
const maxKnown = 4096

// Learn looks container id up in Docker's list now, as Docker reports it
// created, and keeps its identity for Container until Forget.
func (d *DockerSource) Learn(ctx context.Context, id string) error {
	info, err := d.list(ctx, id)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.known == nil || len(d.known) >= maxKnown {
		d.known = map[string]ContainerInfo{}
	}
	d.known[id] = info
	return nil
}

// Forget drops what Learn kept of container id (Docker destroyed or
// renamed it).
func (d *DockerSource) Forget(id string) {
	d.mu.Lock()
	delete(d.known, id)
	d.mu.Unlock()
}

// Container returns what Docker knows of container id: its name, the
// image it was run from (as the user named it) and that image's ID, and
// its labels, which podSelector matches as a pod's (Docker has no pods).
// A container Learn kept is answered without asking Docker.
func (d *DockerSource) Container(ctx context.Context, id string) (ContainerInfo, error) {
	d.mu.Lock()
	info, ok := d.known[id]
	d.mu.Unlock()
	if ok {
		return info, nil
	}
	return d.list(ctx, id)
}

// list returns container id's identity from Docker's container list.
func (d *DockerSource) list(ctx context.Context, id string) (ContainerInfo, error) {
	cli, err := d.client()
	if err != nil {
		return ContainerInfo{}, fmt.Errorf("docker client: %w", err)
	}
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("id", id))})
	if err != nil {
		return ContainerInfo{}, fmt.Errorf("docker: list container %s: %w", id, err)
	}
	for _, c := range list {
		if c.ID != id { // the filter matches id prefixes
			continue
		}
		info := ContainerInfo{ID: id, Image: c.Image, ImageID: c.ImageID, PodLabels: c.Labels, Runtime: RuntimeDocker}
		if len(c.Names) > 0 {
			info.Name = strings.TrimPrefix(c.Names[0], "/")
		}
		return info, nil
	}
	return ContainerInfo{}, fmt.Errorf("docker: no container %s", id)
}

// Kill kills container id (agentKillPod for a Docker container: Docker
// has no pod, and the container is the unit it restarts or removes).
func (d *DockerSource) Kill(ctx context.Context, id string) error {
	cli, err := d.client()
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	if err := cli.ContainerKill(ctx, id, "KILL"); err != nil {
		return fmt.Errorf("docker: kill container %s: %w", id, err)
	}
	return nil
}

// runningPID returns the pid of container id's first process, 0 when it
// does not run. It inspects the container, which waits for the
// container's lock: never call it from the container's OCI hook.
func (d *DockerSource) runningPID(ctx context.Context, id string) (int, error) {
	cli, err := d.client()
	if err != nil {
		return 0, fmt.Errorf("docker client: %w", err)
	}
	c, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("docker: inspect container %s: %w", id, err)
	}
	if c.State == nil || !c.State.Running {
		return 0, nil
	}
	return c.State.Pid, nil
}
