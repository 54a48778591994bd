package hook

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseRuncArgs(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		sub, bundle string
	}{
		// containerd-shim-runc-v2's create.
		{[]string{"--root", "/run/runc/moby", "--log", "/x/log.json", "--log-format", "json", "create",
			"--bundle", "/run/b", "--pid-file", "/run/b/init.pid", "abc"}, "create", "/run/b"},
		{[]string{"--systemd-cgroup", "create", "-b", "/b", "id"}, "create", "/b"},
		{[]string{"create", "--bundle=/b2", "id"}, "create", "/b2"},
		{[]string{"run", "id"}, "run", "."},
		// The bundle of another subcommand is not read.
		{[]string{"--root", "/r", "start", "id"}, "start", ""},
		{[]string{"--root", "/r", "delete", "--force", "id"}, "delete", ""},
		// A container named "create" is not the create subcommand.
		{[]string{"--root", "/r", "kill", "create", "KILL"}, "kill", ""},
		{[]string{"--version"}, "", ""},
	} {
		sub, bundle := ParseRuncArgs(tc.args)
		if sub != tc.sub || bundle != tc.bundle {
			t.Errorf("ParseRuncArgs(%q) = %q, %q; want %q, %q", tc.args, sub, bundle, tc.sub, tc.bundle)
		}
	}
}

// writeBundle writes a config.json holding spec into a new bundle.
func writeBundle(t *testing.T, spec string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestAddHookKeepsTheRestAndIsIdempotent(t *testing.T) {
	// A key no runtime-spec version defines must survive, as must the
	// hooks already there.
	bundle := writeBundle(t, `{"ociVersion":"1.0.2","root":{"path":"rootfs"},"futureKey":{"a":[1,2]},
		"hooks":{"createRuntime":[{"path":"/other"}],"prestart":[{"path":"/p"}]}}`)
	o := Options{Socket: "/run/a.sock", PolicyDir: "/p", Timeout: 3 * time.Second, Bulwark: "/usr/bin/bulwark"}
	for range 2 {
		if err := AddHook(bundle, "/usr/bin/bulwark-oci-hook", o); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		FutureKey json.RawMessage `json:"futureKey"`
		Hooks     specs.Hooks     `json:"hooks"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if string(doc.FutureKey) != `{"a":[1,2]}` {
		t.Errorf("futureKey = %s", doc.FutureKey)
	}
	cr := doc.Hooks.CreateRuntime
	if len(cr) != 2 || cr[0].Path != "/other" || !IsBulwarkHook(cr[1]) {
		t.Fatalf("createRuntime hooks = %+v, want /other then Bulwark's once", cr)
	}
	if len(doc.Hooks.Prestart) != 1 || len(doc.Hooks.Poststop) != 0 {
		t.Errorf("prestart %+v poststop %+v", doc.Hooks.Prestart, doc.Hooks.Poststop)
	}
	want := []string{HookBinary, StageCreateRuntime, "--socket", "/run/a.sock", "--policy-dir", "/p", "--timeout", "3s",
		"--bulwark", "/usr/bin/bulwark"}
	if !reflect.DeepEqual(cr[1].Args, want) || cr[1].Path != "/usr/bin/bulwark-oci-hook" {
		t.Errorf("hook = %s %q, want /usr/bin/bulwark-oci-hook %q", cr[1].Path, cr[1].Args, want)
	}
	// runc kills the hook only after the hook gave up on the agent and
	// the fallback decided.
	if cr[1].Timeout == nil || time.Duration(*cr[1].Timeout)*time.Second <= 3*time.Second+FallbackTimeout {
		t.Errorf("hook timeout = %v, want more than the 3 s wait and the fallback's", cr[1].Timeout)
	}
	if left, _ := filepath.Glob(filepath.Join(bundle, "config.json.*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestAddHookRefusesABrokenConfig(t *testing.T) {
	const broken = `{"ociVersion":"1.0.2",`
	bundle := writeBundle(t, broken)
	err := AddHook(bundle, "/b", Options{Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("AddHooks of a broken config.json: %v, want an error naming it", err)
	}
	if data, _ := os.ReadFile(filepath.Join(bundle, "config.json")); string(data) != broken {
		t.Errorf("config.json changed to %q", data)
	}
	if err := AddHook(t.TempDir(), "/b", Options{Timeout: time.Second}); err == nil {
		t.Error("AddHooks of a bundle without config.json succeeded")
	}
}

func TestRootfsOf(t *testing.T) {
	bundle := writeBundle(t, `{"root":{"path":"rootfs"}}`)
	if err := os.Mkdir(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := RootfsOf(bundle)
	if want, _ := filepath.EvalSymlinks(filepath.Join(bundle, "rootfs")); err != nil || got != want {
		t.Errorf("rootfsOf = %q, %v; want %q", got, err, want)
	}
	if _, err := RootfsOf(writeBundle(t, `{"process":{}}`)); err == nil {
		t.Error("rootfsOf of a config without root.path succeeded")
	}
}
