package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/policy"
)

// TestEnforceBlocksExecOutsideTree is suite test 2: under an enforce-mode
// policy an exec outside the process tree is killed before it runs, both
// when the app spawns it and through crictl exec, and so is a connection
// outside the network policy; what the policy allows still works, the app
// keeps serving, and the agent records a blocked deviation and a red flag
// for each.
func TestEnforceBlocksExecOutsideTree(t *testing.T) {
	runExecScenario(t, policy.ModeEnforce)
}

// TestAuditRecordsWithoutBlocking is suite test 4: the same workload and
// behaviour as test 2 under the same policy in audit mode: nothing is
// blocked, the same deviations are recorded (verdict allowed, policy mode
// audit), and no response action runs (no flag).
func TestAuditRecordsWithoutBlocking(t *testing.T) {
	runExecScenario(t, policy.ModeAudit)
}

// runExecScenario runs an "api" pod (HTTP servers on 8080 and 9090) and an
// "app" pod (a spawner) guarded by a policy in mode that allows
// spawner -> {echo, cat, client}, ingress to the spawner on 8080 and
// egress from client to api:8080. It then makes the app spawn allowed and
// disallowed children, execs into it with crictl, and checks the outcomes,
// deviations and flags mode implies.
func runExecScenario(t *testing.T, mode string) {
	rt := newRuntime(t)
	cl := rt.needAgent(t)
	n := nonce()
	ns := "e2e-" + mode
	name, label := fmt.Sprintf("e2e-%s-%s", mode, n), fmt.Sprintf("%s-app-%s", mode, n)
	enforce := mode == policy.ModeEnforce

	api := rt.runPod(t, podSpec{Name: "api", Namespace: ns, Labels: map[string]string{"app": "api-" + n}})
	api.Run(t, ctrSpec{Name: "http8080", Command: []string{"/bin/httpserver", "-listen", ":8080"}})
	api.Run(t, ctrSpec{Name: "http9090", Command: []string{"/bin/httpserver", "-listen", ":9090"}})
	apiIP := api.IP(t)

	pol := rt.podPolicy(name, mode, label,
		node("spawner_0", "spawner", "/bin/spawner", applet("echo"), applet("cat"), node("client_0", "client", "/bin/client")))
	pol.Spec.NetworkPolicy = &policy.NetworkPolicy{
		Ingress: []policy.NetworkRule{ingressRule(rt.subnet.String(), 8080, "spawner_0")},
		Egress:  []policy.NetworkRule{egressRule(apiIP+"/32", 8080, "client_0")},
	}
	rt.writePolicy(t, cl, pol)

	p := rt.runPod(t, podSpec{Name: "app", Namespace: ns, Labels: map[string]string{"app": label}})
	app := p.Run(t, ctrSpec{Name: "app", Command: []string{"/bin/spawner", "-listen", ":8080", "/bin/echo", "hi"}})
	waitArmed(t, cl, app, name, mode)
	deny := denialOf(t, cl)
	pid := app.PID(t)
	base := fmt.Sprintf("http://%s:8080", p.IP(t))

	// Allowed: the policy's children of the spawner, and egress to api:8080.
	if got, want := spawn(t, base, "/bin/echo", "hi"), "spawn /bin/echo: exit 0: hi"; got != want {
		t.Errorf("allowed child echo: %q, want %q", got, want)
	}
	if got, want := spawn(t, base, "/bin/client", "-http", apiIP+":8080"), "spawn /bin/client: exit 0: ok "+apiIP+":8080 hello from api"; got != want {
		t.Errorf("allowed egress to api:8080: %q, want %q", got, want)
	}

	// Outside the tree, spawned by the app: sh writes a file if it runs.
	got := spawn(t, base, "/bin/sh", "-c", "echo owned >/tmp/owned")
	want := "spawn /bin/sh: exit 0:"
	if enforce {
		want = deny.spawned("/bin/sh")
	}
	if got != want {
		t.Errorf("app spawns /bin/sh: %q, want %q", got, want)
	}
	got = spawn(t, base, "/bin/cat", "/tmp/owned")
	if enforce && got != "spawn /bin/cat: exit 1: cat: can't open '/tmp/owned': No such file or directory" {
		t.Errorf("the killed sh left a trace: cat /tmp/owned: %q", got)
	}
	if !enforce && got != "spawn /bin/cat: exit 0: owned" {
		t.Errorf("the audited sh did not run: cat /tmp/owned: %q", got)
	}

	// Outside the tree, through the runtime: crictl exec.
	res, err := app.Exec(10*time.Second, "/bin/sh", "-c", "echo ran")
	switch {
	case enforce:
		if err := deny.checkExec(res, err); err != nil {
			t.Error(err)
		}
	case err != nil:
		t.Fatal(err)
	case res.ExitCode != 0 || res.Stdout != "ran\n":
		t.Errorf("crictl exec /bin/sh under audit: exit %d, stdout %q, stderr %q; want 0 and \"ran\"", res.ExitCode, res.Stdout, res.Stderr)
	}

	// Egress outside the network policy: another port of the api pod.
	got = spawn(t, base, "/bin/client", "-http", "-timeout", "2s", apiIP+":9090")
	if enforce && !strings.HasPrefix(got, "spawn /bin/client: exit 1: fail "+apiIP+":9090 eperm") {
		t.Errorf("egress to api:9090 under enforce: %q, want a refused connect (eperm)", got)
	}
	if !enforce && got != "spawn /bin/client: exit 0: ok "+apiIP+":9090 hello from api" {
		t.Errorf("egress to api:9090 under audit: %q, want it served", got)
	}

	// The app keeps serving, in the same process.
	if body, err := httpGet(base+"/", 5*time.Second); err != nil || body != "ok\n" {
		t.Errorf("app after the deviations: body %q, error %v", body, err)
	}
	if st, _, now := app.inspect(t); st != "CONTAINER_RUNNING" || now != pid {
		t.Errorf("app after the deviations: state %s pid %d, want CONTAINER_RUNNING pid %d", st, now, pid)
	}

	verdict := map[bool]string{true: "blocked", false: "allowed"}[enforce]
	wantDevs := []devMatch{
		{Container: app.ID, Policy: name, Kind: "exec", Verdict: verdict, Comm: "sh", ParentNode: "spawner_0"},
		{Container: app.ID, Policy: name, Kind: "exec", Verdict: verdict, Comm: "sh"},
		{Container: app.ID, Policy: name, Kind: "connect", Verdict: verdict, Dst: apiIP + ":9090"},
	}
	devs := waitDeviations(t, cl, wantDevs...)
	for _, d := range devs {
		if d.Metadata.PolicyMode != mode || d.Metadata.PodName != "app" || d.Metadata.Namespace != ns {
			t.Errorf("deviation %s: policy mode %q pod %s/%s; want %s and %s/app", d.Metadata.UID, d.Metadata.PolicyMode, d.Metadata.Namespace, d.Metadata.PodName, mode, ns)
		}
		if err := policy.ValidateDeviation(&d); err != nil {
			t.Errorf("deviation %s does not validate: %v", d.Metadata.UID, err)
		}
	}
	// The allowed behaviour (echo, cat, client to api:8080, the host's
	// requests) raised nothing.
	if all := deviationsOf(t, cl, name); len(all) != len(wantDevs) {
		t.Errorf("policy %s has %d deviations, want exactly %d: %s", name, len(all), len(wantDevs), describeDeviations(all))
	}

	if !enforce {
		// Flags come from response actions, which audit mode does not run;
		// they would be raised right after the deviation was recorded.
		time.Sleep(200 * time.Millisecond)
		if flags := flagsOf(t, cl, name); len(flags) != 0 {
			t.Errorf("audit mode raised %d flags, want none: %+v", len(flags), flags)
		}
		return
	}
	poll(t, waitTimeout, "a red flag for every blocked deviation", func() (bool, string) {
		flags := flagsOf(t, cl, name)
		var missing []string
		for _, d := range devs {
			if !slices.ContainsFunc(flags, func(f policy.Flag) bool {
				return f.Metadata.DeviationUID == d.Metadata.UID && f.Metadata.Class == "redflag" && f.Metadata.Severity == "high" &&
					f.Metadata.Workload == ns+"/app/app"
			}) {
				missing = append(missing, d.Metadata.UID)
			}
		}
		return len(missing) == 0, fmt.Sprintf("no high red flag on workload %s/app/app for %v; flags: %+v", ns, missing, flags)
	})
}
