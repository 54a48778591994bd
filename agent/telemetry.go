package agent

import (
	"context"
	"time"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
)

// Intervals of what the agent streams to the collector on its own.
const (
	// fingerprintInterval batches fingerprint updates: a workload's
	// fingerprint is sent at most this often, and only when it changed.
	fingerprintInterval = time.Second
	// statsInterval is how often the agent's counters are sent.
	statsInterval = 10 * time.Second
)

// send hands a record to the collector client (spooled on disk, delivered
// in the background); without a collector it does nothing.
func (a *Agent) send(kind collector.Kind, doc any) {
	if a.out == nil {
		return
	}
	if err := a.out.Send(kind, doc); err != nil {
		a.log.Warn("collector: record not spooled", "kind", kind, "error", err)
	}
}

// observe feeds an event of the workload to its fingerprint builder.
func (w *Workload) observe(ev bpf.Event) {
	w.fpMu.Lock()
	defer w.fpMu.Unlock()
	if w.fingerprint != nil && w.fingerprint.Observe(ev) {
		w.fingerprintDirty = true
	}
}

// streamTelemetry sends changed fingerprints every fingerprintInterval and
// the agent's counters every statsInterval until ctx ends, then sends what
// is still pending.
func (a *Agent) streamTelemetry(ctx context.Context) error {
	fp := time.NewTicker(fingerprintInterval)
	defer fp.Stop()
	st := time.NewTicker(statsInterval)
	defer st.Stop()
	for {
		select {
		case <-ctx.Done():
			a.sendFingerprints()
			a.sendStats()
			return nil
		case <-fp.C:
			a.sendFingerprints()
		case <-st.C:
			a.sendStats()
		}
	}
}

// sendFingerprints sends the fingerprint of every workload that changed
// since it was last sent. Fingerprints are built under each workload's own
// lock, not the agent's, so event handling for other workloads goes on.
func (a *Agent) sendFingerprints() {
	a.mu.Lock()
	ws := make([]*Workload, 0, len(a.workloads))
	for _, w := range a.workloads {
		ws = append(ws, w)
	}
	a.mu.Unlock()
	for _, w := range ws {
		if fp := w.takeFingerprint(); fp != nil {
			a.send(collector.KindFingerprint, fp)
		}
	}
}

// takeFingerprint returns the workload's fingerprint if it changed since
// it was last taken, else nil.
func (w *Workload) takeFingerprint() *policy.Fingerprint {
	w.fpMu.Lock()
	defer w.fpMu.Unlock()
	if w.fingerprint == nil || !w.fingerprintDirty {
		return nil
	}
	w.fingerprintDirty = false
	return w.fingerprint.Fingerprint()
}

// sendStats sends the agent's counters.
func (a *Agent) sendStats() {
	total, byCgroup := a.losses()
	enforced := 0
	var lostBy map[string]uint64
	a.mu.Lock()
	for _, w := range a.workloads {
		if w.Policy != "" {
			enforced++
		}
		if n := byCgroup[w.CgroupID].Events; n > 0 && w.CgroupID != 0 {
			if lostBy == nil {
				lostBy = map[string]uint64{}
			}
			lostBy[w.describe()] = n
		}
	}
	a.mu.Unlock()
	var names []string
	for _, p := range a.store.Policies() {
		names = append(names, p.Metadata.Name)
	}
	a.send(collector.KindStats, &collector.Stats{Events: a.events.Load(), LostEvents: total.Events,
		UnaggregatedDeviations: total.Unaggregated, UnparsedDNSAnswers: total.DNS, WorkloadLostEvents: lostBy, LinkRepairs: a.linkRepairs.Load(),
		EnforcedWorkloads: enforced, Policies: names})
}

// sendWorkload reports a workload starting (armed, or re-armed under
// another policy) or stopping.
func (a *Agent) sendWorkload(w *Workload, event string) {
	a.mu.Lock()
	id := w.Identity
	ev := &collector.WorkloadEvent{
		Event: event, Type: id.Type,
		ContainerID: id.ContainerID, ContainerName: id.ContainerName, Image: id.Image, ImageID: id.ImageID,
		PodName: id.PodName, PodUID: id.PodUID, Namespace: id.Namespace, Labels: id.PodLabels,
		Cgroup: w.CgroupPath, ServiceCgroup: id.ServiceCgroup, ServiceName: id.ServiceName,
		Hostname: id.Hostname, PolicyName: w.Policy, PolicyMode: w.Mode,
	}
	a.mu.Unlock()
	if ev.Type == "" {
		ev.Type = policy.TypeContainer
	}
	a.send(collector.KindWorkload, ev)
}

// sendPolicies reports the policies in force whose content changed since
// they were last sent.
func (a *Agent) sendPolicies() {
	for _, p := range a.store.Policies() {
		sum := p.Spec.Checksum()
		a.mu.Lock()
		same := a.sentPolicies[p.Metadata.Name] == sum
		a.sentPolicies[p.Metadata.Name] = sum
		a.mu.Unlock()
		if !same {
			a.send(collector.KindPolicy, p)
		}
	}
}
