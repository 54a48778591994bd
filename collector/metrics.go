package collector

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rateWindow is the span, in whole seconds, over which the stored-record
// rate is averaged.
const rateWindow = 10

// rateMeter counts events per second over the last rateWindow complete
// seconds.
type rateMeter struct {
	mu    sync.Mutex
	secs  [rateWindow + 1]int64
	count [rateWindow + 1]uint64
}

func (r *rateMeter) add(now time.Time, n uint64) {
	sec := now.Unix()
	i := int(sec % int64(len(r.secs)))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.secs[i] != sec {
		r.secs[i], r.count[i] = sec, 0
	}
	r.count[i] += n
}

// rate returns the events per second over the rateWindow seconds before
// the current one.
func (r *rateMeter) rate(now time.Time) float64 {
	cur := now.Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	var sum uint64
	for i, s := range r.secs {
		if s >= cur-rateWindow && s < cur {
			sum += r.count[i]
		}
	}
	return float64(sum) / rateWindow
}

// metrics are the collector's own counters since it started.
type metrics struct {
	rate rateMeter

	mu         sync.Mutex
	stored     map[Kind]uint64
	duplicates uint64
	rejected   uint64
	batches    uint64
}

func newMetrics() *metrics {
	return &metrics{stored: map[Kind]uint64{}}
}

// ingested counts what one batch stored.
func (m *metrics) ingested(now time.Time, res ingestResult) {
	var n uint64
	m.mu.Lock()
	for k, c := range res.stored {
		m.stored[k] += uint64(c)
		n += uint64(c)
	}
	m.duplicates += uint64(res.duplicates)
	m.rejected += uint64(res.rejected)
	m.batches++
	m.mu.Unlock()
	m.rate.add(now, n)
}

// exposition writes metrics in the Prometheus text format.
type exposition struct {
	buf bytes.Buffer
}

// family starts a metric family.
func (e *exposition) family(name, typ, help string) {
	fmt.Fprintf(&e.buf, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// sample writes one sample; labels alternate names and values.
func (e *exposition) sample(name string, value float64, labels ...string) {
	e.buf.WriteString(name)
	if len(labels) > 0 {
		e.buf.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				e.buf.WriteByte(',')
			}
			fmt.Fprintf(&e.buf, "%s=\"%s\"", labels[i], escapeLabel(labels[i+1]))
		}
		e.buf.WriteByte('}')
	}
	e.buf.WriteByte(' ')
	e.buf.WriteString(strconv.FormatFloat(value, 'g', -1, 64))
	e.buf.WriteByte('\n')
}

// escapeLabel escapes a label value: backslash, double quote and newline.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// allKinds lists the record kinds in a fixed order.
func allKinds() []Kind {
	return []Kind{KindFingerprint, KindDeviation, KindFlag, KindWorkload, KindPolicy, KindStats}
}

// serveMetrics writes the collector's metrics in the Prometheus text
// format.
func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	counts, err := s.store.counts()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	agents, err := s.store.agents()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sort.Slice(agents, func(i, j int) bool { return agents[i].Agent < agents[j].Agent })
	m := s.metrics
	var e exposition

	e.family("bulwark_collector_records_per_second", "gauge", "Records stored per second, averaged over the last 10 seconds.")
	e.sample("bulwark_collector_records_per_second", m.rate.rate(time.Now()))
	m.mu.Lock()
	e.family("bulwark_collector_records_stored_total", "counter", "Records stored since the collector started, by kind.")
	for _, k := range allKinds() {
		e.sample("bulwark_collector_records_stored_total", float64(m.stored[k]), "kind", string(k))
	}
	e.family("bulwark_collector_records_duplicate_total", "counter", "Records received again and ignored (at-least-once delivery).")
	e.sample("bulwark_collector_records_duplicate_total", float64(m.duplicates))
	e.family("bulwark_collector_records_rejected_total", "counter", "Records that could not be decoded.")
	e.sample("bulwark_collector_records_rejected_total", float64(m.rejected))
	e.family("bulwark_collector_batches_total", "counter", "Batches received.")
	e.sample("bulwark_collector_batches_total", float64(m.batches))
	m.mu.Unlock()

	e.family("bulwark_collector_entries", "gauge", "Entries in the store, by kind.")
	for _, b := range dataBuckets() {
		e.sample("bulwark_collector_entries", float64(counts[b]), "kind", b)
	}
	e.family("bulwark_collector_deviations", "gauge", "Distinct deviations stored.")
	e.sample("bulwark_collector_deviations", float64(counts[bucketDeviations]))
	e.family("bulwark_collector_flags", "gauge", "Flags stored.")
	e.sample("bulwark_collector_flags", float64(counts[bucketFlags]))
	e.family("bulwark_collector_store_bytes", "gauge", "Size of the stored entries (keys and values).")
	e.sample("bulwark_collector_store_bytes", float64(s.store.size()))

	perAgent := []struct {
		name, typ, help string
		value           func(a *AgentState) float64
	}{
		{"bulwark_agent_events_total", "counter", "Kernel events the agent read.", func(a *AgentState) float64 { return float64(a.Stats.Events) }},
		{"bulwark_agent_events_per_second", "gauge", "Kernel events per second between the agent's last two reports.", func(a *AgentState) float64 { return a.EventsPerSecond }},
		{"bulwark_agent_lost_events_total", "counter", "Kernel events lost before the agent read them.", func(a *AgentState) float64 { return float64(a.Stats.LostEvents) }},
		{"bulwark_agent_unaggregated_deviations_total", "counter", "Deviations the kernel reported one by one, its aggregation table full.", func(a *AgentState) float64 { return float64(a.Stats.UnaggregatedDeviations) }},
		{"bulwark_agent_unparsed_dns_answers_total", "counter", "DNS answers the kernel could not parse within its bounds; they granted nothing.", func(a *AgentState) float64 { return float64(a.Stats.UnparsedDNSAnswers) }},
		{"bulwark_agent_link_repairs_total", "counter", "Enforcement links found detached or unpinned out of band and restored.", func(a *AgentState) float64 { return float64(a.Stats.LinkRepairs) }},
		{"bulwark_agent_spool_dropped_total", "counter", "Records the agent's spool dropped because it was full.", func(a *AgentState) float64 { return float64(a.Stats.SpoolDropped) }},
		{"bulwark_agent_spool_depth", "gauge", "Records waiting in the agent's spool.", func(a *AgentState) float64 { return float64(a.Stats.SpoolDepth) }},
		{"bulwark_agent_enforced_workloads", "gauge", "Workloads under a policy.", func(a *AgentState) float64 { return float64(a.Stats.EnforcedWorkloads) }},
		{"bulwark_agent_records_skipped_total", "counter", "Records the collector never received because the agent's spool dropped them.", func(a *AgentState) float64 { return float64(a.Skipped) }},
		{"bulwark_agent_records_rejected_total", "counter", "Records of the agent that could not be decoded.", func(a *AgentState) float64 { return float64(a.Rejected) }},
		{"bulwark_agent_last_seq", "gauge", "Highest record sequence number stored for the agent.", func(a *AgentState) float64 { return float64(a.Last) }},
	}
	for _, pm := range perAgent {
		e.family(pm.name, pm.typ, pm.help)
		for i := range agents {
			e.sample(pm.name, pm.value(&agents[i]), "agent", agents[i].Agent)
		}
	}
	e.family("bulwark_agent_workload_lost_events_total", "counter", "Kernel events lost before the agent read them, for each workload that lost any.")
	for i := range agents {
		lost := agents[i].Stats.WorkloadLostEvents
		for _, wl := range slices.Sorted(maps.Keys(lost)) {
			e.sample("bulwark_agent_workload_lost_events_total", float64(lost[wl]), "agent", agents[i].Agent, "workload", wl)
		}
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(e.buf.Bytes())
}
