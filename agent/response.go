package agent

import (
	"context"
	"fmt"
	"syscall"
	"time"

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
	PID   int
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
			a.kill(t, p.PID, false)
		case act.AgentKillProcessGroup != nil:
			a.kill(t, p.PID, true)
		case act.AgentKillPod != nil:
			if err := a.pods.stop(t.podSandbox); err != nil {
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

// kill sends SIGKILL to the deviant process, or to its process group,
// provided the process still belongs to the workload.
func (a *Agent) kill(t target, pid int, group bool) {
	if pid <= 0 {
		return
	}
	victim := pid
	if group {
		pgid, err := syscall.Getpgid(pid)
		if err != nil {
			a.log.Warn("agentKillProcessGroup", "pid", pid, "error", err)
			return
		}
		victim = -pgid
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		a.log.Warn("kill deviant process", "pid", victim, "workload", t.name, "error", err)
	}
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
