package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/bulwarkhq/bulwark/internal/unixapi"
	"github.com/bulwarkhq/bulwark/policy"
)

// HookRequest is what the OCI hook (`bulwark oci-hook`) tells the agent of
// a container being created: runc has made its cgroup and its init process,
// which has not entered its root filesystem and runs nothing of the image.
type HookRequest struct {
	ID  string `json:"id"`
	PID int    `json:"pid"`
	// Rootfs is the container's root filesystem, absolute, as PID's mount
	// namespace shows it.
	Rootfs      string            `json:"rootfs"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// TimeoutMillis is how long the hook waits for the reply; the agent
	// answers before then.
	TimeoutMillis int64 `json:"timeoutMillis"`
}

// HookReply is the agent's answer once the container is armed.
type HookReply struct {
	Policy string `json:"policy,omitempty"`
	Mode   string `json:"mode"`
}

// hookMargin is the part of the hook's wait the agent leaves for the
// reply to reach it.
const hookMargin = 200 * time.Millisecond

// handleHook serves POST /v1/hooks/create-runtime: it arms the container
// and replies when done; an error reply means the container must not run.
func (a *Agent) handleHook(w http.ResponseWriter, r *http.Request) {
	var req HookRequest
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
func (a *Agent) ContainerCreating(ctx context.Context, req HookRequest) (HookReply, error) {
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
				return HookReply{}, fmt.Errorf("container %s: identity unknown (%w) and enforce-mode policy %s could select it", req.ID, err, pol.Metadata.Name)
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
		return HookReply{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	w = a.workloads[req.ID]
	if w == nil {
		return HookReply{}, nil
	}
	w.hookArmed = known && w.CgroupID != 0
	return HookReply{Policy: w.Policy, Mode: w.Mode}, nil
}

// ContainerCreating sends the OCI hook's request and waits for the agent
// to arm the container, at most req.TimeoutMillis. A *unixapi.Error is
// the agent's refusal; any other error means it could not be asked.
func (c *Client) ContainerCreating(req HookRequest) (HookReply, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return HookReply{}, err
	}
	var out HookReply
	err = c.api.Do(http.MethodPost, "/v1/hooks/create-runtime", bytes.NewReader(body), &out)
	return out, err
}

// NewHookClient returns a client whose calls give up after timeout.
func NewHookClient(socket string, timeout time.Duration) *Client {
	return &Client{api: unixapi.NewClient("agent", socket, timeout)}
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
