package agent

import (
	"context"
	"errors"
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
	svcs, err := cgroup.Services(cgroupRoot, a.cfg.ServicesRoot)
	if err != nil {
		return err
	}
	present := map[string]bool{}
	var added, gone []*Workload
	a.mu.Lock()
	for _, svc := range svcs {
		key := servicePrefix + svc.Cgroup
		present[key] = true
		if _, ok := a.workloads[key]; !ok {
			w := &Workload{
				Info: ContainerInfo{ID: key, Name: svc.Name},
				Identity: policy.Identity{
					Type: policy.TypeLinuxService, ServiceCgroup: svc.Cgroup, ServiceName: svc.Name, Hostname: a.cfg.Hostname,
				},
				CgroupPath: svc.Path,
			}
			a.workloads[key] = w
			added = append(added, w)
		}
	}
	for key, w := range a.workloads {
		if !present[key] && strings.HasPrefix(key, servicePrefix) {
			a.forgetLocked(key)
			gone = append(gone, w)
		}
	}
	a.mu.Unlock()
	var errs []error
	for _, w := range added {
		if err := a.arm(context.Background(), w); err != nil {
			errs = append(errs, err)
		}
	}
	for _, w := range gone {
		if err := a.disarm(w); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
