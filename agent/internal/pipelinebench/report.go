package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
)

// tally is what the collector holds of the benchmark's workloads.
type tally struct {
	// instances is the number of fingerprints, peers the egress peers and
	// procs the process nodes summed over them.
	instances, peers, procs int
	// complete: every service's fingerprint holds exactly its worker, its
	// execs and its peers.
	complete bool
}

// countFingerprints counts the fingerprints of groups against cfg: each of
// cfg.services services should have one process node for its worker plus
// cfg.execs for its execs, and cfg.peers egress peers. More than that is an
// error: something else ran in the services, or the fingerprint counted an
// observation twice.
func countFingerprints(groups []collector.FingerprintGroup, cfg config) (tally, error) {
	var t tally
	exact := 0
	for _, g := range groups {
		for _, inst := range g.Instances {
			fp := &inst.Fingerprint
			peers, procs := egressPeers(fp), countProcesses(fp.Spec.ProcessPolicy)
			if peers > cfg.peers || procs > 1+cfg.execs {
				return t, fmt.Errorf("fingerprint %s has %d egress peers and %d processes, more than the %d and %d the load makes",
					fp.Metadata.Name, peers, procs, cfg.peers, 1+cfg.execs)
			}
			if peers == cfg.peers && procs == 1+cfg.execs {
				exact++
			}
			t.instances++
			t.peers += peers
			t.procs += procs
		}
	}
	if t.instances > cfg.services {
		return t, fmt.Errorf("%d fingerprints for %d services", t.instances, cfg.services)
	}
	t.complete = exact == cfg.services
	return t, nil
}

// egressPeers counts the peers of a fingerprint's egress rules.
func egressPeers(fp *policy.Fingerprint) int {
	if fp.Spec.NetworkPolicy == nil {
		return 0
	}
	n := 0
	for _, r := range fp.Spec.NetworkPolicy.Egress {
		n += len(r.To)
	}
	return n
}

// countProcesses counts the nodes of a process tree.
func countProcesses(nodes []policy.ProcessNode) int {
	n := len(nodes)
	for _, c := range nodes {
		n += countProcesses(c.Children)
	}
	return n
}

// printTable prints one line per run with throughput and loss, then the
// memory of both processes.
func printTable(out io.Writer, cfg config, results []result) {
	if len(results) == 0 {
		return
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(out)
	fmt.Fprintln(tw, "run\tobservations\tmade in\tstored in\tlag\tobservations/s\tring lost\tspool dropped\tskipped\tagent read\tagent CPU\tcollector CPU\t")
	for i, r := range results {
		stored, lag, rate := "-", "-", "-"
		if r.complete {
			stored = fmt.Sprintf("%.2fs", r.stored.Seconds())
			lag = fmt.Sprintf("%.2fs", (r.stored - r.produced).Seconds())
			rate = fmt.Sprintf("%.0f", float64(cfg.events())/r.stored.Seconds())
		}
		fmt.Fprintf(tw, "%d\t%d\t%.2fs\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%.2fs\t%.2fs\t\n", i+1, cfg.events(), r.produced.Seconds(), stored, lag, rate,
			r.lost, r.spoolDropped, r.skipped+r.rejected, r.agentEvents, r.agentCPU.Seconds(), r.collectorCPU.Seconds())
	}
	tw.Flush()
	fmt.Fprintf(out, "\nmemory with %d workloads (MiB)\n", cfg.services)
	fmt.Fprintln(tw, "run\tagent RSS idle\tagent HWM idle\tagent RSS after\tagent HWM after\t"+
		"collector RSS idle\tcollector HWM idle\tcollector RSS after\tcollector HWM after\t")
	for i, r := range results {
		fmt.Fprintf(tw, "%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", i+1,
			mib(r.agentIdle.rss), mib(r.agentIdle.hwm), mib(r.agentLoaded.rss), mib(r.agentLoaded.hwm),
			mib(r.collectorIdle.rss), mib(r.collectorIdle.hwm), mib(r.collectorLoaded.rss), mib(r.collectorLoaded.hwm))
	}
	tw.Flush()
	fmt.Fprintln(out, "\nmade in: start signal → last load process exited (every observation made in the kernel);")
	fmt.Fprintln(out, "stored in: start signal → the collector held every observation (polled every 100ms); lag: stored in − made in;")
	fmt.Fprintln(out, "observations/s: observations ÷ stored in (with -rate, bounded by the rate offered);")
	fmt.Fprintln(out, "agent read: kernel events the agent read in the whole run, setup included; CPU: user+system during the load;")
	fmt.Fprintln(out, "HWM: peak RSS so far;\nidle: all services armed and observed, before the load; after: once the load was stored.")
}

// mib converts KiB to MiB.
func mib(kib uint64) float64 { return float64(kib) / 1024 }
