package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
)

// arm compiles the policy that selects w (if any) and applies it to w's
// cgroup; a workload no policy selects is armed in observe mode so it is
// still fingerprinted. Arming an armed workload replaces its tables
// atomically. Only a failure to arm an enforce-mode policy is an error:
// anything else is logged and the workload runs unguarded by the failed
// policy.
//
// Arming holds the workload's armMu throughout, so concurrent arms of one
// workload (API, policy watcher, namespace watch, runtime) run one after
// the other, each with the policies in force when it starts: the last one
// applies the newest. A workload forgotten before its turn is not armed.
//
// When ctx ends first (waiting for armMu or between steps), arming stops
// before it attaches anything, which fails an enforce-mode policy.
func (a *Agent) arm(ctx context.Context, w *Workload) error {
	if err := lockContext(ctx, &w.armMu); err != nil {
		return fmt.Errorf("arm: %w", err)
	}
	defer w.armMu.Unlock()
	a.mu.Lock()
	info, id, path, desc := w.Info, w.Identity, w.CgroupPath, w.describe()
	forgotten := a.workloads[info.ID] != w
	a.mu.Unlock()
	if forgotten {
		return nil
	}

	pol, others := choosePolicy(a.store.Policies(), id)
	if len(others) > 0 {
		a.log.Warn("several policies select one workload; using the first by name",
			"workload", desc, "using", pol.Metadata.Name, "ignoring", others)
	}
	enforce := pol != nil && pol.Spec.Mode == policy.ModeEnforce
	fail := func(err error) error {
		err = fmt.Errorf("arm %s: %w", desc, err)
		if enforce {
			return err
		}
		a.log.Error("workload left unarmed", "error", err)
		return nil
	}

	if path == "" {
		p, err := containerCgroup(info)
		if err != nil {
			return fail(err)
		}
		path = p
	}
	// A container's root never changes: found at its first arm (maybe
	// before its process entered it, from an OCI hook), it is kept.
	dir := containerDir(info, w.root == nil)
	users, err := workloadUsers(info.PID, dir, id.Type)
	if err != nil {
		a.log.Warn("no /etc/passwd in workload; euser names other than root cannot match", "workload", desc, "error", err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	mode := bpf.ModeObserve
	var compiled *bpf.Compiled
	name := ""
	if pol != nil {
		compiled, err = a.compile(&pol.Spec, withHostUsers(users))
		if err != nil {
			return fail(fmt.Errorf("compile policy %s: %w", pol.Metadata.Name, err))
		}
		for _, warn := range compiled.Warnings {
			a.log.Warn("policy not fully enforceable", "policy", pol.Metadata.Name, "warning", warn)
		}
		for _, u := range compiled.Unreachable {
			a.log.Warn("policy node failed closed", "policy", pol.Metadata.Name, "reason", u)
		}
		mode, name = bpf.ModeAudit, pol.Metadata.Name
		if enforce {
			mode = bpf.ModeEnforce
		}
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if w.root == nil {
		r, err := workloadRoot(id.Type, info.PID, dir)
		if err != nil {
			return fail(err)
		}
		w.root = &r
	}
	execRoot := *w.root
	cgid, err := a.engine.ApplyIn(path, execRoot, compiled, mode)
	if err != nil {
		return fail(err)
	}
	modeName := mode.String() // ModeObserve, policy.ModeAudit or policy.ModeEnforce
	a.mu.Lock()
	changed := w.CgroupID != cgid || w.Policy != name || w.Mode != modeName
	if a.byCgroup[w.CgroupID] == w {
		delete(a.byCgroup, w.CgroupID)
	}
	if a.workloads[w.Info.ID] == w { // not forgotten meanwhile
		a.byCgroup[cgid] = w
	}
	w.CgroupPath, w.CgroupID, w.Users = path, cgid, users
	w.Policy, w.Mode, w.policy = name, modeName, pol
	w.unreachable = nil
	if compiled != nil {
		w.unreachable = compiled.Unreachable
	}
	a.mu.Unlock()
	w.fpMu.Lock()
	if w.fingerprint == nil {
		w.fingerprint = NewFingerprintBuilder(id, users)
	}
	w.fpMu.Unlock()
	if changed {
		a.log.Info("workload armed", "workload", desc, "cgroup", cgid, "policy", name, "mode", modeName)
		a.sendWorkload(w, collector.WorkloadStarted)
	}
	return nil
}

// lockContext locks mu unless ctx ends first.
func lockContext(ctx context.Context, mu *sync.Mutex) error {
	for !mu.TryLock() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// workloadRoot is the root the kernel resolves a workload's executables
// from: a container's (dir, from containerDir), or, for a service not
// running yet, the host's (the agent's).
func workloadRoot(typ string, pid int, dir string) (bpf.Root, error) {
	switch {
	case pid > 0:
		return bpf.RootAt(dir)
	case typ == policy.TypeLinuxService:
		return bpf.RootOf(os.Getpid())
	}
	return bpf.Root{}, errors.New("container has no process yet: its root is unknown")
}

// containerDir is the directory a container's files are read from: its
// process's root, or, at its first arm from an OCI hook (before the
// process entered its root filesystem), that filesystem as the process's
// mount namespace shows it. Later arms never read the rootfs path: once
// the workload runs, a path inside it is the workload's to forge.
func containerDir(info ContainerInfo, first bool) string {
	dir := "/proc/" + strconv.Itoa(info.PID) + "/root"
	if first && info.Rootfs != "" {
		return dir + info.Rootfs
	}
	return dir
}

// containerCgroup finds a container's cgroup v2 directory from its process
// (runc init at start, so the cgroup exists and holds nothing else yet).
func containerCgroup(info ContainerInfo) (string, error) {
	if info.PID <= 0 {
		return "", errors.New("container has no process yet")
	}
	return cgroup.OfPID(info.PID)
}

// workloadUsers reads the user table of a workload: a container's own
// (under dir, from containerDir), the host's for services.
func workloadUsers(pid int, dir, typ string) (map[string]uint32, error) {
	if typ == policy.TypeLinuxService {
		return ReadUsers("/")
	}
	if pid <= 0 {
		return map[string]uint32{"root": 0}, errors.New("no process")
	}
	return ReadUsers(dir)
}

// withHostUsers returns users with the host's names it lacks added, for
// resolving a policy's eusers: Spyderbat policies name users as its agent
// saw them, often by the host's names (ec2-user). users is not changed.
func withHostUsers(users map[string]uint32) map[string]uint32 {
	out := maps.Clone(users)
	if out == nil {
		out = map[string]uint32{}
	}
	host, _ := ReadUsers("/") // unreadable: the workload's names only
	for name, uid := range host {
		if _, ok := out[name]; !ok {
			out[name] = uid
		}
	}
	return out
}

// eventQueue is how many kernel events may wait between the ring buffer
// reader and their handling.
const eventQueue = 1 << 16

// syncWait bounds how long kernel events wait for the runtime's first
// Synchronize (Config.AwaitSynchronize); the ring buffer holds them.
const syncWait = 30 * time.Second

// consumeEvents turns kernel events into deviations, flags and response
// actions until ctx ends.
func (a *Agent) consumeEvents(ctx context.Context) error {
	select {
	case <-a.synced:
	case <-time.After(syncWait):
		a.log.Warn("no Synchronize from the runtime yet; reading kernel events anyway", "waited", syncWait)
	case <-ctx.Done():
		return nil
	}
	// The ring buffer is drained by a reader that never waits on the
	// agent's locks, into a queue the handlers work through: a stall in
	// handling (a fingerprint being rebuilt, a pod being killed) does not
	// let the kernel's buffer overflow.
	queue := make(chan bpf.Event, eventQueue)
	errc := make(chan error, 1)
	go func() {
		defer close(queue)
		for {
			ev, err := a.engine.ReadEvent(ctx)
			if err != nil {
				if ctx.Err() == nil {
					errc <- fmt.Errorf("read kernel events: %w", err)
				}
				return
			}
			a.events.Add(1)
			queue <- ev
		}
	}()
	for ev := range queue {
		a.mu.Lock()
		w := a.byCgroup[ev.CgroupID]
		a.mu.Unlock()
		if w != nil {
			w.observe(ev)
		}
		if ev.Deviation {
			a.handleDeviation(w, ev)
		}
	}
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// handleDeviation records a deviation of w, the workload owning the event's
// cgroup (nil when none does), and, for enforce-mode policies, runs the
// response actions: kills on every occurrence, flags only for a deviation
// not seen before.
func (a *Agent) handleDeviation(w *Workload, ev bpf.Event) {
	var t target
	var pol *policy.WorkloadPolicy
	var users map[string]uint32
	if w != nil {
		a.mu.Lock()
		t = targetOf(w)
		pol, users = w.policy, w.Users
		a.mu.Unlock()
	}
	if w == nil || pol == nil {
		a.log.Warn("deviation from an unknown workload", "cgroup", ev.CgroupID, "exe", ev.Exe)
		return
	}
	uidName := UserNames(users)
	d := BuildDeviation(ev, pol, uidName)
	setIdentityMetadata(&d.Metadata, t.id)
	a.tally.recorded(ev.Key, &d, time.Now())
	isNew := a.records.addDeviation(d)
	a.send(collector.KindDeviation, &d)
	a.log.Warn("deviation", "workload", t.name, "policy", pol.Metadata.Name, "kind", ev.Kind,
		"exe", ev.Exe, "blocked", ev.Blocked, "dst", ev.Dst, "src", ev.Src)
	if pol.Spec.Mode == policy.ModeEnforce {
		a.respond(t, pol, d, deviant{PID: int(ev.PID), Start: ev.ProcessStart, Comm: ev.Comm, Exe: ev.Exe, Euser: uidName(ev.EUID)}, isNew)
	}
}
