package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/policy"
)

// policyRule is an egress rule to cidr on TCP 443.
func policyRule(cidr string) policy.NetworkRule {
	return policy.NetworkRule{To: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: cidr}}}, Ports: []policy.Port{{Port: 443, Protocol: policy.ProtocolTCP}}}
}

// BenchmarkDelivery measures records per second from Client.Send to
// stored in the collector (spooled on disk, delivered in batches over the
// unix socket, committed to bbolt), and checks nothing was lost.
func BenchmarkDelivery(b *testing.B) {
	dir := b.TempDir()
	srv := startServer(b, dir, Options{})
	c, err := NewClient(ClientOptions{Socket: srv.socket, SpoolDir: filepath.Join(dir, "spool"), Agent: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	b.ResetTimer()
	for i := range b.N {
		if err := c.Send(KindDeviation, deviation("web", "nginx_0", fmt.Sprintf("/bin/p%d", i))); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.Flush(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	elapsed := time.Since(start)
	n, err := srv.store.counts()
	if err != nil {
		b.Fatal(err)
	}
	if n[bucketDeviations] != b.N {
		b.Fatalf("stored %d of %d", n[bucketDeviations], b.N)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
}

// BenchmarkHundredWorkloads runs the collector as its own process, streams
// the records of 100 workloads to it (start events, 10 successive
// versions of each fingerprint with 20 processes and 20 peers, 10
// deviations each, stats) and reports the collector's resident memory and
// database size. Each of the b.N rounds sends new records: the next 10
// versions of every fingerprint and 10 new deviations per workload.
func BenchmarkHundredWorkloads(b *testing.B) {
	dir := b.TempDir()
	socket, db := filepath.Join(dir, "c.sock"), filepath.Join(dir, "c.db")
	srv := startChild(b, socket, db)
	c, err := NewClient(ClientOptions{Socket: socket, SpoolDir: filepath.Join(dir, "spool"), Agent: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	records := 0
	b.ResetTimer()
	for round := range b.N {
		for w := range 100 {
			id := fmt.Sprintf("c%03d", w)
			image := fmt.Sprintf("registry.local/app%d:1.0", w%10)
			if err := c.Send(KindWorkload, WorkloadEvent{Event: WorkloadStarted, Type: "container", ContainerID: id, Image: image}); err != nil {
				b.Fatal(err)
			}
			records++
			for v := range 10 {
				fp := fingerprint(image, id, "/usr/bin/app", round*10+v+1)
				for p := range 20 {
					fp.Spec.ProcessPolicy[0].Children = append(fp.Spec.ProcessPolicy[0].Children,
						fingerprint(image, id, fmt.Sprintf("/usr/bin/helper%d", p), 1).Spec.ProcessPolicy[0])
				}
				for p := range 20 {
					fp.Spec.NetworkPolicy.Egress = append(fp.Spec.NetworkPolicy.Egress, policyRule(fmt.Sprintf("10.0.%d.%d/32", w, p)))
				}
				if err := c.Send(KindFingerprint, fp); err != nil {
					b.Fatal(err)
				}
				records++
			}
			for d := range 10 {
				if err := c.Send(KindDeviation, deviation("app", "app_0", fmt.Sprintf("/tmp/x%d-%d-%d", round, w, d))); err != nil {
					b.Fatal(err)
				}
				records++
			}
		}
		if err := c.Send(KindStats, Stats{Events: uint64(records)}); err != nil {
			b.Fatal(err)
		}
		records++
	}
	if err := c.Flush(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", srv.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.Fields(rest)[0])
			b.ReportMetric(float64(kb)/1024, "collector-RSS-MiB")
		}
	}
	if fi, err := os.Stat(db); err == nil {
		b.ReportMetric(float64(fi.Size())/(1<<20), "db-MiB")
	}
	b.ReportMetric(float64(records), "records")
}
