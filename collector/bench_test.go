package collector

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

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
