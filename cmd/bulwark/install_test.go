package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/install/systemd"
	"github.com/bulwarkhq/bulwark/plugin"
)

const userContainerdConfig = `# the user's own file
version = 3

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
`

// The README's containerd-host commands: --dry-run shows the diff and
// writes nothing, install writes, a second install says nothing changed,
// uninstall brings the file back byte for byte and removes the rest.
func TestInstallContainerdCLI(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(userContainerdConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "install", "containerd", "--config", cfg, "--require", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	dropIn := filepath.Join(dir, "conf.d", "bulwark.toml")
	for _, want := range []string{"+imports = [\"" + dropIn + "\"]", "+++ " + dropIn, "+  disable = false",
		"required_plugins = [\"" + plugin.Name + "\"]", "dry run: nothing written"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("dry run wrote: %v", ents)
	}

	out, _, err = runCLI(t, "install", "containerd", "--config", cfg, "--require")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "changed "+cfg) || !strings.Contains(out, "wrote "+dropIn) || !strings.Contains(out, "systemctl restart containerd") {
		t.Errorf("install output:\n%s", out)
	}
	if fi, _ := os.Stat(cfg); fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode changed to %v", fi.Mode().Perm())
	}
	if out, _, err = runCLI(t, "install", "containerd", "--config", cfg, "--require"); err != nil || !strings.Contains(out, "nothing changed") {
		t.Errorf("second install: %v\n%s", err, out)
	}
	if _, _, err = runCLI(t, "uninstall", "containerd", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(cfg); string(b) != userContainerdConfig {
		t.Fatalf("after uninstall:\n%s", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("uninstall left: %v", ents)
	}
}

// A file that does not parse is refused with file:line and not touched.
func TestInstallContainerdRefusesBadFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	bad := "version = 3\n[plugins.'io.containerd.nri.v1.nri'\n  disable = false\n"
	os.WriteFile(cfg, []byte(bad), 0o644)
	_, _, err := runCLI(t, "install", "containerd", "--config", cfg)
	if err == nil || !strings.Contains(err.Error(), cfg+":2:") || !strings.Contains(err.Error(), "untouched") {
		t.Fatalf("error %v, want %s:2: ... untouched", err, cfg)
	}
	if b, _ := os.ReadFile(cfg); string(b) != bad {
		t.Fatal("bad file changed")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("wrote: %v", ents)
	}
}

// bulwark install crio --require writes the drop-in and the hooks.d file
// running the bulwark-oci-hook beside --bulwark; uninstall removes both
// and the directories install created.
func TestInstallCRIOCLI(t *testing.T) {
	dir := t.TempDir()
	d, hooks := filepath.Join(dir, "crio.conf.d"), filepath.Join(dir, "containers", "oci", "hooks.d")
	bin := installedBulwark(t)
	out, _, err := runCLI(t, "install", "crio", "--config", filepath.Join(dir, "crio.conf"), "--dir", d, "--require",
		"--hooks-dir", hooks, "--bulwark", bin, "--socket", "/run/b.sock")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(d, "99-bulwark.conf"))
	if err != nil || !strings.Contains(string(b), "nri_validator_required_plugins = [\"bulwark\"]") {
		t.Fatalf("drop-in %q (%v); output:\n%s", b, err, out)
	}
	h, err := os.ReadFile(filepath.Join(hooks, "bulwark.json"))
	if err != nil || !strings.Contains(string(h), `"path": "`+filepath.Dir(bin)+`/bulwark-oci-hook"`) || !strings.Contains(string(h), `"/run/b.sock"`) {
		t.Fatalf("hooks.d file %s (%v)", h, err)
	}
	if _, _, err := runCLI(t, "uninstall", "crio", "--config", filepath.Join(dir, "crio.conf"), "--dir", d, "--hooks-dir", hooks); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("uninstall left: %v", ents)
	}
}

// bulwark install systemd writes units whose ExecStart lines are bulwark
// command lines this binary accepts; uninstall removes them.
func TestInstallSystemdCLI(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The units run bin, with the hook beside it.
	bin := filepath.Join(t.TempDir(), "bulwark")
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(bin), "bulwark-oci-hook"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "install", "systemd", "--dir", dir, "--binary", bin)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "systemctl enable --now bulwark-collector.service bulwark-agent.service") {
		t.Errorf("output lacks the next step:\n%s", out)
	}
	for _, u := range systemd.Units {
		b, err := os.ReadFile(filepath.Join(dir, u))
		if err != nil {
			t.Fatal(err)
		}
		var exec []string
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
				exec = strings.Fields(v)
			}
		}
		if len(exec) < 2 || exec[0] != bin {
			t.Fatalf("%s: ExecStart %v", u, exec)
		}
		c, rest, err := newRootCmd().Find(exec[1:])
		if err != nil || c.RunE == nil || c.Name() != exec[1] {
			t.Fatalf("%s: %v is not a bulwark verb: %v", u, exec[1:], err)
		}
		if err := c.ParseFlags(rest); err != nil {
			t.Fatalf("%s: flags %v: %v", u, rest, err)
		}
	}
	if _, _, err := runCLI(t, "uninstall", "systemd", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("uninstall left: %v", ents)
	}
}
