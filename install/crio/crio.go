// Package crio enables NRI for the Bulwark agent in CRI-O with a drop-in
// under crio.conf.d, and removes it again. CRI-O reads its main file and
// then the drop-ins in lexical order, each key overriding the earlier.
// It also writes Bulwark's createRuntime hook as an OCI hooks.d file, a
// second line behind the hook the NRI plugin injects: CRI-O runs it for
// every container even while the agent, and so NRI, is away.
package crio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bulwarkhq/bulwark/hook"
	"github.com/bulwarkhq/bulwark/install/edit"
	"github.com/bulwarkhq/bulwark/plugin"
)

// Default paths of CRI-O's configuration.
const (
	DefaultConfig = "/etc/crio/crio.conf"
	DefaultDir    = "/etc/crio/crio.conf.d"
	// DropInName sorts after the usual NN-name drop-ins, so no other
	// drop-in overrides it.
	DropInName = "99-bulwark.conf"
	// DefaultHooksDir is the OCI hooks directory CRI-O reads besides
	// /usr/share/containers/oci/hooks.d (the packages'), and HookName
	// Bulwark's file there.
	DefaultHooksDir = "/etc/containers/oci/hooks.d"
	HookName        = "bulwark.json"
)

// Options say where CRI-O's configuration lives and what to enable.
type Options struct {
	// Config is CRI-O's main file (DefaultConfig when empty; may be absent).
	Config string
	// Dir is the drop-in directory (DefaultDir when empty).
	Dir string
	// Require turns on NRI's default validator with Bulwark as a required
	// plugin (CRI-O 1.34 and later), exempting pods that carry
	// plugin.TolerateMissingAnnotation.
	Require bool
	// HooksDir is the OCI hooks directory (DefaultHooksDir when empty)
	// and Hook, when set, Bulwark's createRuntime hook written there.
	HooksDir string
	Hook     *specs.Hook
}

func (o *Options) defaults() {
	if o.Config == "" {
		o.Config = DefaultConfig
	}
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.HooksDir == "" {
		o.HooksDir = DefaultHooksDir
	}
}

// HookFile returns the path of the hooks.d file.
func (o Options) HookFile() string {
	o.defaults()
	return filepath.Join(o.HooksDir, HookName)
}

// hookFile is the OCI hooks schema 1.0.0 that CRI-O reads hooks.d files
// with (containers/common pkg/hooks/1.0.0).
type hookFile struct {
	Version string     `json:"version"`
	Hook    specs.Hook `json:"hook"`
	When    struct {
		Always *bool `json:"always,omitempty"`
	} `json:"when"`
	Stages []string `json:"stages"`
}

// hookContent renders the hooks.d file for h: run at createRuntime for
// every container.
func hookContent(h specs.Hook) []byte {
	always := true
	f := hookFile{Version: "1.0.0", Hook: h, Stages: []string{hook.StageCreateRuntime}}
	f.When.Always = &always
	out, _ := json.MarshalIndent(f, "", "  ") // plain strings and numbers: cannot fail
	return append(out, '\n')
}

// ours reports whether data is a hooks.d file that runs Bulwark's hook.
func ours(data []byte) bool {
	var f hookFile
	return json.Unmarshal(data, &f) == nil && hook.IsBulwarkHook(f.Hook)
}

// missingDirs returns dir and those of its parents that do not exist,
// deepest first: what creating dir creates, and uninstall removes.
func missingDirs(dir string) []string {
	var out []string
	for d := dir; !edit.Exists(d) && d != filepath.Dir(d); d = filepath.Dir(d) {
		out = append(out, d)
	}
	return out
}

// DropIn returns the path of the drop-in.
func (o Options) DropIn() string {
	o.defaults()
	return filepath.Join(o.Dir, DropInName)
}

const header = "# Written by \"bulwark install crio\": NRI for the Bulwark agent.\n" +
	"# \"bulwark uninstall crio\" removes this file.\n"

// nriKeys is the part of CRI-O's configuration this package reads and
// writes: the [crio.nri] table (CRI-O's internal/config/nri.Config).
type nriKeys struct {
	Crio struct {
		NRI struct {
			Enable           *bool `toml:"enable_nri"`
			DefaultValidator struct {
				Enable          *bool    `toml:"nri_enable_default_validator"`
				RequiredPlugins []string `toml:"nri_validator_required_plugins"`
				Tolerate        string   `toml:"nri_validator_tolerate_missing_plugins_annotation"`
			} `toml:"default_validator"`
		} `toml:"nri"`
	} `toml:"crio"`
}

// Install plans the drop-in. With Require, the required plugins already
// configured (main file and earlier drop-ins) are kept.
func Install(opts Options) (edit.Plan, error) {
	opts.defaults()
	path := opts.DropIn()
	old, err := edit.Read(path)
	if err != nil {
		return nil, err
	}
	if old != nil && !bytes.HasPrefix(old, []byte(header)) {
		return nil, fmt.Errorf("%s exists and was not written by bulwark install; move it away", path)
	}
	var plan edit.Plan
	created := edit.CreatedDirs(old)
	if !edit.Exists(opts.Dir) {
		plan = append(plan, edit.Change{Dir: opts.Dir, DirOp: edit.MkdirDir})
		created = append(created, opts.Dir)
	}
	// Read the files CRI-O reads before the drop-in: they must parse, and
	// none may sort after it.
	cur, err := current(opts, path)
	if err != nil {
		return nil, err
	}
	var required []string
	if opts.Require {
		v := cur.Crio.NRI.DefaultValidator
		if v.Tolerate != "" && v.Tolerate != plugin.TolerateMissingAnnotation {
			return nil, fmt.Errorf("CRI-O's nri_validator_tolerate_missing_plugins_annotation is %q; Bulwark's pods carry %q: make them one", v.Tolerate, plugin.TolerateMissingAnnotation)
		}
		required = v.RequiredPlugins
		if !slices.Contains(required, plugin.Name) {
			required = append(slices.Clone(required), plugin.Name)
		}
	}
	if opts.Hook != nil {
		hookPath := opts.HookFile()
		oldHook, err := edit.Read(hookPath)
		if err != nil {
			return nil, err
		}
		if oldHook != nil && !ours(oldHook) {
			return nil, fmt.Errorf("%s exists and does not run Bulwark's hook; move it away", hookPath)
		}
		if dirs := missingDirs(opts.HooksDir); len(dirs) > 0 {
			plan = append(plan, edit.Change{Dir: opts.HooksDir, DirOp: edit.MkdirDir})
			created = append(created, dirs...)
		}
		plan = append(plan, edit.Change{Path: hookPath, Old: oldHook, New: hookContent(*opts.Hook), Perm: 0o644})
	}
	plan = append(plan, edit.Change{Path: path, Old: old, New: content(created, opts.Require, required), Perm: 0o644})
	return plan.Changed(), nil
}

// Uninstall plans the removal of the drop-in and of the directory
// install created for it (when empty).
func Uninstall(opts Options) (edit.Plan, error) {
	opts.defaults()
	path := opts.DropIn()
	old, err := edit.Read(path)
	if err != nil || old == nil {
		return nil, err
	}
	if !bytes.HasPrefix(old, []byte(header)) {
		return nil, fmt.Errorf("%s was not written by bulwark install; not removing it", path)
	}
	plan := edit.Plan{{Path: path, Old: old}}
	hookPath := opts.HookFile()
	if data, err := edit.Read(hookPath); err != nil {
		return nil, err
	} else if data != nil && ours(data) {
		plan = append(plan, edit.Change{Path: hookPath, Old: data})
	}
	for _, d := range edit.CreatedDirs(old) {
		plan = append(plan, edit.Change{Dir: d, DirOp: edit.RemoveDir})
	}
	return plan, nil
}

// current decodes the NRI keys of the main file and the drop-ins that
// sort before ours, in CRI-O's order.
func current(opts Options, ours string) (nriKeys, error) {
	files := []string{opts.Config}
	ents, err := os.ReadDir(opts.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nriKeys{}, err
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() && filepath.Join(opts.Dir, e.Name()) != ours {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if n > DropInName {
			return nriKeys{}, fmt.Errorf("%s sorts after %s and may override it; rename one", filepath.Join(opts.Dir, n), DropInName)
		}
		files = append(files, filepath.Join(opts.Dir, n))
	}
	var k nriKeys
	for _, f := range files {
		data, err := edit.Read(f)
		if err != nil {
			return k, err
		}
		if data == nil {
			continue
		}
		if _, err := toml.Decode(string(data), &k); err != nil {
			return k, edit.TOMLError(f, data, err)
		}
	}
	return k, nil
}

// content renders the drop-in.
func content(created []string, require bool, required []string) []byte {
	var b strings.Builder
	b.WriteString(header)
	for _, d := range created {
		b.WriteString(edit.CreatedDirMark + d + "\n")
	}
	b.WriteString("\n[crio.nri]\nenable_nri = true\n")
	if require {
		quoted := make([]string, len(required))
		for i, r := range required {
			quoted[i] = strconv.Quote(r)
		}
		b.WriteString("\n# CRI-O 1.34 and later: refuse containers while Bulwark is not registered.\n")
		b.WriteString("[crio.nri.default_validator]\nnri_enable_default_validator = true\n")
		b.WriteString("nri_validator_required_plugins = [" + strings.Join(quoted, ", ") + "]\n")
		b.WriteString("nri_validator_tolerate_missing_plugins_annotation = " + strconv.Quote(plugin.TolerateMissingAnnotation) + "\n")
	}
	return []byte(b.String())
}
