package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
)

// upkeepInterval is how often the agent checks the kernel's links and
// drains its counts of repeated deviations. A link detached out of band
// leaves its workload unguarded for at most about this long.
const upkeepInterval = time.Second

// keepKernel checks the enforcement links and drains the repeat counts
// every upkeepInterval until ctx ends, then drains once more.
func (a *Agent) keepKernel(ctx context.Context) error {
	tick := time.NewTicker(upkeepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			a.drainRepeats()
			return nil
		case <-tick.C:
			a.checkLinks()
			a.drainRepeats()
		}
	}
}

// checkLinks restores the pins and links someone removed or detached, and
// raises a red flag for each workload whose link had been detached: it ran
// unguarded meanwhile.
func (a *Agent) checkLinks() {
	repairs, err := a.engine.CheckLinks()
	if err != nil {
		a.log.Error("check enforcement links", "error", err)
	}
	a.linkRepairs.Add(uint64(len(repairs)))
	flagged := map[uint64]bool{}
	for _, r := range repairs {
		if !r.Reattached || flagged[r.CgroupID] {
			continue
		}
		flagged[r.CgroupID] = true
		a.mu.Lock()
		w := a.byCgroup[r.CgroupID]
		var t target
		var pol *policy.WorkloadPolicy
		if w != nil {
			t, pol = targetOf(w), w.policy
		}
		a.mu.Unlock()
		if w == nil {
			continue
		}
		flag := policy.Flag{APIVersion: policy.APIVersionBulwark, Kind: policy.KindFlag, Metadata: policy.FlagMetadata{
			UID: "flag:" + randomHex(8), Class: "redflag", Severity: "critical",
			Timestamp: unixSeconds(time.Now()), Workload: t.name, Hostname: a.cfg.Hostname,
			Description: fmt.Sprintf("enforcement link %s was detached out of band and is attached again; the workload was unguarded meanwhile", r.Pin),
		}}
		if pol != nil {
			flag.Metadata.PolicyUID, flag.Metadata.PolicyName = pol.Metadata.UID, pol.Metadata.Name
		}
		a.records.addFlag(flag)
		a.send(collector.KindFlag, &flag)
	}
}

// drainRepeats takes the kernel's counts of repeated deviations and
// records and sends them as deviation records of the deviations they
// repeat.
func (a *Agent) drainRepeats() {
	repeats, err := a.engine.DrainRepeats()
	if err != nil {
		a.log.Error("drain repeated deviations", "error", err)
	}
	now := time.Now()
	for _, r := range repeats {
		if r.Unreported {
			a.log.Warn("deviations lost: their events found the ring buffer full", "cgroup", r.CgroupID, "kind", r.Kind,
				"occurrences", r.Count, "first", r.First, "last", r.Last)
			continue
		}
		d, ok := a.tally.repeated(r, now)
		if !ok {
			continue
		}
		a.records.addDeviation(d)
		a.send(collector.KindDeviation, &d)
	}
	for _, r := range a.tally.expire(now) {
		a.log.Warn("repeated deviations whose first event never came", "cgroup", r.CgroupID, "kind", r.Kind, "occurrences", r.Count)
	}
}

// losses reads the kernel's loss counters: all workloads', and each
// workload's by cgroup id.
func (a *Agent) losses() (bpf.Losses, map[uint64]bpf.Losses) {
	total, byCgroup, err := a.engine.Losses()
	if err != nil {
		a.log.Warn("read lost events", "error", err)
	}
	return total, byCgroup
}
