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
// udp|tcp|udp-unconnected FALLBACK PORT N", N times; FALLBACK is the
// address dialled when the answer has none (or does not parse). It exits
// helperOK when every connection succeeded, else with the first failure.
func resolveHelper(args []string) int {
	server, name, qtype, network, fallback, port := args[0], args[1], dns.StringToType[args[2]], args[3], args[4], args[5]
	n, _ := strconv.Atoi(args[6])
	for range n {
		addr := fallback
		if ip := lookup(server, name, qtype, network); ip != nil {
			addr = ip.String()
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
	// Events name what the workload resolved: deviations in enforce,
	// observations in observe mode (learning).
	dev := ev.wait(t, "named deviation", func(x Event) bool {
		return x.Kind == KindConnect && x.Deviation && x.DNSName == "other.test"
	})
	if !dev.Blocked || dev.Dst.Addr().String() != addrs["other"] || dev.Exe != "" {
		t.Errorf("deviation %+v", dev)
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
