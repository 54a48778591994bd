package wrapper

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/hook"
)

func TestConfigRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, File)
	// No file: runc from PATH, the hook beside the wrapper, the defaults.
	c, err := Read(path)
	if want := Default(dir); err != nil || c != want || c.Hook != filepath.Join(dir, hook.HookBinary) {
		t.Fatalf("no file: %+v, %v; want %+v", c, err, want)
	}
	in := Config{Runc: "/usr/sbin/runc", Hook: "/opt/b/bulwark-oci-hook",
		Options: hook.Options{Socket: "/run/a.sock", PolicyDir: "/p", DockerHost: "unix:///d.sock", Timeout: 3 * time.Second, Bulwark: "/opt/b/bulwark"}}
	data, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := Read(path); err != nil || c != in {
		t.Fatalf("read back %+v, %v; want %+v\n%s", c, err, in, data)
	}
	// Settings the file leaves out keep their defaults.
	if err := os.WriteFile(path, []byte(`{"runc": "/sbin/runc"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	want := Default(dir)
	want.Runc = "/sbin/runc"
	if c, err := Read(path); err != nil || c != want {
		t.Fatalf("partial file: %+v, %v; want %+v", c, err, want)
	}
	// A key the wrapper does not know is refused, not ignored.
	if err := os.WriteFile(path, bytes.Replace(data, []byte(`"socket"`), []byte(`"sokcet"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); err == nil || !strings.Contains(err.Error(), "sokcet") {
		t.Fatalf("misspelt key: %v; want an error naming it", err)
	}
}
