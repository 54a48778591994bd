package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
)

// defaultResponse is what a policy without a response block does.
func defaultResponse() policy.Response {
	return policy.Response{Default: []policy.Action{{MakeRedFlag: &policy.FlagAction{Severity: "high"}}}}
}

// deviant is the process behind a deviation, as response actions see it.
type deviant struct {
	PID int
	// Start is when the process started (since boot): with PID it names
	// the process across pid reuse.
	Start time.Duration
	Comm  string
	Exe   string
	Euser string
}

// actionsFor returns the response actions that apply to a deviation of
// workload id by process p: every default action, and every entry of
// actions whose selectors all match (validation requires a selector on
// each entry; one without any applies nowhere).
func actionsFor(r *policy.Response, id policy.Identity, p deviant) []policy.Action {
	if r == nil {
		d := defaultResponse()
		r = &d
	}
	out := append([]policy.Action(nil), r.Default...)
	for _, a := range r.Actions {
		if sel := actionSelectors(a); sel != nil && *sel != (policy.ActionSelectors{}) && selectorsMatch(sel, id, p) {
			out = append(out, a)
		}
	}
	return out
}

// actionSelectors returns the selectors of the one action a holds.
func actionSelectors(a policy.Action) *policy.ActionSelectors {
	switch {
	case a.MakeRedFlag != nil:
		return &a.MakeRedFlag.ActionSelectors
	case a.MakeOpsFlag != nil:
		return &a.MakeOpsFlag.ActionSelectors
	case a.AgentKillProcess != nil:
		return &a.AgentKillProcess.ActionSelectors
	case a.AgentKillProcessGroup != nil:
		return &a.AgentKillProcessGroup.ActionSelectors
	case a.AgentKillPod != nil:
		return &a.AgentKillPod.ActionSelectors
	}
	return nil
}

// selectorsMatch reports whether every selector of s matches the workload
// and the process.
func selectorsMatch(s *policy.ActionSelectors, id policy.Identity, p deviant) bool {
	spec := policy.Spec{
		ContainerSelector: s.ContainerSelector, PodSelector: s.PodSelector, NamespaceSelector: s.NamespaceSelector,
		MachineSelector: s.MachineSelector, ServiceSelector: s.ServiceSelector,
	}
	if !spec.Selects(id) {
		return false
	}
	return s.ProcessSelector == nil || s.ProcessSelector.Matches(p.Comm, p.Exe, p.Euser)
}

// respond runs the response actions for a deviation in an enforce-mode
// policy: processes and pods are killed, and flags recorded when the
// deviation is new (a repeat raises none).
func (a *Agent) respond(t target, pol *policy.WorkloadPolicy, d policy.Deviation, p deviant, isNew bool) {
	for _, act := range actionsFor(pol.Spec.Response, t.id, p) {
		switch {
		case act.MakeRedFlag != nil:
			if isNew {
				a.raiseFlag("redflag", act.MakeRedFlag, t, pol, d)
			}
		case act.MakeOpsFlag != nil:
			if isNew {
				a.raiseFlag("opsflag", act.MakeOpsFlag, t, pol, d)
			}
		case act.AgentKillProcess != nil:
			a.kill(t, p, false)
		case act.AgentKillProcessGroup != nil:
			a.kill(t, p, true)
		case act.AgentKillPod != nil:
			if t.dockerID != "" {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := a.docker.Kill(ctx, t.dockerID)
				cancel()
				if err != nil {
					a.log.Error("agentKillPod", "workload", t.name, "error", err)
				} else {
					a.log.Info("agentKillPod: Docker container killed", "workload", t.name, "container", t.dockerID)
				}
			} else if err := a.pods.stop(t.podSandbox); err != nil {
				a.log.Error("agentKillPod", "workload", t.name, "error", err)
			} else {
				a.log.Info("agentKillPod: pod stopped", "workload", t.name, "pod", t.podSandbox)
			}
		}
	}
}

func (a *Agent) raiseFlag(class string, f *policy.FlagAction, t target, pol *policy.WorkloadPolicy, d policy.Deviation) {
	if f.Enabled != nil && !*f.Enabled {
		return
	}
	flag := policy.Flag{
		APIVersion: policy.APIVersionBulwark,
		Kind:       policy.KindFlag,
		Metadata: policy.FlagMetadata{
			UID: "flag:" + randomHex(8), Class: class, Severity: f.Severity,
			Timestamp: unixSeconds(time.Now()),
			PolicyUID: pol.Metadata.UID, PolicyName: pol.Metadata.Name, DeviationUID: d.Metadata.UID,
			Workload: t.name, Hostname: a.cfg.Hostname,
			Impact: f.Impact, Content: f.Content, Description: f.Description,
		},
	}
	a.records.addFlag(flag)
	a.send(collector.KindFlag, &flag)
}

// kill sends SIGKILL to the deviant process, or to the members of its
// process group, through pidfds: only to the process that deviated (its
// pid and start time) and to group members inside the workload's cgroup,
// never to what reused a pid meanwhile or to a process outside the
// workload.
func (a *Agent) kill(t target, p deviant, group bool) {
	if p.PID <= 0 {
		return
	}
	fd, st, err := openProcess(p.PID, p.Start, t.cgroupID)
	if errors.Is(err, unix.ESRCH) {
		return // gone already
	}
	if err != nil {
		a.log.Warn("not killing: the pid is no longer the deviant process", "pid", p.PID, "workload", t.name, "error", err)
		return
	}
	defer unix.Close(fd)
	if err := sigkill(fd); err != nil {
		a.log.Warn("kill deviant process", "pid", p.PID, "workload", t.name, "error", err)
	}
	if group {
		if err := killGroup(st.pgrp, t.cgroupID); err != nil {
			a.log.Warn("agentKillProcessGroup", "pid", p.PID, "pgid", st.pgrp, "workload", t.name, "error", err)
		}
	}
}

// groupPasses bounds how often killGroup looks for members again: a
// member may fork until its SIGKILL lands.
const groupPasses = 8

// killGroup sends SIGKILL to every member of process group pgrp that runs
// in cgroup cgid or below it, looking again until a pass finds no member
// it has not seen.
func killGroup(pgrp int, cgid uint64) error {
	type key struct {
		pid   int
		start time.Duration
	}
	seen := map[key]bool{}
	for range groupPasses {
		pids, err := procPIDs()
		if err != nil {
			return err
		}
		found := false
		for _, pid := range pids {
			st, err := readProcStat(pid)
			if err != nil || st.pgrp != pgrp || seen[key{pid, st.start}] {
				continue
			}
			seen[key{pid, st.start}] = true
			found = true
			fd, now, err := openProcess(pid, st.start, cgid)
			if err != nil {
				continue // gone, or outside the workload
			}
			if now.pgrp == pgrp {
				sigkill(fd)
			}
			unix.Close(fd)
		}
		if !found {
			return nil
		}
	}
	return fmt.Errorf("process group %d still gaining members after %d passes", pgrp, groupPasses)
}

// sigkill sends SIGKILL through pidfd fd; a process gone already is no
// error.
func sigkill(fd int) error {
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	return nil
}

// podKiller stops pod sandboxes through the CRI runtime service.
type podKiller struct {
	endpoint string
}

// stop stops the pod sandbox id.
func (k podKiller) stop(id string) error {
	if k.endpoint == "" {
		return fmt.Errorf("no CRI runtime endpoint configured")
	}
	if id == "" {
		return fmt.Errorf("workload has no pod sandbox")
	}
	conn, err := grpc.NewClient("unix://"+k.endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("CRI %s: %w", k.endpoint, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = runtimeapi.NewRuntimeServiceClient(conn).StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
	if err != nil {
		return fmt.Errorf("stop pod sandbox %s: %w", id, err)
	}
	return nil
}
