package collector

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bulwarkhq/bulwark/policy"
)

func openTestStore(t *testing.T) *store {
	t.Helper()
	st, err := openStore(filepath.Join(t.TempDir(), "c.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.close() })
	return st
}

// ingestAt stores one record of the given kind and time for agent a.
func ingestAt(t *testing.T, st *store, seq uint64, kind Kind, doc any, at time.Time) {
	t.Helper()
	raw, err := encodeDoc(kind, doc)
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.ingest(&Batch{Agent: "a", Epoch: "e", Records: []Record{{Seq: seq, Kind: kind, Time: at, Doc: raw}}})
	if err != nil || res.ack != seq {
		t.Fatalf("ingest %d: %+v, %v", seq, res, err)
	}
}

// recount sums the sizes of the data entries and counts the index
// entries, to check the store's bookkeeping.
func recount(t *testing.T, st *store) (size int64, entries, indexed int) {
	t.Helper()
	err := st.db.View(func(tx *bolt.Tx) error {
		for _, b := range dataBuckets() {
			err := bucket(tx, b).ForEach(func(k, v []byte) error {
				size += int64(len(k) + len(v))
				entries++
				return nil
			})
			if err != nil {
				return err
			}
		}
		indexed = bucket(tx, bucketByTime).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return size, entries, indexed
}

func TestRetentionByAge(t *testing.T) {
	st := openTestStore(t)
	now := time.Now()
	old := now.Add(-10 * 24 * time.Hour)
	ingestAt(t, st, 1, KindDeviation, deviation("web", "nginx_0", "/old"), old)
	ingestAt(t, st, 2, KindDeviation, deviation("web", "nginx_0", "/new"), now.Add(-time.Hour))
	ingestAt(t, st, 3, KindWorkload, &WorkloadEvent{Event: WorkloadStarted, ContainerID: "running"}, old)
	ingestAt(t, st, 4, KindWorkload, &WorkloadEvent{Event: WorkloadStarted, ContainerID: "gone"}, old)
	ingestAt(t, st, 5, KindWorkload, &WorkloadEvent{Event: WorkloadStopped, ContainerID: "gone"}, old.Add(time.Minute))
	ingestAt(t, st, 6, KindFingerprint, fingerprint("nginx", "x", "/usr/sbin/nginx", 1), old)
	// An old deviation seen again recently stays.
	ingestAt(t, st, 7, KindDeviation, deviation("web", "nginx_0", "/again"), old)
	ingestAt(t, st, 8, KindDeviation, deviation("web", "nginx_0", "/again"), now)

	removed, err := st.prune(now, 7*24*time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	if removed != 3 {
		t.Errorf("removed %d entries, want 3 (old deviation, stopped workload, fingerprint)", removed)
	}
	devs, _ := st.deviations(Filter{}, now)
	var exes []string
	for _, d := range devs {
		exes = append(exes, d.Deviation.Metadata.Event.Exe)
	}
	if fmt.Sprint(exes) != "[/again /new]" {
		t.Errorf("deviations left = %v, want [/again /new]", exes)
	}
	wls, _ := st.workloads(Filter{}, now)
	if len(wls) != 1 || wls[0].ContainerID != "running" {
		t.Errorf("workloads left = %+v, want the running one", wls)
	}
	if fps, _ := st.fingerprintGroups(Filter{}, now); len(fps) != 0 {
		t.Errorf("old fingerprints left: %+v", fps)
	}
	size, entries, indexed := recount(t, st)
	if size != st.size() || entries != indexed || entries != 3 {
		t.Errorf("bookkeeping: size %d (recorded %d), %d entries, %d indexed", size, st.size(), entries, indexed)
	}
}

func TestRetentionBySize(t *testing.T) {
	st := openTestStore(t)
	start := time.Now().Add(-time.Hour)
	for i := range 100 {
		ingestAt(t, st, uint64(i+1), KindDeviation, deviation("web", "nginx_0", fmt.Sprintf("/bin/p%03d", i)), start.Add(time.Duration(i)*time.Second))
	}
	full := st.size()
	limit := full / 4
	removed, err := st.prune(time.Now(), 0, limit)
	if err != nil {
		t.Fatal(err)
	}
	if st.size() > limit || removed < 70 {
		t.Errorf("after pruning to %d of %d bytes: size %d, removed %d", limit, full, st.size(), removed)
	}
	devs, _ := st.deviations(Filter{}, time.Now())
	if len(devs)+removed != 100 {
		t.Fatalf("%d left + %d removed != 100", len(devs), removed)
	}
	// The newest survive: exactly the last len(devs).
	for i, d := range devs {
		if want := fmt.Sprintf("/bin/p%03d", 100-len(devs)+i); d.Deviation.Metadata.Event.Exe != want {
			t.Errorf("survivor %d = %s, want %s (oldest first out)", i, d.Deviation.Metadata.Event.Exe, want)
		}
	}
	size, entries, indexed := recount(t, st)
	if size != st.size() || entries != indexed {
		t.Errorf("bookkeeping: size %d (recorded %d), %d entries, %d indexed", size, st.size(), entries, indexed)
	}
}

// TestRetentionAtStartup reopens a collector with a retention that the
// stored entries exceed: they are gone before it serves.
func TestRetentionAtStartup(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, Options{})
	post(t, srv.socket, Batch{Agent: "a", Epoch: "e", Records: []Record{devRecord(t, 1, "/a")}})
	q := NewQueryClient(srv.socket)
	if n, _ := totalCount(t, q); n != 1 {
		t.Fatalf("stored %d, want 1", n)
	}
	srv.stop()
	time.Sleep(10 * time.Millisecond)
	srv = startServer(t, dir, Options{Retention: time.Millisecond})
	if n, _ := totalCount(t, NewQueryClient(srv.socket)); n != 0 {
		t.Errorf("%d deviations survived a startup with 1ms retention", n)
	}
}

func TestRateMeter(t *testing.T) {
	var r rateMeter
	base := time.Unix(1_000_000, 0)
	for s := range 20 {
		r.add(base.Add(time.Duration(s)*time.Second), 50)
	}
	// At second 20 the window is seconds 10..19: 10 × 50 / 10 s.
	if got := r.rate(base.Add(20 * time.Second)); got != 50 {
		t.Errorf("rate = %v, want 50", got)
	}
	// The current second does not count yet; at 26 s the window is 16..25.
	r.add(base.Add(20*time.Second), 1000)
	if got := r.rate(base.Add(20*time.Second + 500*time.Millisecond)); got != 50 {
		t.Errorf("rate with a partial second = %v, want 50", got)
	}
	if got := r.rate(base.Add(26 * time.Second)); got != (4*50+1000)/10.0 {
		t.Errorf("rate = %v, want %v", got, (4*50+1000)/10.0)
	}
	if got := r.rate(base.Add(time.Hour)); got != 0 {
		t.Errorf("rate after an hour of silence = %v, want 0", got)
	}
}

// scrape fetches /metrics and parses the samples by "name{labels}".
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
	out := map[string]float64{}
	typed := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			typed[f[2]] = true
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("malformed sample %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		name := line[:i]
		if base, _, ok := strings.Cut(name, "{"); ok && !typed[base] || !ok && !typed[name] {
			t.Errorf("sample %q has no TYPE line before it", line)
		}
		out[name] = v
	}
	return out
}

func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, Options{MetricsAddr: "127.0.0.1:0"})
	if !strings.HasPrefix(srv.MetricsAddr(), "127.0.0.1:") {
		t.Fatalf("metrics address %q", srv.MetricsAddr())
	}
	raw := func(kind Kind, doc any) json.RawMessage {
		b, err := encodeDoc(kind, doc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t0 := time.Now().Add(-10 * time.Second)
	recs := []Record{
		devRecord(t, 1, "/a"), devRecord(t, 2, "/a"), devRecord(t, 3, "/b"),
		{Seq: 4, Kind: KindStats, Time: t0, Doc: raw(KindStats, Stats{Events: 1000, LostEvents: 3, EnforcedWorkloads: 2, SpoolDepth: 7, SpoolDropped: 4})},
		{Seq: 5, Kind: KindStats, Time: t0.Add(2 * time.Second), Doc: raw(KindStats, Stats{Events: 5000, LostEvents: 3, EnforcedWorkloads: 2, SpoolDepth: 7, SpoolDropped: 4,
			UnaggregatedDeviations: 9, UnparsedDNSAnswers: 5, LinkRepairs: 1, WorkloadLostEvents: map[string]uint64{"web": 3}})},
		{Seq: 6, Kind: KindFlag, Time: t0, Doc: json.RawMessage(`{"apiVersion":"bulwark/v1","kind":"Flag","metadata":{"uid":"f1","class":"redflag","severity":"high","timestamp":1}}`)},
	}
	post(t, srv.socket, Batch{Agent: `node "1"`, Epoch: "e", After: 0, Records: recs})
	post(t, srv.socket, Batch{Agent: `node "1"`, Epoch: "e", Records: recs[:2]}) // duplicates
	m := scrape(t, srv.MetricsAddr())
	agent := `{agent="node \"1\""}`
	want := map[string]float64{
		`bulwark_collector_records_stored_total{kind="deviation"}`:                    3,
		`bulwark_collector_records_stored_total{kind="stats"}`:                        2,
		`bulwark_collector_records_stored_total{kind="flag"}`:                         1,
		`bulwark_collector_records_duplicate_total`:                                   2,
		`bulwark_collector_deviations`:                                                2,
		`bulwark_collector_flags`:                                                     1,
		`bulwark_collector_entries{kind="deviations"}`:                                2,
		`bulwark_agent_events_total` + agent:                                          5000,
		`bulwark_agent_events_per_second` + agent:                                     2000,
		`bulwark_agent_lost_events_total` + agent:                                     3,
		`bulwark_agent_spool_dropped_total` + agent:                                   4,
		`bulwark_agent_unaggregated_deviations_total` + agent:                         9,
		`bulwark_agent_unparsed_dns_answers_total` + agent:                            5,
		`bulwark_agent_link_repairs_total` + agent:                                    1,
		`bulwark_agent_workload_lost_events_total{agent="node \"1\"",workload="web"}`: 3,
		`bulwark_agent_spool_depth` + agent:                                           7,
		`bulwark_agent_enforced_workloads` + agent:                                    2,
		`bulwark_agent_last_seq` + agent:                                              6,
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if m["bulwark_collector_store_bytes"] <= 0 {
		t.Errorf("store bytes = %v", m["bulwark_collector_store_bytes"])
	}
	if _, ok := m["bulwark_collector_records_per_second"]; !ok {
		t.Error("no records_per_second sample")
	}
	// Only /metrics is served on TCP.
	resp, err := http.Get("http://" + srv.MetricsAddr() + "/v1/deviations")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/deviations over TCP = %s, want 404", resp.Status)
	}
}

// TestPoliciesInForce checks that an agent's stats naming its policies in
// force remove the others and keep these from ageing out.
func TestPoliciesInForce(t *testing.T) {
	st := openTestStore(t)
	now := time.Now()
	old := now.Add(-10 * 24 * time.Hour)
	pol := func(name string) *policy.WorkloadPolicy {
		return &policy.WorkloadPolicy{APIVersion: policy.APIVersionBulwark, Kind: policy.KindWorkloadPolicy, Metadata: policy.Metadata{Name: name}}
	}
	names := func() string {
		pols, err := st.policies(Filter{}, now)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range pols {
			out = append(out, p.Policy.Metadata.Name)
		}
		return fmt.Sprint(out)
	}
	ingestAt(t, st, 1, KindPolicy, pol("web"), old)
	ingestAt(t, st, 2, KindPolicy, pol("db"), old)
	ingestAt(t, st, 3, KindPolicy, pol("cache"), old)
	// Stats without a policy list change nothing.
	ingestAt(t, st, 4, KindStats, Stats{Events: 1}, now)
	if got := names(); got != "[cache db web]" {
		t.Fatalf("policies = %s", got)
	}
	ingestAt(t, st, 5, KindStats, Stats{Events: 2, Policies: []string{"web", "db"}}, now)
	if got := names(); got != "[db web]" {
		t.Errorf("after the agent reported db and web in force: %s", got)
	}
	if _, err := st.prune(now, 7*24*time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	if got := names(); got != "[db web]" {
		t.Errorf("after retention: %s; the policies in force must stay", got)
	}
	pols, _ := st.policies(Filter{Since: time.Hour}, now)
	if len(pols) != 2 || !pols[0].FirstSeen.Equal(old) {
		t.Errorf("policies seen within the hour = %+v; want both, first seen 10 days ago", pols)
	}
	ingestAt(t, st, 6, KindStats, Stats{Events: 3, Policies: []string{}}, now)
	if got := names(); got != "[]" {
		t.Errorf("after the agent reported no policy in force: %s", got)
	}
	size, entries, indexed := recount(t, st)
	if size != st.size() || entries != indexed {
		t.Errorf("bookkeeping: size %d (recorded %d), %d entries, %d indexed", size, st.size(), entries, indexed)
	}
}
