package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bulwarkhq/bulwark/internal/unixapi"
	"github.com/bulwarkhq/bulwark/policy"
)

func TestRoundTripAndGrouping(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, Options{})
	c := newClient(t, srv.socket, filepath.Join(dir, "spool"), 0)
	send := func(kind Kind, doc any) {
		t.Helper()
		if err := c.Send(kind, doc); err != nil {
			t.Fatal(err)
		}
	}
	// Three replicas of nginx (two tags of one repository), one redis.
	send(KindFingerprint, fingerprint("nginx:1.25", "aaa", "/usr/sbin/nginx", 1))
	send(KindFingerprint, fingerprint("docker.io/library/nginx:1.25", "bbb", "/usr/sbin/nginx", 1))
	send(KindFingerprint, fingerprint("nginx:1.25", "ccc", "/bin/sh", 1))
	send(KindFingerprint, fingerprint("redis:7", "ddd", "/usr/local/bin/redis-server", 1))
	// A newer fingerprint of aaa from the same builder run (same first
	// timestamp) replaces the first; an older one does not; one from a
	// restarted agent's new builder (another first timestamp) is added to
	// what is stored.
	send(KindFingerprint, fingerprint("nginx:1.25", "aaa", "/usr/bin/curl", 3))
	send(KindFingerprint, fingerprint("nginx:1.25", "aaa", "/usr/bin/wget", 2))
	restarted := fingerprint("nginx:1.25", "aaa", "/usr/bin/dig", 1)
	restarted.Metadata.FirstTimestamp = 1795660000
	send(KindFingerprint, restarted)
	svc := &policy.Fingerprint{APIVersion: policy.APIVersionBulwark, Kind: policy.KindFingerprint,
		Metadata: policy.Metadata{Name: "chronyd", Type: policy.TypeLinuxService, Cgroup: "systemd:/system.slice/chronyd.service"},
		Spec:     policy.Spec{ServiceSelector: &policy.ServiceSelector{Cgroup: "systemd:/system.slice/chronyd.service"}}}
	send(KindFingerprint, svc)
	// One deviation twice, then its repeats the kernel counted (5 in one
	// record); another once.
	send(KindDeviation, deviation("web", "nginx_0", "/bin/sh"))
	send(KindDeviation, *deviation("web", "nginx_0", "/bin/sh"))
	repeats := deviation("web", "nginx_0", "/bin/sh")
	repeats.Metadata.Event.Count = 5
	send(KindDeviation, repeats)
	send(KindDeviation, deviation("web", "nginx_0", "/usr/bin/curl"))
	send(KindFlag, &policy.Flag{APIVersion: policy.APIVersionBulwark, Kind: policy.KindFlag,
		Metadata: policy.FlagMetadata{UID: "flag:1", Class: "redflag", Severity: "high", PolicyName: "web", Workload: "default/web"}})
	send(KindWorkload, &WorkloadEvent{Event: WorkloadStarted, Type: policy.TypeContainer, ContainerID: "aaa", ContainerName: "web",
		Image: "nginx:1.25", Namespace: "default", PolicyName: "web", PolicyMode: policy.ModeEnforce})
	send(KindWorkload, &WorkloadEvent{Event: WorkloadStarted, Type: policy.TypeContainer, ContainerID: "ddd", ContainerName: "cache",
		Image: "redis:7", Namespace: "infra"})
	send(KindWorkload, &WorkloadEvent{Event: WorkloadStopped, ContainerID: "ddd"})
	pol, err := policy.PolicyFromFingerprints([]*policy.Fingerprint{fingerprint("nginx:1.25", "aaa", "/usr/sbin/nginx", 1)}, policy.CreateOptions{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	send(KindPolicy, pol)
	send(KindStats, Stats{Events: 1000, LostEvents: 2, EnforcedWorkloads: 1})
	if err := c.Send(KindDeviation, pol); err == nil {
		t.Error("Send accepted a policy as a deviation")
	}
	if err := c.Send(KindStats, pol); err == nil {
		t.Error("Send accepted a policy as stats")
	}
	flush(t, c)

	q := NewQueryClient(srv.socket)
	groups, err := q.Fingerprints(Filter{Image: "nginx"})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0].Image != "docker.io/library/nginx:1.25" || len(groups[0].Instances) != 3 {
		t.Fatalf("nginx fingerprints = %+v, want one group of 3 instances", groups)
	}
	for _, in := range groups[0].Instances {
		if id := in.Fingerprint.Metadata.ContainerID; id == "aaa" {
			var exes []string
			for _, n := range in.Fingerprint.Spec.ProcessPolicy {
				exes = append(exes, n.Exe...)
			}
			slices.Sort(exes)
			if want := []string{"/usr/bin/curl", "/usr/bin/dig"}; !slices.Equal(exes, want) || in.Fingerprint.Metadata.Version != 3 {
				t.Errorf("aaa's fingerprint: exes %v, version %d; want %v, version 3", exes, in.Fingerprint.Metadata.Version, want)
			}
		}
	}
	all, err := q.Fingerprints(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, g := range all {
		keys = append(keys, fmt.Sprintf("%s=%d", g.Key, len(g.Instances)))
	}
	want := "[image:docker.io/library/nginx:1.25=3 image:docker.io/library/redis:7=1 service:systemd:/system.slice/chronyd.service=1]"
	if fmt.Sprint(keys) != want {
		t.Errorf("groups = %v, want %s", keys, want)
	}
	if g, err := q.Fingerprints(Filter{Service: "*chronyd*"}); err != nil || len(g) != 1 || g[0].Service == "" {
		t.Errorf("service filter = %+v, %v", g, err)
	}
	if g, err := q.Fingerprints(Filter{Policy: "web"}); err != nil || len(g) != 1 || len(g[0].Instances) != 3 {
		t.Errorf("fingerprints selected by policy web = %+v, %v; want the 3 nginx instances", g, err)
	}

	devs, err := q.Deviations(Filter{Policy: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || devs[0].Count != 7 || devs[1].Count != 1 || devs[0].Agents[0] != "node-1" {
		t.Errorf("deviations = %+v, want /bin/sh 7 times then curl once", devs)
	}
	if d, _ := q.Deviations(Filter{Policy: "other"}); len(d) != 0 {
		t.Errorf("deviations of policy other = %d, want 0", len(d))
	}
	wls, err := q.Workloads(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(wls) != 2 || wls[0].ContainerName != "web" || wls[0].State != StateRunning ||
		wls[1].ContainerName != "cache" || wls[1].State != StateStopped || wls[1].Image != "redis:7" {
		t.Errorf("workloads = %+v", wls)
	}
	if w, _ := q.Workloads(Filter{Namespace: "infra"}); len(w) != 1 {
		t.Errorf("workloads in infra = %d, want 1", len(w))
	}
	pols, err := q.Policies(Filter{Image: "nginx:1.25"})
	if err != nil || len(pols) != 1 || pols[0].Policy.Metadata.Name != "web" {
		t.Errorf("policies for nginx:1.25 = %+v, %v", pols, err)
	}
	if p, _ := q.Policies(Filter{Image: "redis:7"}); len(p) != 0 {
		t.Errorf("policies for redis = %d, want 0", len(p))
	}
	flags, err := q.Flags(Filter{Policy: "web"})
	if err != nil || len(flags) != 1 || flags[0].Flag.Metadata.UID != "flag:1" {
		t.Errorf("flags = %+v, %v", flags, err)
	}
	if _, err := q.Flags(Filter{Image: "nginx"}); err == nil {
		t.Error("flags accepted an image filter")
	}
	agents, err := q.Agents()
	if err != nil || len(agents) != 1 || agents[0].Stats.Events != 1000 || agents[0].Last != 18 {
		t.Errorf("agents = %+v, %v; want node-1 at seq 18 with 1000 events", agents, err)
	}
	if got, _ := q.Deviations(Filter{Since: time.Nanosecond}); len(got) != 0 {
		t.Errorf("deviations since 1ns ago = %d, want 0", len(got))
	}
}

// post sends a batch as an agent would and returns the acknowledged seq.
func post(t *testing.T, socket string, b Batch) uint64 {
	t.Helper()
	body, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var ack Ack
	if err := unixapi.NewClient("collector", socket, 5*time.Second).Do(http.MethodPost, "/v1/records", bytes.NewReader(body), &ack); err != nil {
		t.Fatal(err)
	}
	return ack.Seq
}

func devRecord(t *testing.T, seq uint64, exe string) Record {
	t.Helper()
	raw, err := encodeDoc(KindDeviation, deviation("web", "nginx_0", exe))
	if err != nil {
		t.Fatal(err)
	}
	return Record{Agent: "a", Seq: seq, Kind: KindDeviation, Time: time.Now(), Doc: raw}
}

func totalCount(t *testing.T, q *QueryClient) (distinct int, occurrences uint64) {
	t.Helper()
	devs, err := q.Deviations(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		occurrences += d.Count
	}
	return len(devs), occurrences
}

func TestDedupeOnReceipt(t *testing.T) {
	srv := startServer(t, t.TempDir(), Options{})
	q := NewQueryClient(srv.socket)
	batch := Batch{Agent: "a", Epoch: "e1", Records: []Record{devRecord(t, 1, "/a"), devRecord(t, 2, "/b"), devRecord(t, 3, "/c")}}
	if ack := post(t, srv.socket, batch); ack != 3 {
		t.Fatalf("ack = %d, want 3", ack)
	}
	// The same batch again (its ack was lost): nothing new is stored.
	if ack := post(t, srv.socket, batch); ack != 3 {
		t.Fatalf("ack of the resent batch = %d, want 3", ack)
	}
	if n, occ := totalCount(t, q); n != 3 || occ != 3 {
		t.Errorf("after a resend: %d deviations, %d occurrences; want 3, 3", n, occ)
	}
	// Overlapping batch: 2 and 3 are duplicates, 4 is new; 6 follows a gap
	// and waits until 5 arrives.
	b2 := Batch{Agent: "a", Epoch: "e1", Records: []Record{devRecord(t, 2, "/b"), devRecord(t, 3, "/c"), devRecord(t, 4, "/d"), devRecord(t, 6, "/f")}}
	if ack := post(t, srv.socket, b2); ack != 4 {
		t.Fatalf("ack = %d, want 4 (6 comes after a gap)", ack)
	}
	if n, _ := totalCount(t, q); n != 4 {
		t.Errorf("%d deviations, want 4", n)
	}
	// The client dropped 5 (spool full): After=5 lets 6 in.
	if ack := post(t, srv.socket, Batch{Agent: "a", Epoch: "e1", After: 5, Records: []Record{devRecord(t, 6, "/f")}}); ack != 6 {
		t.Fatalf("ack = %d, want 6", ack)
	}
	// A new spool (epoch) restarts the numbering at 1.
	if ack := post(t, srv.socket, Batch{Agent: "a", Epoch: "e2", Records: []Record{devRecord(t, 1, "/g")}}); ack != 1 {
		t.Fatalf("ack after a new epoch = %d, want 1", ack)
	}
	if n, occ := totalCount(t, q); n != 6 || occ != 6 {
		t.Errorf("%d deviations, %d occurrences; want 6, 6", n, occ)
	}
	agents, err := q.Agents()
	if err != nil || len(agents) != 1 || agents[0].Skipped != 1 {
		t.Errorf("agents = %+v, %v; want one skipped record", agents, err)
	}
	// A record that cannot be decoded is counted and passed over.
	bad := Record{Seq: 2, Kind: KindDeviation, Time: time.Now(), Doc: json.RawMessage(`{"spec": 5}`)}
	// So is a workload event that names no instance.
	anon := Record{Seq: 4, Kind: KindWorkload, Time: time.Now(), Doc: json.RawMessage(`{"event":"started","type":"container"}`)}
	if ack := post(t, srv.socket, Batch{Agent: "a", Epoch: "e2", Records: []Record{bad, devRecord(t, 3, "/h"), anon}}); ack != 4 {
		t.Fatalf("ack past bad records = %d, want 4", ack)
	}
	if agents, _ := q.Agents(); agents[0].Rejected != 2 {
		t.Errorf("rejected = %d, want 2", agents[0].Rejected)
	}
	if wls, _ := q.Workloads(Filter{}); len(wls) != 0 {
		t.Errorf("stored a workload without identity: %+v", wls)
	}
}

// TestSecondCollectorRefused starts a second collector on the socket of a
// live one: it fails and releases the database it opened. (The socket's
// modes and its stale-socket handling are unixapi.Listen's, tested there.)
func TestSecondCollectorRefused(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, Options{})
	other := filepath.Join(dir, "other.db")
	if _, err := NewServer(Options{Socket: srv.socket, DB: other}); err == nil {
		t.Fatal("a second collector took over a live socket")
	}
	st, err := openStore(other, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("the refused collector kept its database: %v", err)
	}
	if err := st.close(); err != nil {
		t.Fatal(err)
	}
}

// TestQueryErrorStatus checks whom a failed query blames: a filter the
// collector cannot apply is the asker's mistake (400), an entry it cannot
// read its own (500).
func TestQueryErrorStatus(t *testing.T) {
	srv := startServer(t, t.TempDir(), Options{})
	q := NewQueryClient(srv.socket)
	status := func(err error) int {
		var e *unixapi.Error
		if errors.As(err, &e) {
			return e.Status
		}
		return 0
	}
	if _, err := q.Flags(Filter{Image: "nginx"}); status(err) != http.StatusBadRequest {
		t.Errorf("flags filtered by image: %v, want status 400", err)
	}
	api := unixapi.NewClient("collector", srv.socket, 5*time.Second)
	if err := api.Do(http.MethodGet, "/v1/deviations?since=yesterday", nil, nil); status(err) != http.StatusBadRequest {
		t.Errorf("since=yesterday: %v, want status 400", err)
	}
	err := srv.store.db.Update(func(tx *bolt.Tx) error {
		return bucket(tx, bucketWorkloads).Put([]byte("corrupt"), []byte("{"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Workloads(Filter{}); status(err) != http.StatusInternalServerError {
		t.Errorf("workloads with a corrupt entry stored: %v, want status 500", err)
	}
}

// TestDNSNamesRoundTrip stores a fingerprint with a dnsSelector peer and
// the deviation of a blocked connect to a resolved name: both come back
// with their names, and a policy created from the stored fingerprint
// allows the name.
func TestDNSNamesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, Options{})
	c := newClient(t, srv.socket, filepath.Join(dir, "spool"), 0)
	egress := []policy.NetworkRule{{
		To:        []policy.Peer{{DNSSelector: []string{"api.example.com"}}, {IPBlock: &policy.IPBlock{CIDR: "192.0.2.1/32"}}},
		Ports:     []policy.Port{{Port: 443, Protocol: policy.ProtocolTCP}},
		Processes: []string{"curl_0"},
	}}
	fp := fingerprint("curl:8", "aaa", "/usr/bin/curl", 1)
	fp.Spec.NetworkPolicy.Egress = egress
	dev := deviation("web", "nginx_0", "/usr/bin/curl")
	dev.Metadata.Event = &policy.Event{Kind: "connect", Verdict: "blocked", Protocol: policy.ProtocolTCP,
		DstAddr: "203.0.113.9", DstPort: 443, DNSName: "other.example.org"}
	dev.Spec = policy.Spec{
		ProcessPolicy: []policy.ProcessNode{{PolicyNode: &policy.PolicyNodeRef{ID: "nginx_0"}}},
		NetworkPolicy: &policy.NetworkPolicy{Egress: []policy.NetworkRule{{
			To:    []policy.Peer{{DNSSelector: []string{"other.example.org"}}},
			Ports: []policy.Port{{Port: 443, Protocol: policy.ProtocolTCP}}, Processes: []string{"nginx_0"}}}},
	}
	for kind, doc := range map[Kind]any{KindFingerprint: fp, KindDeviation: dev} {
		if err := c.Send(kind, doc); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, c)
	q := NewQueryClient(srv.socket)
	groups, err := q.Fingerprints(Filter{Image: "curl"})
	if err != nil || len(groups) != 1 || len(groups[0].Instances) != 1 {
		t.Fatalf("fingerprints %+v, %v", groups, err)
	}
	got := groups[0].Instances[0].Fingerprint
	if !reflect.DeepEqual(got.Spec.NetworkPolicy.Egress, egress) {
		t.Fatalf("stored egress %+v, want %+v", got.Spec.NetworkPolicy.Egress, egress)
	}
	pol, err := policy.PolicyFromFingerprints([]*policy.Fingerprint{&got}, policy.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if to := pol.Spec.NetworkPolicy.Egress[0].To; len(to) != 2 || !slices.Equal(to[0].DNSSelector, []string{"api.example.com"}) {
		t.Fatalf("created policy's peers %+v", to)
	}
	devs, err := q.Deviations(Filter{Policy: "web"})
	if err != nil || len(devs) != 1 {
		t.Fatalf("deviations %+v, %v", devs, err)
	}
	d := devs[0].Deviation
	if d.Metadata.Event.DNSName != "other.example.org" ||
		!slices.Equal(d.Spec.NetworkPolicy.Egress[0].To[0].DNSSelector, []string{"other.example.org"}) {
		t.Fatalf("stored deviation %+v %+v", d.Metadata.Event, d.Spec.NetworkPolicy)
	}
}
