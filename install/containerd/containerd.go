// Package containerd enables NRI for the Bulwark agent in a containerd 2.x
// configuration (version 2, 3 and 4 files) and takes it out again. The NRI
// settings go in a drop-in file that the main configuration imports; the
// main file gains at most that import, byte for byte otherwise.
package containerd

import (
	"bytes"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/bulwarkhq/bulwark/install/edit"
	"github.com/bulwarkhq/bulwark/plugin"
)

// DefaultConfig is containerd's main configuration file.
const DefaultConfig = "/etc/containerd/config.toml"

// NRIPlugin is the configuration key of containerd's NRI plugin (the same
// in version 2 and version 3 files).
const NRIPlugin = "io.containerd.nri.v1.nri"

// Options say which configuration to change and how.
type Options struct {
	// Config is the main configuration file (DefaultConfig when empty).
	Config string
	// DropIn is the file holding Bulwark's NRI settings (conf.d/bulwark.toml
	// next to Config when empty).
	DropIn string
	// Require turns on NRI's default validator with Bulwark as a required
	// plugin: containers are refused while the agent is not registered,
	// except in pods carrying plugin.TolerateMissingAnnotation.
	Require bool
}

func (o *Options) defaults() {
	if o.Config == "" {
		o.Config = DefaultConfig
	}
	if o.DropIn == "" {
		o.DropIn = filepath.Join(filepath.Dir(o.Config), "conf.d", "bulwark.toml")
	}
	o.Config = filepath.Clean(o.Config)
	o.DropIn = filepath.Clean(o.DropIn)
}

// header starts every drop-in this package writes; uninstall removes only
// a file that starts with it.
const header = "# Written by \"bulwark install containerd\": NRI for the Bulwark agent.\n" +
	"# \"bulwark uninstall containerd\" removes this file and the import of it.\n"

// Install plans the changes that enable NRI for Bulwark. An unparsable
// file is refused with file:line and nothing is planned.
func Install(opts Options) (edit.Plan, error) {
	opts.defaults()
	mainOld, err := edit.Read(opts.Config)
	if err != nil {
		return nil, err
	}
	mainNew := mainOld
	var version int64 = 3
	if mainOld != nil {
		cfg, err := parse(opts.Config, mainOld)
		if err != nil {
			return nil, err
		}
		if version, err = configVersion(opts.Config, cfg); err != nil {
			return nil, err
		}
		if err := checkNotDisabled(opts.Config, mainOld, cfg); err != nil {
			return nil, err
		}
	}

	// Where the chain of imports already loads the drop-in (a glob in
	// imports, or a previous install), the main file stays as it is.
	loaded, err := chainLoads(opts.Config, mainOld, opts.DropIn)
	if err != nil {
		return nil, err
	}
	if !loaded {
		if mainNew, err = addImport(opts.Config, mainOld, opts.DropIn); err != nil {
			return nil, err
		}
	}

	dropOld, err := edit.Read(opts.DropIn)
	if err != nil {
		return nil, err
	}
	if dropOld != nil && !bytes.HasPrefix(dropOld, []byte(header)) {
		return nil, fmt.Errorf("%s exists and was not written by bulwark install; move it away or pass another --drop-in", opts.DropIn)
	}
	var plan edit.Plan
	created := edit.CreatedDirs(dropOld)
	for _, dir := range []string{filepath.Dir(opts.Config), filepath.Dir(opts.DropIn)} {
		if !edit.Exists(dir) && !slices.Contains(created, dir) {
			plan = append(plan, edit.Change{Dir: dir, DirOp: edit.MkdirDir})
			created = append(created, dir)
		}
	}

	// The NRI settings in force without the drop-in: it keeps the
	// plugins they already require.
	base, _, err := effectiveNRI(opts.Config, mainNew, opts.DropIn, nil)
	if err != nil {
		return nil, err
	}
	table, err := nriTable(opts.Config, base, opts.Require)
	if err != nil {
		return nil, err
	}
	dropNew, err := dropInContent(version, table, created)
	if err != nil {
		return nil, err
	}
	if err := verify(opts, mainNew, dropNew, table); err != nil {
		return nil, err
	}
	plan = append(plan,
		edit.Change{Path: opts.Config, Old: mainOld, New: mainNew, Backup: true, Perm: 0o644},
		edit.Change{Path: opts.DropIn, Old: dropOld, New: dropNew, Perm: 0o644},
	)
	return plan.Changed(), nil
}

// Uninstall plans the changes that undo Install: the drop-in goes, the
// import Install added goes, the directories it created go when empty,
// and the backup goes when the main file is back to its content.
func Uninstall(opts Options) (edit.Plan, error) {
	opts.defaults()
	var plan edit.Plan
	dropOld, err := edit.Read(opts.DropIn)
	if err != nil {
		return nil, err
	}
	if dropOld != nil {
		if !bytes.HasPrefix(dropOld, []byte(header)) {
			return nil, fmt.Errorf("%s was not written by bulwark install; not removing it", opts.DropIn)
		}
		plan = append(plan, edit.Change{Path: opts.DropIn, Old: dropOld})
	}
	mainOld, err := edit.Read(opts.Config)
	if err != nil {
		return nil, err
	}
	mainNew := removeImport(mainOld, opts.DropIn)
	if mainOld != nil && mainNew != nil && !bytes.Equal(mainOld, mainNew) {
		if _, err := parse(opts.Config, mainNew); err != nil {
			return nil, fmt.Errorf("removing the import of %s would break %s: %w", opts.DropIn, opts.Config, err)
		}
	}
	plan = append(plan, edit.Change{Path: opts.Config, Old: mainOld, New: mainNew})
	backup := opts.Config + edit.BackupSuffix
	if b, err := edit.Read(backup); err != nil {
		return nil, err
	} else if b != nil && mainNew != nil && bytes.Equal(b, mainNew) {
		plan = append(plan, edit.Change{Path: backup, Old: b})
	}
	dirs := edit.CreatedDirs(dropOld)
	slices.Reverse(dirs)
	for _, d := range dirs {
		plan = append(plan, edit.Change{Dir: d, DirOp: edit.RemoveDir})
	}
	return plan.Changed(), nil
}

// parse decodes a TOML file, reporting a syntax error as file:line.
func parse(path string, data []byte) (map[string]any, error) {
	var cfg map[string]any
	if _, err := toml.Decode(string(data), &cfg); err != nil {
		return nil, fmt.Errorf("%w (file left untouched)", edit.TOMLError(path, data, err))
	}
	return cfg, nil
}

// configVersion returns the file's version: 2 and 3 are supported.
func configVersion(path string, cfg map[string]any) (int64, error) {
	v, ok := cfg["version"].(int64)
	if !ok {
		return 0, fmt.Errorf("%s: no version = 2, 3 or 4 line: version 1 files are not supported; convert it with \"containerd config migrate\"", path)
	}
	if v < 2 || v > 4 {
		return 0, fmt.Errorf("%s: version = %d is not supported (want 2, 3 or 4)", path, v)
	}
	return v, nil
}

// checkNotDisabled refuses a file that lists the NRI plugin among
// disabled_plugins: an import cannot re-enable it.
func checkNotDisabled(path string, data []byte, cfg map[string]any) error {
	list, _ := cfg["disabled_plugins"].([]any)
	for _, p := range list {
		if p == NRIPlugin {
			return fmt.Errorf("%s:%d: disabled_plugins lists %q; remove it there first", path, lineOf(data, "disabled_plugins"), NRIPlugin)
		}
	}
	return nil
}

// lineOf returns the 1-based line of the first occurrence of s in data.
func lineOf(data []byte, s string) int {
	i := bytes.Index(data, []byte(s))
	if i < 0 {
		return 1
	}
	return 1 + bytes.Count(data[:i], []byte("\n"))
}

// imports returns the files a configuration imports, resolved as
// containerd resolves them (relative to the file's directory, globs
// expanded), with target included when a glob matches it.
func imports(path string, cfg map[string]any, target string) []string {
	list, _ := cfg["imports"].([]any)
	var out []string
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			continue
		}
		s = filepath.Clean(s)
		if !filepath.IsAbs(s) {
			s = filepath.Join(filepath.Dir(path), s)
		}
		if !strings.Contains(s, "*") {
			out = append(out, s)
			continue
		}
		matches, _ := filepath.Glob(s)
		if ok, _ := filepath.Match(s, target); ok && !slices.Contains(matches, target) {
			matches = append(matches, target)
			slices.Sort(matches)
		}
		out = append(out, matches...)
	}
	return out
}

// chain walks the configuration files in containerd's load order (the
// main file, then imports breadth first, each file once) and calls fn on
// each. Files are read from contents when present there (planned
// content; nil = absent), else from disk.
func chain(mainPath string, contents map[string][]byte, target string, fn func(path string, cfg map[string]any) error) error {
	pending := []string{mainPath}
	seen := map[string]bool{}
	for len(pending) > 0 {
		p := pending[0]
		pending = pending[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		data, planned := contents[p]
		if !planned {
			var err error
			if data, err = edit.Read(p); err != nil {
				return err
			}
		}
		if data == nil {
			if p == mainPath || p == target {
				continue
			}
			return fmt.Errorf("%s: imported file does not exist", p)
		}
		cfg, err := parse(p, data)
		if err != nil {
			return err
		}
		if err := fn(p, cfg); err != nil {
			return err
		}
		pending = append(pending, imports(p, cfg, target)...)
	}
	return nil
}

// chainLoads reports whether the configuration chain imports dropIn.
func chainLoads(mainPath string, mainData []byte, dropIn string) (bool, error) {
	found := false
	err := chain(mainPath, map[string][]byte{mainPath: mainData, dropIn: nil}, dropIn, func(p string, cfg map[string]any) error {
		if slices.Contains(imports(p, cfg, dropIn), dropIn) {
			found = true
		}
		return nil
	})
	return found, err
}

// effectiveNRI returns the NRI table containerd would use with dropIn
// holding dropData (nil: absent), merged as containerd merges files:
// tables key by key, other values (arrays too) replaced by the later
// file. after lists the files loaded after dropIn that set NRI keys.
func effectiveNRI(mainPath string, mainData []byte, dropIn string, dropData []byte) (nri map[string]any, after []string, err error) {
	nri = map[string]any{}
	seenDropIn := false
	err = chain(mainPath, map[string][]byte{mainPath: mainData, dropIn: dropData}, dropIn, func(p string, cfg map[string]any) error {
		plugins, _ := cfg["plugins"].(map[string]any)
		t, ok := plugins[NRIPlugin].(map[string]any)
		if ok {
			merge(nri, t)
			if seenDropIn {
				after = append(after, p)
			}
		}
		if p == dropIn {
			seenDropIn = true
		}
		return nil
	})
	return nri, after, err
}

// merge merges src into dst: tables recursively, anything else replaced.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			dv, ok := dst[k].(map[string]any)
			if !ok {
				dv = map[string]any{}
				dst[k] = dv
			}
			merge(dv, sv)
			continue
		}
		dst[k] = v
	}
}

// nriTable returns the NRI table of the drop-in: NRI enabled and, with
// require, the default validator requiring Bulwark besides the plugins
// base already requires (containerd replaces arrays, it does not join
// them).
func nriTable(path string, base map[string]any, require bool) (map[string]any, error) {
	if base["disable_connections"] == true {
		return nil, fmt.Errorf("%s: [plugins.%q] disable_connections = true keeps the agent out; set it to false first", path, NRIPlugin)
	}
	t := map[string]any{"disable": false}
	if !require {
		return t, nil
	}
	old, _ := base["default_validator"].(map[string]any)
	var req []any
	if r, ok := old["required_plugins"].([]any); ok {
		req = append(req, r...)
	}
	if !slices.Contains(req, any(plugin.Name)) {
		req = append(req, plugin.Name)
	}
	if a, ok := old["tolerate_missing_plugins_annotation"].(string); ok && a != "" && a != plugin.TolerateMissingAnnotation {
		return nil, fmt.Errorf("%s: default_validator.tolerate_missing_plugins_annotation is %q; Bulwark's pods carry %q: make them one", path, a, plugin.TolerateMissingAnnotation)
	}
	t["default_validator"] = map[string]any{
		"enable":                              true,
		"required_plugins":                    req,
		"tolerate_missing_plugins_annotation": plugin.TolerateMissingAnnotation,
	}
	return t, nil
}

// dropInContent renders the drop-in: the header, the directories install
// created, the version of the main file and the NRI table.
func dropInContent(version int64, table map[string]any, created []string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header)
	for _, d := range created {
		b.WriteString(edit.CreatedDirMark + d + "\n")
	}
	b.WriteString("version = " + strconv.FormatInt(version, 10) + "\n")
	if err := writeTable(&b, "plugins."+tomlString(NRIPlugin), table); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeTable writes t as the TOML table name: its values, then its
// subtables, keys sorted.
func writeTable(b *bytes.Buffer, name string, t map[string]any) error {
	fmt.Fprintf(b, "\n[%s]\n", name)
	keys := slices.Sorted(maps.Keys(t))
	var subs []string
	for _, k := range keys {
		switch v := t[k].(type) {
		case map[string]any:
			subs = append(subs, k)
		case bool:
			fmt.Fprintf(b, "  %s = %t\n", k, v)
		case string:
			fmt.Fprintf(b, "  %s = %s\n", k, tomlString(v))
		case []any:
			elems := make([]string, len(v))
			for i, e := range v {
				s, ok := e.(string)
				if !ok {
					return fmt.Errorf("%s.%s: want strings, got %v", name, k, v)
				}
				elems[i] = tomlString(s)
			}
			fmt.Fprintf(b, "  %s = [%s]\n", k, strings.Join(elems, ", "))
		default:
			return fmt.Errorf("%s.%s: unexpected value %v", name, k, v)
		}
	}
	for _, k := range subs {
		if err := writeTable(b, name+"."+k, t[k].(map[string]any)); err != nil {
			return err
		}
	}
	return nil
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// verify checks that with the planned files in place containerd's
// effective NRI settings hold the drop-in's: no file loaded after it
// overrides them.
func verify(opts Options, mainNew, dropNew []byte, table map[string]any) error {
	nri, after, err := effectiveNRI(opts.Config, mainNew, opts.DropIn, dropNew)
	if err != nil {
		return err
	}
	if !covers(nri, table) {
		return fmt.Errorf("%s: loaded after %s, its [plugins.%q] settings override Bulwark's; move them out of it", strings.Join(after, ", "), opts.DropIn, NRIPlugin)
	}
	return nil
}

// covers reports whether every value of want is in got.
func covers(got, want map[string]any) bool {
	for k, w := range want {
		if wm, ok := w.(map[string]any); ok {
			gm, ok := got[k].(map[string]any)
			if !ok || !covers(gm, wm) {
				return false
			}
			continue
		}
		if !reflect.DeepEqual(got[k], w) {
			return false
		}
	}
	return true
}

// Top-level key lines, found before the first table header.
var (
	headerRe  = regexp.MustCompile(`(?m)^[ \t]*\[`)
	importsRe = regexp.MustCompile(`(?m)^[ \t]*imports[ \t]*=[ \t]*\[`)
	versionRe = regexp.MustCompile(`(?m)^[ \t]*version[ \t]*=[^\n]*(\n|$)`)
)

// importElem and importLine are the two texts addImport inserts, into an
// existing imports array or as a new line after the version line.
func importElem(dropIn string) string { return tomlString(dropIn) + ", " }
func importLine(dropIn string) string {
	return "imports = [" + tomlString(dropIn) + "] # added by bulwark install containerd\n"
}

// createdMain is the main file install writes where there was none: the
// defaults plus the import.
func createdMain(dropIn string) []byte {
	return []byte("version = 3\n" + importLine(dropIn))
}

// addImport returns data with dropIn added to its top-level imports:
// first in an existing array, or as a new imports line after the version
// line. The result must decode to data's content plus that import.
func addImport(path string, data []byte, dropIn string) ([]byte, error) {
	if data == nil {
		return createdMain(dropIn), nil
	}
	top := data
	if loc := headerRe.FindIndex(data); loc != nil {
		top = data[:loc[0]]
	}
	var out []byte
	if loc := importsRe.FindIndex(top); loc != nil {
		out = slices.Concat(data[:loc[1]], []byte(importElem(dropIn)), data[loc[1]:])
	} else if loc := versionRe.FindIndex(top); loc != nil {
		line := data[:loc[1]]
		if !bytes.HasSuffix(line, []byte("\n")) {
			line = slices.Concat(line, []byte("\n"))
		}
		out = slices.Concat(line, []byte(importLine(dropIn)), data[loc[1]:])
	} else {
		return nil, fmt.Errorf("%s: cannot find the top-level version or imports line; add %q to imports yourself", path, dropIn)
	}
	before, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	after, err := parse(path, out)
	if err != nil {
		return nil, fmt.Errorf("%s: adding the import would not parse (%v); add %q to imports yourself", path, err, dropIn)
	}
	old, _ := before["imports"].([]any)
	before["imports"] = append([]any{dropIn}, old...)
	if !reflect.DeepEqual(before, after) {
		return nil, fmt.Errorf("%s: adding the import changed more than imports; add %q to imports yourself", path, dropIn)
	}
	return out, nil
}

// removeImport undoes addImport: it returns nil for the file install
// created, data without the inserted text otherwise (unchanged when
// there is none).
func removeImport(data []byte, dropIn string) []byte {
	if data == nil || bytes.Equal(data, createdMain(dropIn)) {
		return nil
	}
	if line := []byte(importLine(dropIn)); bytes.Count(data, line) == 1 {
		return bytes.Replace(data, line, nil, 1)
	}
	top := data
	if loc := headerRe.FindIndex(data); loc != nil {
		top = data[:loc[0]]
	}
	if loc := importsRe.FindIndex(top); loc != nil {
		if rest := data[loc[1]:]; bytes.HasPrefix(rest, []byte(importElem(dropIn))) {
			return slices.Concat(data[:loc[1]], rest[len(importElem(dropIn)):])
		}
	}
	return data
}
