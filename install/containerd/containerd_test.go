package containerd

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/bulwarkhq/bulwark/install/edit"
	"github.com/bulwarkhq/bulwark/plugin"
)

// v3Config is a user's version 3 file: comments, odd spacing and
// unrelated settings that must survive byte for byte.
const v3Config = `# my containerd
version = 3
root = "/var/lib/containerd"   # keep this comment

[plugins]
  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = true   # no CAP_SYS_RESOURCE here
  [plugins."io.containerd.nri.v1.nri"]
    socket_path = "/run/custom/nri.sock"
    plugin_request_timeout = "3s"
    [plugins."io.containerd.nri.v1.nri".default_validator]
      required_plugins = ["other"]
`

const v2Config = `version = 2
imports = ["other.toml"]
oom_score = -999
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
`

// write creates path (and its directory) holding s.
func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot maps every file under dir to its content, directories to "/".
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() {
			out[p] = "/"
			return nil
		}
		b, err := os.ReadFile(p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, want, got map[string]string) {
	t.Helper()
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: gone", p)
		} else if g != w {
			t.Errorf("%s differs:\n got %q\nwant %q", p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: left behind", p)
		}
	}
}

// decodeNRI returns the NRI table of a drop-in.
func decodeNRI(t *testing.T, path string) map[string]any {
	t.Helper()
	var cfg map[string]any
	if _, err := toml.DecodeFile(path, &cfg); err != nil {
		t.Fatal(err)
	}
	plugins, _ := cfg["plugins"].(map[string]any)
	nri, _ := plugins[NRIPlugin].(map[string]any)
	if len(cfg) != 2 || cfg["version"] == nil || len(plugins) != 1 || nri == nil {
		t.Fatalf("%s: want version and the NRI plugin table only, got %v", path, cfg)
	}
	return nri
}

// applied returns a function that applies the plan it is given, failing
// the test on an error: applied(t)(Install(opts)).
func applied(t *testing.T) func(edit.Plan, error) edit.Plan {
	return func(p edit.Plan, err error) edit.Plan {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Apply(); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

// A version 3 file with comments and its own NRI settings: the main file
// gains one import line after the version line and nothing else; the
// drop-in keeps the user's NRI settings; a second run changes nothing;
// uninstall brings back the tree byte for byte.
func TestInstallV3RoundTrip(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	write(t, cfg, v3Config)
	before := snapshot(t, dir)

	opts := Options{Config: cfg, Require: true}
	p := applied(t)(Install(opts))
	if len(p) != 3 { // mkdir conf.d, main file, drop-in
		t.Fatalf("plan has %d changes, want 3:\n%s", len(p), p.Diff())
	}
	dropIn := filepath.Join(dir, "conf.d", "bulwark.toml")
	got, _ := os.ReadFile(cfg)
	want := strings.Replace(v3Config, "version = 3\n", "version = 3\n"+importLine(dropIn), 1)
	if string(got) != want {
		t.Fatalf("main file:\n%s\nwant:\n%s", got, want)
	}
	if b, _ := os.ReadFile(cfg + edit.BackupSuffix); string(b) != v3Config {
		t.Fatalf("backup holds %q", b)
	}
	// containerd merges tables key by key, so the drop-in holds only
	// what it changes; arrays it replaces, so the user's required plugin
	// is kept next to Bulwark.
	nri := decodeNRI(t, dropIn)
	v, _ := nri["default_validator"].(map[string]any)
	if len(nri) != 2 || nri["disable"] != false {
		t.Fatalf("drop-in NRI table %v, want disable = false and the validator only", nri)
	}
	if len(v) != 3 || v["enable"] != true || fmt.Sprint(v["required_plugins"]) != "[other "+plugin.Name+"]" ||
		v["tolerate_missing_plugins_annotation"] != plugin.TolerateMissingAnnotation {
		t.Fatalf("validator %v", v)
	}

	again, err := Install(opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 0 {
		t.Fatalf("second install is not a no-op:\n%s", again.Diff())
	}

	applied(t)(Uninstall(opts))
	sameTree(t, before, snapshot(t, dir))
	if again, err := Uninstall(opts); err != nil || len(again) != 0 {
		t.Fatalf("second uninstall: %v\n%s", err, again.Diff())
	}
}

// A version 2 file that already imports another file: the drop-in path
// goes first in its imports array, the drop-in is version 2 and, without
// --require, has no validator.
func TestInstallV2ExistingImports(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	write(t, cfg, v2Config)
	write(t, filepath.Join(dir, "other.toml"), "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"native\"\n")
	before := snapshot(t, dir)
	dropIn := filepath.Join(dir, "conf.d", "bulwark.toml")
	applied(t)(Install(Options{Config: cfg}))
	got, _ := os.ReadFile(cfg)
	want := strings.Replace(v2Config, `imports = [`, `imports = [`+importElem(dropIn), 1)
	if string(got) != want {
		t.Fatalf("main file:\n%s\nwant:\n%s", got, want)
	}
	b, _ := os.ReadFile(dropIn)
	if !bytes.Contains(b, []byte("\nversion = 2\n")) {
		t.Fatalf("drop-in is not version 2:\n%s", b)
	}
	if nri := decodeNRI(t, dropIn); len(nri) != 1 || nri["disable"] != false {
		t.Fatalf("drop-in NRI table %v, want only disable = false", nri)
	}
	applied(t)(Uninstall(Options{Config: cfg}))
	sameTree(t, before, snapshot(t, dir))
}

// An imports glob that already matches the drop-in: the main file is not
// touched at all.
func TestInstallGlobImportKeepsMainFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	main := "version = 3\nimports = [\"conf.d/*.toml\"]\n"
	write(t, cfg, main)
	p := applied(t)(Install(Options{Config: cfg}))
	for _, c := range p {
		if c.Path == cfg {
			t.Fatalf("main file changed:\n%s", p.Diff())
		}
	}
	if b, _ := os.ReadFile(cfg); string(b) != main {
		t.Fatalf("main file now %q", b)
	}
	if edit.Exists(cfg + edit.BackupSuffix) {
		t.Fatal("backup written for an untouched file")
	}
}

// No configuration file at all (containerd's defaults): install creates
// one importing the drop-in; uninstall removes both and the directories.
func TestInstallNoConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "etc", "containerd", "config.toml")
	applied(t)(Install(Options{Config: cfg}))
	if b, _ := os.ReadFile(cfg); string(b) != string(createdMain(filepath.Join(dir, "etc", "containerd", "conf.d", "bulwark.toml"))) {
		t.Fatalf("created main file %q", b)
	}
	applied(t)(Uninstall(Options{Config: cfg}))
	sameTree(t, map[string]string{dir: "/", filepath.Join(dir, "etc"): "/"}, snapshot(t, dir))
}

// Files install must refuse, each named in the error (with its line for
// a syntax error), and left untouched.
func TestInstallRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, main, other, want string
	}{
		{"syntax", "version = 3\n\n[plugins\nfoo = 1\n", "", "config.toml:3:"},
		{"version 1", "[plugins.cri]\n  x = 1\n", "", "version 1 files are not supported"},
		{"nri disabled", "version = 3\ndisabled_plugins = [\"io.containerd.nri.v1.nri\"]\n", "", "config.toml:2: disabled_plugins"},
		{"override", "version = 3\nimports = [\"other.toml\"]\n",
			"version = 3\n[plugins.'io.containerd.nri.v1.nri']\n  disable = true\n", "other.toml: loaded after"},
		{"broken import", "version = 3\nimports = [\"other.toml\"]\n", "version = = 3\n", "other.toml:1:"},
		{"no connections", "version = 3\n[plugins.'io.containerd.nri.v1.nri']\n  disable_connections = true\n", "", "disable_connections = true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "config.toml")
			write(t, cfg, tc.main)
			if tc.other != "" {
				write(t, filepath.Join(dir, "other.toml"), tc.other)
			}
			before := snapshot(t, dir)
			p, err := Install(Options{Config: cfg, Require: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q (plan:\n%s)", err, tc.want, p.Diff())
			}
			sameTree(t, before, snapshot(t, dir))
		})
	}
}

// A drop-in someone else wrote at Bulwark's path is neither overwritten
// nor removed.
func TestForeignDropIn(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	write(t, cfg, "version = 3\n")
	write(t, filepath.Join(dir, "conf.d", "bulwark.toml"), "version = 3\n")
	if _, err := Install(Options{Config: cfg}); err == nil {
		t.Fatal("install overwrote a foreign drop-in")
	}
	if _, err := Uninstall(Options{Config: cfg}); err == nil {
		t.Fatal("uninstall removed a foreign drop-in")
	}
}

// Edits the user made after install survive uninstall: only the import
// install added goes, and the stale backup stays.
func TestUninstallKeepsLaterEdits(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	write(t, cfg, v3Config)
	applied(t)(Install(Options{Config: cfg}))
	b, _ := os.ReadFile(cfg)
	write(t, cfg, string(b)+"# edited later\n")
	applied(t)(Uninstall(Options{Config: cfg}))
	if b, _ := os.ReadFile(cfg); string(b) != v3Config+"# edited later\n" {
		t.Fatalf("main file after uninstall %q", b)
	}
	if !edit.Exists(cfg + edit.BackupSuffix) {
		t.Fatal("backup removed although it no longer matches")
	}
}
