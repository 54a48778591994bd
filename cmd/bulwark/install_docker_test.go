package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/hook"
	"github.com/bulwarkhq/bulwark/hook/wrapper"
)

// daemonJSON decodes the daemon.json at path.
func daemonJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

// installedBulwark writes the three executables install docker checks
// for into a new directory and returns the bulwark one's path; without
// one of them, install refuses to name it.
func installedBulwark(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"bulwark", "bulwark-runc", "bulwark-oci-hook"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "bulwark")
}

func TestInstallDockerRefusesMissingExecutables(t *testing.T) {
	bin := installedBulwark(t)
	if err := os.Remove(filepath.Join(filepath.Dir(bin), "bulwark-oci-hook")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "daemon.json")
	_, _, err := runCLIWithInput(t, "", "install", "docker", "--daemon-json", path, "--bulwark", bin)
	if err == nil || !strings.Contains(err.Error(), "bulwark-oci-hook") {
		t.Fatalf("install without bulwark-oci-hook: %v; want an error naming it", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("daemon.json written: %v", err)
	}
}

func TestInstallDockerKeepsOtherKeysAndReverts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "daemon.json")
	const orig = `{"log-level": "warn", "runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime"}},
  "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 64000, "Soft": 64000}}}`
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	var before map[string]any
	json.Unmarshal([]byte(orig), &before)
	bin := installedBulwark(t)
	dir := filepath.Dir(bin)
	install := []string{"install", "docker", "--daemon-json", path, "--default", "--bulwark", bin,
		"--runc", "/usr/sbin/runc", "--socket", "/run/b.sock"}
	if _, errOut, err := runCLIWithInput(t, "", install...); err != nil {
		t.Fatalf("install: %v: %s", err, errOut)
	}
	doc := daemonJSON(t, path)
	if doc["default-runtime"] != "bulwark" || doc["log-level"] != "warn" || !reflect.DeepEqual(doc["default-ulimits"], before["default-ulimits"]) {
		t.Errorf("installed daemon.json lost or missed keys: %v", doc)
	}
	rts := doc["runtimes"].(map[string]any)
	// No runtimeArgs: with them Docker runs the runtime through a shell
	// script of its own. The wrapper's settings are in its file.
	if want := map[string]any{"path": dir + "/bulwark-runc"}; !reflect.DeepEqual(rts["bulwark"], want) || rts["nvidia"] == nil {
		t.Errorf("runtimes = %v; want bulwark %v", rts, want)
	}
	cfgPath := filepath.Join(dir, "bulwark-runc.json")
	cfg, err := wrapper.Read(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	want := wrapper.Config{Runc: "/usr/sbin/runc", Hook: dir + "/bulwark-oci-hook", Options: hook.DefaultOptions()}
	want.Socket, want.Bulwark = "/run/b.sock", bin
	if cfg != want {
		t.Errorf("%s holds %+v, want %+v", cfgPath, cfg, want)
	}
	if backup, err := os.ReadFile(path + ".bulwark-backup"); err != nil || string(backup) != orig {
		t.Errorf("backup = %q, %v; want the original file", backup, err)
	}
	// Again: nothing changes, the backup still holds the original.
	installed, _ := os.ReadFile(path)
	out, _, err := runCLIWithInput(t, "", install...)
	if now, _ := os.ReadFile(path); err != nil || string(now) != string(installed) || !strings.Contains(out, "nothing changed") {
		t.Errorf("second install: %v, %q; file changed: %v", err, out, string(now) != string(installed))
	}
	if backup, _ := os.ReadFile(path + ".bulwark-backup"); string(backup) != orig {
		t.Errorf("second install overwrote the backup with %q", backup)
	}
	// Other settings change the wrapper's file only, keeping a backup.
	written, _ := os.ReadFile(cfgPath)
	if _, errOut, err := runCLIWithInput(t, "", append(install, "--timeout", "2s")...); err != nil {
		t.Fatalf("install with --timeout: %v: %s", err, errOut)
	}
	if c, err := wrapper.Read(cfgPath); err != nil || c.Timeout != 2*time.Second {
		t.Errorf("after --timeout 2s: %+v, %v", c, err)
	}
	if backup, _ := os.ReadFile(cfgPath + ".bulwark-backup"); string(backup) != string(written) {
		t.Errorf("backup of %s = %q, want %q", cfgPath, backup, written)
	}
	if now, _ := os.ReadFile(path); string(now) != string(installed) {
		t.Errorf("daemon.json changed with the wrapper's settings")
	}
	if _, errOut, err := runCLIWithInput(t, "", "uninstall", "docker", "--daemon-json", path); err != nil {
		t.Fatalf("uninstall: %v: %s", err, errOut)
	}
	if after := daemonJSON(t, path); !reflect.DeepEqual(after, before) {
		t.Errorf("after uninstall:\n%v\nwant the original\n%v", after, before)
	}
	if _, err := os.Stat(cfgPath); !os.IsNotExist(err) {
		t.Errorf("uninstall left %s: %v", cfgPath, err)
	}
	// With the wrapper's C front beside it, Docker runs the front.
	if err := os.WriteFile(filepath.Join(dir, "bulwark-runc-front"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := runCLIWithInput(t, "", install...); err != nil {
		t.Fatalf("install with the front: %v: %s", err, errOut)
	}
	if bw := daemonJSON(t, path)["runtimes"].(map[string]any)["bulwark"]; !reflect.DeepEqual(bw, map[string]any{"path": dir + "/bulwark-runc-front"}) {
		t.Errorf("with the front installed the runtime is %v", bw)
	}
	if _, err := os.Stat(cfgPath); err != nil {
		t.Errorf("install with the front: %v", err)
	}
	if _, errOut, err := runCLIWithInput(t, "", "uninstall", "docker", "--daemon-json", path); err != nil {
		t.Fatalf("uninstall: %v: %s", err, errOut)
	}
	if _, err := os.Stat(cfgPath); !os.IsNotExist(err) {
		t.Errorf("uninstall with the front left %s: %v", cfgPath, err)
	}
	out, _, err = runCLIWithInput(t, "", "uninstall", "docker", "--daemon-json", path)
	if err != nil || !strings.Contains(out, "nothing changed") {
		t.Errorf("second uninstall: %v, %q", err, out)
	}
}

func TestInstallDockerMissingFileAndDryRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "docker", "daemon.json")
	bin := installedBulwark(t)
	out, _, err := runCLIWithInput(t, "", "install", "docker", "--daemon-json", path, "--dry-run", "--bulwark", bin)
	if err != nil || !strings.Contains(out, `"bulwark"`) || strings.Contains(out, "default-runtime") || !strings.Contains(out, `+  "socket": "/run/bulwark/agent.sock",`) {
		t.Fatalf("dry run: %v: %s", err, out)
	}
	for _, p := range []string{path, filepath.Join(filepath.Dir(bin), "bulwark-runc.json")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("dry run wrote %s: %v", p, err)
		}
	}
	if _, _, err := runCLIWithInput(t, "", "install", "docker", "--daemon-json", path, "--bulwark", installedBulwark(t)); err != nil {
		t.Fatal(err)
	}
	if doc := daemonJSON(t, path); doc["runtimes"] == nil || doc["default-runtime"] != nil {
		t.Errorf("installed without --default: %v", doc)
	}
}

func TestInstallDockerRefusesBadJSON(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{"{\n  \"log-level\": \"warn\",\n  \"debug\": tru\n}\n", "line 3"},
		{"[1, 2]", "not a JSON object"},
		{`{"runtimes": 7}`, `"runtimes" is not an object`},
	} {
		path := filepath.Join(t.TempDir(), "daemon.json")
		if err := os.WriteFile(path, []byte(tc.data), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := runCLIWithInput(t, "", "install", "docker", "--daemon-json", path, "--bulwark", installedBulwark(t))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("install over %q: %v; want an error naming %s and %q", tc.data, err, path, tc.want)
		}
		if now, _ := os.ReadFile(path); string(now) != tc.data {
			t.Errorf("bad file rewritten to %q", now)
		}
		if _, err := os.Stat(path + ".bulwark-backup"); !os.IsNotExist(err) {
			t.Errorf("backup written for a refused file")
		}
	}
}
