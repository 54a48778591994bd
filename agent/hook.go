package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bulwarkhq/bulwark/hook"
	"github.com/bulwarkhq/bulwark/hook/createruntime"
	"github.com/bulwarkhq/bulwark/internal/unixapi"
	"github.com/bulwarkhq/bulwark/policy"
)

// hookMargin is the part of the hook's wait the agent leaves for the
// reply to reach it.
const hookMargin = 200 * time.Millisecond

// handleHook serves the OCI hook's POST (createruntime.Path): it arms the container
// and replies when done; an error reply means the container must not run.
func (a *Agent) handleHook(w http.ResponseWriter, r *http.Request) {
	var req createruntime.Request
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody)).Decode(&req); err != nil {
		unixapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("hook request: %w", err))
		return
	}
	if req.ID == "" || req.PID <= 0 || req.TimeoutMillis <= 0 {
		unixapi.WriteError(w, http.StatusBadRequest, errors.New("hook request: id, pid and timeoutMillis are required"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(req.TimeoutMillis)*time.Millisecond-hookMargin)
	defer cancel()
	reply, err := a.ContainerCreating(ctx, req)
	if err != nil {
		a.log.Error("refusing container creation", "container", req.ID, "error", err)
		unixapi.WriteError(w, http.StatusForbidden, err)
		return
	}
	unixapi.WriteJSON(w, http.StatusOK, reply)
}

// ContainerCreating arms a container from its OCI createRuntime hook,
// before it runs anything, by the end of ctx. A container the NRI runtime
// reported is armed with that identity; any other is a Docker container,
// whose identity comes from Docker's container list. It fails as
// ContainerStarted does (an enforce-mode policy not armed in time), and
// for a container whose identity cannot be found while an enforce-mode
// policy is in force.
func (a *Agent) ContainerCreating(ctx context.Context, req createruntime.Request) (createruntime.Reply, error) {
	a.mu.Lock()
	w, known := a.workloads[req.ID]
	var info ContainerInfo
	if known {
		info = w.Info
	}
	a.mu.Unlock()
	if !known {
		err := errors.New("no runtime reported it and Docker is not followed")
		if a.cfg.Docker {
			info, err = a.docker.Container(ctx, req.ID)
		}
		if err != nil {
			// Unknown identity: fail closed if any enforce-mode policy
			// could select the container.
			if pol := anyEnforcing(a.store.Policies()); pol != nil {
				return createruntime.Reply{}, fmt.Errorf("container %s: identity unknown (%w) and enforce-mode policy %s could select it", req.ID, err, pol.Metadata.Name)
			}
			a.log.Warn("container of unknown identity armed by its id only", "container", req.ID, "error", err)
			info = ContainerInfo{ID: req.ID}
			if a.cfg.Docker {
				info.Runtime = RuntimeDocker // NRI's Synchronize does not know it
			}
		}
	}
	info.PID, info.Rootfs = req.PID, req.Rootfs
	if err := a.ContainerStarted(ctx, info); err != nil {
		return createruntime.Reply{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	w = a.workloads[req.ID]
	if w == nil {
		return createruntime.Reply{}, nil
	}
	w.hookArmed = known && w.CgroupID != 0
	return createruntime.Reply{Policy: w.Policy, Mode: w.Mode}, nil
}

// EnforcingPolicy returns the enforce-mode policy among the files of the
// policy directory dir that would guard info on host hostname, or nil.
// The OCI hook decides by it when the agent cannot be reached: such a
// container must not start unguarded. With info nil (the hook could not
// learn the identity) any enforce-mode policy selecting some container
// counts. Namespace labels are unknown there, so a namespaceSelector sees
// only the implied name label.
func EnforcingPolicy(dir, hostname string, info *ContainerInfo) (*policy.WorkloadPolicy, error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil // no agent ever ran here: no policy exists
	}
	s := NewStore(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := s.Reload(); err != nil {
		return nil, err
	}
	for file, problem := range s.Problems() {
		// The agent would keep the file's previous version in force; the
		// hook knows none, so it cannot tell what guards the container.
		return nil, fmt.Errorf("policy file %s: %s", file, problem)
	}
	if info == nil {
		return anyEnforcing(s.Policies()), nil
	}
	pol, _ := choosePolicy(s.Policies(), containerIdentity(*info, hostname, nil))
	if pol == nil || pol.Spec.Mode != policy.ModeEnforce {
		return nil, nil
	}
	return pol, nil
}

// anyEnforcing returns an enabled enforce-mode container policy among
// pols, or nil: what could guard a container whose identity is unknown.
func anyEnforcing(pols []*policy.WorkloadPolicy) *policy.WorkloadPolicy {
	for _, p := range pols {
		if p.Spec.Mode == policy.ModeEnforce && (p.Spec.Enabled == nil || *p.Spec.Enabled) && p.Spec.ContainerSelector != nil {
			return p
		}
	}
	return nil
}

// HookFallback is the createRuntime hook's decision when the agent could
// not be reached (`bulwark hook-fallback`, run by bulwark-oci-hook): the
// container of st may start unguarded only if no enforce-mode policy of
// policyDir selects it, or could select it when its identity (Docker's
// container list at dockerHost, within timeout) cannot be learned. An
// error refuses the container; the decision to let it start is written
// to log.
func HookFallback(st specs.State, policyDir, dockerHost string, timeout time.Duration, log io.Writer) error {
	info, known := hookIdentity(st, dockerHost, timeout)
	var infoP *ContainerInfo
	if known {
		infoP = &info
	}
	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("container %s: hostname: %w", st.ID, err)
	}
	pol, err := EnforcingPolicy(policyDir, host, infoP)
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
	fmt.Fprintf(log, "bulwark %s: container %s starts unguarded: no enforce-mode policy selects it\n", hook.FallbackVerb, st.ID)
	return nil
}

// hookIdentity is the container's identity as the fallback can learn it
// alone: from Docker's container list (a container created through CRI
// carries its runtime's annotations and is not looked up there). known is
// false when it could not be learned.
func hookIdentity(st specs.State, dockerHost string, timeout time.Duration) (info ContainerInfo, known bool) {
	for _, k := range []string{"io.kubernetes.cri.sandbox-id", "io.kubernetes.cri-o.SandboxID"} {
		if st.Annotations[k] != "" {
			return ContainerInfo{ID: st.ID}, false
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	info, err := NewDockerSource(dockerHost).Container(ctx, st.ID)
	if err != nil {
		return ContainerInfo{ID: st.ID}, false
	}
	return info, true
}
