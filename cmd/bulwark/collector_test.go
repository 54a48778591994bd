package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
)

// startCollector runs a collector in-process until the test ends and
// returns its socket.
func startCollector(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	socket := filepath.Join(dir, "collector.sock")
	srv, err := collector.NewServer(collector.Options{Socket: socket, DB: filepath.Join(dir, "collector.db")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return socket
}

// feed sends docs (kind, doc pairs) through a real agent-side client and
// waits until the collector has stored them.
func feed(t *testing.T, socket string, docs ...any) {
	t.Helper()
	c, err := collector.NewClient(collector.ClientOptions{Socket: socket, SpoolDir: t.TempDir(), Agent: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i+1 < len(docs); i += 2 {
		if err := c.Send(docs[i].(collector.Kind), docs[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// postAt stores records with the given times, as an agent whose records
// waited in its spool would deliver them.
func postAt(t *testing.T, socket string, epoch string, recs ...collector.Record) {
	t.Helper()
	body, err := json.Marshal(collector.Batch{Agent: "node-2", Epoch: epoch, Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	resp, err := hc.Post("http://collector/v1/records", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("post records: %s", resp.Status)
	}
}

func rawDoc(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seedFingerprints loads the seed's three nginx fingerprints and gives
// each the container ID of its own instance.
func seedFingerprints(t *testing.T) []*policy.Fingerprint {
	t.Helper()
	docs, err := policy.LoadFile(filepath.Join(goldenDir, "seed-story/fingerprints.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var fps []*policy.Fingerprint
	for i, d := range docs {
		d.Fingerprint.Metadata.ContainerID = "containerd://" + strings.Repeat(string(rune('a'+i)), 64)
		fps = append(fps, d.Fingerprint)
	}
	return fps
}

func execDeviation(pol, parent, exe string) *policy.Deviation {
	name := filepath.Base(exe)
	return &policy.Deviation{
		APIVersion: policy.APIVersionBulwark, Kind: policy.KindDeviation,
		Metadata: policy.Metadata{
			Type: policy.TypeContainer, PolicyName: pol, PolicyMode: policy.ModeEnforce, Checksum: pol + exe,
			Namespace: "default", PodName: "web-1", ContainerName: "nginx", Image: "docker.io/library/nginx:latest",
			Event: &policy.Event{Kind: "exec", Verdict: "blocked", Exe: exe, ParentNode: parent},
		},
		Spec: policy.Spec{ProcessPolicy: []policy.ProcessNode{{PolicyNode: &policy.PolicyNodeRef{ID: parent,
			Children: []policy.ProcessNode{{Name: name, Exe: []string{exe}, Euser: []string{"root"}, ID: name + "_0"}}}}}},
	}
}

// columns checks that a table's rows are aligned: every row's cells start
// where the header's columns do (the last column may hold spaces).
func columns(t *testing.T, table string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	head := lines[0]
	var starts []int
	for _, m := range regexp.MustCompile(`\S+`).FindAllStringIndex(head, -1) {
		starts = append(starts, m[0])
	}
	var rows [][]string
	for _, l := range lines {
		var row []string
		for i, s := range starts {
			if s > 0 && (len(l) <= s || l[s-1] != ' ' || l[s] == ' ') {
				t.Fatalf("column %d of %q does not start at %d:\n%s", i, l, s, table)
			}
			end := len(l)
			if i+1 < len(starts) {
				end = starts[i+1]
			}
			row = append(row, strings.TrimSpace(l[s:end]))
		}
		rows = append(rows, row)
	}
	return rows
}

func TestGetFromCollector(t *testing.T) {
	socket := startCollector(t)
	fps := seedFingerprints(t)
	now := time.Now()
	pol := &policy.WorkloadPolicy{APIVersion: policy.APIVersionBulwark, Kind: policy.KindWorkloadPolicy,
		Metadata: policy.Metadata{Name: "web", Type: policy.TypeContainer},
		Spec:     policy.Spec{Mode: policy.ModeEnforce, ContainerSelector: &policy.ContainerSelector{Image: "docker.io/library/nginx:*"}}}
	postAt(t, socket, "e",
		collector.Record{Seq: 1, Kind: collector.KindFingerprint, Time: now.Add(-3 * time.Minute), Doc: rawDoc(t, fps[0])},
		collector.Record{Seq: 2, Kind: collector.KindFingerprint, Time: now.Add(-2 * time.Hour), Doc: rawDoc(t, fps[1])},
		collector.Record{Seq: 3, Kind: collector.KindFingerprint, Time: now.Add(-5 * 24 * time.Hour), Doc: rawDoc(t, fps[2])},
		collector.Record{Seq: 4, Kind: collector.KindWorkload, Time: now.Add(-5 * 24 * time.Hour), Doc: rawDoc(t, collector.WorkloadEvent{
			Event: collector.WorkloadStarted, Type: policy.TypeContainer, ContainerID: "containerd://0123456789abcdef", ContainerName: "nginx",
			Image: "docker.io/library/nginx:latest", Namespace: "default", PodName: "web-1", PolicyName: "web", PolicyMode: policy.ModeEnforce})},
		collector.Record{Seq: 5, Kind: collector.KindDeviation, Time: now.Add(-2 * time.Hour), Doc: rawDoc(t, execDeviation("web", "nginx_0", "/bin/sh"))},
		collector.Record{Seq: 6, Kind: collector.KindDeviation, Time: now.Add(-3 * time.Minute), Doc: rawDoc(t, execDeviation("web", "nginx_0", "/bin/sh"))},
		collector.Record{Seq: 7, Kind: collector.KindPolicy, Time: now.Add(-5 * 24 * time.Hour), Doc: rawDoc(t, pol)},
		collector.Record{Seq: 8, Kind: collector.KindFlag, Time: now, Doc: rawDoc(t, policy.Flag{APIVersion: policy.APIVersionBulwark, Kind: policy.KindFlag,
			Metadata: policy.FlagMetadata{UID: "flag:1", Class: "redflag", Severity: "high", PolicyName: "web", Workload: "default/web-1/nginx",
				Timestamp: float64(now.Add(-90*time.Second).UnixNano()) / 1e9}})},
	)
	sock := "--collector-socket=" + socket

	out, err := run(t, "get", "fingerprints", sock)
	if err != nil {
		t.Fatal(err)
	}
	rows := columns(t, out)
	want := [][]string{
		{"IMAGE/SERVICE", "TYPE", "INSTANCES", "PROCESSES", "INGRESS", "EGRESS", "LATEST"},
		{"docker.io/library/nginx:latest", "container", "3", "1", "3", "0", "3m"},
	}
	if len(rows) != 2 || strings.Join(rows[0], "|") != strings.Join(want[0], "|") || strings.Join(rows[1], "|") != strings.Join(want[1], "|") {
		t.Errorf("get fingerprints:\n%s\nwant rows %q", out, want)
	}
	out, err = run(t, "get", "fp", sock, "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	if rows := columns(t, out); len(rows) != 2 || rows[1][7] != "5d" || rows[1][8] != "latencytest3,latencytest2,latencytest1" || rows[1][9] != "node-2" {
		t.Errorf("get fingerprints -o wide:\n%s", out)
	}

	out, err = run(t, "get", "workloads", sock, "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	rows = columns(t, out)
	if len(rows) != 2 || strings.Join(rows[1], "|") != "default|nginx|docker.io/library/nginx:latest|web|enforce|running|5d|0123456789ab|web-1|node-2|-" {
		t.Errorf("get workloads -o wide:\n%s", out)
	}

	out, err = run(t, "get", "deviations", sock)
	if err != nil {
		t.Fatal(err)
	}
	rows = columns(t, out)
	if len(rows) != 2 || strings.Join(rows[1], "|") != "web|enforce|exec|blocked|default/web-1/nginx|/bin/sh (under nginx_0)|2|3m" {
		t.Errorf("get deviations:\n%s", out)
	}
	out, err = run(t, "get", "policies", sock)
	if err != nil {
		t.Fatal(err)
	}
	if rows := columns(t, out); len(rows) != 2 || strings.Join(rows[1], "|") != "web|container|enforce|image=docker.io/library/nginx:*|0|0|0|5d" {
		t.Errorf("get policies:\n%s", out)
	}
	out, err = run(t, "get", "flags", sock, "--policy", "web")
	if err != nil {
		t.Fatal(err)
	}
	if rows := columns(t, out); len(rows) != 2 || strings.Join(rows[1], "|") != "redflag|high|web|default/web-1/nginx|1m" {
		t.Errorf("get flags:\n%s", out)
	}

	// --since and filters narrow the lists.
	out, err = run(t, "get", "fingerprints", sock, "--since", "1h", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var one policy.Fingerprint
	if err := json.Unmarshal([]byte(out), &one); err != nil || one.Metadata.ContainerName != "latencytest1" {
		t.Errorf("fingerprints seen within 1h = %s (%v), want latencytest1 only", out, err)
	}
	if out, err := run(t, "get", "deviations", sock, "--namespace", "kube-system", "-o", "json"); err != nil || out != "[]\n" {
		t.Errorf("deviations in kube-system = %q, %v; want []", out, err)
	}
	// yaml output loads back as documents.
	out, err = run(t, "get", "deviations", sock, "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if docs, err := policy.Load("out", []byte(out)); err != nil || len(docs) != 1 || docs[0].Deviation == nil {
		t.Errorf("get deviations -o yaml does not load back: %v\n%s", err, out)
	}
	if _, err := run(t, "get", "flags", sock, "--image", "nginx"); err == nil || !strings.Contains(err.Error(), "policy and age only") {
		t.Errorf("get flags --image: err = %v", err)
	}
	if _, err := run(t, "get", "flags", sock, "-o", "xml"); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("get -o xml: err = %v", err)
	}
	if _, err := run(t, "get", "workloads", "--collector-socket", filepath.Join(t.TempDir(), "none.sock")); err == nil ||
		!strings.Contains(err.Error(), "none.sock (is \"bulwark collector\" running?)") {
		t.Errorf("get against a missing collector: err = %v", err)
	}
}

func TestAge(t *testing.T) {
	now := time.Now()
	for d, want := range map[time.Duration]string{
		0: "0s", 45 * time.Second: "45s", 3 * time.Minute: "3m", 2*time.Hour + 59*time.Minute: "2h",
		5 * 24 * time.Hour: "5d", 400 * 24 * time.Hour: "1y", -time.Minute: "0s",
	} {
		if got := age(now, now.Add(-d)); got != want {
			t.Errorf("age(%v) = %s, want %s", d, got, want)
		}
	}
	if got := age(now, time.Time{}); got != "-" {
		t.Errorf("age of the zero time = %s, want -", got)
	}
}

// TestCreatePolicyFromCollector creates a policy from the collector's
// fingerprints of the seed's three nginx replicas: it is exactly the
// policy create makes from the same fingerprints in a file.
func TestCreatePolicyFromCollector(t *testing.T) {
	socket := startCollector(t)
	var docs []any
	for _, fp := range seedFingerprints(t) {
		docs = append(docs, collector.KindFingerprint, fp)
	}
	feed(t, socket, docs...)
	sock := "--collector-socket=" + socket
	out, err := run(t, "create", "policy", "--image", "nginx", sock)
	if err != nil {
		t.Fatal(err)
	}
	if want := readFile(t, filepath.Join(goldenDir, "seed-story/want.yaml")); out != want {
		t.Errorf("create policy --image nginx printed:\n%s\nwant:\n%s", out, want)
	}
	// The yaml of get fingerprints feeds create policy -f the same way.
	fpYAML, err := run(t, "get", "fingerprints", sock, "--image", "docker.io/library/nginx:latest", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, t.TempDir(), "fps.yaml", fpYAML)
	if out2, err := run(t, "create", "policy", "-f", file); err != nil || out2 != out {
		t.Errorf("create policy from get's yaml = %v:\n%s", err, out2)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "policy", "--image", "redis", sock}, "no fingerprint for --image redis"},
		{[]string{"create", "policy", "--service", "*chronyd*", sock}, "no fingerprint for --service"},
		{[]string{"create", "policy", "--image", "nginx", "-f", file, sock}, "not both"},
		{[]string{"create", "policy", "-f", file, "--since", "1h"}, "--since applies to --image"},
	} {
		if _, err := run(t, tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want %q", tt.args, err, tt.want)
		}
	}
}

// TestMergeAndDiffWithDeviations merges the collector's deviations into a
// policy: only those of this policy that it does not cover.
func TestMergeAndDiffWithDeviations(t *testing.T) {
	socket := startCollector(t)
	dir := t.TempDir()
	base := filepath.Join(goldenDir, "deviation-graft/base.yaml")
	// A root-level sh the policy already allows.
	covered := execDeviation("mongo", "", "/bin/sh")
	covered.Spec.ProcessPolicy = covered.Spec.ProcessPolicy[0].PolicyNode.Children
	unknownNode := execDeviation("mongo", "redis_0", "/bin/ls")
	feed(t, socket,
		collector.KindDeviation, execDeviation("mongo", "mongod_0", "/usr/bin/curl"),
		collector.KindDeviation, execDeviation("mongo", "mongod_0", "/usr/bin/curl"), // a repeat
		collector.KindDeviation, covered,
		collector.KindDeviation, execDeviation("web", "nginx_0", "/bin/sh"), // another policy's
		collector.KindDeviation, unknownNode,
	)
	sock := "--collector-socket=" + socket

	out, errOut, err := runCLI(t, "merge", "-f", base, "--with-deviations", sock)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut, `1 deviations of policy "mongo" to merge from the collector (1 already covered)`) ||
		!strings.Contains(errOut, `left out collector deviation mongo/bin/ls`) {
		t.Errorf("merge reported:\n%s", errOut)
	}
	docs, err := policy.Load("merged", []byte(out))
	if err != nil || len(docs) != 1 || docs[0].Policy == nil {
		t.Fatalf("merge output does not load: %v\n%s", err, out)
	}
	merged := docs[0].Policy
	mongod := merged.Spec.ProcessPolicy[0]
	if len(mongod.Children) != 1 || mongod.Children[0].Exe[0] != "/usr/bin/curl" {
		t.Errorf("merged mongod node = %+v, want curl grafted under it", mongod)
	}
	if strings.Contains(out, "/bin/ls") || strings.Contains(out, "nginx") {
		t.Errorf("merged policy holds another policy's or an unmergeable deviation:\n%s", out)
	}

	diff, err := run(t, "diff", "-f", base, "--with-deviations", sock)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(diff, "/usr/bin/curl") || strings.Contains(diff, "/bin/ls") {
		t.Errorf("diff --with-deviations:\n%s", diff)
	}
	// Against the merged policy nothing is left.
	mergedFile := writeFile(t, dir, "merged.yaml", out)
	if diff, err := run(t, "diff", "-f", mergedFile, "--with-deviations", sock); err != nil || diff != "no changes\n" {
		t.Errorf("diff of the merged policy = %q, %v; want no changes", diff, err)
	}
	// --since leaves out older deviations: none is within 1ns.
	if out, err := run(t, "merge", "-f", base, "--with-deviations", "--since", "1ns", sock, "-o", "json"); err != nil || strings.Contains(out, "curl") {
		t.Errorf("merge --since 1ns = %v:\n%s", err, out)
	}
	// Files and deviations merge together.
	with := filepath.Join(goldenDir, "deviation-graft/with.yaml")
	if out, err := run(t, "merge", "-f", base, "--with", with, "--with-deviations", sock); err != nil || !strings.Contains(out, "/usr/bin/curl") {
		t.Errorf("merge --with FILE --with-deviations = %v:\n%s", err, out)
	}
	if _, err := run(t, "merge", "-f", base, "--since", "1h", "--with", with); err == nil || !strings.Contains(err.Error(), "--since applies") {
		t.Errorf("merge --since without --with-deviations: err = %v", err)
	}
}
