package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/policy"
)

// The seed's own example workload on the real Debian programs (issue 10):
// a pre-forking server whose master runs as root and forks workers that
// become www-data, and whose workers, not the master that created the
// listening socket, accept the connections. The programs come from the
// servers group of test/deps.sh; each run has its own config, pid file,
// logs and port in a directory of its own.

// preforkServer is one real pre-forking server: how to configure and run
// it in the foreground and what it serves.
type preforkServer struct {
	name string // its comm, its executable's base name, the workload's name
	exe  string
	path string // a URL path it answers without running anything
	body string // what it answers there
	// cgi is a URL path that makes a worker exec a program, or "".
	cgi string
	// On the lsm backend a denied credential change or exec fails with
	// EPERM and the server goes on: setuidDenied is what it logs when a
	// worker's setuid to uid %d fails so, cgiDenied (with cgi) what it
	// logs when the exec of the program in the directory %s does.
	setuidDenied, cgiDenied string
	// configure writes a config into dir for a server on 127.0.0.1:port
	// whose workers run as user and group, and returns the command line running it
	// in the foreground and its pid file.
	configure func(t *testing.T, dir string, port int, user, group string) (argv []string, pidFile string)
}

// nginxServer is Debian's nginx: `user` makes the master fork two workers
// that switch to the user; they accept the connections.
var nginxServer = preforkServer{
	name: "nginx", exe: "/usr/sbin/nginx", path: "/", body: "nginx ok\n",
	// ngx_worker_process_init, at emerg; the worker then exits with 2
	// and the master does not respawn it.
	setuidDenied: "setuid(%d) failed (1: Operation not permitted)",
	configure: func(t *testing.T, dir string, port int, user, group string) ([]string, string) {
		pid := filepath.Join(dir, "nginx.pid")
		temps := ""
		for _, k := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
			temps += fmt.Sprintf("  %s_temp_path %s;\n", k, filepath.Join(dir, k))
		}
		conf := fmt.Sprintf(`user %s %s;
worker_processes 2;
pid %s;
events { worker_connections 64; }
http {
  access_log off;
%s  server {
    listen 127.0.0.1:%d;
    location / { return 200 "nginx ok\n"; }
  }
}
`, user, group, pid, temps, port)
		f := writeFile(t, dir, "nginx.conf", conf)
		errLog := filepath.Join(dir, "error.log")
		return []string{"/usr/sbin/nginx", "-p", dir, "-e", errLog, "-c", f, "-g", "daemon off; error_log " + errLog + ";"}, pid
	},
}

// apacheServer is Debian's Apache with the prefork MPM: the master forks
// children that switch to User and accept the connections; mod_cgi makes
// the child serving /cgi-bin/ fork and exec the script, which is the real
// program's own way for a worker to exec something.
var apacheServer = preforkServer{
	name: "apache2", exe: "/usr/sbin/apache2", path: "/index.html", body: "apache ok\n", cgi: "/cgi-bin/run",
	// mod_unixd's privilege drop; the child exits as fatal, and so then
	// does the master (status 1).
	setuidDenied: "(1)Operation not permitted: AH02162: setuid: unable to change to uid: %d",
	// mod_cgi's child, after the fork, when the exec fails: the request
	// logs it as the script's standard error (AH01215).
	cgiDenied: "(1)Operation not permitted: exec of '%s/cgi/run' failed",
	configure: func(t *testing.T, dir string, port int, user, group string) ([]string, string) {
		docs, cgi := filepath.Join(dir, "htdocs"), filepath.Join(dir, "cgi")
		for _, d := range []string{docs, cgi} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		writeFileMode(t, docs, "index.html", "apache ok\n", 0o644)
		writeFileMode(t, cgi, "run", "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho cgi ran\n", 0o755)
		pid := filepath.Join(dir, "httpd.pid")
		mods := "/usr/lib/apache2/modules/"
		conf := fmt.Sprintf(`ServerRoot %[1]s
LoadModule mpm_prefork_module %[2]smod_mpm_prefork.so
LoadModule authz_core_module %[2]smod_authz_core.so
LoadModule alias_module %[2]smod_alias.so
LoadModule cgi_module %[2]smod_cgi.so
ServerName localhost
Listen 127.0.0.1:%[3]d
User %[4]s
Group %[8]s
PidFile %[5]s
DefaultRuntimeDir %[1]s
Mutex file:%[1]s default
ErrorLog %[1]s/error.log
StartServers 2
MinSpareServers 1
MaxSpareServers 2
DocumentRoot %[6]s
<Directory />
  Require all granted
</Directory>
ScriptAlias /cgi-bin/ %[7]s/
`, dir, mods, port, user, pid, docs, cgi, group)
		f := writeFile(t, dir, "httpd.conf", conf)
		return []string{"/usr/sbin/apache2", "-f", f, "-DFOREGROUND"}, pid
	},
}

// cliEnv, set to 1, makes the test binary the bulwark command (TestMain),
// for tests that run bulwark as a process of its own.
const cliEnv = "BULWARK_TEST_AS_CLI"

// TestMain runs the bulwark command instead of the tests when cliEnv is 1.
func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// writeFileMode writes content to dir/name with mode perm.
func writeFileMode(t *testing.T, dir, name, content string, perm os.FileMode) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
}

// needServer skips unless the test can load BPF and s's program and the
// www-data and nobody users exist (Debian's: nobody's group is nogroup).
func needServer(t *testing.T, s preforkServer) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF programs and creates cgroups")
	}
	if _, err := os.Stat(s.exe); err != nil {
		t.Skipf("needs %s (bash test/deps.sh servers): %v", s.exe, err)
	}
	for file, names := range map[string][]string{"/etc/passwd": {"www-data", "nobody"}, "/etc/group": {"www-data", "nogroup"}} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if !strings.Contains("\n"+string(b), "\n"+n+":") {
				t.Skipf("needs %s in %s", n, file)
			}
		}
	}
}

// vmSlowdown is how much longer waits are in the qemu VM (test/vm, which
// sets BULWARK_VM): TCG emulates every instruction, and loading bulwark's
// programs and starting a server there takes seconds, not milliseconds.
const vmSlowdown = 10

// serverWait returns d, or d times vmSlowdown in the VM.
func serverWait(d time.Duration) time.Duration {
	if os.Getenv("BULWARK_VM") != "" {
		return d * vmSlowdown
	}
	return d
}

// serverBackend returns the enforcement backend bulwark learn and exec pick
// here (auto): lsm where BPF LSM is active, else tracing. It fails t when
// BULWARK_TEST_BACKEND (as test/vm/vmtest.sh sets it) asks for another.
func serverBackend(t *testing.T) string {
	t.Helper()
	got := bpf.BackendTracing
	if b, err := os.ReadFile("/sys/kernel/security/lsm"); err == nil && slices.Contains(strings.Split(strings.TrimSpace(string(b)), ","), "bpf") {
		got = bpf.BackendLSM
	}
	if want := os.Getenv("BULWARK_TEST_BACKEND"); want != "" && want != bpf.BackendAuto && want != got {
		t.Fatalf("BULWARK_TEST_BACKEND=%s, but bulwark picks %s here", want, got)
	}
	return got
}

// serverRun is one run of a server under bulwark learn or exec.
type serverRun struct {
	t    *testing.T
	s    preforkServer
	port int
}

// freePort returns a TCP port on 127.0.0.1 nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serverExit is how one run of a server under bulwark ended.
type serverExit struct {
	stdout, stderr string // what bulwark printed, its own error in err
	dir            string // the server's directory (removed when the test ends)
	log            string // the server's error log
	err            error  // bulwark's exit
}

// runServer runs s, its workers as user (www-data or nobody), on port under the bulwark
// command line args (learn or exec, up to its `--`), calls during while it
// runs, then stops it with SIGTERM and returns what bulwark printed and
// the server logged. The server gets a fresh directory the workers can
// read. bulwark runs as a process of its own in a process group of its
// own: Apache's prefork master, stopping, signals its whole process group
// (SIGTERM), which would otherwise hold the test and `go test`.
func runServer(t *testing.T, s preforkServer, port int, user string, during func(r serverRun), args ...string) serverExit {
	t.Helper()
	dir, err := os.MkdirTemp("", "bulwark-"+s.name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The workers run as user: they need to reach their documents.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	group := map[string]string{"www-data": "www-data", "nobody": "nogroup"}[user]
	argv, pidFile := s.configure(t, dir, port, user, group)
	type result struct {
		stdout, stderr string
		err            error
	}
	done := make(chan result, 1)
	cli := exec.Command(os.Args[0], append(append(args, "--"), argv...)...)
	cli.Env = append(os.Environ(), cliEnv+"=1")
	var out, errOut strings.Builder
	cli.Stdout, cli.Stderr = &out, &errOut
	cli.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := cli.Wait()
		// A server that exits with a failure makes bulwark end with it
		// (main prints it last): it goes with err, leaving only
		// deviations in stderr.
		stderr := errOut.String()
		if i := strings.LastIndex("\n"+stderr, "\nbulwark: "); err != nil && i >= 0 {
			err = fmt.Errorf("%w (%s)", err, strings.TrimSpace(stderr[i:]))
			stderr = stderr[:i]
		}
		done <- result{out.String(), stderr, err}
	}()
	pid, early := waitPidFile(pidFile, done)
	if early != nil {
		t.Fatalf("%s exited before writing %s: %v\n%s\nerror log:\n%s", s.name, pidFile, early.err, early.stderr, serverLog(dir))
	}
	if pid == 0 {
		// bulwark stops the server it runs when it is stopped.
		cli.Process.Signal(syscall.SIGTERM)
		r := <-done
		t.Fatalf("%s wrote no pid to %s within %v: %v\n%s\nerror log:\n%s", s.name, pidFile, serverWait(15*time.Second), r.err, r.stderr, serverLog(dir))
	}
	func() {
		// Stop the server even when during fails the test.
		defer syscall.Kill(pid, syscall.SIGTERM)
		during(serverRun{t: t, s: s, port: port})
	}()
	select {
	case r := <-done:
		return serverExit{r.stdout, r.stderr, dir, serverLog(dir), r.err}
	case <-time.After(serverWait(15 * time.Second)):
		syscall.Kill(-cli.Process.Pid, syscall.SIGKILL)
		r := <-done
		t.Fatalf("%s did not stop on SIGTERM within %v: %v\n%s", s.name, serverWait(15*time.Second), r.err, r.stderr)
	}
	panic("unreachable")
}

// waitPidFile waits up to 15s (in the VM longer: serverWait) until pidFile holds a pid, or the command
// exits first (then its result is returned). It returns neither when the
// time runs out.
func waitPidFile[R any](pidFile string, done <-chan R) (int, *R) {
	deadline := time.Now().Add(serverWait(15 * time.Second))
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				return pid, nil
			}
		}
		select {
		case r := <-done:
			return 0, &r
		case <-time.After(20 * time.Millisecond):
		}
	}
	return 0, nil
}

// serverLog returns the server's error log in dir, for failure messages.
func serverLog(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
	return string(b)
}

// get makes one request on a new connection (each request is an accept)
// and returns the body of a 200 answer.
func (r serverRun) get(path string) (string, error) {
	c := http.Client{Timeout: serverWait(2 * time.Second), Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", r.port, path))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %s", resp.Status)
	}
	return string(b), err
}

// serve makes n requests for the server's page, retrying for a few seconds
// while the workers start, and fails the test unless all are answered.
func (r serverRun) serve(n int) {
	r.t.Helper()
	deadline := time.Now().Add(serverWait(5 * time.Second))
	for served := 0; served < n; {
		body, err := r.get(r.s.path)
		if err == nil && body == r.s.body {
			served++
			continue
		}
		if time.Now().After(deadline) {
			r.t.Errorf("%s on %d: %d of %d requests served; last: %q, %v", r.s.name, r.port, served, n, body, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// refused makes requests for a second (in the VM longer: serverWait) and
// fails the test if any is answered.
func (r serverRun) refused() {
	r.t.Helper()
	for end := time.Now().Add(serverWait(time.Second)); time.Now().Before(end); {
		if body, err := r.get(r.s.path); err == nil {
			r.t.Errorf("%s on %d answered %q; want no request served", r.s.name, r.port, body)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// seedShape checks that a fingerprint learned from s has the seed's
// shape: one root node (s as root, listening on port) with exactly one
// child, s as www-data with no children, and the ingress from 127.0.0.1 to
// port accepted by that child only. It returns the master's and the
// worker's node ids.
func seedShape(t *testing.T, fp *policy.Fingerprint, s preforkServer, port int) (master, worker string) {
	t.Helper()
	tree := fp.Spec.ProcessPolicy
	if len(tree) != 1 {
		t.Fatalf("want one root node, got %d: %+v", len(tree), tree)
	}
	m := tree[0]
	if m.Name != s.name || !slices.Equal(m.Exe, []string{s.exe}) || !slices.Equal(m.Euser, []string{"root"}) {
		t.Errorf("root node %s %v %v, want %s %s root", m.Name, m.Exe, m.Euser, s.name, s.exe)
	}
	if !slices.Contains(m.ListeningSockets, policy.Port{Port: port, Protocol: policy.ProtocolTCP}) {
		t.Errorf("root node's listeningSockets %v, want %d/TCP (the master listens)", m.ListeningSockets, port)
	}
	if len(m.Children) != 1 {
		t.Fatalf("root node %s has %d children, want one worker node: %+v", m.ID, len(m.Children), m.Children)
	}
	w := m.Children[0]
	if w.Name != s.name || !slices.Equal(w.Exe, []string{s.exe}) || !slices.Equal(w.Euser, []string{"www-data"}) || len(w.Children) != 0 {
		t.Errorf("worker node %s %v %v with %d children, want %s %s www-data with none", w.Name, w.Exe, w.Euser, len(w.Children), s.name, s.exe)
	}
	if w.ID == "" || w.ID == m.ID {
		t.Errorf("worker node id %q, master %q", w.ID, m.ID)
	}
	checkLoopbackIngress(t, fp, port, w.ID)
	return m.ID, w.ID
}

// checkLoopbackIngress fails t unless fp's ingress is exactly one rule:
// from 127.0.0.1/32 to port/TCP, accepted by the node id alone.
func checkLoopbackIngress(t *testing.T, fp *policy.Fingerprint, port int, id string) {
	t.Helper()
	in := fp.Spec.NetworkPolicy.Ingress
	if len(in) != 1 || len(in[0].From) != 1 || in[0].From[0].IPBlock == nil || in[0].From[0].IPBlock.CIDR != "127.0.0.1/32" ||
		len(in[0].From[0].IPBlock.Except) != 0 || !slices.Equal(in[0].Ports, []policy.Port{{Port: port, Protocol: policy.ProtocolTCP}}) ||
		!slices.Equal(in[0].Processes, []string{id}) {
		t.Fatalf("ingress %s, want exactly from 127.0.0.1/32 to %d/TCP accepted by %s", rulesString(in), port, id)
	}
}

// rulesString renders network rules for failure messages.
func rulesString(rs []policy.NetworkRule) string {
	var b strings.Builder
	for _, r := range rs {
		var peers []string
		for _, p := range append(r.From, r.To...) {
			if p.IPBlock != nil {
				peers = append(peers, p.IPBlock.CIDR)
			}
		}
		fmt.Fprintf(&b, "[peers %v ports %v processes %v]", peers, r.Ports, r.Processes)
	}
	return b.String()
}

// learnServer learns s serving two requests and returns the fingerprint
// document as learn printed it and its decoded form.
func learnServer(t *testing.T, s preforkServer, port int) (string, *policy.Fingerprint) {
	t.Helper()
	x := runServer(t, s, port, "www-data", func(r serverRun) { r.serve(2) }, "learn")
	if x.err != nil {
		t.Fatalf("learn %s: %v\n%s", s.name, x.err, x.stderr)
	}
	docs, err := policy.Load("learn", []byte(x.stdout))
	if err != nil || len(docs) != 1 || docs[0].Fingerprint == nil {
		t.Fatalf("learn printed no fingerprint (%v):\n%s", err, x.stdout)
	}
	return x.stdout, docs[0].Fingerprint
}

// seedPolicy is a hand-written policy of the seed's shape (its example
// policy with the service selector, addresses and port adapted): s as root
// forking s as www-data, the worker allowed the ingress from 127.0.0.1 to
// port. ingressBy names the node allowed the ingress; extraEgress is YAML
// of egress rules beyond none.
func seedPolicy(t *testing.T, s preforkServer, port int, ingressBy, extraEgress string) string {
	t.Helper()
	egress := " []"
	if extraEgress != "" {
		egress = "\n" + extraEgress
	}
	doc := fmt.Sprintf(`apiVersion: spyderbat/v1
kind: SpyderbatPolicy
metadata:
  name: %[1]s-seed
  type: linux-service
spec:
  serviceSelector:
    name: %[1]s
  mode: enforce
  enabled: true
  processPolicy:
  - name: %[1]s
    exe:
    - %[2]s
    euser:
    - root
    id: %[1]s_0
    children:
    - name: %[1]s
      exe:
      - %[2]s
      euser:
      - www-data
      id: %[1]s_1
  networkPolicy:
    egress:%[5]s
    ingress:
    - from:
      - ipBlock:
          cidr: 127.0.0.1/32
      ports:
      - port: %[3]d
        protocol: TCP
      processes:
      - %[4]s
  response:
    default:
    - makeRedFlag:
        severity: high
    actions: []
`, s.name, s.exe, port, ingressBy, egress)
	return writeFile(t, t.TempDir(), "seed.yaml", doc)
}

// apacheEgress is the egress Apache's master makes at start and the
// hand-written Apache policy allows: glibc's getaddrinfo connects a UDP
// socket to each candidate address (:: and 0.0.0.0, port 0) to sort them
// by source address (RFC 3484). Nothing is sent.
const apacheEgress = `    - to:
      - ipBlock:
          cidr: ::/128
      - ipBlock:
          cidr: 0.0.0.0/32
      ports:
      - port: 0
        protocol: UDP
      processes:
      - apache2_0`

// blockedDeviations returns the deviations in exec's stderr and fails the
// test unless there is at least one and each is blocked and matches.
func blockedDeviations(t *testing.T, stderr, what string, match func(e *policy.Event) bool) []*policy.Deviation {
	t.Helper()
	devs := deviations(t, stderr)
	if len(devs) == 0 {
		t.Errorf("%s: no deviation reported", what)
	}
	for _, d := range devs {
		if e := d.Metadata.Event; e.Verdict != "blocked" || !match(e) {
			t.Errorf("%s: deviation %+v, want a blocked one", what, *e)
		}
	}
	return devs
}

// runSeedExample is the test of one pre-forking server: learned,
// its fingerprint has the seed's shape; the policy created from it and a
// hand-written seed-shaped one serve with no deviation; ingress granted
// only to the listener's creator (the master) is refused, proving the
// accept is decided for the worker; a worker that execs (mod_cgi) or that
// switches to another user (the server's own user setting) is blocked and
// reported. The tracing backend kills the task that does it; on lsm the
// exec or the setuid fails with EPERM, which the server logs.
func runSeedExample(t *testing.T, s preforkServer, seedEgress string) {
	needServer(t, s)
	backend := serverBackend(t)
	// Most of the time is bulwark loading its programs, five times: the
	// two servers' tests overlap (each run has its own cgroup, pins, port
	// and directory).
	t.Parallel()
	port := freePort(t)
	start := time.Now()
	learned, fp := learnServer(t, s, port)
	t.Logf("learn took %v (backend %s)", time.Since(start), backend)
	master, worker := seedShape(t, fp, s, port)
	if t.Failed() {
		t.Fatalf("learned fingerprint:\n%s", learned)
	}
	learnedPol := enforcePolicyFrom(t, learned)

	// The learned policy serves with no deviation. On a server with CGI a
	// worker then execs the script, which the learned run never did: it
	// is stopped before it runs (killed, or EPERM on lsm) and reported as
	// a child of the worker node, and the worker keeps serving. That is
	// the run's one deviation.
	x := runServer(t, s, port, "www-data", func(r serverRun) {
		r.serve(4)
		if s.cgi == "" {
			return
		}
		if body, err := r.get(s.cgi); strings.Contains(body, "cgi ran") {
			t.Errorf("the CGI script ran under the learned policy: %q, %v", body, err)
		}
		r.serve(2)
	}, "exec", "-f", learnedPol, "--mode", "enforce")
	devs := deviations(t, x.stderr)
	switch {
	case x.err != nil:
		t.Errorf("the learned policy: %v\n%s", x.err, x.stderr)
	case s.cgi == "" && len(devs) != 0:
		t.Errorf("the learned policy: want no deviation:\n%s", x.stderr)
	case s.cgi != "":
		if len(devs) != 1 {
			t.Errorf("the learned policy: want one deviation, the CGI exec:\n%s", x.stderr)
		}
		blockedDeviations(t, x.stderr, "a worker execs a CGI script", func(e *policy.Event) bool {
			return e.Kind == "exec" && e.Comm == "run" && e.ParentNode == worker
		})
		if want := fmt.Sprintf(s.cgiDenied, x.dir); backend == bpf.BackendLSM && !strings.Contains(x.log, want) {
			t.Errorf("lsm: the CGI exec did not fail with EPERM: want %q in the error log:\n%s", want, x.log)
		}
	}

	x = runServer(t, s, port, "www-data", func(r serverRun) { r.serve(4) },
		"exec", "-f", seedPolicy(t, s, port, s.name+"_1", seedEgress), "--mode", "enforce")
	if x.err != nil || len(deviations(t, x.stderr)) != 0 {
		t.Errorf("the seed-shaped policy: %v, want it served with no deviation:\n%s", x.err, x.stderr)
	}

	// Ingress granted to the master only: it created the listening
	// socket, but the workers accept, so nothing is served.
	x = runServer(t, s, port, "www-data", func(r serverRun) { r.refused() },
		"exec", "-f", seedPolicy(t, s, port, s.name+"_0", seedEgress), "--mode", "enforce")
	blockedDeviations(t, x.stderr, "ingress granted to the master only", func(e *policy.Event) bool {
		return e.Kind == "accept" && e.DstPort == port && e.Node == s.name+"_1"
	})

	// Workers configured to run as nobody: the switch from root to nobody
	// in the forked worker is neither the master's node nor its worker
	// node (www-data), so it is stopped (killed, or EPERM at
	// task_fix_setuid on lsm) and nothing is served.
	x = runServer(t, s, port, "nobody", func(r serverRun) { r.refused() }, "exec", "-f", learnedPol, "--mode", "enforce")
	blockedDeviations(t, x.stderr, "workers turning into nobody", func(e *policy.Event) bool {
		// The worker is still in the master's node when it switches: the
		// deviation is a new child of that node.
		return e.Kind == "cred" && e.OldEUID != nil && *e.OldEUID == 0 && e.EUID == 65534 && e.Comm == s.name && e.ParentNode == master
	})
	if want := fmt.Sprintf(s.setuidDenied, 65534); backend == bpf.BackendLSM && !strings.Contains(x.log, want) {
		t.Errorf("lsm: the worker's setuid did not fail with EPERM: want %q in the error log:\n%s", want, x.log)
	}
}

// TestNginxSeedExample runs the test on Debian's nginx. nginx has
// no module-free way for a worker to exec a program (no CGI); the exec
// case runs on Apache (TestApacheSeedExample).
func TestNginxSeedExample(t *testing.T) {
	runSeedExample(t, nginxServer, "")
}

// TestApacheSeedExample runs the test on Debian's Apache (prefork
// MPM, mod_cgi).
func TestApacheSeedExample(t *testing.T) {
	runSeedExample(t, apacheServer, apacheEgress)
}
