// Package agent is Bulwark's node daemon: it keeps the policy store (a
// watched directory), the registry of workloads reported by the runtime
// integrations, arms each workload's cgroup in the kernel with the policy
// that selects it, turns kernel events into deviations and flags, runs
// response actions and serves its API on a unix socket.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
)

// Config configures an agent.
type Config struct {
	// PolicyDir is the watched policy directory.
	PolicyDir string
	// Socket is the API socket path.
	Socket string
	// Hostname identifies the node in identities, deviations and flags.
	Hostname string
	// NamespaceLabelsFile, when set, is a YAML map of namespace name to
	// labels, used where no Kubernetes API is available.
	NamespaceLabelsFile string
	// OwnPodUID is the UID of the agent's own pod (with Kubernetes): its
	// containers, the agent and the collector, are never armed, so no
	// policy can lock the agent out of its own pod.
	OwnPodUID string
	// Kube, when set, is the Kubernetes API whose namespaces are watched
	// for their labels (KubeConfig builds it).
	Kube *rest.Config
	// AwaitSynchronize holds kernel events back until the runtime's first
	// Synchronize (at most syncWait), so the events the kernel kept while
	// the agent was down find their workloads.
	AwaitSynchronize bool
	// RuntimeEndpoint is the CRI socket used by agentKillPod.
	RuntimeEndpoint string
	// Docker makes the agent name the OCI hook's containers from the
	// Docker Engine API at DockerHost ("" for Docker's default), kill
	// them through it and follow its events.
	Docker     bool
	DockerHost string
	// MaxRecords bounds the deviations and flags kept in memory.
	MaxRecords int
	// CollectorSocket is the collector's socket; "" sends nothing.
	// Records are spooled in SpoolDir (bounded by MaxSpoolBytes) until
	// the collector takes them.
	CollectorSocket string
	SpoolDir        string
	MaxSpoolBytes   int64
	// ServicesRoot, when set, is the cgroup directory whose "*.service"
	// children are systemd services to fingerprint and guard (for example
	// /sys/fs/cgroup/system.slice).
	ServicesRoot string
	Log          *slog.Logger
}

// Agent is the running daemon. Its methods are safe for concurrent use.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	store    *Store
	engine   *bpf.Engine
	nsLabels namespaceLabels
	pods     podKiller
	docker   *DockerSource
	out      *collector.Client // nil without a collector
	events   atomic.Uint64     // kernel events read
	// linkRepairs counts the links and pins CheckLinks restored.
	linkRepairs atomic.Uint64
	tally       *deviationTally
	synced      chan struct{} // closed by the first Synchronize
	// nsListed is closed once namespace labels are known: at once without
	// a Kubernetes API, after the first list with one.
	nsListed chan struct{}
	syncOnce sync.Once

	// compile turns a policy into kernel tables (bpf.Compile; tests
	// slow it down to overrun a start's deadline).
	compile func(*policy.Spec, map[string]uint32) (*bpf.Compiled, error)

	mu           sync.Mutex
	workloads    map[string]*Workload // by container id or service cgroup
	byCgroup     map[uint64]*Workload // the armed ones, by cgroup id: each kernel event's lookup
	records      *records
	sentPolicies map[string]string // policy name → checksum last sent
}

// New returns an agent over an opened kernel engine.
func New(cfg Config, engine *bpf.Engine) (*Agent, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 10000
	}
	if cfg.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("hostname: %w", err)
		}
		cfg.Hostname = h
	}
	if err := os.MkdirAll(cfg.PolicyDir, 0o700); err != nil {
		return nil, fmt.Errorf("policy directory %s: %w", cfg.PolicyDir, err)
	}
	a := &Agent{
		cfg:          cfg,
		log:          cfg.Log,
		store:        NewStore(cfg.PolicyDir, cfg.Log),
		engine:       engine,
		compile:      bpf.Compile,
		nsLabels:     namespaceLabels{file: cfg.NamespaceLabelsFile},
		pods:         podKiller{endpoint: cfg.RuntimeEndpoint},
		docker:       NewDockerSource(cfg.DockerHost),
		workloads:    map[string]*Workload{},
		byCgroup:     map[uint64]*Workload{},
		records:      newRecords(cfg.MaxRecords),
		tally:        newDeviationTally(),
		sentPolicies: map[string]string{},
		synced:       make(chan struct{}),
		nsListed:     make(chan struct{}),
	}
	if !cfg.AwaitSynchronize {
		close(a.synced)
	}
	if cfg.Kube == nil {
		close(a.nsListed)
	}
	if _, err := a.store.Reload(); err != nil {
		return nil, err
	}
	if _, err := a.nsLabels.reload(); err != nil {
		return nil, err
	}
	if cfg.CollectorSocket != "" {
		out, err := collector.NewClient(collector.ClientOptions{
			Socket: cfg.CollectorSocket, SpoolDir: cfg.SpoolDir, MaxSpoolBytes: cfg.MaxSpoolBytes,
			Agent: cfg.Hostname, Logger: cfg.Log,
		})
		if err != nil {
			return nil, err
		}
		a.out = out
	}
	return a, nil
}

// Close delivers what the collector client still holds, within its flush
// timeout; what is left stays spooled for the next start.
func (a *Agent) Close() error {
	if a.out == nil {
		return nil
	}
	return a.out.Close()
}

// Run serves the API, watches the policy directory and consumes kernel
// events until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.sendPolicies()
	tasks := []func(context.Context) error{
		func(ctx context.Context) error { return a.serveAPI(ctx, a.cfg.Socket) },
		a.watchPolicies, a.consumeEvents, a.streamTelemetry, a.keepKernel,
	}
	if a.cfg.Docker {
		tasks = append(tasks, a.watchDocker)
	}
	if a.cfg.ServicesRoot != "" {
		tasks = append(tasks, a.watchServices)
	}
	if a.cfg.Kube != nil {
		nw, err := newNamespaceWatch(a.cfg.Kube, &a.nsLabels, a.log, a.namespaceChanged)
		if err != nil {
			return err
		}
		go func() {
			if cache.WaitForCacheSync(ctx.Done(), nw.informer.HasSynced) {
				close(a.nsListed)
			}
		}()
		tasks = append(tasks, nw.run)
	} else if a.cfg.NamespaceLabelsFile != "" {
		tasks = append(tasks, func(ctx context.Context) error {
			return a.nsLabels.watchFile(ctx, a.log, a.namespaceChanged)
		})
	}
	errc := make(chan error, len(tasks))
	for _, task := range tasks {
		go func() { errc <- task(ctx) }()
	}
	a.log.Info("agent running", "backend", a.engine.Backend(), "policies", a.cfg.PolicyDir, "socket", a.cfg.Socket,
		"collector", a.cfg.CollectorSocket)
	var first error
	for range tasks {
		err := <-errc
		if err != nil && !errors.Is(err, context.Canceled) && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// watchPolicies reapplies policies whenever the policy directory changes.
func (a *Agent) watchPolicies(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", a.cfg.PolicyDir, err)
	}
	defer w.Close()
	if err := w.Add(a.cfg.PolicyDir); err != nil {
		return fmt.Errorf("watch %s: %w", a.cfg.PolicyDir, err)
	}
	// Editors write in bursts (temp file, rename, chmod): settle first.
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-w.Events:
			if isPolicyFile(filepath.Base(ev.Name)) {
				settle = time.After(100 * time.Millisecond)
			}
		case err := <-w.Errors:
			a.log.Warn("policy watch", "error", err)
		case <-settle:
			settle = nil
			if err := a.reconcilePolicies(); err != nil {
				a.log.Error("reapply policies", "error", err)
			}
		}
	}
}

// reconcilePolicies rereads the store after the policy directory changed
// and, when the policies in force changed, re-arms every armed workload.
// A rejected file is logged by the store and changes nothing.
func (a *Agent) reconcilePolicies() error {
	changed, err := a.store.Reload()
	if err != nil || !changed {
		return err
	}
	return a.rearmAll()
}

// rearmAll re-arms every armed workload with the policies now in force
// (arming chooses the policy again, so a workload may change policy) and
// reports changed policies to the collector.
func (a *Agent) rearmAll() error {
	a.sendPolicies()
	a.mu.Lock()
	ws := make([]*Workload, 0, len(a.workloads))
	for _, w := range a.workloads {
		if w.CgroupID != 0 {
			ws = append(ws, w)
		}
	}
	a.mu.Unlock()
	var errs []error
	for _, w := range ws {
		if err := a.arm(context.Background(), w); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// namespaceChanged re-arms the workloads of namespace ns after its labels
// changed, since namespace selectors may now pick another policy.
func (a *Agent) namespaceChanged(ns string) {
	a.mu.Lock()
	var ws []*Workload
	for _, w := range a.workloads {
		if w.Info.Namespace == ns {
			w.Identity = a.identityOf(w.Info)
			if w.CgroupID != 0 {
				ws = append(ws, w)
			}
		}
	}
	a.mu.Unlock()
	for _, w := range ws {
		if err := a.arm(context.Background(), w); err != nil {
			a.log.Error("re-arm after namespace labels changed", "namespace", ns, "error", err) // err names the workload
		}
	}
}

// ApplyPolicy validates and stores policy documents, then applies them to
// every workload they select. Nothing is stored when any document is
// invalid. The store has already read the new file, so the directory
// watcher that sees it next finds nothing changed.
func (a *Agent) ApplyPolicy(data []byte) ([]string, error) {
	names, err := a.store.Put(data)
	if err != nil {
		return nil, err
	}
	return names, a.rearmAll()
}

// DeletePolicy removes a policy and re-arms the workloads it guarded.
func (a *Agent) DeletePolicy(name string) error {
	if err := a.store.Delete(name); err != nil {
		return err
	}
	return a.rearmAll()
}

// ownPod reports whether info is a container of the agent's own pod.
func (a *Agent) ownPod(info ContainerInfo) bool {
	return a.cfg.OwnPodUID != "" && info.PodUID == a.cfg.OwnPodUID
}

// ContainerCreated records a container's identity before it starts.
func (a *Agent) ContainerCreated(info ContainerInfo) {
	if a.ownPod(info) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.workloads[info.ID] = &Workload{
		Info:     info,
		Identity: a.identityOf(info),
	}
}

// ContainerStarted arms a container before its entrypoint runs, by the
// end of ctx (the runtime's deadline for the start). It fails when an
// enforce-mode policy selects the container but cannot be armed, or is not
// armed when ctx ends, so the runtime refuses to start it. A policy that
// does not enforce goes on arming after ctx ends and the start goes ahead.
func (a *Agent) ContainerStarted(ctx context.Context, info ContainerInfo) error {
	a.awaitNamespaces(ctx)
	if a.ownPod(info) {
		a.log.Info("own pod's container: not armed", "container", info.Name, "pod", info.PodName)
		return nil
	}
	a.mu.Lock()
	w, ok := a.workloads[info.ID]
	if !ok {
		w = &Workload{}
		a.workloads[info.ID] = w
	}
	if w.hookArmed && w.Info.PID == info.PID {
		// The OCI hook armed this very process (runc init) moments ago,
		// from the identity the runtime reported: the start adds nothing.
		w.hookArmed = false
		a.mu.Unlock()
		return nil
	}
	w.Info = info
	w.Identity = a.identityOf(info)
	id, desc := w.Identity, w.describe()
	a.mu.Unlock()
	pol, _ := choosePolicy(a.store.Policies(), id)
	enforce := pol != nil && pol.Spec.Mode == policy.ModeEnforce
	armCtx := ctx
	if !enforce {
		armCtx = context.WithoutCancel(ctx)
	}
	done := make(chan error, 1)
	go func() { done <- a.arm(armCtx, w) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done: // finished as ctx ended
		return err
	default:
	}
	if enforce {
		return fmt.Errorf("arm %s: enforce-mode policy %s not armed in time (%w): refusing the start",
			desc, pol.Metadata.Name, context.Cause(ctx))
	}
	a.log.Warn("arming goes on after the container started", "workload", desc, "error", context.Cause(ctx))
	return nil
}

// ContainerRemoved disarms a container and forgets it.
func (a *Agent) ContainerRemoved(id string) error {
	a.mu.Lock()
	w, ok := a.workloads[id]
	a.forgetLocked(id)
	a.mu.Unlock()
	if !ok {
		return nil
	}
	return a.disarm(w)
}

// forgetLocked drops the workload with key from the registry; a.mu is
// held.
func (a *Agent) forgetLocked(key string) {
	if w, ok := a.workloads[key]; ok {
		if a.byCgroup[w.CgroupID] == w {
			delete(a.byCgroup, w.CgroupID)
		}
		delete(a.workloads, key)
	}
}

// disarm ends a departed workload (one the agent no longer tracks): its
// last fingerprint and its stop go to the collector, and its kernel
// attachment is removed. It waits for an arm of w under way, so that arm
// cannot attach w again after it.
func (a *Agent) disarm(w *Workload) error {
	w.armMu.Lock()
	defer w.armMu.Unlock()
	a.mu.Lock()
	cgid, name := w.CgroupID, w.describe()
	a.mu.Unlock()
	if cgid == 0 {
		return nil
	}
	if fp := w.takeFingerprint(); fp != nil {
		a.send(collector.KindFingerprint, fp)
	}
	a.sendWorkload(w, collector.WorkloadStopped)
	if err := a.engine.Remove(cgid); err != nil {
		return fmt.Errorf("disarm %s: %w", name, err)
	}
	return nil
}

// Synchronize adopts the containers a runtime reports as running: each is
// (re)armed with its current policy. Containers the agent tracks that the
// runtime no longer reports (they ended while it was not connected) are
// disarmed and forgotten, and kernel attachments of cgroups that no longer
// exist are removed.
//
// The runtime speaks for its own containers only. A cgroup that still
// exists keeps its attachment even when no workload claims it: it may be
// a Docker container the agent has not adopted yet (after a restart,
// Docker's list comes after NRI's Synchronize), a service, or a
// container being armed right now; dropping it would leave that workload
// unguarded.
func (a *Agent) Synchronize(infos []ContainerInfo) error {
	if a.cfg.AwaitSynchronize {
		defer a.syncOnce.Do(func() { close(a.synced) })
	}
	// Re-arming before the namespace labels are known would disarm the
	// workloads a namespaceSelector policy guards (after an agent
	// restart, say), so wait for them, within the runtime's patience.
	ctx, cancel := context.WithTimeout(context.Background(), namespaceListWait)
	a.awaitNamespaces(ctx)
	cancel()
	var errs []error
	running := map[string]bool{}
	live := map[uint64]bool{}
	for _, info := range infos {
		running[info.ID] = true
		if info.PID == 0 {
			continue
		}
		if err := a.ContainerStarted(context.Background(), info); err != nil {
			errs = append(errs, err)
		}
	}
	var gone []*Workload
	a.mu.Lock()
	for key, w := range a.workloads {
		// Services and Docker's containers are not the runtime's: they stay.
		if !running[key] && !strings.HasPrefix(key, servicePrefix) && w.Info.Runtime != RuntimeDocker {
			a.forgetLocked(key)
			gone = append(gone, w)
		} else if w.CgroupID != 0 {
			live[w.CgroupID] = true
		}
	}
	a.mu.Unlock()
	for _, w := range gone {
		if err := a.disarm(w); err != nil {
			errs = append(errs, err)
		}
	}
	attached, err := a.engine.Attached()
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list armed cgroups: %w", err))...)
	}
	var exist map[uint64]bool
	for _, at := range attached {
		if live[at.CgroupID] {
			continue
		}
		if exist == nil {
			if exist, err = existingCgroups(); err != nil {
				return errors.Join(append(errs, err)...)
			}
		}
		if exist[at.CgroupID] {
			continue
		}
		a.log.Info("removing stale attachment", "cgroup", at.CgroupID)
		if err := a.engine.Remove(at.CgroupID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// existingCgroups returns the ids of the cgroups that exist now.
func existingCgroups() (map[uint64]bool, error) {
	root, err := cgroup.Mountpoint()
	if err != nil {
		return nil, err
	}
	return cgroup.IDs(root)
}

// namespaceListWait bounds how long Synchronize waits for the first list
// of namespaces (NRI times a plugin's registration out after 5 s).
const namespaceListWait = 3 * time.Second

// ready reports whether the agent has adopted the runtime's running
// containers and, with a Kubernetes API, listed the namespaces' labels.
func (a *Agent) ready() bool {
	select {
	case <-a.synced:
	default:
		return false
	}
	select {
	case <-a.nsListed:
		return true
	default:
		return false
	}
}

// awaitNamespaces waits until the namespace labels are known or ctx ends
// (then workloads are armed with the labels known so far, and re-armed
// when the list arrives).
func (a *Agent) awaitNamespaces(ctx context.Context) {
	select {
	case <-a.nsListed:
	case <-ctx.Done():
		a.log.Warn("kubernetes namespaces not listed yet: arming with the labels known so far")
	}
}

// Status reports the backend, the workloads and their policies.
func (a *Agent) Status() Status {
	total, byCgroup := a.losses()
	st := Status{Backend: a.engine.Backend(), UDPAtReceive: a.engine.UDPAtReceive(), Hostname: a.cfg.Hostname, Lost: total.Events,
		Unaggregated: total.Unaggregated, UnparsedDNS: total.DNS, LinkRepairs: a.linkRepairs.Load(), Problems: a.store.Problems(), Ready: a.ready()}
	counts := map[string]int{}
	a.mu.Lock()
	for _, w := range a.workloads {
		l := byCgroup[w.CgroupID]
		st.Workloads = append(st.Workloads, WorkloadStatus{
			ID: w.Info.ID, Name: w.Info.Name, Pod: w.Info.PodName, Namespace: w.Info.Namespace,
			Image: w.Identity.Image, CgroupID: w.CgroupID, Policy: w.Policy, Mode: w.Mode,
			Lost: l.Events, Unaggregated: l.Unaggregated, UnparsedDNS: l.DNS, Unreachable: w.unreachable,
		})
		if w.Policy != "" {
			counts[w.Policy]++
		}
	}
	a.mu.Unlock()
	sort.Slice(st.Workloads, func(i, j int) bool { return st.Workloads[i].ID < st.Workloads[j].ID })
	for _, p := range a.store.Policies() {
		st.Policies = append(st.Policies, PolicyStatus{
			Name: p.Metadata.Name, Mode: p.Spec.Mode, Enabled: p.Spec.Enabled == nil || *p.Spec.Enabled,
			Workloads: counts[p.Metadata.Name],
		})
	}
	st.Deviations, st.Flags = a.records.counts()
	return st
}

// Deviations returns the recorded deviations, oldest first.
func (a *Agent) Deviations() []policy.Deviation { return a.records.deviationList() }

// Flags returns the raised flags, oldest first.
func (a *Agent) Flags() []policy.Flag { return a.records.flagList() }
