package collector

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/policy"
)

// child is a collector running as a separate process.
type child struct {
	cmd *exec.Cmd
}

func startChild(t testing.TB, socket, db string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+socket+" "+db)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd}
	t.Cleanup(func() { c.kill() })
	// Ready once the socket answers.
	q := NewQueryClient(socket)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := q.Agents(); err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatal("collector child did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// TestKillCollectorMidStream kills the collector with SIGKILL while an
// agent streams to it, restarts it, and checks that every record sent is
// stored exactly once.
func TestKillCollectorMidStream(t *testing.T) {
	dir := t.TempDir()
	socket, db := filepath.Join(dir, "c.sock"), filepath.Join(dir, "c.db")
	srv := startChild(t, socket, db)
	c := newClient(t, socket, filepath.Join(dir, "spool"), 0)
	const total = 3000
	sent := make(chan int, total)
	go func() {
		defer close(sent)
		for i := range total {
			if err := c.Send(KindDeviation, deviation("web", "nginx_0", fmt.Sprintf("/bin/p%d", i))); err != nil {
				t.Error(err)
				return
			}
			sent <- i
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	// Kill once a third has been sent, while the stream is flowing.
	for i := range sent {
		if i == total/3 {
			break
		}
	}
	ackedAtKill := spoolStats(c).Acked
	srv.kill()
	time.Sleep(100 * time.Millisecond)
	srv = startChild(t, socket, db)
	for range sent {
	}
	flush(t, c)
	if ackedAtKill == 0 || ackedAtKill >= total {
		t.Errorf("acked %d of %d at the kill: the kill was not mid-stream", ackedAtKill, total)
	}
	q := NewQueryClient(socket)
	n, occ := totalCount(t, q)
	if n != total || occ != total {
		t.Errorf("stored %d deviations, %d occurrences; sent %d", n, occ, total)
	}
	agents, err := q.Agents()
	if err != nil || len(agents) != 1 || agents[0].Last != total || agents[0].Skipped != 0 {
		t.Errorf("agents = %+v, %v", agents, err)
	}
	t.Logf("acked %d before the kill; %d stored after restart", ackedAtKill, n)
}

// TestSpoolSurvivesRestart spools with no collector, restarts the agent's
// client on the same spool, then brings the collector up.
func TestSpoolSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "run", "collector.sock")
	spool := filepath.Join(dir, "spool")
	c := newClient(t, socket, spool, 0)
	for i := range 50 {
		if err := c.Send(KindDeviation, deviation("web", "nginx_0", fmt.Sprintf("/bin/a%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = newClient(t, socket, spool, 0)
	if st := spoolStats(c); st.Depth != 50 || st.Acked != 0 {
		t.Fatalf("reopened spool = %+v, want 50 records waiting", st)
	}
	for i := range 25 {
		if err := c.Send(KindDeviation, deviation("web", "nginx_0", fmt.Sprintf("/bin/b%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	srv := startServer(t, dir, Options{})
	flush(t, c)
	q := NewQueryClient(srv.socket)
	if n, occ := totalCount(t, q); n != 75 || occ != 75 {
		t.Errorf("stored %d (%d occurrences), want 75", n, occ)
	}
	if st := spoolStats(c); st.Depth != 0 || st.Acked != 75 || st.Bytes != 0 {
		t.Errorf("spool after catching up = %+v, want empty at 75", st)
	}
	segs, _ := filepath.Glob(filepath.Join(spool, "*"+segmentSuffix))
	if len(segs) != 0 {
		t.Errorf("acknowledged segments left behind: %v", segs)
	}
}

// TestSpoolBound fills a small spool with the collector away: the oldest
// records are dropped and counted, the rest delivered, and the collector
// learns of the drop both from the sequence and from the agent's stats.
func TestSpoolBound(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "run", "collector.sock")
	spool := filepath.Join(dir, "spool")
	const max = 32 << 10
	c := newClient(t, socket, spool, max)
	const total = 1000
	for i := range total {
		if err := c.Send(KindDeviation, deviation("web", "nginx_0", fmt.Sprintf("/bin/c%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	st := spoolStats(c)
	if st.Dropped == 0 || st.Bytes > max || st.Depth+int(st.Dropped) != total {
		t.Fatalf("spool = %+v: want drops, at most %d bytes, depth+dropped = %d", st, max, total)
	}
	var size int64
	segs, _ := filepath.Glob(filepath.Join(spool, "*"+segmentSuffix))
	for _, s := range segs {
		fi, err := os.Stat(s)
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
	}
	if size > max {
		t.Errorf("segments on disk hold %d bytes, over the %d bound", size, max)
	}
	if err := c.Send(KindStats, Stats{Events: 5}); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dir, Options{})
	flush(t, c)
	q := NewQueryClient(srv.socket)
	n, _ := totalCount(t, q)
	if n != st.Depth {
		t.Errorf("stored %d deviations, want the %d the spool kept", n, st.Depth)
	}
	agents, err := q.Agents()
	if err != nil || len(agents) != 1 {
		t.Fatal(agents, err)
	}
	a := agents[0]
	if a.Skipped != st.Dropped || a.Stats.SpoolDropped != st.Dropped || a.Last != total+1 {
		t.Errorf("agent state = %+v; want %d skipped and reported dropped, last seq %d", a, st.Dropped, total+1)
	}
	// The drop count survives a restart of the client.
	c.Close()
	c = newClient(t, socket, spool, max)
	if got := spoolStats(c).Dropped; got != st.Dropped {
		t.Errorf("dropped after reopening = %d, want %d", got, st.Dropped)
	}
	t.Logf("spool of %d bytes: kept %d records, dropped %d", max, st.Depth, st.Dropped)
}

// TestSpoolTornWrite cuts the last record of a segment in half, as a
// crash in the middle of a write would, and checks the spool recovers
// without it and keeps numbering after the last whole record.
func TestSpoolTornWrite(t *testing.T) {
	dir := t.TempDir()
	sp, err := openSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		raw, _ := encodeDoc(KindStats, Stats{Events: uint64(i)})
		if err := sp.append(&Record{Agent: "a", Kind: KindStats, Doc: raw}); err != nil {
			t.Fatal(err)
		}
	}
	sp.close()
	seg := sp.segPath(1)
	fi, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(seg, fi.Size()-5); err != nil {
		t.Fatal(err)
	}
	sp, err = openSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if sp.depth() != 2 || sp.next != 3 {
		t.Errorf("after a torn write: depth %d, next %d; want 2, 3", sp.depth(), sp.next)
	}
	recs, err := sp.peek(10, 1<<20)
	if err != nil || len(recs) != 2 || recs[1].rec.Seq != 2 {
		t.Errorf("peek = %+v, %v", recs, err)
	}
	sp.close()
}

// TestSpoolAckPositions acknowledges part of a batch, reopens the spool
// and checks that reading resumes right after the last acknowledged
// record.
func TestSpoolAckPositions(t *testing.T) {
	dir := t.TempDir()
	sp, err := openSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		raw, _ := encodeDoc(KindStats, Stats{Events: uint64(i)})
		if err := sp.append(&Record{Agent: "a", Kind: KindStats, Doc: raw}); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(recs []spooled) []uint64 {
		var out []uint64
		for _, r := range recs {
			out = append(out, r.rec.Seq)
		}
		return out
	}
	batch, err := sp.peek(4, 1<<20)
	if err != nil || fmt.Sprint(seqs(batch)) != "[1 2 3 4]" {
		t.Fatalf("first batch = %v, %v", seqs(batch), err)
	}
	// Only 1 and 2 were stored: 3 comes next.
	if err := sp.ack(2, batch); err != nil {
		t.Fatal(err)
	}
	if batch, _ = sp.peek(3, 1<<20); fmt.Sprint(seqs(batch)) != "[3 4 5]" {
		t.Fatalf("after a partial ack: %v", seqs(batch))
	}
	if err := sp.ack(5, batch); err != nil {
		t.Fatal(err)
	}
	sp.close()
	sp, err = openSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	if sp.depth() != 5 || sp.after() != 5 {
		t.Errorf("reopened: depth %d after %d; want 5, 5", sp.depth(), sp.after())
	}
	if batch, _ = sp.peek(100, 1<<20); fmt.Sprint(seqs(batch)) != "[6 7 8 9 10]" {
		t.Errorf("reopened batch = %v, want 6..10", seqs(batch))
	}
	raw, _ := encodeDoc(KindStats, Stats{})
	rec := Record{Agent: "a", Kind: KindStats, Doc: raw}
	if err := sp.append(&rec); err != nil || rec.Seq != 11 {
		t.Errorf("next record got seq %d, %v; want 11", rec.Seq, err)
	}
}

// TestLargestRecordIsDelivered spools, in a spool big enough that an
// eighth of it does not bound a record, records up to just under a
// batch's byte bound and then the largest record the spool takes: the
// batch that ends with it reaches the collector (one it refused would
// block delivery for good). A record over the bound is refused.
func TestLargestRecordIsDelivered(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "run", "collector.sock")
	c := newClient(t, socket, filepath.Join(dir, "spool"), 1<<30)
	padded := func(i, pad int) *policy.Deviation {
		d := deviation("web", "nginx_0", fmt.Sprintf("/bin/big%d", i))
		d.Metadata.Event.Comm = strings.Repeat("x", pad)
		return d
	}
	if err := c.Send(KindDeviation, padded(0, maxRecordBytes)); err == nil {
		t.Fatal("the spool took a record over the bound a batch allows")
	}
	sent := 0
	for spoolStats(c).Bytes < batchBytes-128<<10 {
		sent++
		if err := c.Send(KindDeviation, padded(sent, 60<<10)); err != nil {
			t.Fatal(err)
		}
	}
	before := spoolStats(c).Bytes
	sent++
	if err := c.Send(KindDeviation, padded(sent, maxRecordBytes-2<<10)); err != nil {
		t.Fatalf("the largest record: %v", err)
	}
	st := spoolStats(c)
	if big := st.Bytes - before; big > maxRecordBytes || big < maxRecordBytes-4<<10 {
		t.Fatalf("the largest record spooled as %d bytes, want just under %d", big, maxRecordBytes)
	}
	if st.Dropped != 1 || st.Depth != sent {
		t.Fatalf("spool = %+v, want %d records and the refused one dropped", st, sent)
	}
	srv := startServer(t, dir, Options{})
	flush(t, c)
	agents, err := NewQueryClient(srv.socket).Agents()
	if err != nil || len(agents) != 1 || agents[0].Last != uint64(sent) || agents[0].Rejected != 0 {
		t.Fatalf("agents = %+v, %v; want all %d records stored", agents, err, sent)
	}
	counts, err := srv.store.counts()
	if err != nil || counts[bucketDeviations] != sent {
		t.Errorf("stored deviations = %v, %v; want %d", counts, err, sent)
	}
	t.Logf("delivered one batch of %d records, %d bytes spooled, the last record %d bytes (bound %d)", sent, st.Bytes, st.Bytes-before, maxRecordBytes)
}
