package e2e

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestImageHelpers checks, without any policy, the test image's helper
// programs the enforcement tests rely on: the spawner reports a child's
// normal exit, a SIGKILL and a failed exec, on request and periodically,
// and the client tells ok, refused and timeout apart. It also checks that
// Exec reports a SIGKILLed command as exit 137.
func TestImageHelpers(t *testing.T) {
	rt := newRuntime(t)
	p := rt.runPod(t, podSpec{Name: "helpers", Namespace: "e2e-helpers"})
	app := p.Run(t, ctrSpec{Name: "app", Command: []string{"/bin/spawner", "-listen", ":8081", "/bin/echo", "hi"}})
	tick := p.Run(t, ctrSpec{Name: "tick", Command: []string{"/bin/spawner", "-every", "200ms", "/bin/echo", "tick"}})
	base := fmt.Sprintf("http://%s:8081", p.IP(t))

	spawnCases := []struct {
		query string
		want  string
	}{
		{"", "spawn /bin/echo: exit 0: hi\n"},
		{"?cmd=/bin/sh&arg=-c&arg=" + url.QueryEscape("exit 7"), "spawn /bin/sh: exit 7: \n"},
		{"?cmd=/bin/sh&arg=-c&arg=" + url.QueryEscape("kill -KILL $$"), "spawn /bin/sh: signal killed\n"},
	}
	for _, c := range spawnCases {
		got, err := httpGet(base+"/spawn"+c.query, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("GET /spawn%s = %q, want %q", c.query, got, c.want)
		}
	}
	got, err := httpGet(base+"/spawn?cmd=/nonexistent", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "spawn /nonexistent: error ") {
		t.Errorf("spawn of a missing binary: %q, want an error line", got)
	}
	if logs := app.Logs(t); !strings.Contains(logs, "spawn /bin/sh: signal killed") {
		t.Errorf("spawner logs lack the killed child:\n%s", logs)
	}

	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(tick.Logs(t), "spawn /bin/echo: exit 0: tick") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("periodic spawner logged fewer than 2 ticks in 5s:\n%s", tick.Logs(t))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The last address of the pod subnet: nobody holds it, so no ARP answer.
	silent := netip.AddrPortFrom(lastAddr(rt.subnet), 80).String()
	clientCases := []struct {
		args     []string
		exit     int
		outcome  string
		describe string
	}{
		{[]string{"-http", "127.0.0.1:8081"}, 0, "ok 127.0.0.1:8081 ok", "listening port"},
		{[]string{"127.0.0.1:1"}, 1, "fail 127.0.0.1:1 refused:", "closed port"},
		{[]string{"-timeout", "300ms", silent}, 1, "fail " + silent + " timeout:", "silent address"},
	}
	for _, c := range clientCases {
		res, err := app.Exec(10*time.Second, append([]string{"/bin/client"}, c.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != c.exit || !strings.HasPrefix(res.Stdout, c.outcome) {
			t.Errorf("client to a %s: exit %d, stdout %q; want exit %d and %q...", c.describe, res.ExitCode, res.Stdout, c.exit, c.outcome)
		}
	}

	res, err := app.Exec(10*time.Second, "/bin/sh", "-c", "kill -KILL $$")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 137 {
		t.Errorf("SIGKILLed exec: exit %d, want 137", res.ExitCode)
	}
}

// lastAddr returns the highest host address of an IPv4 prefix (the one
// below broadcast).
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | host
	v--
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
