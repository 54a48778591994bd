// Command bench measures what enforcement costs: an exec loop, a connect
// loop and a resolve-then-connect loop (a DNS lookup through a server the
// bench runs, then a connect allowed only by a dnsSelector rule) run inside
// a cgroup armed in enforce mode with a 20-node policy and inside a plain
// cgroup, interleaved in one run, and prints the ratio of the medians
// (target: at most 1.03, 1.05 for the resolve loop). A getppid loop shows what the
// engine's sys_exit program costs every syscall of the host: measured
// before the engine is loaded, then with it, in the plain cgroup and in
// the armed one. The ingress program's own cost per packet (kernel BPF
// run-time statistics) is measured on UDP echo replies and on DNS answers
// the armed workload receives. A UDP receive loop (datagrams to an
// unconnected socket, read with recvfrom) shows what deciding each read
// for the reader's node costs, with the receive programs' own cost per
// call. Run as root: `go run ./bpf/internal/bench`.
package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/internal/dnstest"
	"github.com/bulwarkhq/bulwark/policy"
)

// helperEnv makes the binary a connect loop: "ADDR N" → prints
// nanoseconds; resolveEnv a resolve-then-connect loop: "NAME PORT N
// DNS-SERVER" → prints nanoseconds; syscallEnv a getppid loop: "N" →
// prints nanoseconds. udpEnv a UDP round-trip loop on one connected
// socket: "ADDR N MSG" (MSG: the hex of each datagram sent); udpRecvEnv
// a UDP receive loop: "PORT N" → prints nanoseconds.
const (
	helperEnv  = "BULWARK_BENCH_CONNECT"
	resolveEnv = "BULWARK_BENCH_RESOLVE"
	syscallEnv = "BULWARK_BENCH_SYSCALLS"
	udpEnv     = "BULWARK_BENCH_UDP"
	udpRecvEnv = "BULWARK_BENCH_UDPRECV"
)

// benchName is the name the resolve loop looks up; benchNameAddr is its
// address, where a listener on its own port waits, so that only the
// policy's dnsSelector rule allows the connect.
const benchName = "bench.bulwark.test"

var benchNameAddr = netip.MustParseAddr("127.54.0.1")

// syscallsPerRep is how many getppid calls one repetition makes.
const syscallsPerRep = 100000

func main() {
	if args := os.Getenv(helperEnv); args != "" {
		os.Exit(connectLoop(strings.Fields(args)))
	}
	if args := os.Getenv(resolveEnv); args != "" {
		os.Exit(resolveLoop(strings.Fields(args)))
	}
	if n := os.Getenv(syscallEnv); n != "" {
		os.Exit(syscallLoop(n))
	}
	if args := os.Getenv(udpEnv); args != "" {
		os.Exit(udpLoop(strings.Fields(args)))
	}
	if args := os.Getenv(udpRecvEnv); args != "" {
		os.Exit(udpRecvLoop(strings.Fields(args)))
	}
	backend := flag.String("backend", bpf.BackendAuto, "auto, lsm or tracing")
	reps := flag.Int("reps", 201, "repetitions of each loop per cgroup (interleaved)")
	execs := flag.Int("execs", 100, "execs per exec-loop repetition")
	connects := flag.Int("connects", 1000, "connects per connect-loop repetition")
	resolves := flag.Int("resolves", 200, "lookups and connects per resolve-loop repetition")
	packets := flag.Int("packets", 10000, "UDP echo replies and DNS answers of the ingress measure")
	recvs := flag.Int("recvs", 2000, "datagrams per UDP receive-loop repetition")
	loops := flag.String("loops", "exec,connect,resolve,getppid,udprecv", "the loops to run, comma-separated")
	flag.Parse()
	if err := run(*backend, *reps, *execs, *connects, *resolves, *packets, *recvs, strings.Split(*loops, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// connectLoop connects to addr n times and prints the elapsed nanoseconds.
func connectLoop(args []string) int {
	n, _ := strconv.Atoi(args[1])
	return timedLoop(n, func() error {
		c, err := net.Dial("tcp", args[0])
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// resolveLoop asks the DNS server at args[3] for name (A and AAAA, as Go's
// resolver does) and connects to its address on port, n times, and prints
// the elapsed nanoseconds.
func resolveLoop(args []string) int {
	port, _ := strconv.Atoi(args[1])
	n, _ := strconv.Atoi(args[2])
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, args[3])
	}}
	ctx := context.Background()
	return timedLoop(n, func() error {
		addrs, err := r.LookupNetIP(ctx, "ip", args[0])
		if err != nil {
			return err
		}
		c, err := net.Dial("tcp", netip.AddrPortFrom(addrs[0], uint16(port)).String())
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// udpLoop sends args[2] (hex) to args[0] and reads the reply, args[1]
// times over one connected UDP socket, and prints the elapsed nanoseconds.
func udpLoop(args []string) int {
	n, _ := strconv.Atoi(args[1])
	msg, err := hex.DecodeString(args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := net.Dial("udp", args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	buf := make([]byte, 4096)
	return timedLoop(n, func() error {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write(msg); err != nil {
			return err
		}
		_, err := c.Read(buf)
		return err
	})
}

// udpRecvLoop binds an unconnected UDP socket to 127.0.0.1:args[0] and,
// args[1] times, sends it a datagram from another socket and reads it with
// recvfrom (the source asked for), and prints the elapsed nanoseconds.
func udpRecvLoop(args []string) int {
	n, _ := strconv.Atoi(args[1])
	srv, err := net.ListenPacket("udp", "127.0.0.1:"+args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Close()
	cl, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cl.Close()
	msg, buf := []byte("hi"), make([]byte, 64)
	return timedLoop(n, func() error {
		if _, err := cl.WriteTo(msg, srv.LocalAddr()); err != nil {
			return err
		}
		srv.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _, err := srv.ReadFrom(buf)
		return err
	})
}

// syscallLoop calls getppid n times and prints the elapsed nanoseconds.
func syscallLoop(arg string) int {
	n, _ := strconv.Atoi(arg)
	return timedLoop(n, func() error {
		unix.Getppid()
		return nil
	})
}

// timedLoop runs step n times and prints the elapsed nanoseconds; it
// returns the exit status: 1 when a step failed.
func timedLoop(n int, step func() error) int {
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := step(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fmt.Println(time.Since(start).Nanoseconds())
	return 0
}

// timedChild runs the bench binary in cgroup cg with env set and returns
// the nanoseconds it prints.
func timedChild(self, cg, env string) (time.Duration, error) {
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), env)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cgroup.StartIn(cmd, cg); err != nil {
		return 0, err
	}
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("%s in %s: %w: %s", env, cg, err, out.String())
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	return time.Duration(ns), err
}

// acceptAll accepts and closes connections on l until it is closed.
func acceptAll(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

func run(backend string, reps, execs, connects, resolves, packets, recvs int, only []string) error {
	box, err := filepath.EvalSymlinks("/bin/busybox")
	if err != nil {
		return fmt.Errorf("needs busybox: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "bulwark-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, a := range []string{"sh", "true"} {
		if err := os.Symlink(box, filepath.Join(tmp, a)); err != nil {
			return err
		}
	}
	pins := filepath.Join(tmp, "pins")
	if err := os.Mkdir(pins, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("bpffs", pins, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs: %w", err)
	}
	defer unix.Unmount(pins, unix.MNT_DETACH)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	go acceptAll(l)
	port := l.Addr().(*net.TCPAddr).Port
	// The receive loop's port, bound by each loop's own process.
	rl, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	recvPort := rl.LocalAddr().(*net.UDPAddr).Port
	rl.Close()
	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer echo.Close()
	go answerUDP(echo, func(q []byte) []byte { return q })
	// A DNS server on port 53 of a loopback address of its own (skipped
	// when that port is taken).
	resolver, err := net.ListenPacket("udp", dnsBenchAddr)
	if err != nil {
		fmt.Printf("no DNS answers measured: %v\n", err)
	} else {
		defer resolver.Close()
		go answerUDP(resolver, dnsAnswer)
	}

	// The resolve loop's server, and the listener its name leads to.
	dns, err := dnstest.StartLoopback()
	if err != nil {
		return err
	}
	defer dns.Close()
	if err := dns.Add(fmt.Sprintf("%s. 300 IN A %s", benchName, benchNameAddr)); err != nil {
		return err
	}
	nl, err := net.Listen("tcp", netip.AddrPortFrom(benchNameAddr, 0).String())
	if err != nil {
		return err
	}
	defer nl.Close()
	go acceptAll(nl)
	namePort := nl.Addr().(*net.TCPAddr).Port

	root, err := cgroup.Mountpoint()
	if err != nil {
		return err
	}
	plain := filepath.Join(root, fmt.Sprintf("bulwark-bench-plain-%d", os.Getpid()))
	armed := filepath.Join(root, fmt.Sprintf("bulwark-bench-armed-%d", os.Getpid()))
	for _, cg := range []string{plain, armed} {
		if _, err := cgroup.Create(cg); err != nil {
			return err
		}
		defer cgroup.Remove(cg)
	}
	syscalls := func(cg string) (time.Duration, error) {
		return timedChild(self, cg, fmt.Sprintf("%s=%d", syscallEnv, syscallsPerRep))
	}
	// Before the engine: what every syscall costs without it.
	var bare []time.Duration
	for r := 0; r <= reps; r++ {
		d, err := syscalls(plain)
		if err != nil {
			return err
		}
		if r > 0 { // the first warms up
			bare = append(bare, d)
		}
	}

	engine, err := bpf.Open(bpf.Options{PinDir: filepath.Join(pins, "bulwark"), Backend: backend,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	defer func() { engine.Unpin(); engine.Close() }()
	c, err := bpf.Compile(benchPolicy(box, self, port, echo.LocalAddr().(*net.UDPAddr).Port, namePort, recvPort), map[string]uint32{"root": 0})
	if err != nil {
		return err
	}
	if len(c.Warnings) > 0 {
		return fmt.Errorf("the bench policy does not compile as written: %s", strings.Join(c.Warnings, "; "))
	}
	if _, err := engine.Apply(armed, c, bpf.ModeEnforce); err != nil {
		return err
	}

	execLoop := func(cg string) (time.Duration, error) {
		script := fmt.Sprintf("i=0; while [ $i -lt %d ]; do %s/true; i=$((i+1)); done", execs, tmp)
		cmd := exec.Command(tmp+"/sh", "-c", script)
		start := time.Now()
		if err := cgroup.StartIn(cmd, cg); err != nil {
			return 0, err
		}
		if err := cmd.Wait(); err != nil {
			return 0, fmt.Errorf("exec loop in %s: %w", cg, err)
		}
		return time.Since(start), nil
	}
	connectLoopIn := func(cg string) (time.Duration, error) {
		return timedChild(self, cg, fmt.Sprintf("%s=127.0.0.1:%d %d", helperEnv, port, connects))
	}
	resolveLoopIn := func(cg string) (time.Duration, error) {
		return timedChild(self, cg, fmt.Sprintf("%s=%s %d %d %s", resolveEnv, benchName, namePort, resolves, dns.Addr))
	}
	recvLoopIn := func(cg string) (time.Duration, error) {
		return timedChild(self, cg, fmt.Sprintf("%s=%d %d", udpRecvEnv, recvPort, recvs))
	}

	fmt.Printf("backend %s (UDP decided at receive: %v), %d reps, %d execs, %d connects, %d resolve+connects and %d UDP receives per rep, policy of 20 process nodes\n",
		engine.Backend(), engine.UDPAtReceive(), reps, execs, connects, resolves, recvs)
	for _, loop := range []struct {
		name string
		fn   func(string) (time.Duration, error)
	}{{"exec", execLoop}, {"connect", connectLoopIn}, {"resolve", resolveLoopIn}, {"getppid", syscalls}, {"udprecv", recvLoopIn}} {
		if !slices.Contains(only, loop.name) {
			continue
		}
		// Warm up both, then alternate which cgroup goes first.
		for _, cg := range []string{plain, armed} {
			if _, err := loop.fn(cg); err != nil {
				return err
			}
		}
		var tp, ta []time.Duration
		for r := 0; r < reps; r++ {
			order := []string{plain, armed}
			if r%2 == 1 {
				order = []string{armed, plain}
			}
			for _, cg := range order {
				d, err := loop.fn(cg)
				if err != nil {
					return err
				}
				if cg == plain {
					tp = append(tp, d)
				} else {
					ta = append(ta, d)
				}
			}
		}
		mp, ma := median(tp), median(ta)
		// Also the median of each repetition's own ratio, which a
		// load spike on this shared machine skews less.
		ratios := make([]time.Duration, len(tp))
		for i := range tp {
			ratios[i] = time.Duration(float64(ta[i]) / float64(tp[i]) * 1e6)
		}
		fmt.Printf("%-8s plain %10v  enforced %10v  ratio of medians %.3f  median of ratios %.3f\n",
			loop.name, mp, ma, float64(ma)/float64(mp), float64(median(ratios))/1e6)
		if loop.name == "getppid" {
			per := func(d time.Duration) float64 { return float64(d) / syscallsPerRep }
			fmt.Printf("getppid  ns/call: no engine %.1f (measured first)  engine, plain cgroup %.1f  engine, armed cgroup %.1f\n",
				per(median(bare)), per(mp), per(ma))
		}
	}
	if err := ingressCost(self, armed, echo.LocalAddr().String(), resolver != nil, packets); err != nil {
		return err
	}
	if slices.Contains(only, "udprecv") {
		if err := recvCost(armed, func() error { _, err := recvLoopIn(armed); return err }); err != nil {
			return err
		}
	}
	lost, err := engine.Lost()
	if err != nil {
		return err
	}
	fmt.Printf("lost events: %d\n", lost)
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// dnsBenchAddr is the bench's DNS server; dnsQuery asks it for
// bench.example.com (A), hex-encoded.
const (
	dnsBenchAddr = "127.0.0.153:53"
	dnsQuery     = "beef01000001000000000000" + "0562656e6368076578616d706c6503636f6d00" + "00010001"
)

// dnsAnswer answers the bench's query q with one A record, 127.0.0.1.
func dnsAnswer(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	r := append([]byte{}, q...)
	r[2], r[3], r[7] = 0x81, 0x80, 1 // response, recursion; one answer
	return append(r, 0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 127, 0, 0, 1)
}

// answerUDP replies to every datagram on c with answer(datagram).
func answerUDP(c net.PacketConn, answer func([]byte) []byte) {
	buf := make([]byte, 4096)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		if r := answer(buf[:n]); r != nil {
			c.WriteTo(r, from)
		}
	}
}

// ingressCost prints what the armed cgroup's ingress program costs per
// packet, from the kernel's BPF run-time statistics (enabled while it
// runs): n UDP echo replies (a normal packet), then n DNS answers.
func ingressCost(self, cg, echo string, dns bool, n int) error {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return fmt.Errorf("enable BPF statistics: %w", err)
	}
	defer stats.Close()
	prog, err := ingressProgram(cg)
	if err != nil {
		return err
	}
	defer prog.Close()
	type loop struct{ name, addr, msg string }
	loops := []loop{{"udp echo", echo, "6869"}}
	if dns {
		loops = append(loops, loop{"dns answer", dnsBenchAddr, dnsQuery})
	}
	for _, l := range loops {
		before, err := prog.Stats()
		if err != nil {
			return fmt.Errorf("ingress statistics: %w", err)
		}
		if _, err := timedChild(self, cg, fmt.Sprintf("%s=%s %d %s", udpEnv, l.addr, n, l.msg)); err != nil {
			return err
		}
		after, err := prog.Stats()
		if err != nil {
			return fmt.Errorf("ingress statistics: %w", err)
		}
		runs := after.RunCount - before.RunCount
		if runs == 0 {
			return fmt.Errorf("ingress program did not run for %s", l.name)
		}
		fmt.Printf("ingress  %-10s %d packets, %.0f ns/packet in the program\n", l.name, runs,
			float64(after.Runtime-before.Runtime)/float64(runs))
	}
	return nil
}

// ingressProgram opens the cgroup_skb/ingress program attached to cg.
func ingressProgram(cg string) (*ebpf.Program, error) {
	return cgroupProgram(cg, ebpf.AttachCGroupInetIngress)
}

// cgroupProgram opens the program of attach type typ attached to cg.
func cgroupProgram(cg string, typ ebpf.AttachType) (*ebpf.Program, error) {
	f, err := os.Open(cg)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	q, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: typ})
	if err != nil {
		return nil, fmt.Errorf("query %s program of %s: %w", typ, cg, err)
	}
	if len(q.Programs) != 1 {
		return nil, fmt.Errorf("%s has %d %s programs, want 1", cg, len(q.Programs), typ)
	}
	return ebpf.NewProgramFromID(q.Programs[0].ID)
}

// receivePrograms names the UDP receive check's global programs.
var receivePrograms = []string{"on_skb_recv_udp", "on_sock_recv_length"}

// recvCost prints what the programs a UDP receive in cgroup cg runs cost
// per call, from the kernel's BPF run-time statistics while loop runs:
// the ingress program, the recvmsg4 program (tracing backend) and the
// global receive check.
func recvCost(cg string, loop func() error) error {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return fmt.Errorf("enable BPF statistics: %w", err)
	}
	defer stats.Close()
	progs := map[string]*ebpf.Program{}
	defer func() {
		for _, p := range progs {
			p.Close()
		}
	}()
	if progs["ingress"], err = ingressProgram(cg); err != nil {
		return err
	}
	if p, err := cgroupProgram(cg, ebpf.AttachCGroupUDP4Recvmsg); err == nil {
		progs["recvmsg4"] = p
	}
	for id, err := ebpf.ProgramID(0), error(nil); ; {
		if id, err = ebpf.ProgramGetNextID(id); err != nil {
			break
		}
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if info, err := p.Info(); err == nil && slices.Contains(receivePrograms, info.Name) && progs[info.Name] == nil {
			progs[info.Name] = p
			continue
		}
		p.Close()
	}
	before := map[string]*ebpf.ProgramStats{}
	for name, p := range progs {
		if before[name], err = p.Stats(); err != nil {
			return fmt.Errorf("%s statistics: %w", name, err)
		}
	}
	if err := loop(); err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(progs))
	for _, name := range names {
		after, err := progs[name].Stats()
		if err != nil {
			return fmt.Errorf("%s statistics: %w", name, err)
		}
		runs := after.RunCount - before[name].RunCount
		if runs == 0 {
			fmt.Printf("udprecv  %-16s did not run\n", name)
			continue
		}
		fmt.Printf("udprecv  %-16s %d runs, %.0f ns/run in the program\n", name, runs,
			float64(after.Runtime-before[name].Runtime)/float64(runs))
	}
	return nil
}

// benchPolicy is a 20-node policy: the bench binary and sh as roots; sh has
// 17 children that never match and `true`, checked last. The bench may
// reach its echo and DNS servers (UDP), bench.example.com, and benchName
// on namePort, and receive on recvPort from 127.0.0.1.
func benchPolicy(box, self string, port, echo, namePort, recvPort int) *policy.Spec {
	sh := policy.ProcessNode{Name: "sh", Exe: []string{box}, ID: "sh_0", Euser: []string{"root"}}
	for i := 0; i < 17; i++ {
		sh.Children = append(sh.Children, policy.ProcessNode{
			Name: fmt.Sprintf("tool%d", i), Exe: []string{fmt.Sprintf("/usr/lib/tool%d/bin/*", i)}, ID: fmt.Sprintf("tool_%d", i)})
	}
	sh.Children = append(sh.Children, policy.ProcessNode{Name: "true", Exe: []string{box}, ID: "true_0"})
	spec := &policy.Spec{ProcessPolicy: []policy.ProcessNode{
		{Name: "*", Exe: []string{self}, ID: "bench_0", Euser: []string{"root"}}, sh,
	}}
	spec.NetworkPolicy = &policy.NetworkPolicy{Egress: []policy.NetworkRule{
		{To: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}}},
			Ports: []policy.Port{{Port: 443, Protocol: "TCP"}}},
		{To: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "192.168.0.0/16"}}}, Ports: []policy.Port{{Port: 53, Protocol: "UDP"}}},
		{To: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.0.0.0/8"}}},
			Ports:     []policy.Port{{Port: port, Protocol: "TCP"}, {Port: echo, Protocol: "UDP"}, {Port: 53, Protocol: "UDP"}, {Port: recvPort, Protocol: "UDP"}},
			Processes: []string{"bench_0"}},
		{To: []policy.Peer{{DNSSelector: []string{"bench.example.com"}}}, Ports: []policy.Port{{Port: 443, Protocol: "TCP"}}},
		{To: []policy.Peer{{DNSSelector: []string{"*.example.org"}}, {DNSSelector: []string{benchName}}},
			Ports: []policy.Port{{Port: namePort, Protocol: "TCP"}}, Processes: []string{"bench_0"}},
	}, Ingress: []policy.NetworkRule{
		{From: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.0.0.1/32"}}},
			Ports: []policy.Port{{Port: recvPort, Protocol: "UDP"}}, Processes: []string{"bench_0"}},
	}}
	return spec
}
