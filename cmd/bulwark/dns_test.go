package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bulwarkhq/bulwark/internal/dnstest"
	"github.com/bulwarkhq/bulwark/policy"
)

// TestLearnResolvedName learns curl fetching a URL by name, resolved by a
// DNS server the test runs (glibc's resolver, in a private mount namespace
// whose /etc/resolv.conf names the server): the fingerprint allows the
// name, not its address, and the policy created from it runs the same
// fetch clean in enforce mode. Another name of the same address is
// blocked with a deviation carrying the name; merged back, the policy
// allows that name. The address fetched without a lookup stays blocked.
func TestLearnResolvedName(t *testing.T) {
	needLearnTools(t)
	const curl = "/usr/bin/curl"
	if _, err := os.Stat(curl); err != nil {
		t.Skipf("needs curl: %v", err)
	}
	var served atomic.Int32
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served.Add(1)
		fmt.Fprintln(w, "ok")
	}))
	defer web.Close()
	port := web.Listener.Addr().(*net.TCPAddr).Port

	dns, err := dnstest.StartLoopback()
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	if err := dns.Add("api.bulwark.test. 300 IN A 127.0.0.1", "other.bulwark.test. 300 IN A 127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	resolvConf, err := dns.ResolvConf(t.TempDir(), "attempts:1", "timeout:2")
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(host string) []string {
		return []string{"--", curl, "-sf", "-o", "/dev/null", "--max-time", "5", fmt.Sprintf("http://%s:%d/", host, port)}
	}
	cli := resolverCLI(t, resolvConf)

	out, stderr, err := cli(append([]string{"learn", "--name", "fetch"}, fetch("api.bulwark.test")...)...)
	if err != nil || served.Load() != 1 {
		t.Fatalf("learn: %v, %d served\n%s", err, served.Load(), stderr)
	}
	docs, err := policy.Load("learn", []byte(out))
	if err != nil || len(docs) != 1 || docs[0].Fingerprint == nil {
		t.Fatalf("learn printed no fingerprint (%v):\n%s", err, out)
	}
	var peers []string
	for _, r := range docs[0].Fingerprint.Spec.NetworkPolicy.Egress {
		for _, p := range r.To {
			peer := strings.Join(p.DNSSelector, ",")
			if p.IPBlock != nil {
				peer = p.IPBlock.CIDR
			}
			peers = append(peers, fmt.Sprintf("%s:%d/%s", peer, r.Ports[0].Port, r.Ports[0].Protocol))
		}
	}
	want := []string{fmt.Sprintf("%s/32:53/UDP", dns.Addr.Addr()), fmt.Sprintf("api.bulwark.test:%d/TCP", port)}
	if strings.Join(peers, " ") != strings.Join(want, " ") {
		t.Fatalf("learned egress %v, want %v\n%s", peers, want, out)
	}

	polFile := enforcePolicyFrom(t, out)
	_, stderr, err = cli(append([]string{"exec", "-f", polFile}, fetch("api.bulwark.test")...)...)
	if err != nil || served.Load() != 2 || len(deviations(t, stderr)) != 0 {
		t.Fatalf("the learned fetch under its policy: %v, %d served\n%s", err, served.Load(), stderr)
	}

	// Another name of the same address: blocked, and the deviation has
	// the name.
	_, stderr, err = cli(append([]string{"exec", "-f", polFile}, fetch("other.bulwark.test")...)...)
	devs := deviations(t, stderr)
	if err == nil || served.Load() != 2 || len(devs) != 1 {
		t.Fatalf("fetch of other.bulwark.test: %v, %d served, want one blocked connect\n%s", err, served.Load(), stderr)
	}
	ev := devs[0].Metadata.Event
	to := devs[0].Spec.NetworkPolicy.Egress[0].To
	if ev.Kind != "connect" || ev.Verdict != "blocked" || ev.DNSName != "other.bulwark.test" || ev.DstAddr != "127.0.0.1" ||
		len(to) != 1 || to[0].IPBlock != nil || strings.Join(to[0].DNSSelector, ",") != "other.bulwark.test" {
		t.Fatalf("deviation %+v to %+v, want a blocked connect to other.bulwark.test", ev, to)
	}

	// Merged back, the policy allows the name (and only as a name).
	var dev bytes.Buffer
	if err := policy.Encode(&dev, policy.FormatYAML, devs[0]); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	merged, stderr, err := runCLI(t, "merge", "-f", polFile, "--with", writeFile(t, dir, "dev.yaml", dev.String()))
	if err != nil {
		t.Fatalf("merge: %v\n%s", err, stderr)
	}
	if !strings.Contains(merged, "- other.bulwark.test") || strings.Contains(merged, "127.0.0.1/32") {
		t.Fatalf("merged policy does not allow other.bulwark.test by name:\n%s", merged)
	}
	mergedFile := writeFile(t, dir, "merged.yaml", merged)
	_, stderr, err = cli(append([]string{"exec", "-f", mergedFile}, fetch("other.bulwark.test")...)...)
	if err != nil || served.Load() != 3 || len(deviations(t, stderr)) != 0 {
		t.Fatalf("fetch of the merged name: %v, %d served\n%s", err, served.Load(), stderr)
	}

	// The address without a lookup: blocked, a deviation for the address.
	_, stderr, err = cli(append([]string{"exec", "-f", mergedFile}, fetch("127.0.0.1")...)...)
	devs = deviations(t, stderr)
	if err == nil || served.Load() != 3 || len(devs) != 1 || devs[0].Metadata.Event.DNSName != "" ||
		devs[0].Spec.NetworkPolicy.Egress[0].To[0].IPBlock == nil {
		t.Fatalf("fetch of 127.0.0.1 without a lookup: %v, %d served\n%s", err, served.Load(), stderr)
	}
}

// resolverCLI returns a runner of the bulwark command line as a process of
// its own (the test binary as bulwark) in a private mount namespace whose
// /etc/resolv.conf is resolvConf: all of it there, so the root exec arms
// is the one the workload's exes resolve from. The line main adds for a
// failure is left out of standard error (runCLI returns the error instead),
// which then holds only exec's report.
func resolverCLI(t *testing.T, resolvConf string) func(args ...string) (stdout, stderr string, err error) {
	return func(args ...string) (stdout, stderr string, err error) {
		t.Helper()
		var out, errOut strings.Builder
		nsErr := dnstest.InResolver(resolvConf, func() error {
			cmd := exec.Command(os.Args[0], args...)
			cmd.Env = append(os.Environ(), cliEnv+"=1")
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err = cmd.Run()
			return nil
		})
		if nsErr != nil {
			t.Fatal(nsErr)
		}
		lines := strings.SplitAfter(errOut.String(), "\n")
		lines = slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, "bulwark: ") })
		return out.String(), strings.Join(lines, ""), err
	}
}

// TestExecWarnsOfUnparsedDNSAnswers: an answer the kernel cannot parse (a
// compression pointer that loops) grants nothing and bulwark exec says so.
func TestExecWarnsOfUnparsedDNSAnswers(t *testing.T) {
	needLearnTools(t)
	const getent = "/usr/bin/getent"
	if _, err := os.Stat(getent); err != nil {
		t.Skipf("needs getent: %v", err)
	}
	dns, err := dnstest.StartLoopback()
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	if err := dns.Add("api.bulwark.test. 300 IN A 127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	resolvConf, err := dns.ResolvConf(t.TempDir(), "attempts:1", "timeout:1")
	if err != nil {
		t.Fatal(err)
	}
	cli := resolverCLI(t, resolvConf)
	lookup := []string{"--", getent, "ahostsv4", "api.bulwark.test"}
	out, stderr, err := cli(append([]string{"learn"}, lookup...)...)
	if err != nil {
		t.Fatalf("learn: %v\n%s", err, stderr)
	}
	polFile := enforcePolicyFrom(t, out)
	_, stderr, err = cli(append([]string{"exec", "-f", polFile}, lookup...)...)
	if err != nil || strings.Contains(stderr, "not parsed") {
		t.Fatalf("well-formed answers under the policy: %v\n%s", err, stderr)
	}
	dns.Mangle("api.bulwark.test", dnstest.SelfPointer)
	_, stderr, _ = cli(append([]string{"exec", "-f", polFile}, lookup...)...)
	if !strings.Contains(stderr, "DNS answers not parsed in the kernel") ||
		!strings.Contains(stderr, "deviations not aggregated, ") {
		t.Fatalf("exec did not report the unparsed answer:\n%s", stderr)
	}
}
