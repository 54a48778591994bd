package bpf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/cgroup"
)

// The engine holds a file descriptor on every link it attaches or adopts,
// so a link stays attached while the engine runs even when its pin is
// removed (a link is detached when neither a pin nor a descriptor is
// left). Pins are what keeps enforcing after the engine exits; CheckLinks
// restores a removed pin and re-attaches a cgroup link someone detached
// (BPF_LINK_DETACH). Whoever can reach the pin directory can still detach
// and unpin everything: bpffs must not be reachable from workloads.

// heldLink is a link the engine holds and the pin that should name it.
type heldLink struct {
	l      link.Link
	pin    string // absolute pin path
	cgroup uint64 // the workload cgroup of a network link; 0 for the exec links
	name   string // the network program's name (cgroupPrograms), for re-attaching
}

// Repair is one thing CheckLinks restored.
type Repair struct {
	// Pin is the pin path of the link or map.
	Pin string
	// CgroupID is the workload whose network link it is (0: an exec link
	// or a map).
	CgroupID uint64
	// Reattached: the link had been detached out of band and is attached
	// anew (the workload was unguarded meanwhile); otherwise only its pin
	// was missing and is back.
	Reattached bool
}

// hold keeps l, pinned at pin, open until Close, Remove or Unpin. e.mu is
// held or the engine is not shared yet.
func (e *Engine) hold(l link.Link, pin string, cgid uint64, name string) {
	if old := e.links[pin]; old != nil && old.l != l {
		old.l.Close()
	}
	e.links[pin] = &heldLink{l: l, pin: pin, cgroup: cgid, name: name}
}

// release closes the held links pinned at or under path (the pins stay).
// e.mu is held or the engine is not shared any more.
func (e *Engine) release(path string) error {
	var errs []error
	for pin, h := range e.links {
		if pin == path || strings.HasPrefix(pin, path+"/") {
			errs = append(errs, h.l.Close())
			delete(e.links, pin)
		}
	}
	return errors.Join(errs...)
}

// adoptCgroupLinks holds the links pinned for every workload cgroup (armed
// by an earlier engine).
func (e *Engine) adoptCgroupLinks() error {
	entries, err := os.ReadDir(e.pinDir)
	if err != nil {
		return fmt.Errorf("read pin directory: %w", err)
	}
	for _, ent := range entries {
		id, err := strconv.ParseUint(strings.TrimPrefix(ent.Name(), pinCgroupDir), 10, 64)
		if !ent.IsDir() || !strings.HasPrefix(ent.Name(), pinCgroupDir) || err != nil {
			continue // not a workload's links ("_new": an attach cut short)
		}
		if err := e.adoptLinks(id); err != nil {
			return err
		}
	}
	return nil
}

// adoptLinks holds the pinned links of workload cgroup id.
func (e *Engine) adoptLinks(id uint64) error {
	dir := e.cgroupPinDir(id)
	for _, p := range e.cgroupPrograms() {
		pin := filepath.Join(dir, p.name)
		if e.links[pin] != nil {
			continue
		}
		l, err := link.LoadPinnedLink(pin, nil)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("adopt link %s: %w", pin, err)
		}
		e.hold(l, pin, id, p.name)
	}
	return nil
}

// CheckLinks makes sure every link the engine holds is attached and pinned,
// and every shared map pinned: a cgroup link detached out of band is
// attached again, a missing pin is restored. Run it periodically; it
// reports what it repaired (also logged as warnings).
func (e *Engine) CheckLinks() ([]Repair, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	pins := make([]string, 0, len(e.links))
	for pin := range e.links {
		pins = append(pins, pin)
	}
	sort.Strings(pins)
	var repairs []Repair
	var errs []error
	for _, pin := range pins {
		h := e.links[pin]
		if h.cgroup != 0 && detached(h.l) {
			r, err := e.reattach(h)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if r != nil {
				repairs = append(repairs, *r)
			}
			continue
		}
		restored, err := repin(h.l, pin, e.pinInodes)
		if err != nil {
			errs = append(errs, err)
		} else if restored {
			repairs = append(repairs, Repair{Pin: pin, CgroupID: h.cgroup})
		}
	}
	for name, m := range e.sharedMaps() {
		pin := filepath.Join(e.pinDir, name)
		restored, err := repin(m, pin, e.pinInodes)
		if err != nil {
			errs = append(errs, err)
		} else if restored {
			repairs = append(repairs, Repair{Pin: pin})
		}
	}
	for _, r := range repairs {
		if r.Reattached {
			e.log.Warn("link detached out of band; attached again", "pin", r.Pin, "cgroup", r.CgroupID)
		} else {
			e.log.Warn("pin removed out of band; restored", "pin", r.Pin, "cgroup", r.CgroupID)
		}
	}
	return repairs, errors.Join(errs...)
}

// pinned is a link or a map.
type pinned interface {
	Pin(string) error
	Unpin() error
}

// repin pins obj at pin again when the pin is missing or names something
// else (a directory or another object put in its place), and reports
// whether it had to.
//
// verified holds the inode of each pin found to name its object: a pin
// with the same inode is not opened again.
func repin(obj pinned, pin string, verified map[string]uint64) (bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(pin, &st); err == nil {
		if verified[pin] == st.Ino {
			return false, nil
		}
		if pinHolds(obj, pin) {
			verified[pin] = st.Ino
			return false, nil
		}
		if err := os.RemoveAll(pin); err != nil {
			return false, fmt.Errorf("restore pin %s: remove what took its place: %w", pin, err)
		}
	} else if !errors.Is(err, unix.ENOENT) {
		return false, fmt.Errorf("check pin %s: %w", pin, err)
	}
	delete(verified, pin)
	if err := os.MkdirAll(filepath.Dir(pin), 0o700); err != nil {
		return false, fmt.Errorf("restore pin %s: %w", pin, err)
	}
	// Pin does nothing when the object believes it is pinned there
	// already: forget the old pin first.
	if err := obj.Unpin(); err != nil {
		return false, fmt.Errorf("restore pin %s: %w", pin, err)
	}
	if err := obj.Pin(pin); err != nil {
		return false, fmt.Errorf("restore pin %s: %w", pin, err)
	}
	return true, nil
}

// pinHolds reports whether pin names obj (a link or a map), by kernel
// object id; when that cannot be told, it assumes so.
func pinHolds(obj pinned, pin string) bool {
	switch o := obj.(type) {
	case link.Link:
		want, err := o.Info()
		if err != nil {
			return true
		}
		l, err := link.LoadPinnedLink(pin, nil)
		if err != nil {
			return false
		}
		defer l.Close()
		got, err := l.Info()
		return err == nil && got.ID == want.ID
	case *ebpf.Map:
		want, err := o.Info()
		if err != nil {
			return true
		}
		wantID, ok := want.ID()
		if !ok {
			return true
		}
		m, err := ebpf.LoadPinnedMap(pin, nil)
		if err != nil {
			return false
		}
		defer m.Close()
		got, err := m.Info()
		if err != nil {
			return false
		}
		gotID, _ := got.ID()
		return gotID == wantID
	}
	return true
}

// detached reports whether cgroup link l was detached (BPF_LINK_DETACH, or
// its cgroup removed): the kernel then reports no cgroup for it.
func detached(l link.Link) bool {
	info, err := l.Info()
	if err != nil || info.Cgroup() == nil {
		return false
	}
	return info.Cgroup().CgroupId == 0
}

// reattach attaches h's program to its workload cgroup again and pins the
// new link in place of h. It returns nil, nil when the cgroup is gone (the
// kernel detaches a removed cgroup's links: Remove cleans up).
func (e *Engine) reattach(h *heldLink) (*Repair, error) {
	path, err := cgroup.Path(e.cgRoot, h.cgroup)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("re-attach %s: %w", h.pin, err)
	}
	for _, p := range e.cgroupPrograms() {
		if p.name != h.name {
			continue
		}
		l, err := link.AttachCgroup(link.CgroupOptions{Path: path, Attach: p.typ, Program: p.prog})
		if err != nil {
			return nil, fmt.Errorf("re-attach %s to cgroup %s: %w", p.name, path, err)
		}
		if err := h.l.Unpin(); err != nil {
			l.Close()
			return nil, fmt.Errorf("re-attach %s: unpin the detached link: %w", h.pin, err)
		}
		if _, err := repin(l, h.pin, e.pinInodes); err != nil {
			l.Close()
			return nil, err
		}
		e.hold(l, h.pin, h.cgroup, h.name)
		return &Repair{Pin: h.pin, CgroupID: h.cgroup, Reattached: true}, nil
	}
	return nil, fmt.Errorf("re-attach %s: no program %q", h.pin, h.name)
}

// sharedMaps are the maps pinned by name (the fields of the loaded
// objects' maps, tagged with their names), by name.
func (e *Engine) sharedMaps() map[string]*ebpf.Map {
	sets := []any{&e.net.networkMaps}
	switch x := e.exec.(type) {
	case *execTracingObjects:
		sets = append(sets, &x.execTracingMaps)
	case *execLSMObjects:
		sets = append(sets, &x.execLSMMaps)
	}
	out := map[string]*ebpf.Map{}
	for _, set := range sets {
		v := reflect.ValueOf(set).Elem()
		for i := range v.NumField() {
			m, ok := v.Field(i).Interface().(*ebpf.Map)
			if name := v.Type().Field(i).Tag.Get("ebpf"); ok && m != nil && name != "" && m.IsPinned() {
				out[name] = m
			}
		}
	}
	return out
}
