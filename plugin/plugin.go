// Package plugin is Bulwark's NRI plugin: it turns containerd and CRI-O
// container events into agent calls. Every handler translates and calls
// the agent; decisions live in the agent.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/hook"
)

// DefaultSocket is the runtime's NRI socket.
const DefaultSocket = "/var/run/nri/nri.sock"

// Name and Index register the plugin with the runtime. The low index makes
// Bulwark see each container before other plugins adjust it.
const (
	Name  = "bulwark"
	Index = "05"
)

// TolerateMissingAnnotation is the pod annotation that exempts a pod from
// NRI's required-plugins validator ("true"), set on Bulwark's own pods so
// they start while no agent is registered. Install writes it into the
// runtime's validator configuration.
const TolerateMissingAnnotation = "bulwark.dev/tolerate-missing-plugins"

// Agent is what the plugin needs of the agent.
type Agent interface {
	ContainerCreated(agent.ContainerInfo)
	ContainerStarted(context.Context, agent.ContainerInfo) error
	ContainerRemoved(id string) error
	Synchronize([]agent.ContainerInfo) error
}

// Plugin connects an agent to a runtime's NRI socket.
type Plugin struct {
	agent  Agent
	socket string
	log    *slog.Logger
	// hook, when set, is the OCI createRuntime hook CreateContainer adds
	// to every container.
	hook *api.Hook
}

// InjectHook makes CreateContainer give every container Bulwark's OCI
// createRuntime hook (binary run with o), so the container is armed from
// inside runc create, before its entrypoint: on CRI-O the only point that
// blocks (a failed NRI start is ignored there), on containerd a second
// line behind StartContainer, which then finds it armed.
func (p *Plugin) InjectHook(binary string, o hook.Options) {
	h := hook.Hook(binary, o)
	p.hook = &api.Hook{Path: h.Path, Args: h.Args, Timeout: api.Int(*h.Timeout)}
}

// New returns a plugin that reports to a over the NRI socket.
func New(a Agent, socket string, log *slog.Logger) *Plugin {
	if socket == "" {
		socket = DefaultSocket
	}
	return &Plugin{agent: a, socket: socket, log: log}
}

// Run registers with the runtime and serves its events until ctx ends,
// registering again whenever the runtime restarts or drops the plugin.
func (p *Plugin) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		s, err := stub.New(handlers{p}, stub.WithPluginName(Name), stub.WithPluginIdx(Index),
			stub.WithSocketPath(p.socket), stub.WithFailurePolicy(failurePolicy))
		if err != nil {
			return fmt.Errorf("NRI plugin: %w", err)
		}
		start := time.Now()
		err = s.Run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		p.log.Warn("NRI connection lost; reconnecting", "socket", p.socket, "error", err, "retry", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// failurePolicy asks the runtime to fail a request the plugin does not
// answer in time (a start could otherwise go ahead unarmed) and to drop
// the plugin then, so a hung agent delays one request, not every one; Run
// registers again. Runtimes whose NRI predates failure policies (v0.12.4;
// containerd 2.4.2 embeds v0.12.3) ignore it and proceed without the
// plugin: their fail-closed option is NRI's required-plugins validator.
var failurePolicy = &api.FailurePolicy{FailRequest: true}

// handlerTime bounds a handler the runtime gave no deadline. With one,
// a handler takes at most half of what is left of it: 1 s under NRI's
// default request timeout (plugin_request_timeout, 2 s), past which the
// runtime drops the plugin. Raising that timeout gives arming more time.
const handlerTime = time.Second

// handlerContext bounds a handler's ctx to its budget (handlerTime).
func handlerContext(ctx context.Context) (context.Context, context.CancelFunc) {
	budget := handlerTime
	if dl, ok := ctx.Deadline(); ok {
		budget = time.Until(dl) / 2
	}
	return context.WithTimeout(ctx, budget)
}

// finishedWithin runs fn and waits for it until ctx ends, reporting
// whether it finished; if not, fn goes on alone.
func finishedWithin(ctx context.Context, fn func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// handlers implements the NRI stub interfaces for p.
type handlers struct{ p *Plugin }

// Synchronize adopts every container the runtime already runs; adoption
// goes on in the background when it outlasts the handler's budget.
func (h handlers) Synchronize(ctx context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	byID := make(map[string]*api.PodSandbox, len(pods))
	for _, pod := range pods {
		byID[pod.GetId()] = pod
	}
	var infos []agent.ContainerInfo
	for _, c := range ctrs {
		if c.GetState() == api.ContainerState_CONTAINER_RUNNING {
			infos = append(infos, ContainerInfo(byID[c.GetPodSandboxId()], c))
		}
	}
	h.p.log.Info("NRI synchronize", "pods", len(pods), "running", len(infos))
	ctx, cancel := handlerContext(ctx)
	defer cancel()
	if !finishedWithin(ctx, func() {
		if err := h.p.agent.Synchronize(infos); err != nil {
			h.p.log.Error("synchronize", "error", err)
		}
	}) {
		h.p.log.Warn("adopting running containers goes on after the runtime's synchronize", "running", len(infos))
	}
	return nil, nil
}

// CreateContainer records the container's identity and adds Bulwark's
// OCI hook (InjectHook) unless the container already has it.
func (h handlers) CreateContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	h.p.agent.ContainerCreated(ContainerInfo(pod, c))
	if h.p.hook == nil {
		return nil, nil, nil
	}
	for _, have := range c.GetHooks().GetCreateRuntime() {
		if hook.IsBulwarkHook(specs.Hook{Path: have.GetPath(), Args: have.GetArgs()}) {
			return nil, nil, nil
		}
	}
	adj := &api.ContainerAdjustment{}
	adj.AddHooks(&api.Hooks{CreateRuntime: []*api.Hook{h.p.hook}})
	return adj, nil, nil
}

// StartContainer arms the container before its entrypoint runs, within
// the handler's budget; an error (an enforce-mode policy that could not be
// armed, or not in time) makes the runtime fail the start.
func (h handlers) StartContainer(ctx context.Context, pod *api.PodSandbox, c *api.Container) error {
	ctx, cancel := handlerContext(ctx)
	defer cancel()
	err := h.p.agent.ContainerStarted(ctx, ContainerInfo(pod, c))
	if err != nil {
		h.p.log.Error("refusing container start", "container", c.GetId(), "error", err)
	}
	return err
}

// RemoveContainer disarms the container, in the background once it
// outlasts the handler's budget (disarming waits for an arm under way).
func (h handlers) RemoveContainer(ctx context.Context, _ *api.PodSandbox, c *api.Container) error {
	ctx, cancel := handlerContext(ctx)
	defer cancel()
	finishedWithin(ctx, func() {
		if err := h.p.agent.ContainerRemoved(c.GetId()); err != nil && !errors.Is(err, context.Canceled) {
			h.p.log.Warn("remove container", "container", c.GetId(), "error", err)
		}
	})
	return nil
}

// Image annotations set by the runtimes, used when NRI carries no image.
const (
	annContainerdImage = "io.kubernetes.cri.image-name"
	annCrioImage       = "io.kubernetes.cri-o.Image"
	annCrioImageRef    = "io.kubernetes.cri-o.ImageRef"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodName       = "io.kubernetes.pod.name"
)

// podLabels returns the pod's own labels: those the runtime adds to every
// sandbox (io.cri-containerd.kind, oci_runtime_type, CRI-O's) say nothing
// about the workload and are left out, so policies learned from pods do not
// select on them.
func podLabels(all map[string]string) map[string]string {
	out := make(map[string]string, len(all))
	for k, v := range all {
		if strings.HasPrefix(k, "io.cri-containerd.") || strings.HasPrefix(k, "io.kubernetes.cri-o.") || k == "oci_runtime_type" {
			continue
		}
		out[k] = v
	}
	return out
}

// ContainerInfo translates NRI's view of a container into the agent's.
// The image is the name the container was created with (containerd's
// image-name annotation), else container.image (containerd ≥ 2.4), else
// CRI-O's annotations; its ID comes from container.image.
func ContainerInfo(pod *api.PodSandbox, c *api.Container) agent.ContainerInfo {
	info := agent.ContainerInfo{
		ID:           c.GetId(),
		Name:         c.GetName(),
		PodSandboxID: c.GetPodSandboxId(),
		PID:          int(c.GetPid()),
	}
	if pod != nil {
		info.PodName = pod.GetName()
		info.PodUID = pod.GetUid()
		info.Namespace = pod.GetNamespace()
		info.PodLabels = podLabels(pod.GetLabels())
	}
	labels := c.GetLabels()
	if info.Namespace == "" {
		info.Namespace = labels[labelPodNamespace]
	}
	if info.PodName == "" {
		info.PodName = labels[labelPodName]
	}
	ann := c.GetAnnotations()
	if img := c.GetImage(); img != nil {
		info.Image = img.GetName()
		info.ImageID = img.GetConfigDigest()
	}
	// The name the container was created with, when the runtime recorded
	// it: containerd's container.image names the image by one of its
	// references, which is another name when the same image carries
	// several tags.
	if v := ann[annContainerdImage]; v != "" {
		info.Image = v
	} else if v := ann[annCrioImage]; v != "" && info.Image == "" {
		info.Image = v
		info.ImageID = ann[annCrioImageRef]
	}
	return info
}
