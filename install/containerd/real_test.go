package containerd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/bulwarkhq/bulwark/agent"
	bplugin "github.com/bulwarkhq/bulwark/plugin"
)

// realContainerd returns the containerd binary the real-runtime tests run
// (BULWARK_CONTAINERD, set by `make install-e2e` to the e2e harness's
// containerd 2.4.2), skipping when it is not set.
func realContainerd(t *testing.T) string {
	bin := os.Getenv("BULWARK_CONTAINERD")
	if bin == "" {
		t.Skip("BULWARK_CONTAINERD not set; `make install-e2e` runs this test against the real containerd")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("BULWARK_CONTAINERD: %v", err)
	}
	return bin
}

// dump runs `containerd config dump` on cfg and decodes it.
func dump(t *testing.T, bin, cfg string) (map[string]any, string) {
	t.Helper()
	out, err := exec.Command(bin, "--config", cfg, "config", "dump").Output()
	if err != nil {
		t.Fatalf("containerd config dump %s: %v", cfg, err)
	}
	var m map[string]any
	if _, err := toml.Decode(string(out), &m); err != nil {
		t.Fatalf("dump of %s: %v", cfg, err)
	}
	return m, string(out)
}

// nriOf removes and returns the NRI plugin table of a dump.
func nriOf(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	plugins, _ := m["plugins"].(map[string]any)
	nri, ok := plugins[NRIPlugin].(map[string]any)
	if !ok {
		t.Fatalf("dump has no %s table", NRIPlugin)
	}
	delete(plugins, NRIPlugin)
	return nri
}

// The real containerd reads the installed configuration, version 2 and
// version 3 files and no file at all (install creates one) alike: `containerd config dump` differs from the dump
// before install only in the NRI keys install sets (and in imports, which
// gains the drop-in); after uninstall the dump is the one from before.
func TestRealContainerdConfigDump(t *testing.T) {
	bin := realContainerd(t)
	for _, tc := range []struct{ name, config string }{{"v3", v3Config}, {"v2", v2Config}, {"none", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "config.toml")
			if tc.config != "" { // "none": containerd's defaults, no file
				write(t, cfg, tc.config)
			}
			if tc.name == "v2" {
				write(t, filepath.Join(dir, "other.toml"), "version = 2\n")
			}
			before, beforeText := dump(t, bin, cfg)
			applied(t)(Install(Options{Config: cfg, Require: true}))
			after, _ := dump(t, bin, cfg)
			dropIn := filepath.Join(dir, "conf.d", "bulwark.toml")

			nb, na := nriOf(t, before), nriOf(t, after)
			vb, _ := nb["default_validator"].(map[string]any)
			va, _ := na["default_validator"].(map[string]any)
			wantReq := append(slices.Clone(toStrings(vb["required_plugins"])), bplugin.Name)
			if na["disable"] != false || va["enable"] != true ||
				!reflect.DeepEqual(toStrings(va["required_plugins"]), wantReq) ||
				va["tolerate_missing_plugins_annotation"] != bplugin.TolerateMissingAnnotation {
				t.Fatalf("NRI after install: %v", na)
			}
			for _, k := range []string{"enable", "required_plugins", "tolerate_missing_plugins_annotation"} {
				delete(vb, k)
				delete(va, k)
			}
			delete(nb, "disable")
			delete(na, "disable")
			if !reflect.DeepEqual(nb, na) {
				t.Errorf("other NRI keys changed:\nbefore %v\nafter  %v", nb, na)
			}
			ib, ia := toStrings(before["imports"]), toStrings(after["imports"])
			if !slices.Contains(ia, dropIn) || len(ia) != len(ib)+1 {
				t.Errorf("imports before %v, after %v: want the drop-in added", ib, ia)
			}
			delete(before, "imports")
			delete(after, "imports")
			if !reflect.DeepEqual(before, after) {
				t.Errorf("install changed more than NRI:\nbefore %v\nafter  %v", before, after)
			}

			applied(t)(Uninstall(Options{Config: cfg}))
			if _, text := dump(t, bin, cfg); text != beforeText {
				t.Errorf("dump after uninstall differs from before:\n%s\nbefore:\n%s", text, beforeText)
			}
		})
	}
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// syncAgent is the agent side of Bulwark's NRI plugin in this test: it
// only reports the runtime's Synchronize, which follows registration.
type syncAgent struct{ synced chan struct{} }

func (a *syncAgent) ContainerCreated(agent.ContainerInfo)                        {}
func (a *syncAgent) ContainerStarted(context.Context, agent.ContainerInfo) error { return nil }
func (a *syncAgent) ContainerRemoved(string) error                               { return nil }
func (a *syncAgent) Synchronize([]agent.ContainerInfo) error {
	select {
	case a.synced <- struct{}{}:
	default:
	}
	return nil
}

// The real containerd started on an installed configuration (its own
// root, state and sockets under a test directory) accepts Bulwark's NRI
// plugin: the plugin registers and is synchronized. The user's file keeps
// NRI disabled, so without the install nothing listens on the socket.
func TestRealContainerdPluginRegisters(t *testing.T) {
	bin := realContainerd(t)
	dir, err := os.MkdirTemp("", "bulwark-install-") // short: socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanDir(t, dir) })
	cfg := filepath.Join(dir, "config.toml")
	nriSock := filepath.Join(dir, "nri.sock")
	write(t, cfg, fmt.Sprintf(`version = 3
root = '%[1]s/root'
state = '%[1]s/state'

[grpc]
  address = '%[1]s/containerd.sock'
[ttrpc]
  address = '%[1]s/containerd.sock.ttrpc'

[plugins.'io.containerd.internal.v1.opt']
  path = '%[1]s/opt'
[plugins.'io.containerd.shim.v1.manager']
  socket_dir = '%[1]s/s'
[plugins.'io.containerd.nri.v1.nri']
  disable = true
  socket_path = '%[2]s'
  plugin_path = '%[1]s/nri/plugins'
  plugin_config_path = '%[1]s/nri/conf.d'
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['%[1]s/cni/bin']
    conf_dir = '%[1]s/cni/conf'
`, dir, nriSock))
	if before, _ := dump(t, bin, cfg); nriOf(t, before)["disable"] != true {
		t.Fatal("the test's own configuration does not disable NRI")
	}
	applied(t)(Install(Options{Config: cfg, Require: true}))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var logBuf bytes.Buffer
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("containerd log:\n%s", logBuf.String())
		}
	}()
	for {
		if _, err := os.Stat(nriSock); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("containerd created no NRI socket at %s", nriSock)
		}
		time.Sleep(50 * time.Millisecond)
	}

	a := &syncAgent{synced: make(chan struct{}, 1)}
	pctx, pcancel := context.WithCancel(ctx)
	perr := make(chan error, 1)
	go func() { perr <- bplugin.New(a, nriSock, testLogger(t)).Run(pctx) }()
	select {
	case <-a.synced:
	case <-ctx.Done():
		t.Fatal("Bulwark's NRI plugin was not synchronized by containerd")
	}
	pcancel()
	if err := <-perr; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logBuf.String(), bplugin.Name) {
		t.Errorf("containerd's log never names the plugin %q", bplugin.Name)
	}
}

// cleanDir unmounts whatever containerd left mounted under dir (deepest
// first) and removes it.
func cleanDir(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err == nil {
		var mounts []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fields := strings.Fields(sc.Text()); len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
				mounts = append(mounts, fields[4])
			}
		}
		f.Close()
		slices.Sort(mounts)
		slices.Reverse(mounts)
		for _, m := range mounts {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", m, err)
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("remove %s: %v", dir, err)
	}
}

// testLogger logs to the test's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
