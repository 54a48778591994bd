package cgroup

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Service is a systemd service's cgroup.
type Service struct {
	// Name is the unit name ("nginx.service") and Path its cgroup
	// directory.
	Name, Path string
	// Cgroup names the cgroup the way Spyderbat's serviceSelector does:
	// "systemd:" and the path below the cgroup v2 root
	// ("systemd:/system.slice/nginx.service").
	Cgroup string
}

// Services lists the systemd services whose cgroups are directly under dir
// (for example <root>/system.slice), root being the cgroup v2 mountpoint.
// A missing dir has no services.
func Services(root, dir string) ([]Service, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Service
	for _, e := range entries {
		if e.IsDir() && strings.HasSuffix(e.Name(), ".service") {
			p := filepath.Join(dir, e.Name())
			out = append(out, Service{Name: e.Name(), Path: p, Cgroup: ServiceCgroup(root, p)})
		}
	}
	return out, nil
}

// ServiceCgroup is the Spyderbat name of cgroup directory dir under root.
func ServiceCgroup(root, dir string) string {
	rel, err := filepath.Rel(root, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		rel = dir
	}
	return "systemd:/" + strings.TrimPrefix(filepath.ToSlash(rel), "/")
}
