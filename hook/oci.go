package hook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/internal/unixapi"
)

// readState decodes the OCI state runc writes to a hook's stdin.
func readState(r io.Reader) (specs.State, error) {
	var st specs.State
	if err := json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("OCI state on stdin: %w", err)
	}
	if st.ID == "" {
		return st, errors.New("OCI state on stdin: no container id")
	}
	return st, nil
}

// CreateRuntime is the createRuntime hook: it reads the container's state
// from stdin and waits, at most o.Timeout, for the agent to arm it. An
// error means the container must not start (runc fails the create): the
// agent refused it (an enforce-mode policy it could not arm), or the agent
// could not be asked and an enforce-mode policy in o.PolicyDir selects the
// container, or which policy selects it cannot be told. A container no
// enforce-mode policy selects starts when the agent is away; the failure
// is written to log.
func CreateRuntime(stdin io.Reader, o Options, log io.Writer) error {
	st, err := readState(stdin)
	if err != nil {
		return err
	}
	if st.Pid <= 0 {
		return fmt.Errorf("container %s: OCI state has no pid", st.ID)
	}
	rootfs, err := rootfsOf(st.Bundle)
	if err != nil {
		return fmt.Errorf("container %s: %w", st.ID, err)
	}
	req := agent.HookRequest{ID: st.ID, PID: st.Pid, Rootfs: rootfs, Annotations: st.Annotations,
		TimeoutMillis: o.Timeout.Milliseconds()}
	_, err = agent.NewHookClient(o.Socket, o.Timeout).ContainerCreating(req)
	var refused *unixapi.Error
	if err == nil {
		return nil
	} else if errors.As(err, &refused) {
		return fmt.Errorf("agent refused container %s: %w", st.ID, err)
	}
	fmt.Fprintf(log, "bulwark oci-hook: container %s: agent not reached: %v\n", st.ID, err)
	return decideAlone(st, o, log)
}

// decideAlone is the createRuntime hook's decision without the agent: the
// container may start unguarded only if no enforce-mode policy of the
// policy directory selects it.
func decideAlone(st specs.State, o Options, log io.Writer) error {
	info, known := identity(st, o)
	var infoP *agent.ContainerInfo
	if known {
		infoP = &info
	}
	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("container %s: hostname: %w", st.ID, err)
	}
	pol, err := agent.EnforcingPolicy(o.PolicyDir, host, infoP)
	if err != nil {
		return fmt.Errorf("container %s: agent unreachable and its policies unreadable: %w", st.ID, err)
	}
	if pol != nil {
		what := "is guarded by"
		if !known {
			what = "has an unknown identity, and could be guarded by"
		}
		return fmt.Errorf("container %s %s enforce-mode policy %s, and the agent is unreachable: refusing to start it unguarded",
			st.ID, what, pol.Metadata.Name)
	}
	fmt.Fprintf(log, "bulwark oci-hook: container %s starts unguarded: no enforce-mode policy selects it\n", st.ID)
	return nil
}

// identity is the container's identity as the hook can learn it alone:
// from Docker's container list (a container created through CRI carries
// its runtime's annotations and is not looked up there). known is false
// when it could not be learned.
func identity(st specs.State, o Options) (info agent.ContainerInfo, known bool) {
	for _, k := range []string{"io.kubernetes.cri.sandbox-id", "io.kubernetes.cri-o.SandboxID"} {
		if st.Annotations[k] != "" {
			return agent.ContainerInfo{ID: st.ID}, false
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	info, err := agent.NewDockerSource(o.DockerHost).Container(ctx, st.ID)
	if err != nil {
		return agent.ContainerInfo{ID: st.ID}, false
	}
	return info, true
}
