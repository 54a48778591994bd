package agent

import (
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReadUsersStaysInsideRoot: a workload's etc/passwd is resolved inside
// the workload's root, whatever symlinks the workload plants, and only a
// regular file of bounded size is read: never the host's files, never a
// FIFO that would block the agent.
func TestReadUsersStaysInsideRoot(t *testing.T) {
	const own = "app:x:1000:1000::/home/app:/bin/sh\n"
	onlyRoot := map[string]uint32{"root": 0}
	withApp := map[string]uint32{"root": 0, "app": 1000}
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
		want  map[string]uint32
		fails bool
	}{
		{"own regular file", func(t *testing.T, root string) {
			write(t, root, "etc/passwd", own)
		}, withApp, false},
		{"absolute symlink to /etc/shadow (absent in the workload)", func(t *testing.T, root string) {
			symlink(t, root, "/etc/shadow", "etc/passwd")
		}, onlyRoot, true},
		{"relative symlink climbing out to the host's /etc/passwd", func(t *testing.T, root string) {
			symlink(t, root, "../../../../../../../../../../etc/passwd", "etc/passwd")
		}, onlyRoot, true},
		{"absolute symlink to the workload's own file", func(t *testing.T, root string) {
			write(t, root, "etc/users", own)
			symlink(t, root, "/etc/users", "etc/passwd")
		}, withApp, false},
		{"etc itself an absolute symlink", func(t *testing.T, root string) {
			write(t, root, "real-etc/passwd", own)
			if err := os.Symlink("/real-etc", filepath.Join(root, "etc")); err != nil {
				t.Fatal(err)
			}
		}, withApp, false},
		{"FIFO", func(t *testing.T, root string) {
			mkdir(t, root, "etc")
			if err := unix.Mkfifo(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, onlyRoot, true},
		{"symlink to a device", func(t *testing.T, root string) {
			symlink(t, root, "/proc/self/root/dev/zero", "etc/passwd")
		}, onlyRoot, true},
		{"larger than the bound", func(t *testing.T, root string) {
			write(t, root, "etc/passwd", own)
			if err := os.Truncate(filepath.Join(root, "etc/passwd"), maxPasswdSize+1); err != nil {
				t.Fatal(err)
			}
		}, onlyRoot, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.setup(t, root)
			type result struct {
				users map[string]uint32
				err   error
			}
			done := make(chan result, 1)
			go func() {
				u, err := ReadUsers(root)
				done <- result{u, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("ReadUsers blocked for 5 s")
			}
			if (r.err != nil) != tt.fails {
				t.Errorf("error = %v, want failure %v", r.err, tt.fails)
			}
			if !maps.Equal(r.users, tt.want) {
				t.Errorf("users = %v, want %v", r.users, tt.want)
			}
		})
	}
}

func mkdir(t *testing.T, root, rel string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, rel), 0o755); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, root, rel, data string) {
	t.Helper()
	mkdir(t, root, filepath.Dir(rel))
	if err := os.WriteFile(filepath.Join(root, rel), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, root, target, rel string) {
	t.Helper()
	mkdir(t, root, filepath.Dir(rel))
	if err := os.Symlink(target, filepath.Join(root, rel)); err != nil {
		t.Fatal(err)
	}
}
