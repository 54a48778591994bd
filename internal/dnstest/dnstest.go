// Package dnstest is a DNS server for Bulwark's tests and benchmarks, and a
// way to point a test workload's resolver at it without touching the host's
// /etc/resolv.conf.
//
// A Server answers A, AAAA and CNAME queries from records given in zone
// file syntax, over UDP and TCP on one address, following CNAME chains
// within its records the way a recursive resolver returns them (the chain,
// then the addresses). Answers use name compression, as real servers' do.
// InResolver runs a function in a private mount namespace where
// /etc/resolv.conf is another file, so the programs it starts (glibc's
// resolver, curl, getent) ask the Server.
package dnstest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// maxChain bounds the CNAME chain a Server follows for one answer.
const maxChain = 8

// Query is one question a Server answered.
type Query struct {
	Name string // lower case, fully qualified (trailing dot)
	Type uint16 // dns.TypeA, dns.TypeAAAA, ...
	TCP  bool   // asked over TCP
}

// Server is a running DNS server. Its methods are safe for concurrent use.
type Server struct {
	// Addr is where it listens, over UDP and TCP.
	Addr netip.AddrPort

	udp, tcp *dns.Server

	mu       sync.Mutex
	records  map[string][]dns.RR // lower-case owner name → its records
	mangle   map[string]func([]byte) []byte
	queries  []Query
	truncate bool
}

// Start starts a Server on addr ("ip:port"; port 0 picks one free for
// both UDP and TCP). Close stops it.
func Start(addr string) (*Server, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dnstest: address %q: %w", addr, err)
	}
	var lastErr error
	for range 20 {
		s, err := listen(ap)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if ap.Port() != 0 {
			break // a fixed port: retrying cannot help
		}
	}
	return nil, lastErr
}

// StartLoopback starts a Server on port 53 (the only port resolv.conf can
// name) of a random address in 127.53.0.0/16, so tests running at the same
// time, and a resolver on 127.0.0.1 or 127.0.0.53, do not collide.
func StartLoopback() (*Server, error) {
	var lastErr error
	for range 20 {
		a := netip.AddrFrom4([4]byte{127, 53, byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
		s, err := listen(netip.AddrPortFrom(a, 53))
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// listen opens the UDP socket, then TCP on the same port, and serves both.
func listen(ap netip.AddrPort) (*Server, error) {
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("dnstest: %w", err)
	}
	bound := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(bound))
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("dnstest: %w", err)
	}
	s := &Server{Addr: bound, records: map[string][]dns.RR{}, mangle: map[string]func([]byte) []byte{}}
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)}
	s.tcp = &dns.Server{Listener: l, Handler: dns.HandlerFunc(s.serve)}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
	}
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error {
	return errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
}

// Add adds records in zone file syntax, one per string, such as
// "api.example.test. 60 IN A 127.0.0.1" or
// "www.example.test. 300 IN CNAME api.example.test.". Names are
// case-insensitive; a name without a trailing dot is taken as fully
// qualified. Nothing is added when one record does not parse.
func (s *Server) Add(records ...string) error {
	rrs := make([]dns.RR, 0, len(records))
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			return fmt.Errorf("dnstest: record %q: %w", r, err)
		}
		if rr == nil {
			return fmt.Errorf("dnstest: record %q: empty", r)
		}
		rrs = append(rrs, rr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range rrs {
		name := strings.ToLower(dns.Fqdn(rr.Header().Name))
		s.records[name] = append(s.records[name], rr)
	}
	return nil
}

// Remove deletes every record of name.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, strings.ToLower(dns.Fqdn(name)))
}

// Mangle makes the server send f(answer) instead of the answer to
// questions for name: the packed message, to be broken on purpose
// (f(nil) is never called). nil f stops it.
func (s *Server) Mangle(name string, f func(msg []byte) []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == nil {
		delete(s.mangle, strings.ToLower(dns.Fqdn(name)))
		return
	}
	s.mangle[strings.ToLower(dns.Fqdn(name))] = f
}

// TruncateUDP makes answers over UDP empty and truncated (the TC bit), so
// resolvers retry over TCP; false (the default) answers over UDP in full.
func (s *Server) TruncateUDP(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncate = on
}

// Queries returns the questions answered so far, in order.
func (s *Server) Queries() []Query {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Query(nil), s.queries...)
}

// serve answers one query: the records of the question's type at its
// name, reached through a CNAME chain of at most maxChain links (the
// chain is part of the answer); NXDOMAIN when the name has no record.
func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative, m.RecursionAvailable, m.Compress = true, true, true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	name := strings.ToLower(q.Name)

	s.mu.Lock()
	s.queries = append(s.queries, Query{Name: name, Type: q.Qtype, TCP: tcp})
	mangle := s.mangle[name]
	if s.truncate && !tcp {
		s.mu.Unlock()
		m.Truncated = true
		w.WriteMsg(m)
		return
	}
	if _, ok := s.records[name]; !ok {
		m.Rcode = dns.RcodeNameError
	}
	for range maxChain {
		var cname *dns.CNAME
		found := false
		for _, rr := range s.records[name] {
			switch {
			case rr.Header().Rrtype == q.Qtype:
				m.Answer = append(m.Answer, dns.Copy(rr))
				found = true
			case rr.Header().Rrtype == dns.TypeCNAME:
				cname = rr.(*dns.CNAME)
			}
		}
		if found || cname == nil {
			break
		}
		m.Answer = append(m.Answer, dns.Copy(cname))
		name = strings.ToLower(cname.Target)
	}
	s.mu.Unlock()
	if mangle == nil {
		w.WriteMsg(m)
		return
	}
	if wire, err := m.Pack(); err == nil {
		w.Write(mangle(wire))
	}
}

// SelfPointer is a Mangle function: the owner name of the first answer
// record, a compression pointer to the question, points at itself, a
// loop no parser may follow.
func SelfPointer(msg []byte) []byte {
	// Header (12 bytes), then the question: its name and 4 bytes.
	off := 12
	for off < len(msg) && msg[off] != 0 {
		off += 1 + int(msg[off])
	}
	off += 1 + 4
	out := append([]byte(nil), msg...)
	if off+1 < len(out) && out[off]&0xC0 == 0xC0 {
		out[off], out[off+1] = 0xC0|byte(off>>8), byte(off)
	}
	return out
}

// ResolvConf writes a resolv.conf naming only s as the nameserver into dir
// and returns its path. options are resolv.conf options such as "use-vc"
// (glibc then asks over TCP) or "attempts:1".
func (s *Server) ResolvConf(dir string, options ...string) (string, error) {
	if s.Addr.Port() != 53 {
		return "", fmt.Errorf("dnstest: resolv.conf can only name a server on port 53, not %s", s.Addr)
	}
	conf := "nameserver " + s.Addr.Addr().String() + "\n"
	if len(options) > 0 {
		conf += "options " + strings.Join(options, " ") + "\n"
	}
	p := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		return "", fmt.Errorf("dnstest: %w", err)
	}
	return p, nil
}

// InResolver runs fn on an OS thread of its own in a private mount
// namespace where resolvConf is bind-mounted over /etc/resolv.conf; the
// processes fn starts (os/exec) inherit that namespace, so their resolver
// uses resolvConf. The host's mount namespace is not changed: the private
// namespace's mounts do not propagate back, and it ends with the thread,
// which exits when fn returns. fn's goroutines run outside it.
func InResolver(resolvConf string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread exits with this goroutine instead of
		// going back to the Go scheduler in the private namespace.
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread never exits, and /proc/PID/root is its
			// root: hold it while another thread does the work.
			errc <- InResolver(resolvConf, fn)
			runtime.UnlockOSThread()
			return
		}
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("dnstest: unshare mount namespace: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			errc <- fmt.Errorf("dnstest: make mounts private: %w", err)
			return
		}
		if err := unix.Mount(resolvConf, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("dnstest: bind %s over /etc/resolv.conf: %w", resolvConf, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
