package cgroup

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestServices(t *testing.T) {
	root := t.TempDir()
	slice := filepath.Join(root, "system.slice")
	for _, d := range []string{"nginx.service", "cron.service", "session-1.scope", "docker-abc.scope"} {
		if err := os.MkdirAll(filepath.Join(slice, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(slice, "not-a-dir.service"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Services(root, slice)
	if err != nil {
		t.Fatal(err)
	}
	want := []Service{
		{Name: "cron.service", Path: filepath.Join(slice, "cron.service"), Cgroup: "systemd:/system.slice/cron.service"},
		{Name: "nginx.service", Path: filepath.Join(slice, "nginx.service"), Cgroup: "systemd:/system.slice/nginx.service"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("services %+v, want %+v", got, want)
	}
	if got, err := Services(root, filepath.Join(root, "missing.slice")); err != nil || got != nil {
		t.Fatalf("missing slice: %v, %v", got, err)
	}
}
