// Package systemd writes the systemd units that run the Bulwark agent and
// collector on a plain host, and removes them again.
package systemd

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"text/template"

	"github.com/bulwarkhq/bulwark/hook"
	"github.com/bulwarkhq/bulwark/install/edit"
)

// Defaults: where units and the binary live.
const (
	DefaultDir    = "/etc/systemd/system"
	DefaultBinary = "/usr/local/bin/bulwark"
)

// Units are the unit files install writes, in start order.
var Units = []string{"bulwark-collector.service", "bulwark-agent.service"}

//go:embed units/*.service
var unitFS embed.FS

// header starts every unit written here; only such files are replaced or
// removed.
const header = "# Written by \"bulwark install systemd\""

// Options say where the units go and which binary they run.
type Options struct {
	// Dir is the unit directory (DefaultDir when empty).
	Dir string
	// Binary is the bulwark executable (DefaultBinary when empty); it must
	// exist, since systemd does not start a unit whose binary is missing,
	// and so must bulwark-oci-hook beside it: the agent gives every
	// container it runs.
	Binary string
}

func (o *Options) defaults() {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.Binary == "" {
		o.Binary = DefaultBinary
	}
}

// Render returns the content of unit for binary.
func Render(unit, binary string) ([]byte, error) {
	tmpl, err := template.ParseFS(unitFS, "units/"+unit)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, struct{ Binary string }{binary}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Install plans the unit files. Enabling and starting them is systemctl's
// job (the README gives the commands).
func Install(opts Options) (edit.Plan, error) {
	opts.defaults()
	if !filepath.IsAbs(opts.Binary) {
		return nil, fmt.Errorf("--binary %s: want an absolute path", opts.Binary)
	}
	for _, bin := range []string{opts.Binary, filepath.Join(filepath.Dir(opts.Binary), hook.HookBinary)} {
		if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
			return nil, fmt.Errorf("%s: no executable there; copy bulwark and %s to %s or pass --binary",
				bin, hook.HookBinary, filepath.Dir(opts.Binary))
		}
	}
	if fi, err := os.Stat(opts.Dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s: no systemd unit directory (is this a systemd host?)", opts.Dir)
	}
	var plan edit.Plan
	for _, u := range Units {
		path := filepath.Join(opts.Dir, u)
		old, err := edit.Read(path)
		if err != nil {
			return nil, err
		}
		if old != nil && !bytes.HasPrefix(old, []byte(header)) {
			return nil, fmt.Errorf("%s exists and was not written by bulwark install; move it away", path)
		}
		content, err := Render(u, opts.Binary)
		if err != nil {
			return nil, err
		}
		plan = append(plan, edit.Change{Path: path, Old: old, New: content, Perm: 0o644})
	}
	return plan.Changed(), nil
}

// Uninstall plans the removal of the units. Enabled units are refused:
// their symlinks would dangle; disable them first.
func Uninstall(opts Options) (edit.Plan, error) {
	opts.defaults()
	var plan edit.Plan
	for _, u := range Units {
		if links, _ := filepath.Glob(filepath.Join(opts.Dir, "*.wants", u)); len(links) > 0 {
			return nil, fmt.Errorf("%s is enabled (%s): run systemctl disable --now %s first", u, links[0], u)
		}
		path := filepath.Join(opts.Dir, u)
		old, err := edit.Read(path)
		if err != nil {
			return nil, err
		}
		if old == nil {
			continue
		}
		if !bytes.HasPrefix(old, []byte(header)) {
			return nil, fmt.Errorf("%s was not written by bulwark install; not removing it", path)
		}
		plan = append(plan, edit.Change{Path: path, Old: old})
	}
	return plan, nil
}
