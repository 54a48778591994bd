package main

import (
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/bulwarkhq/bulwark/policy"
)

// buildForkServe compiles testdata/forkserve.c (a listener that forks a
// worker dropping to another user, the nginx pattern) with the C compiler
// test/deps.sh build installs.
func buildForkServe(t *testing.T) string {
	t.Helper()
	cc, err := exec.LookPath("clang")
	if err != nil {
		t.Skip("needs clang (test/deps.sh build)")
	}
	bin := filepath.Join(t.TempDir(), "forkserve")
	if out, err := exec.Command(cc, "-O2", "-Wall", "-Werror", "-o", bin, "testdata/forkserve.c").CombinedOutput(); err != nil {
		t.Fatalf("build forkserve: %v\n%s", err, out)
	}
	return bin
}

// TestLearnForkedWorker learns a server whose listener is made by the
// process as root and whose connections are accepted by its forked
// worker after setresuid to nobody: the fingerprint has the seed's shape
// (the master, a child node with the same name and exe and the worker's
// user, the listening socket on the master, the ingress by the worker).
// The policy made from it serves the same client with no deviation.
func TestLearnForkedWorker(t *testing.T) {
	needLearnTools(t)
	bin := buildForkServe(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	server := []string{"--", bin, strconv.Itoa(port), "65534"}
	out, stderr, served, err := serveWhileDialing(t, "127.0.0.1", port, append([]string{"learn"}, server...)...)
	if err != nil || !served {
		t.Fatalf("learn: %v, served %v\n%s", err, served, stderr)
	}
	docs, err := policy.Load("learn", []byte(out))
	if err != nil || len(docs) != 1 || docs[0].Fingerprint == nil {
		t.Fatalf("learn printed no fingerprint (%v):\n%s", err, out)
	}
	fp := docs[0].Fingerprint
	tree := fp.Spec.ProcessPolicy
	if len(tree) != 1 || tree[0].Name != "forkserve" || len(tree[0].Euser) != 1 || tree[0].Euser[0] != "root" || len(tree[0].Children) != 1 {
		t.Fatalf("want forkserve (root) with one child; got %+v", tree)
	}
	master, worker := tree[0], tree[0].Children[0]
	if worker.Name != "forkserve" || len(worker.Exe) != 1 || worker.Exe[0] != master.Exe[0] ||
		len(worker.Euser) != 1 || worker.Euser[0] != "nobody" || len(worker.Children) != 0 {
		t.Fatalf("worker node %+v, want forkserve, exe %v, euser nobody", worker, master.Exe)
	}
	if len(master.ListeningSockets) != 1 || master.ListeningSockets[0] != (policy.Port{Port: port, Protocol: "TCP"}) || len(worker.ListeningSockets) != 0 {
		t.Fatalf("listening sockets: master %v, worker %v; want %d/TCP on the master", master.ListeningSockets, worker.ListeningSockets, port)
	}
	checkLoopbackIngress(t, fp, port, worker.ID)

	polFile := enforcePolicyFrom(t, out)
	execArgs := append([]string{"exec", "-f", polFile}, server...)
	_, stderr, served, err = serveWhileDialing(t, "127.0.0.1", port, execArgs...)
	if err != nil || !served || len(deviations(t, stderr)) != 0 {
		t.Fatalf("the learned server under its policy: %v, served %v\n%s", err, served, stderr)
	}
	// The worker turning into another user than it learned: blocked
	// (EPERM, exit 10, under lsm; killed under tracing) and reported.
	other := []string{"exec", "-f", polFile, "--", bin, strconv.Itoa(port), "1"}
	_, stderr, _, err = serveWhileDialing(t, "127.0.0.1", port, other...)
	if st := statusOf(err); st != 10 && st != 128+9 {
		t.Fatalf("worker as uid 1: status %d (%v), want 10 or 137\n%s", st, err, stderr)
	}
	devs := deviations(t, stderr)
	if len(devs) != 1 || devs[0].Metadata.Event.Kind != "cred" || devs[0].Metadata.Event.Verdict != "blocked" ||
		devs[0].Metadata.Event.EUID != 1 || devs[0].Metadata.Event.ParentNode != master.ID {
		t.Fatalf("want one blocked cred deviation to euid 1 under %s, got:\n%s", master.ID, stderr)
	}
}
