package agent

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
)

// TestRepeatedDeviationsCounted: an audited service runs one binary outside
// its policy 200 times. The kernel reports the first exec and counts the
// rest; the agent turns the counts into deviation records, so the agent and
// the collector both count 200 occurrences of one deviation, and the
// status shows the workload lost nothing.
func TestRepeatedDeviationsCounted(t *testing.T) {
	p := startPipeline(t)
	dir := p.service(t, "rep")
	svc := cgroup.ServiceCgroup(filepath.Dir(p.slice), dir)
	box, err := filepath.EvalSymlinks(busybox)
	if err != nil {
		t.Fatal(err)
	}
	pol := &policy.WorkloadPolicy{
		APIVersion: policy.APIVersionBulwark, Kind: policy.KindWorkloadPolicy,
		Metadata: policy.Metadata{Name: "rep", Type: policy.TypeLinuxService},
		Spec: policy.Spec{Mode: policy.ModeAudit, ServiceSelector: &policy.ServiceSelector{Cgroup: svc},
			ProcessPolicy: []policy.ProcessNode{{Name: "sh", Exe: []string{box}, ID: "sh_0", Euser: []string{"root"}}},
			NetworkPolicy: &policy.NetworkPolicy{Ingress: []policy.NetworkRule{}, Egress: []policy.NetworkRule{}}},
	}
	var buf bytes.Buffer
	if err := policy.Encode(&buf, policy.FormatYAML, pol); err != nil {
		t.Fatal(err)
	}
	if _, err := p.agent.ApplyPolicy(buf.Bytes()); err != nil {
		t.Fatalf("apply policy: %v\n%s", err, buf.String())
	}
	waitFor(t, "the policy on the service", func() bool {
		for _, w := range p.agent.Status().Workloads {
			if w.CgroupID != 0 && w.Policy == "rep" && w.Mode == policy.ModeAudit {
				return true
			}
		}
		return false
	})
	const runs = 200
	script := "i=0; while [ $i -lt 200 ]; do $B/cat /dev/null; i=$((i+1)); done"
	if st := p.run(t, dir, script); st != 0 {
		t.Fatalf("audited loop: status %d", st)
	}
	var stored collector.StoredDeviation
	waitFor(t, "200 occurrences of cat in the collector", func() bool {
		ds, err := p.query.Deviations(collector.Filter{Policy: "rep"})
		if err != nil || len(ds) != 1 {
			return false
		}
		stored = ds[0]
		return stored.Count == runs
	})
	if e := stored.Deviation.Metadata.Event; e == nil || e.Comm != "cat" || e.Verdict != "allowed" {
		t.Fatalf("stored deviation %+v", stored.Deviation.Metadata)
	}
	devs := p.agent.Deviations()
	if len(devs) != 1 || devs[0].Occurrences() != runs || devs[0].Metadata.LatestTimestamp < devs[0].Metadata.FirstTimestamp {
		t.Fatalf("agent's deviations %+v, want one of %d occurrences", devs, runs)
	}
	st := p.agent.Status()
	for _, w := range st.Workloads {
		if w.Policy == "rep" && (w.Lost != 0 || w.Unaggregated != 0) {
			t.Fatalf("workload %+v lost events", w)
		}
	}
}

// TestTallyJoinsRepeatsInEitherOrder: repeats drained before the event of
// their first occurrence is read wait for it and are folded into its
// record; repeats drained after it become records of their own.
func TestTallyJoinsRepeatsInEitherOrder(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	ev := bpf.Event{Kind: bpf.KindExec, Deviation: true, Comm: "cat", Exe: "/bin/cat", Count: 1, Time: t0}
	build := func() policy.Deviation { return BuildDeviation(ev, nil, UserNames(nil)) }
	var key bpf.DeviationKey // one deviation: the zero key will do
	early := bpf.Repeat{Key: key, Count: 4, First: t0, Last: t0.Add(2 * time.Second)}

	tally := newDeviationTally()
	if _, ok := tally.repeated(early, t0); ok {
		t.Fatal("repeats of an unknown deviation made a record")
	}
	d := build()
	tally.recorded(key, &d, t0)
	if d.Occurrences() != 5 || d.Metadata.LatestTimestamp != unixSeconds(early.Last) || d.Metadata.FirstTimestamp != unixSeconds(t0) {
		t.Fatalf("first record after early repeats: count %d, first %v, latest %v", d.Occurrences(), d.Metadata.FirstTimestamp, d.Metadata.LatestTimestamp)
	}
	late := bpf.Repeat{Key: key, Count: 7, First: t0.Add(3 * time.Second), Last: t0.Add(9 * time.Second)}
	r, ok := tally.repeated(late, t0)
	if !ok || r.Occurrences() != 7 || r.Metadata.FirstTimestamp != unixSeconds(late.First) ||
		r.Metadata.Checksum != d.Metadata.Checksum || r.Metadata.UID == d.Metadata.UID {
		t.Fatalf("record of late repeats %+v (ok %v)", r.Metadata, ok)
	}
	if d.Occurrences() != 5 {
		t.Fatal("the record of the late repeats changed the first record")
	}
	if _, ok := tally.repeated(bpf.Repeat{Count: 1}, t0); !ok {
		t.Fatal("known deviation forgotten")
	}
	if gone := tally.expire(t0.Add(knownDeviationTTL + time.Second)); len(gone) != 0 {
		t.Fatalf("expired pending repeats %+v, want none", gone)
	}
	if _, ok := tally.repeated(early, t0.Add(knownDeviationTTL+time.Second)); ok {
		t.Fatal("idle deviation still known")
	}
	if gone := tally.expire(t0.Add(knownDeviationTTL + pendingRepeatTTL + 2*time.Second)); len(gone) != 1 || gone[0].Count != 4 {
		t.Fatalf("expired pending repeats %+v, want the 4 that waited in vain", gone)
	}
}
