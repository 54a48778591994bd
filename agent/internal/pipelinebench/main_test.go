package main

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
)

// TestMain lets the test binary serve as the benchmark's load processes.
func TestMain(m *testing.M) {
	if status, ok := loadProcess(); ok {
		os.Exit(status)
	}
	os.Exit(m.Run())
}

// fingerprintOf builds, with the agent's real builder, the fingerprint of a
// service whose worker made execs execs and sent to peers peers.
func fingerprintOf(t *testing.T, svc string, peers, execs int) policy.Fingerprint {
	t.Helper()
	b := agent.NewFingerprintBuilder(policy.Identity{Type: policy.TypeLinuxService, ServiceCgroup: "systemd:/bench.slice/" + svc, ServiceName: svc}, nil)
	const workerNode = 1<<63 | 7
	b.Observe(bpf.Event{Kind: bpf.KindExec, NodeKey: workerNode, Comm: "pipelinebench", Exe: "/tmp/pipelinebench", Time: time.Now()})
	for i := range peers {
		// Every peer twice: the fingerprint holds it once.
		for range 2 {
			b.Observe(bpf.Event{Kind: bpf.KindConnect, NodeKey: workerNode, Protocol: policy.ProtocolUDP,
				Dst: netip.AddrPortFrom(netip.AddrFrom4(peerAddr(i)), peerPort), Time: time.Now()})
		}
	}
	for i := 1; i <= execs; i++ {
		b.Observe(bpf.Event{Kind: bpf.KindExec, NodeKey: 1<<62 + uint64(i), ParentKey: workerNode,
			Comm: execName(i), Exe: "/usr/bin/true", Time: time.Now()})
	}
	return *b.Fingerprint()
}

func TestCountFingerprintsOfTheAgentsBuilder(t *testing.T) {
	cfg := config{services: 2, peers: 300, execs: 3}
	group := func(fps ...policy.Fingerprint) []collector.FingerprintGroup {
		g := collector.FingerprintGroup{}
		for _, fp := range fps {
			g.Instances = append(g.Instances, collector.FingerprintInstance{Fingerprint: fp})
		}
		return []collector.FingerprintGroup{g}
	}
	full := fingerprintOf(t, "a.service", 300, 3)

	got, err := countFingerprints(group(full, fingerprintOf(t, "b.service", 300, 3)), cfg)
	if err != nil || !got.complete || got.instances != 2 || got.peers != 600 || got.procs != 8 {
		t.Fatalf("all stored: %+v, %v", got, err)
	}
	got, err = countFingerprints(group(full, fingerprintOf(t, "b.service", 299, 3)), cfg)
	if err != nil || got.complete || got.peers != 599 {
		t.Fatalf("one peer missing: %+v, %v", got, err)
	}
	got, err = countFingerprints(group(full, fingerprintOf(t, "b.service", 300, 2)), cfg)
	if err != nil || got.complete || got.procs != 7 {
		t.Fatalf("one exec missing: %+v, %v", got, err)
	}
	if got, err = countFingerprints(group(full), cfg); err != nil || got.complete {
		t.Fatalf("one service missing: %+v, %v", got, err)
	}
	if _, err := countFingerprints(group(full, fingerprintOf(t, "b.service", 301, 3)), cfg); err == nil {
		t.Fatal("a peer more than the load makes was not reported")
	}
	if _, err := countFingerprints(group(full, full, full), cfg); err == nil {
		t.Fatal("more fingerprints than services were not reported")
	}
}

func TestPeersAreDistinctLoopbackAddresses(t *testing.T) {
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	seen := map[netip.Addr]bool{}
	for _, i := range []int{0, 1, 255, 256, 65535, 65536, maxPeers - 1} {
		a := netip.AddrFrom4(peerAddr(i))
		if !loopback.Contains(a) || a == netip.MustParseAddr("127.255.255.255") || seen[a] {
			t.Fatalf("peer %d is %v", i, a)
		}
		seen[a] = true
	}
}

func TestParseProcFiles(t *testing.T) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	m, err := parseMemory(string(data))
	if err != nil || m.rss == 0 || m.hwm < m.rss {
		t.Fatalf("own memory %+v, %v", m, err)
	}
	if _, err := parseMemory("Name:\tx\nVmRSS:\t12 kB\n"); err == nil {
		t.Fatal("status without VmHWM accepted")
	}
	// A command name with spaces and parentheses; utime 250, stime 50 ticks.
	cpu, err := parseCPU("42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 0\n")
	if err != nil || cpu != 3*time.Second {
		t.Fatalf("cpu %v, %v", cpu, err)
	}
	if _, err := readCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

// TestSmallRun runs the whole benchmark small: a real collector and agent
// (built from this module), 3 services, each making 40 observations.
func TestSmallRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (BPF, cgroups, bpffs)")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("needs the go command to build bulwark: %v", err)
	}
	cfg := config{bulwark: filepath.Join(t.TempDir(), "bulwark"), services: 3, peers: 38, execs: 2, timeout: 30 * time.Second}
	if err := buildBulwark(context.Background(), cfg.bulwark); err != nil {
		t.Fatal(err)
	}
	res, err := runOnce(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.lossy() || res.storedPeers != 3*38 || res.storedProcs != 3*3 || res.stored <= 0 || res.produced <= 0 {
		t.Fatalf("result %+v", res)
	}
	// The workers' own execs and the load.
	if res.agentEvents != uint64(3+cfg.events()) {
		t.Fatalf("agent read %d events, want %d", res.agentEvents, 3+cfg.events())
	}
	if res.agentLoaded.rss == 0 || res.collectorLoaded.hwm < res.collectorLoaded.rss {
		t.Fatalf("memory: agent %+v, collector %+v", res.agentLoaded, res.collectorLoaded)
	}
}
