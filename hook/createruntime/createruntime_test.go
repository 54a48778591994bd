package createruntime

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/hook"
)

// TestRunWithoutAgent: with no agent on the socket the hook
// hands the OCI state, unchanged, to the fallback; a state without an id
// or a pid is refused outright.
func TestRunWithoutAgent(t *testing.T) {
	bundle := t.TempDir()
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"root":{"path":"rootfs"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	state := `{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":` + strconv.Itoa(os.Getpid()) + `,"bundle":"` + bundle + `"}`
	o := hook.Options{Socket: filepath.Join(t.TempDir(), "no-agent.sock"), Timeout: time.Second}
	err := Run(strings.NewReader(state), o)
	var u *Unreached
	if !errors.As(err, &u) || string(u.State) != state {
		t.Fatalf("no agent: %v; want *Unreached carrying the state", err)
	}
	for _, bad := range []string{`{"id":""}`, `{"id":"c2","bundle":"` + bundle + `"}`, `{"id":`} {
		if err := Run(strings.NewReader(bad), o); err == nil || errors.As(err, &u) {
			t.Errorf("state %s: %v; want a refusal", bad, err)
		}
	}
}
