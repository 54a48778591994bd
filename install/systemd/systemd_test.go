package systemd

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// TestMain removes the binary bulwarkBin built.
func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// bulwarkBin builds the bulwark binary once for the tests that run it.
func bulwarkBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bulwark-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "bulwark")
		if out, err := exec.Command("go", "build", "-o", builtBin, "../../cmd/bulwark").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// besideHook returns a path of exe (a symlink) with a bulwark-oci-hook
// beside it, as Install wants.
func besideHook(t *testing.T, exe string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(dir, "bulwark")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bulwark-oci-hook"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "bulwark")
}

// installed writes the units for binary into a fresh unit directory.
func installed(t *testing.T, binary string) string {
	t.Helper()
	dir := t.TempDir()
	p, err := Install(Options{Dir: dir, Binary: binary})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// verify runs systemd-analyze verify on unit files. It works here
// without systemd as PID 1: it loads the units offline.
func verify(t *testing.T, files ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze missing: test/deps.sh unit installs it")
	}
	out, err := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, files...)...).CombinedOutput()
	return string(out), err
}

// The units pass systemd-analyze verify with no warning; a unit with a
// bad setting fails it, so the check can fail.
func TestUnitsVerify(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := installed(t, besideHook(t, exe))
	var files []string
	for _, u := range Units {
		files = append(files, filepath.Join(dir, u))
	}
	if out, err := verify(t, files...); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(files[1])
	bad := filepath.Join(t.TempDir(), Units[1])
	os.WriteFile(bad, bytes.Replace(b, []byte("Restart=always"), []byte("Restart=sometimes"), 1), 0o644)
	if out, _ := verify(t, bad); !strings.Contains(out, "sometimes") {
		t.Fatalf("verify did not flag a bad Restart=: %q", out)
	}
}

// unitValue returns the value of key in a unit file's content.
func unitValue(t *testing.T, content []byte, key string) string {
	t.Helper()
	for _, l := range strings.Split(string(content), "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	t.Fatalf("no %s= in unit", key)
	return ""
}

// setprivCaps turns a CapabilityBoundingSet value into setpriv's
// --bounding-set argument.
func setprivCaps(set []string) string {
	arg := "-all"
	for _, c := range set {
		arg += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	return arg
}

// runAgent starts the agent with only the capabilities in caps (as
// systemd's CapabilityBoundingSet leaves root) and reports whether it
// came up (its socket appeared) or the error it exited with. It guards
// no services and talks to no runtime: only loading and attaching count.
func runAgent(t *testing.T, bin string, caps []string) (bool, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "bulwark-unit-")
	if err != nil {
		t.Fatal(err)
	}
	pins := filepath.Join("/sys/fs/bpf", filepath.Base(dir))
	defer os.RemoveAll(dir)
	defer os.RemoveAll(pins) // unpinning detaches what the agent attached
	sock := filepath.Join(dir, "agent.sock")
	var out bytes.Buffer
	cmd := exec.Command("setpriv", "--inh-caps=-all", "--bounding-set="+setprivCaps(caps), bin, "agent",
		"--no-nri", "--no-collector", "--services=false", "--kubeconfig=", "--docker=false", "--pin-dir", pins, "--socket", sock,
		"--policy-dir", filepath.Join(dir, "policies"), "--spool-dir", filepath.Join(dir, "spool"))
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case <-done:
			return false, out.String()
		case <-deadline:
			cmd.Process.Kill()
			<-done
			t.Fatalf("agent neither came up nor exited:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := os.Stat(sock); err == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			<-done
			return true, out.String()
		}
	}
}

// The agent runs with exactly the unit's capability bounding set, and
// each BPF capability in it is needed: without it the agent does not
// start. (CAP_SYS_PTRACE is needed for workloads, see the next test.)
func TestAgentCapabilities(t *testing.T) {
	bin := bulwarkBin(t)
	unit, err := Render("bulwark-agent.service", bin)
	if err != nil {
		t.Fatal(err)
	}
	caps := strings.Fields(unitValue(t, unit, "CapabilityBoundingSet"))
	if up, out := runAgent(t, bin, caps); !up {
		t.Fatalf("agent with the unit's capabilities %v did not come up:\n%s", caps, out)
	}
	for _, drop := range []string{"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"} {
		var fewer []string
		for _, c := range caps {
			if c != drop {
				fewer = append(fewer, c)
			}
		}
		if len(fewer) == len(caps) {
			t.Fatalf("unit lacks %s", drop)
		}
		if up, _ := runAgent(t, bin, fewer); up {
			t.Errorf("agent came up without %s: the unit grants more than needed", drop)
		}
	}
}

// CAP_SYS_PTRACE in the agent's set: without it root cannot open
// /proc/PID/root of a process holding capabilities it lacks (every
// container's init), which the agent reads to resolve users.
func TestAgentNeedsPtraceForWorkloads(t *testing.T) {
	unit, err := Render("bulwark-agent.service", "/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	caps := strings.Fields(unitValue(t, unit, "CapabilityBoundingSet"))
	workload := exec.Command("sleep", "30") // full root capabilities
	if err := workload.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { workload.Process.Kill(); workload.Wait() }()
	root := "/proc/" + strconv.Itoa(workload.Process.Pid) + "/root/"
	read := func(caps []string) error {
		return exec.Command("setpriv", "--inh-caps=-all", "--bounding-set="+setprivCaps(caps), "ls", root).Run()
	}
	if err := read(caps); err != nil {
		t.Fatalf("with the unit's capabilities: %v", err)
	}
	var noPtrace []string
	for _, c := range caps {
		if c != "CAP_SYS_PTRACE" {
			noPtrace = append(noPtrace, c)
		}
	}
	if err := read(noPtrace); err == nil {
		t.Fatal("read another process's root without CAP_SYS_PTRACE: the capability is not needed")
	}
}

// The collector runs with no capability at all, as its unit says, and
// its socket is root-only.
func TestCollectorNoCapabilities(t *testing.T) {
	bin := bulwarkBin(t)
	unit, err := Render("bulwark-collector.service", bin)
	if err != nil {
		t.Fatal(err)
	}
	if v := unitValue(t, unit, "CapabilityBoundingSet"); v != "" {
		t.Fatalf("collector unit grants %q", v)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "collector.sock")
	cmd := exec.Command("setpriv", "--inh-caps=-all", "--bounding-set=-all", bin, "collector",
		"--socket", sock, "--db", filepath.Join(dir, "collector.db"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	for i := 0; ; i++ {
		fi, err := os.Stat(sock)
		if err == nil {
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("collector socket mode %v, want root-only 0600", fi.Mode().Perm())
			}
			break
		}
		if i > 200 {
			t.Fatalf("collector without capabilities did not serve:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fi, _ := os.Stat(filepath.Dir(sock)); fi.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode %v, want 0700", fi.Mode().Perm())
	}
}

// Install twice changes nothing the second time; uninstall refuses while
// a unit is enabled, then leaves the directory as it was; a unit file
// Bulwark did not write is left alone.
func TestInstallUninstall(t *testing.T) {
	bin := besideHook(t, "/bin/true")
	binDir := filepath.Dir(bin)
	dir := installed(t, bin)
	if p, err := Install(Options{Dir: dir, Binary: bin}); err != nil || len(p) != 0 {
		t.Fatalf("second install: %v\n%s", err, p.Diff())
	}
	wants := filepath.Join(dir, "multi-user.target.wants")
	os.Mkdir(wants, 0o755)
	os.Symlink(filepath.Join(dir, Units[1]), filepath.Join(wants, Units[1]))
	if _, err := Uninstall(Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "systemctl disable") {
		t.Fatalf("uninstall of an enabled unit: %v", err)
	}
	os.RemoveAll(wants)
	p, err := Uninstall(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
	os.WriteFile(filepath.Join(dir, Units[0]), []byte("[Unit]\n"), 0o644)
	if _, err := Install(Options{Dir: dir, Binary: bin}); err == nil {
		t.Fatal("replaced a foreign unit")
	}
	if _, err := Install(Options{Dir: t.TempDir(), Binary: "/no/such/bulwark"}); err == nil {
		t.Fatal("installed units for a missing binary")
	}
	if err := os.Remove(filepath.Join(binDir, "bulwark-oci-hook")); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(Options{Dir: t.TempDir(), Binary: bin}); err == nil || !strings.Contains(err.Error(), "bulwark-oci-hook") {
		t.Fatalf("install without bulwark-oci-hook beside bulwark: %v; want an error naming it", err)
	}
}
