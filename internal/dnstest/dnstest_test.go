package dnstest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

func start(t *testing.T) *Server {
	t.Helper()
	s, err := StartLoopback()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Add(
		"api.example.test. 120 IN A 127.0.0.7",
		"api.example.test. 120 IN AAAA ::1",
		"www.example.test. 300 IN CNAME edge.example.test.",
		"edge.example.test. 30 IN CNAME api.example.test.",
		"loop.example.test. 30 IN CNAME loop.example.test.",
	); err != nil {
		t.Fatal(err)
	}
	return s
}

// exchange asks s one question directly, over UDP or TCP.
func exchange(t *testing.T, s *Server, name string, qtype uint16, net string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: net}
	r, _, err := c.Exchange(m, s.Addr.String())
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], net, err)
	}
	return r
}

func TestAnswers(t *testing.T) {
	s := start(t)
	for _, proto := range []string{"udp", "tcp"} {
		r := exchange(t, s, "WWW.Example.Test.", dns.TypeA, proto)
		var got []string
		for _, rr := range r.Answer {
			got = append(got, strings.ReplaceAll(rr.String(), "\t", " "))
		}
		want := []string{
			"www.example.test. 300 IN CNAME edge.example.test.",
			"edge.example.test. 30 IN CNAME api.example.test.",
			"api.example.test. 120 IN A 127.0.0.7",
		}
		if !slices.Equal(got, want) || r.Rcode != dns.RcodeSuccess {
			t.Errorf("%s: rcode %d answer\n%s\nwant\n%s", proto, r.Rcode, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if r := exchange(t, s, "api.example.test.", dns.TypeAAAA, proto); len(r.Answer) != 1 || r.Answer[0].(*dns.AAAA).AAAA.String() != "::1" {
			t.Errorf("%s AAAA: %v", proto, r.Answer)
		}
		if r := exchange(t, s, "nowhere.example.test.", dns.TypeA, proto); r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
			t.Errorf("%s unknown name: rcode %d, %v", proto, r.Rcode, r.Answer)
		}
		// A CNAME loop ends after maxChain links.
		if r := exchange(t, s, "loop.example.test.", dns.TypeA, proto); len(r.Answer) != maxChain {
			t.Errorf("%s CNAME loop: %d records, want %d", proto, len(r.Answer), maxChain)
		}
	}
	// Answers are compressed, as real servers' are: what the server
	// sent is shorter than the same message packed without compression.
	q := new(dns.Msg)
	q.SetQuestion("www.example.test.", dns.TypeA)
	wire, _ := q.Pack()
	conn, err := net.Dial("udp", s.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	if _, err := conn.Write(wire); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var r dns.Msg
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	r.Compress = false
	if full, _ := r.Pack(); n >= len(full) {
		t.Errorf("answer of %d bytes, %d uncompressed: not compressed", n, len(full))
	}
	// A mangled answer: the owner's pointer loops, which no parser
	// follows (miekg's refuses it).
	s.Mangle("api.example.test", SelfPointer)
	c := &dns.Client{}
	q.SetQuestion("api.example.test.", dns.TypeA)
	if r, _, err := c.Exchange(q, s.Addr.String()); err == nil {
		t.Errorf("a self-pointing answer unpacked: %v", r)
	}
	s.Mangle("api.example.test", nil)
	if r := exchange(t, s, "api.example.test.", dns.TypeA, "tcp"); len(r.Answer) != 1 {
		t.Errorf("answer after Mangle(nil): %v", r.Answer)
	}
	s.Remove("api.example.test")
	if r := exchange(t, s, "api.example.test.", dns.TypeA, "udp"); r.Rcode != dns.RcodeNameError {
		t.Errorf("removed name: rcode %d", r.Rcode)
	}
	if err := s.Add("bad record"); err == nil {
		t.Error("Add accepted a record that does not parse")
	}
	qs := s.Queries()
	if len(qs) < 5 || qs[0] != (Query{Name: "www.example.test.", Type: dns.TypeA}) ||
		qs[4] != (Query{Name: "www.example.test.", Type: dns.TypeA, TCP: true}) {
		t.Errorf("queries %+v", qs)
	}
}

// getent runs getent in the private resolver namespace of resolvConf.
func getent(t *testing.T, resolvConf string, args ...string) string {
	t.Helper()
	var out []byte
	err := InResolver(resolvConf, func() error {
		var err error
		out, err = exec.Command("getent", args...).CombinedOutput()
		return err
	})
	if err != nil {
		t.Fatalf("getent %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestResolverUsesServer resolves through the system's resolver (glibc,
// via getent) in InResolver, over UDP, over TCP asked for (use-vc) and
// over TCP after a truncated UDP answer, and checks that the host's
// /etc/resolv.conf did not change.
func TestResolverUsesServer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a mount namespace")
	}
	if _, err := exec.LookPath("getent"); err != nil {
		t.Skip("needs getent")
	}
	host, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	s := start(t)
	udp, err := s.ResolvConf(t.TempDir(), "attempts:1")
	if err != nil {
		t.Fatal(err)
	}
	if out := getent(t, udp, "ahostsv4", "www.example.test"); !strings.Contains(out, "127.0.0.7") {
		t.Errorf("ahostsv4 www.example.test:\n%s", out)
	}
	if out := getent(t, udp, "ahostsv6", "api.example.test"); !strings.Contains(out, "::1") {
		t.Errorf("ahostsv6 api.example.test:\n%s", out)
	}
	tcp, err := s.ResolvConf(t.TempDir(), "use-vc")
	if err != nil {
		t.Fatal(err)
	}
	before := len(s.Queries())
	if out := getent(t, tcp, "ahostsv4", "api.example.test"); !strings.Contains(out, "127.0.0.7") {
		t.Errorf("over TCP:\n%s", out)
	}
	for _, q := range s.Queries()[before:] {
		if !q.TCP {
			t.Errorf("use-vc asked over UDP: %+v", q)
		}
	}
	s.TruncateUDP(true)
	before = len(s.Queries())
	if out := getent(t, udp, "ahostsv4", "api.example.test"); !strings.Contains(out, "127.0.0.7") {
		t.Errorf("after a truncated answer:\n%s", out)
	}
	if qs := s.Queries()[before:]; !slices.ContainsFunc(qs, func(q Query) bool { return q.TCP }) {
		t.Errorf("no TCP retry after truncation: %+v", qs)
	}
	if after, err := os.ReadFile("/etc/resolv.conf"); err != nil || string(after) != string(host) {
		t.Errorf("the host's /etc/resolv.conf changed: %q, %v", after, err)
	}
}

// rootMount is the mount id of the process's root as /proc/self/root
// shows it: the main thread's.
func rootMount(t *testing.T) uint64 {
	t.Helper()
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, "/proc/self/root", 0, unix.STATX_MNT_ID, &st); err != nil {
		t.Fatal(err)
	}
	return st.Mnt_id
}

// TestInResolverLeavesProcessRoot runs InResolver many times at once: the
// process's root (the main thread's, which never exits) stays the host's,
// so code that reads /proc/PID/root afterwards is not misled.
func TestInResolverLeavesProcessRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates mount namespaces")
	}
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 127.53.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := rootMount(t)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			err := InResolver(conf, func() error {
				b, err := os.ReadFile("/etc/resolv.conf")
				if err == nil && !strings.Contains(string(b), "127.53.0.1") {
					err = fmt.Errorf("resolv.conf in the namespace: %q", b)
				}
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if after := rootMount(t); after != before {
		t.Fatalf("the process's root mount changed from %d to %d", before, after)
	}
}
