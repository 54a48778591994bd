package bpf

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/bulwarkhq/bulwark/policy"
)

func init() {
	netHelpers["resolve"] = resolveHelper
}

// resolveHelper looks a name up and connects to the answer at once, as an
// application does after getaddrinfo: "resolve SERVER NAME A|AAAA
// udp|tcp|udp-unconnected FALLBACK PORT N", N times (a %d in NAME is the
// round's number); FALLBACK is the
// address dialled when the answer has none (or does not parse); PORT 0
// only looks up. It exits helperOK when every connection succeeded, else
// with the first failure.
func resolveHelper(args []string) int {
	server, name, qtype, network, fallback, port := args[0], args[1], dns.StringToType[args[2]], args[3], args[4], args[5]
	n, _ := strconv.Atoi(args[6])
	for i := range n {
		addr := fallback
		if ip := lookup(server, strings.ReplaceAll(name, "%d", strconv.Itoa(i)), qtype, network); ip != nil {
			addr = ip.String()
		}
		if port == "0" {
			continue
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, port), 2*time.Second)
		if err != nil {
			return statusOf(err)
		}
		c.Close()
	}
	return helperOK
}

// lookup asks server for name's records of qtype and returns the first
// address the answer holds, whatever its owner (nil: none).
func lookup(server, name string, qtype uint16, network string) net.IP {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	var r *dns.Msg
	var err error
	if network == "udp-unconnected" {
		r, err = exchangeUnconnected(q, server)
	} else {
		c := dns.Client{Net: network, Timeout: 2 * time.Second}
		r, _, err = c.Exchange(q, server)
	}
	if err != nil {
		return nil
	}
	for _, rr := range r.Answer {
		switch a := rr.(type) {
		case *dns.A:
			return a.A
		case *dns.AAAA:
			return a.AAAA
		}
	}
	return nil
}

// exchangeUnconnected sends q from an unconnected UDP socket (sendto),
// so the answer reaches the socket by the peer it sent to.
func exchangeUnconnected(q *dns.Msg, server string) (*dns.Msg, error) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer c.Close()
	to, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, err
	}
	b, err := q.Pack()
	if err != nil {
		return nil, err
	}
	if _, err := c.WriteTo(b, to); err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4096)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		return nil, err
	}
	r := new(dns.Msg)
	return r, r.Unpack(buf[:n])
}

// testZone is what the test DNS server answers: name -> records (in the
// order given), or a raw reply built from the query.
type testZone struct {
	records map[string][]dns.RR
	raw     map[string]func(q *dns.Msg) []byte
}

// serveDNS starts a DNS server (miekg/dns, UDP and TCP) on port 53 of a
// random 127/8 address; it stops when the test ends.
func serveDNS(t *testing.T, z testZone) string {
	t.Helper()
	var b [2]byte
	rand.Read(b[:])
	addr := fmt.Sprintf("127.53.%d.%d:53", b[0], b[1]%254+1)
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		name := strings.ToLower(q.Question[0].Name)
		if f, ok := z.raw[name]; ok {
			w.Write(f(q))
			return
		}
		r := new(dns.Msg)
		r.SetReply(q)
		for _, rr := range z.records[name] {
			if rr.Header().Rrtype == q.Question[0].Qtype || rr.Header().Rrtype == dns.TypeCNAME {
				r.Answer = append(r.Answer, rr)
			}
		}
		w.WriteMsg(r)
	})
	for _, network := range []string{"udp", "tcp"} {
		started := make(chan error, 1)
		srv := &dns.Server{Addr: addr, Net: network, Handler: h, NotifyStartedFunc: func() { started <- nil }}
		go func() { started <- srv.ListenAndServe() }()
		if err := <-started; err != nil {
			t.Skipf("DNS server on %s/%s: %v", addr, network, err)
		}
		t.Cleanup(func() { srv.Shutdown() })
	}
	return addr
}

func rr(t *testing.T, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// loopReply answers q with one A record whose owner is a compression
// pointer to itself: a name that never ends.
func loopReply(q *dns.Msg) []byte {
	r := new(dns.Msg)
	r.SetReply(q)
	b, _ := r.Pack()
	b[7] = 1 // ancount
	self := len(b)
	b = append(b, 0xc0|byte(self>>8), byte(self))
	b = binary.BigEndian.AppendUint16(b, dns.TypeA)
	b = binary.BigEndian.AppendUint16(b, dns.ClassINET)
	b = binary.BigEndian.AppendUint32(b, 300)
	b = binary.BigEndian.AppendUint16(b, 4)
	return append(b, 127, 0, 0, 30)
}

func TestDNSSelector(t *testing.T) {
	e, _ := openTestEngineWith(t, Options{DNSTTLFloor: time.Second})
	// One listener per name, so each name's address is its own.
	addrs := map[string]string{}
	var port int
	for i, name := range []string{"allowed", "other", "glob", "alias", "short", "stray", "loop", "tcp", "udp"} {
		a := fmt.Sprintf("127.0.0.%d", 10+i)
		addrs[name] = a
		l, err := net.Listen("tcp4", net.JoinHostPort(a, strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		port = l.Addr().(*net.TCPAddr).Port
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	port6 := listen(t, "tcp6", fmt.Sprintf("[::1]:%d", port))
	if port6 != port {
		t.Fatalf("[::1] listener on %d, want %d", port6, port)
	}
	a := func(name, addr string, ttl int) dns.RR {
		return rr(t, fmt.Sprintf("%s %d IN A %s", name, ttl, addr))
	}
	server := serveDNS(t, testZone{
		records: map[string][]dns.RR{
			"allowed.test.":  {a("allowed.test.", addrs["allowed"], 300)},
			"other.test.":    {a("other.test.", addrs["other"], 300)},
			"www.glob.test.": {a("www.glob.test.", addrs["glob"], 300)},
			"short.test.":    {a("short.test.", addrs["short"], 1)},
			"tcp.test.":      {a("tcp.test.", addrs["tcp"], 300)},
			"udp.test.":      {a("udp.test.", addrs["udp"], 300)},
			"v6.test.":       {rr(t, "v6.test. 300 IN AAAA ::1")},
			"stray.test.":    {a("elsewhere.test.", addrs["stray"], 300)},
			"alias.test.": {rr(t, "alias.test. 300 IN CNAME mid.example."),
				rr(t, "mid.example. 300 IN CNAME edge.example."), a("edge.example.", addrs["alias"], 300)},
		},
		raw: map[string]func(*dns.Msg) []byte{"loop.test.": loopReply},
	})
	spec := helperSpec(t)
	spec.NetworkPolicy = &policy.NetworkPolicy{Egress: []policy.NetworkRule{
		{To: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.53.0.0/16"}}}, Ports: []policy.Port{{Port: 53, Protocol: "UDP"}, {Port: 53, Protocol: "TCP"}}},
		{To: []policy.Peer{{DNSSelector: []string{"Allowed.Test.", "*.glob.test", "alias.test", "short.test", "v6.test", "stray.test", "loop.test", "tcp.test", "udp.test"}}},
			Ports: []policy.Port{{Port: port, Protocol: "TCP"}}},
	}}
	c := mustCompile(t, spec)
	if len(c.Warnings) != 0 {
		t.Fatalf("warnings %q", c.Warnings)
	}
	cg, other, observed := testCgroup(t), testCgroup(t), testCgroup(t)
	ev := collect(t, e)
	id, err := e.Apply(cg, c, ModeEnforce)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(other, c, ModeEnforce); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(observed, nil, ModeObserve); err != nil {
		t.Fatal(err)
	}
	p := strconv.Itoa(port)
	resolve := func(cg, name, qtype, network, fallback string, n int) int {
		return helper(t, cg, fmt.Sprintf("resolve %s %s %s %s %s %s %d", server, name, qtype, network, fallback, p, n))
	}
	connect := func(cg, addr string) int {
		return helper(t, cg, "connect tcp "+net.JoinHostPort(addr, p))
	}

	// Before any lookup the address is no one's.
	if got := connect(cg, addrs["allowed"]); got != helperEPERM {
		t.Errorf("connect to allowed.test's address without a lookup: %d, want EPERM", got)
	}
	// Resolve, connect at once, many times: never denied.
	if got := resolve(cg, "allowed.test", "A", "udp", addrs["other"], 200); got != helperOK {
		t.Errorf("200 lookups of allowed.test, each connected at once: %d, want all allowed", got)
	}
	if got := connect(cg, addrs["allowed"]); got != helperOK {
		t.Errorf("connect to allowed.test's address after its lookup: %d", got)
	}
	// Another workload's lookups grant it nothing.
	if got := connect(other, addrs["allowed"]); got != helperEPERM {
		t.Errorf("other workload: %d, want EPERM", got)
	}
	cases := []struct {
		what, name, qtype, network, fallback string
		want                                 int
	}{
		{"a name outside the policy", "other.test", "A", "udp", addrs["other"], helperEPERM},
		{"a glob", "WWW.Glob.Test", "A", "udp", addrs["other"], helperOK},
		{"a CNAME chain", "alias.test", "A", "udp", addrs["other"], helperOK},
		{"AAAA", "v6.test", "AAAA", "udp", "::2", helperOK},
		{"TCP DNS", "tcp.test", "A", "tcp", addrs["other"], helperOK},
		{"unconnected UDP", "udp.test", "A", "udp-unconnected", addrs["other"], helperOK},
		{"an answer record of another owner", "stray.test", "A", "udp", addrs["other"], helperEPERM},
		{"a compression pointer loop", "loop.test", "A", "udp", addrs["loop"], helperEPERM},
	}
	for _, tc := range cases {
		if got := resolve(cg, tc.name, tc.qtype, tc.network, tc.fallback, 1); got != tc.want {
			t.Errorf("%s (%s): %d, want %d", tc.what, tc.name, got, tc.want)
		}
	}
	// The v6 grant is the workload's; the other has none.
	if got := helper(t, other, fmt.Sprintf("connect tcp6 [::1]:%s", p)); got != helperEPERM {
		t.Errorf("other workload to [::1]: %d, want EPERM", got)
	}
	_, byCgroup, err := e.Losses()
	if err != nil {
		t.Fatal(err)
	}
	if byCgroup[id].DNS == 0 {
		t.Errorf("the looping answer was not counted: losses %+v", byCgroup[id])
	}
	// TTL expiry: 1 s (the floor here), then denied again.
	if got := resolve(cg, "short.test", "A", "udp", addrs["other"], 1); got != helperOK {
		t.Fatalf("short.test: %d", got)
	}
	time.Sleep(2 * time.Second)
	if got := connect(cg, addrs["short"]); got != helperEPERM {
		t.Errorf("short.test's address after its TTL: %d, want EPERM", got)
	}
	// The same name looked up again renews its grant in place.
	if got := resolve(cg, "short.test", "A", "udp", addrs["other"], 1); got != helperOK {
		t.Errorf("short.test looked up again after its TTL: %d, want allowed", got)
	}
	// A new policy matches the grants again: without the name, its
	// address is denied; with it back, allowed without a new lookup.
	// Disarming the workload drops its grants.
	narrowed := helperSpec(t)
	narrowed.NetworkPolicy = &policy.NetworkPolicy{Egress: []policy.NetworkRule{
		{To: []policy.Peer{{DNSSelector: []string{"other.test"}}}, Ports: []policy.Port{{Port: port, Protocol: "TCP"}}}}}
	for _, step := range []struct {
		spec *policy.Spec
		want int
	}{{narrowed, helperEPERM}, {spec, helperOK}} {
		if _, err := e.Apply(cg, mustCompile(t, step.spec), ModeEnforce); err != nil {
			t.Fatal(err)
		}
		if got := connect(cg, addrs["allowed"]); got != step.want {
			t.Errorf("allowed.test's address after a policy change: %d, want %d", got, step.want)
		}
	}
	if err := e.Remove(id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(cg, c, ModeEnforce); err != nil {
		t.Fatal(err)
	}
	if got := connect(cg, addrs["allowed"]); got != helperEPERM {
		t.Errorf("allowed.test's address after disarming and arming again: %d, want EPERM", got)
	}
	// Events name what the workload resolved: deviations in enforce,
	// observations in observe mode (learning).
	dev := ev.wait(t, "named deviation", func(x Event) bool {
		return x.Kind == KindConnect && x.Deviation && x.DNSName == "other.test"
	})
	if !dev.Blocked || dev.Dst.Addr().String() != addrs["other"] || dev.Exe != "" {
		t.Errorf("deviation %+v", dev)
	}
	// Its repeats are counted under the key the event carries (the
	// kernel's hash of the name is Go's; the grants went with the
	// disarm above).
	resolve(cg, "other.test", "A", "udp", addrs["other"], 1)
	for range 2 {
		connect(cg, addrs["other"])
	}
	reps, err := e.DrainRepeats()
	if err != nil {
		t.Fatal(err)
	}
	counted := false
	for _, r := range reps {
		counted = counted || (r.Key == dev.Key && r.Count >= 2)
	}
	if !counted {
		t.Errorf("no repeats counted under the named deviation's key: %+v", reps)
	}
	if got := resolve(observed, "www.glob.test", "A", "udp", addrs["other"], 1); got != helperOK {
		t.Errorf("observed workload: %d", got)
	}
	obs := ev.wait(t, "named observation", func(x Event) bool {
		return x.Kind == KindConnect && x.DNSName == "www.glob.test"
	})
	if obs.Deviation || obs.Dst.Addr().String() != addrs["glob"] {
		t.Errorf("observation %+v", obs)
	}
	for _, x := range ev.drain(200 * time.Millisecond) {
		if x.Kind == KindConnect && x.DNSName != "" && x.Dst.Addr().String() != addrs[strings.SplitN(x.DNSName, ".", 2)[0]] && x.DNSName != "www.glob.test" && x.DNSName != "v6.test" {
			t.Errorf("event names %q for %s", x.DNSName, x.Dst)
		}
	}
}

// serveSplitTCP answers DNS over TCP on addr (port 53) with answer, its
// length prefix and first bytes in one segment and the rest in another.
func serveSplitTCP(t *testing.T, addr string, answer func(q *dns.Msg) []byte) {
	t.Helper()
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Skipf("DNS server on %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetNoDelay(true)
			var n [2]byte
			q := new(dns.Msg)
			buf := make([]byte, 512)
			if _, err := c.Read(n[:]); err == nil {
				if k, err := c.Read(buf[:binary.BigEndian.Uint16(n[:])]); err == nil && q.Unpack(buf[:k]) == nil {
					r := answer(q)
					c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(r))), r[:10]...))
					time.Sleep(50 * time.Millisecond)
					c.Write(r[10:])
				}
			}
			c.Close()
		}
	}()
}

func TestDNSSplitAndFlood(t *testing.T) {
	e, _ := openTestEngineWith(t, Options{})
	port := listen(t, "tcp4", "127.0.0.40:0")
	p := strconv.Itoa(port)
	zone := testZone{records: map[string][]dns.RR{"kept.test.": {rr(t, "kept.test. 300 IN A 127.0.0.40")}}}
	// flood-N.test: 32 addresses each, 40 names: more than a workload's
	// 1024 grants.
	for i := range 40 {
		name := fmt.Sprintf("flood-%d.test.", i)
		for j := range 32 {
			zone.records[name] = append(zone.records[name], rr(t, fmt.Sprintf("%s 300 IN A 127.1.%d.%d", name, i, j+1)))
		}
	}
	server := serveDNS(t, zone)
	host, _, _ := net.SplitHostPort(server)
	ip := net.ParseIP(host).To4()
	split := fmt.Sprintf("127.53.%d.%d:53", ip[2], ip[3]^1)
	serveSplitTCP(t, split, func(q *dns.Msg) []byte {
		r := new(dns.Msg)
		r.SetReply(q)
		r.Answer = append(r.Answer, rr(t, "split.test. 300 IN A 127.0.0.40"))
		b, _ := r.Pack()
		return b
	})
	spec := helperSpec(t)
	spec.NetworkPolicy = &policy.NetworkPolicy{Egress: []policy.NetworkRule{
		{To: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.53.0.0/16"}}}, Ports: []policy.Port{{Port: 53, Protocol: "UDP"}, {Port: 53, Protocol: "TCP"}}},
		{To: []policy.Peer{{DNSSelector: []string{"kept.test", "split.test"}}}, Ports: []policy.Port{{Port: port, Protocol: "TCP"}}},
	}}
	c := mustCompile(t, spec)
	cg, flooder := testCgroup(t), testCgroup(t)
	id, err := e.Apply(cg, c, ModeEnforce)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(flooder, c, ModeEnforce); err != nil {
		t.Fatal(err)
	}
	// A DNS message split across TCP segments grants nothing, and is
	// counted.
	if got := helper(t, cg, fmt.Sprintf("resolve %s split.test A tcp 127.0.0.40 %s 1", split, p)); got != helperEPERM {
		t.Errorf("answer split across TCP segments: %d, want EPERM", got)
	}
	_, byCgroup, err := e.Losses()
	if err != nil {
		t.Fatal(err)
	}
	if byCgroup[id].DNS == 0 {
		t.Errorf("the split answer was not counted: %+v", byCgroup[id])
	}
	if got := helper(t, cg, fmt.Sprintf("resolve %s kept.test A udp 127.0.0.2 %s 1", server, p)); got != helperOK {
		t.Fatalf("kept.test: %d", got)
	}
	// Another workload's flood of answers leaves this one's grant.
	if got := helper(t, flooder, fmt.Sprintf("resolve %s flood-%%d.test A udp 127.0.0.2 0 40", server)); got != helperOK {
		t.Fatalf("flood: %d", got)
	}
	if got := helper(t, cg, "connect tcp 127.0.0.40:"+p); got != helperOK {
		t.Errorf("kept.test after another workload's flood: %d, want allowed", got)
	}
}
