package crio

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bulwarkhq/bulwark/hook"
	"github.com/bulwarkhq/bulwark/install/edit"
	"github.com/bulwarkhq/bulwark/plugin"
)

// CRI-O cannot run pods on this machine (it is not packaged for Debian 12
// and its pods fail on oom_score_adj without CAP_SYS_RESOURCE), so the
// drop-in is checked the way CRI-O reads it instead: CRI-O decodes its
// files with the same BurntSushi/toml library into its configuration
// structs. crioConfig copies the [crio.nri] part of those structs, keys
// and types, from CRI-O v1.36's internal/config/nri/nri.go; the drop-in
// must decode into it with no key left over (CRI-O rejects or ignores
// unknown keys, depending on the version; either way NRI would stay as
// it was).
type crioConfig struct {
	Crio struct {
		NRI struct {
			Enabled                   bool          `toml:"enable_nri"`
			SocketPath                string        `toml:"nri_listen"`
			PluginPath                string        `toml:"nri_plugin_dir"`
			PluginConfigPath          string        `toml:"nri_plugin_config_dir"`
			PluginRegistrationTimeout time.Duration `toml:"nri_plugin_registration_timeout"`
			PluginRequestTimeout      time.Duration `toml:"nri_plugin_request_timeout"`
			DisableConnections        bool          `toml:"nri_disable_connections"`
			DefaultValidator          struct {
				Enable                                bool     `toml:"nri_enable_default_validator"`
				RejectOCIHookAdjustment               bool     `toml:"nri_validator_reject_oci_hook_adjustment"`
				RejectRuntimeDefaultSeccompAdjustment bool     `toml:"nri_validator_reject_runtime_default_seccomp_adjustment"`
				RejectUnconfinedSeccompAdjustment     bool     `toml:"nri_validator_reject_unconfined_seccomp_adjustment"`
				RejectCustomSeccompAdjustment         bool     `toml:"nri_validator_reject_custom_seccomp_adjustment"`
				RejectNamespaceAdjustment             bool     `toml:"nri_validator_reject_namespace_adjustment"`
				RequiredPlugins                       []string `toml:"nri_validator_required_plugins"`
				TolerateMissingAnnotation             string   `toml:"nri_validator_tolerate_missing_plugins_annotation"`
			} `toml:"default_validator"`
		} `toml:"nri"`
	} `toml:"crio"`
}

// readAsCRIO decodes files in CRI-O's order onto one configuration, the
// way CRI-O applies its main file and then each drop-in, and fails on a
// key CRI-O's schema does not have.
func readAsCRIO(t *testing.T, files ...string) crioConfig {
	t.Helper()
	var c crioConfig
	for _, f := range files {
		md, err := toml.DecodeFile(f, &c)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if u := md.Undecoded(); len(u) != 0 {
			t.Fatalf("%s: keys CRI-O does not know: %v", f, u)
		}
	}
	return c
}

// installAgainThenUninstall checks that a second install changes
// nothing, then uninstalls.
func installAgainThenUninstall(t *testing.T, opts Options) {
	t.Helper()
	if again, err := Install(opts); err != nil || len(again) != 0 {
		t.Fatalf("second install: %v\n%s", err, again.Diff())
	}
	u, err := Uninstall(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Apply(); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A host whose crio.conf turns NRI off and requires another plugin: the
// drop-in turns NRI on, requires Bulwark next to that plugin, exempts
// Bulwark's pods; a second run changes nothing; uninstall leaves the tree
// as it was, the directory install created included.
func TestInstallCRIO(t *testing.T) {
	root := t.TempDir()
	opts := Options{Config: filepath.Join(root, "crio.conf"), Dir: filepath.Join(root, "crio.conf.d"), Require: true}
	write(t, opts.Config, "[crio.nri]\nenable_nri = false\n[crio.nri.default_validator]\nnri_validator_required_plugins = [\"other\"]\n")
	p, err := Install(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	c := readAsCRIO(t, opts.Config, opts.DropIn())
	v := c.Crio.NRI.DefaultValidator
	if !c.Crio.NRI.Enabled || !v.Enable || !slices.Equal(v.RequiredPlugins, []string{"other", plugin.Name}) ||
		v.TolerateMissingAnnotation != plugin.TolerateMissingAnnotation {
		t.Fatalf("CRI-O would read %+v", c.Crio.NRI)
	}
	installAgainThenUninstall(t, opts)
	ents, _ := os.ReadDir(root)
	if len(ents) != 1 || ents[0].Name() != "crio.conf" {
		t.Fatalf("after uninstall %s holds %v", root, ents)
	}
}

// Without --require the drop-in only enables NRI, and an existing
// drop-in directory with the user's files stays after uninstall.
func TestInstallCRIONoRequire(t *testing.T) {
	root := t.TempDir()
	opts := Options{Config: filepath.Join(root, "crio.conf"), Dir: filepath.Join(root, "crio.conf.d")}
	write(t, filepath.Join(opts.Dir, "10-user.conf"), "[crio.runtime]\n")
	p, err := Install(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(opts.DropIn())
	if strings.Contains(string(b), "default_validator") {
		t.Fatalf("validator configured without --require:\n%s", b)
	}
	var c crioConfig
	md, err := toml.Decode(string(b), &c)
	if err != nil || len(md.Undecoded()) != 0 || !c.Crio.NRI.Enabled {
		t.Fatalf("drop-in %q: %v %v", b, err, md.Undecoded())
	}
	u, _ := Uninstall(opts)
	if err := u.Apply(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(opts.Dir); len(ents) != 1 {
		t.Fatalf("uninstall touched the user's drop-ins: %v", ents)
	}
}

// Refusals: a drop-in sorting after Bulwark's could override it, a file
// that does not parse is named with its line, a file at Bulwark's path
// that Bulwark did not write is neither replaced nor removed.
func TestInstallCRIORefuses(t *testing.T) {
	root := t.TempDir()
	opts := Options{Config: filepath.Join(root, "crio.conf"), Dir: filepath.Join(root, "d")}
	write(t, filepath.Join(opts.Dir, "zz.conf"), "")
	if _, err := Install(opts); err == nil || !strings.Contains(err.Error(), "zz.conf sorts after") {
		t.Fatalf("error %v", err)
	}
	os.Remove(filepath.Join(opts.Dir, "zz.conf"))
	write(t, opts.Config, "[crio.nri]\nenable_nri = tru\n")
	if _, err := Install(opts); err == nil || !strings.Contains(err.Error(), "crio.conf:2:") {
		t.Fatalf("error %v", err)
	}
	os.Remove(opts.Config)
	write(t, opts.DropIn(), "[crio.nri]\n")
	if _, err := Install(opts); err == nil {
		t.Fatal("replaced a foreign drop-in")
	}
	if _, err := Uninstall(opts); err == nil {
		t.Fatal("removed a foreign drop-in")
	}
}

// ociHook copies the OCI hooks schema 1.0.0 that CRI-O decodes hooks.d
// files with (containers/common pkg/hooks/1.0.0/hook.go: Hook and When),
// and validStages its stage names; CRI-O runs no file that fails it.
type ociHook struct {
	Version string     `json:"version"`
	Hook    specs.Hook `json:"hook"`
	When    struct {
		Always        *bool             `json:"always,omitempty"`
		Annotations   map[string]string `json:"annotations,omitempty"`
		Commands      []string          `json:"commands,omitempty"`
		HasBindMounts *bool             `json:"hasBindMounts,omitempty"`
	} `json:"when"`
	Stages []string `json:"stages"`
}

var validStages = []string{"createContainer", "createRuntime", "prestart", "poststart", "poststop", "startContainer"}

// readHookAsCRIO decodes and validates a hooks.d file the way CRI-O
// does (a key the schema lacks fails here too), and returns it.
func readHookAsCRIO(t *testing.T, path string) ociHook {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var h ociHook
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if h.Version != "1.0.0" || len(h.Stages) == 0 || h.Hook.Path == "" {
		t.Fatalf("%s: version %q, stages %v, path %q: CRI-O refuses it", path, h.Version, h.Stages, h.Hook.Path)
	}
	for _, s := range h.Stages {
		if !slices.Contains(validStages, s) {
			t.Fatalf("%s: unknown stage %q", path, s)
		}
	}
	if _, err := os.Stat(h.Hook.Path); err != nil {
		t.Fatalf("%s: hook.path: %v", path, err)
	}
	return h
}

// With a hook, install writes it as a hooks.d file CRI-O runs at
// createRuntime for every container; a second run changes nothing; a
// foreign file at its path is refused; uninstall removes it and the
// directories install created for it.
func TestInstallCRIOHook(t *testing.T) {
	root := t.TempDir()
	bin := filepath.Join(root, "bin", "bulwark-oci-hook")
	write(t, bin, "#!/bin/sh\n")
	h := hook.Hook(bin, hook.Options{Socket: "/run/a.sock", PolicyDir: "/p", Timeout: 3 * time.Second, Bulwark: "/usr/bin/bulwark"})
	opts := Options{Config: filepath.Join(root, "crio.conf"), Dir: filepath.Join(root, "crio.conf.d"),
		HooksDir: filepath.Join(root, "containers", "oci", "hooks.d"), Hook: &h}
	p, err := Install(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	got := readHookAsCRIO(t, opts.HookFile())
	if got.When.Always == nil || !*got.When.Always || !slices.Equal(got.Stages, []string{"createRuntime"}) ||
		!hook.IsBulwarkHook(got.Hook) || !slices.Equal(got.Hook.Args, h.Args) || got.Hook.Timeout == nil || *got.Hook.Timeout != *h.Timeout {
		t.Fatalf("CRI-O would read %+v; want Bulwark's hook %+v for every container at createRuntime", got, h)
	}
	installAgainThenUninstall(t, opts)
	if ents, _ := os.ReadDir(root); len(ents) != 1 || ents[0].Name() != "bin" {
		t.Fatalf("after uninstall %s holds %v, want only bin", root, ents)
	}
	write(t, opts.HookFile(), `{"version":"1.0.0","hook":{"path":"/usr/bin/other"},"when":{"always":true},"stages":["prestart"]}`)
	if _, err := Install(opts); err == nil || !strings.Contains(err.Error(), HookName) {
		t.Fatalf("install over a foreign hooks.d file: %v", err)
	}
	// Installed without the hook, uninstalled: the foreign file stays.
	opts.Hook = nil
	for _, plan := range []func(Options) (edit.Plan, error){Install, Uninstall} {
		p, err := plan(opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Apply(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(opts.HookFile()); err != nil {
		t.Fatalf("uninstall removed a foreign hooks.d file: %v", err)
	}
}
