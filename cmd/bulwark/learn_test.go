package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bulwarkhq/bulwark/policy"
)

// runCLI executes the bulwark command line in-process with nothing on
// standard input and returns its standard output and error.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runCLIWithInput(t, "", args...)
}

// runCLIWithInput executes the bulwark command line in-process with stdin
// as its standard input and returns its standard output and error.
func runCLIWithInput(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

// enforcePolicyFrom writes the fingerprint learn printed to a file, turns
// it into an enforce-mode policy with `bulwark create policy` and returns
// the policy file.
func enforcePolicyFrom(t *testing.T, fingerprint string) string {
	t.Helper()
	dir := t.TempDir()
	fpFile := writeFile(t, dir, "fp.yaml", fingerprint)
	pol, stderr, err := runCLI(t, "create", "policy", "--mode", "enforce", "-f", fpFile)
	if err != nil {
		t.Fatalf("create policy: %v\n%s", err, stderr)
	}
	return writeFile(t, dir, "policy.yaml", pol)
}

// needLearnTools skips unless the test can load BPF and has the programs
// the learned scripts run.
func needLearnTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF programs and creates cgroups")
	}
	for _, p := range []string{"/bin/sh", "/bin/true", "/bin/cat", "/bin/ls", "/bin/busybox"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs %s: %v", p, err)
		}
	}
}

// loopbackListener accepts TCP connections on 127.0.0.1 until the test
// ends and counts them.
func loopbackListener(t *testing.T) (port int, accepted *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted = &atomic.Int32{}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port, accepted
}

func statusOf(err error) int {
	var es *exitStatus
	if errors.As(err, &es) {
		return es.code
	}
	if err != nil {
		return -1
	}
	return 0
}

// deviations decodes the Deviation documents exec wrote to its standard
// error. They are decoded without validation: a deviation's network rule
// names the process by its node in the policy, which the deviation itself
// does not hold, and the loader rejects that.
func deviations(t *testing.T, stderr string) []*policy.Deviation {
	t.Helper()
	var out []*policy.Deviation
	dec := yaml.NewDecoder(strings.NewReader(stderr))
	for {
		var d policy.Deviation
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || d.Kind != policy.KindDeviation || d.Metadata.Event == nil {
			t.Fatalf("exec's standard error holds more than deviations (%v):\n%s", err, stderr)
		}
		out = append(out, &d)
	}
	return out
}

// findNode returns the node named name in a process forest.
func findNode(ns []policy.ProcessNode, name string) *policy.ProcessNode {
	for i := range ns {
		if ns[i].Name == name {
			return &ns[i]
		}
		if n := findNode(ns[i].Children, name); n != nil {
			return n
		}
	}
	return nil
}

// TestLearnThenExec learns a script, creates a policy from its fingerprint
// and checks that the same script runs under it without a deviation while
// an extra exec and a connection to another port are caught.
func TestLearnThenExec(t *testing.T) {
	needLearnTools(t)
	learned, learnedConns := loopbackListener(t)
	other, otherConns := loopbackListener(t)
	connect := func(port int) string {
		return fmt.Sprintf("/bin/busybox nc -w 2 127.0.0.1 %d </dev/null", port)
	}
	script := "/bin/true; /bin/cat /dev/null; (/bin/true); " + connect(learned)

	start := time.Now()
	out, stderr, err := runCLI(t, "learn", "--name", "demo", "--", "/bin/sh", "-c", script)
	if err != nil {
		t.Fatalf("learn: %v\n%s", err, stderr)
	}
	t.Logf("learn took %v", time.Since(start))
	if learnedConns.Load() != 1 {
		t.Fatalf("the script made %d connections, want 1; stderr:\n%s", learnedConns.Load(), stderr)
	}
	docs, err := policy.Load("learn", []byte(out))
	if err != nil || len(docs) != 1 || docs[0].Fingerprint == nil {
		t.Fatalf("learn printed no fingerprint (%v):\n%s", err, out)
	}
	fp := docs[0].Fingerprint
	if fp.Kind != policy.KindSpyderbatFingerprint || fp.Metadata.Name != "demo" || fp.Metadata.Type != policy.TypeLinuxService {
		t.Fatalf("fingerprint header %s %+v", fp.Kind, fp.Metadata)
	}
	tree := fp.Spec.ProcessPolicy
	if len(tree) != 1 || tree[0].Name != "sh" || tree[0].Euser[0] != "root" {
		t.Fatalf("want one root, sh as root; got %+v", tree)
	}
	var kids []string
	for _, c := range tree[0].Children {
		kids = append(kids, c.Name)
	}
	// The two runs of true (one from a subshell) are one node.
	if strings.Join(kids, " ") != "true cat busybox" {
		t.Fatalf("children of sh: %v, want true cat busybox", kids)
	}
	nc := findNode(tree, "busybox")
	eg := fp.Spec.NetworkPolicy.Egress
	if len(eg) != 1 || eg[0].To[0].IPBlock.CIDR != "127.0.0.1/32" || eg[0].Ports[0] != (policy.Port{Port: learned, Protocol: "TCP"}) ||
		len(eg[0].Processes) != 1 || eg[0].Processes[0] != nc.ID {
		t.Fatalf("egress %+v, want 127.0.0.1/32 port %d by %s", eg, learned, nc.ID)
	}

	polFile := enforcePolicyFrom(t, out)

	// The same behaviour: no deviation, exit 0, the connection made.
	_, stderr, err = runCLI(t, "exec", "-f", polFile, "--", "/bin/sh", "-c", script)
	if err != nil || len(deviations(t, stderr)) != 0 {
		t.Fatalf("exec of the learned script: %v\n%s", err, stderr)
	}
	if learnedConns.Load() != 2 {
		t.Fatalf("the learned connection was not made under the policy")
	}

	// An exec never seen: blocked (killed, or EPERM under lsm) and reported.
	_, stderr, err = runCLI(t, "exec", "-f", polFile, "--", "/bin/sh", "-c", script+"; /bin/ls / >/dev/null")
	if st := statusOf(err); st != 137 && st != 126 {
		t.Fatalf("exec with an extra ls: status %d (%v), want 137 or 126\n%s", st, err, stderr)
	}
	devs := deviations(t, stderr)
	if len(devs) != 1 || devs[0].Metadata.Event.Kind != "exec" || devs[0].Metadata.Event.Comm != "ls" || devs[0].Metadata.Event.Verdict != "blocked" {
		t.Fatalf("want one blocked exec deviation for ls, got:\n%s", stderr)
	}

	// A connection to another port: EPERM and reported in enforce, ...
	otherScript := strings.Replace(script, strconv.Itoa(learned), strconv.Itoa(other), 1)
	_, stderr, err = runCLI(t, "exec", "-f", polFile, "--", "/bin/sh", "-c", otherScript)
	if statusOf(err) == 0 || otherConns.Load() != 0 {
		t.Fatalf("connection to port %d was not blocked (%v, %d accepted)\n%s", other, err, otherConns.Load(), stderr)
	}
	devs = deviations(t, stderr)
	if len(devs) != 1 || devs[0].Metadata.Event.Kind != "connect" || devs[0].Metadata.Event.DstPort != other ||
		devs[0].Metadata.Event.Verdict != "blocked" {
		t.Fatalf("want one blocked connect deviation to port %d, got:\n%s", other, stderr)
	}
	// ... reported but let through in audit.
	_, stderr, err = runCLI(t, "exec", "-f", polFile, "--mode", "audit", "--", "/bin/sh", "-c", otherScript)
	devs = deviations(t, stderr)
	if err != nil || otherConns.Load() != 1 || len(devs) != 1 || devs[0].Metadata.Event.Verdict != "allowed" {
		t.Fatalf("audit: %v, %d accepted, deviations:\n%s", err, otherConns.Load(), stderr)
	}
}

// dialUntilServed connects to 127.0.0.1:port from local address src
// every 20ms until a connection is made (true) or stop is closed (false).
func dialUntilServed(src string, port int, stop <-chan struct{}) bool {
	d := net.Dialer{Timeout: 200 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	for {
		select {
		case <-stop:
			return false
		case <-time.After(20 * time.Millisecond):
		}
		if c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return true
		}
	}
}

// serveWhileDialing runs the bulwark command line args (which start a
// one-shot server on port) while a client dials it from src; it returns
// the command's output, whether the client was served and the command's
// error.
func serveWhileDialing(t *testing.T, src string, port int, args ...string) (stdout, stderr string, served bool, err error) {
	t.Helper()
	stop := make(chan struct{})
	result := make(chan bool, 1)
	go func() { result <- dialUntilServed(src, port, stop) }()
	stdout, stderr, err = runCLI(t, args...)
	close(stop)
	return stdout, stderr, <-result, err
}

// TestLearnServer learns a one-shot TCP server: the accepted connection
// becomes an ingress rule from the client and a listening socket on the
// server process. Under the policy created from it the same client is
// served without a deviation and another client's connection is dropped.
func TestLearnServer(t *testing.T) {
	needLearnTools(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	// The server gives up after 2s when no client is served.
	server := []string{"--", "/bin/busybox", "timeout", "2", "/bin/busybox", "nc", "-l", "-p", strconv.Itoa(port)}
	out, stderr, served, err := serveWhileDialing(t, "127.0.0.1", port, append([]string{"learn"}, server...)...)
	if err != nil || !served {
		t.Fatalf("learn: %v, served %v\n%s", err, served, stderr)
	}
	docs, err := policy.Load("learn", []byte(out))
	if err != nil || len(docs) != 1 || docs[0].Fingerprint == nil {
		t.Fatalf("learn printed no fingerprint (%v):\n%s", err, out)
	}
	fp := docs[0].Fingerprint
	if fp.Metadata.Name != "busybox" {
		t.Errorf("name %q, want CMD's base name", fp.Metadata.Name)
	}
	root := fp.Spec.ProcessPolicy
	if len(root) != 1 || root[0].Name != "busybox" || len(root[0].Children) != 1 {
		t.Fatalf("want timeout (busybox) running nc (busybox); got %+v", root)
	}
	srv := root[0].Children[0]
	if len(srv.ListeningSockets) != 1 || srv.ListeningSockets[0] != (policy.Port{Port: port, Protocol: "TCP"}) {
		t.Errorf("server node %+v, want listening on %d/TCP", srv, port)
	}
	checkLoopbackIngress(t, fp, port, srv.ID)

	polFile := enforcePolicyFrom(t, out)
	execArgs := append([]string{"exec", "-f", polFile}, server...)
	_, stderr, served, err = serveWhileDialing(t, "127.0.0.1", port, execArgs...)
	if err != nil || !served || len(deviations(t, stderr)) != 0 {
		t.Fatalf("the learned client under the policy: %v, served %v\n%s", err, served, stderr)
	}
	_, stderr, served, err = serveWhileDialing(t, "127.0.0.2", port, execArgs...)
	if served || statusOf(err) == 0 {
		t.Fatalf("a client from 127.0.0.2 was served (%v)", err)
	}
	for _, d := range deviations(t, stderr) {
		if ev := d.Metadata.Event; ev.Kind != "accept" || ev.Verdict != "blocked" || ev.SrcAddr != "127.0.0.2" || ev.DstPort != port {
			t.Fatalf("deviation %+v, want blocked accepts from 127.0.0.2", ev)
		}
	}
	if !strings.Contains(stderr, "kind: Deviation") {
		t.Fatal("the dropped connection was not reported")
	}
}

// TestLearnExitStatus checks that learn exits with CMD's status and still
// prints the fingerprint.
func TestLearnExitStatus(t *testing.T) {
	needLearnTools(t)
	out, _, err := runCLI(t, "learn", "-o", "json", "--", "/bin/sh", "-c", "/bin/true; exit 3")
	if st := statusOf(err); st != 3 {
		t.Fatalf("status %d (%v), want 3", st, err)
	}
	docs, err := policy.Load("learn.json", []byte(out))
	if err != nil || len(docs) != 1 || docs[0].Fingerprint == nil || findNode(docs[0].Fingerprint.Spec.ProcessPolicy, "true") == nil {
		t.Fatalf("want a JSON fingerprint with true in it (%v):\n%s", err, out)
	}
	if _, _, err := runCLI(t, "learn", "-o", "xml", "--", "/bin/true"); err == nil {
		t.Fatal("-o xml accepted")
	}
}
