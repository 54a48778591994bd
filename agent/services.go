package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/policy"
)

// servicesInterval is how often the services cgroup directory is rescanned.
const servicesInterval = 2 * time.Second

// servicePrefix starts the workload key of a systemd service.
const servicePrefix = "service:"

// watchServices keeps one workload per systemd service: every "*.service"
// directory directly under ServicesRoot is armed (with the policy whose
// serviceSelector picks it, else observed for its fingerprint), and
// disarmed when it disappears.
func (a *Agent) watchServices(ctx context.Context) error {
	root, err := cgroup.Mountpoint()
	if err != nil {
		return err
	}
	t := time.NewTicker(servicesInterval)
	defer t.Stop()
	for {
		if err := a.scanServices(root); err != nil {
			a.log.Warn("scan services", "root", a.cfg.ServicesRoot, "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// scanServices arms services that appeared and retires those that went.
func (a *Agent) scanServices(cgroupRoot string) error {
	entries, err := os.ReadDir(a.cfg.ServicesRoot)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			entries = nil
		} else {
			return err
		}
	}
	present := map[string]string{} // workload key → cgroup directory
	for _, e := range entries {
		if e.IsDir() && strings.HasSuffix(e.Name(), ".service") {
			dir := filepath.Join(a.cfg.ServicesRoot, e.Name())
			present[serviceKey(cgroupRoot, dir)] = dir
		}
	}
	var added, gone []*Workload
	a.mu.Lock()
	for key, dir := range present {
		if _, ok := a.workloads[key]; !ok {
			w := &Workload{
				Info:       ContainerInfo{ID: key, Name: filepath.Base(dir)},
				Identity:   serviceIdentity(cgroupRoot, dir, a.cfg.Hostname),
				CgroupPath: dir,
			}
			a.workloads[key] = w
			added = append(added, w)
		}
	}
	for key, w := range a.workloads {
		if _, ok := present[key]; !ok && strings.HasPrefix(key, servicePrefix) {
			delete(a.workloads, key)
			gone = append(gone, w)
		}
	}
	a.mu.Unlock()
	var errs []error
	for _, w := range added {
		if err := a.arm(w); err != nil {
			errs = append(errs, err)
		}
	}
	for _, w := range gone {
		if w.CgroupID == 0 {
			continue
		}
		a.retire(w)
		if err := a.engine.Remove(w.CgroupID); err != nil {
			errs = append(errs, fmt.Errorf("disarm %s: %w", w.describe(), err))
		}
	}
	return errors.Join(errs...)
}

// serviceKey is the workload key of the service in cgroup directory dir.
func serviceKey(cgroupRoot, dir string) string {
	return servicePrefix + serviceCgroup(cgroupRoot, dir)
}

// serviceCgroup names a service's cgroup the way Spyderbat does:
// "systemd:" and the path below the cgroup root.
func serviceCgroup(cgroupRoot, dir string) string {
	rel, err := filepath.Rel(cgroupRoot, dir)
	if err != nil {
		rel = dir
	}
	return "systemd:/" + strings.TrimPrefix(filepath.ToSlash(rel), "/")
}

// serviceIdentity is what serviceSelector and machineSelector match for
// the service in cgroup directory dir.
func serviceIdentity(cgroupRoot, dir, hostname string) policy.Identity {
	return policy.Identity{
		Type:          policy.TypeLinuxService,
		ServiceCgroup: serviceCgroup(cgroupRoot, dir),
		ServiceName:   filepath.Base(dir),
		Hostname:      hostname,
	}
}
