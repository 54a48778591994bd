package agent

import (
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validPolicy = `apiVersion: bulwark/v1
kind: WorkloadPolicy
metadata:
  name: web
  type: container
spec:
  containerSelector:
    image: docker.io/library/nginx:latest
  mode: enforce
  processPolicy:
  - name: nginx
    exe: [/usr/sbin/nginx]
    euser: [root]
    id: nginx_0
  networkPolicy:
    ingress: []
    egress: []
`

func newTestStore(t *testing.T) *Store {
	t.Helper()
	return NewStore(t.TempDir(), slog.New(slog.DiscardHandler))
}

func TestStorePutValidatesBeforeWriting(t *testing.T) {
	s := newTestStore(t)
	if _, err := s.Put([]byte(validPolicy)); err != nil {
		t.Fatalf("Put valid: %v", err)
	}
	if got := s.Policies(); len(got) != 1 || got[0].Metadata.Name != "web" {
		t.Fatalf("policies after Put = %v", got)
	}
	before, err := os.ReadFile(filepath.Join(s.Dir(), "web.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(validPolicy, "mode: enforce", "mode: enforced", 1)
	_, err = s.Put([]byte(bad))
	if !errors.Is(err, errInvalidPolicy) {
		t.Fatalf("Put invalid: err = %v, want errInvalidPolicy", err)
	}
	if !strings.Contains(err.Error(), "mode") {
		t.Errorf("error %q does not name the field", err)
	}
	after, _ := os.ReadFile(filepath.Join(s.Dir(), "web.yaml"))
	if string(after) != string(before) {
		t.Errorf("invalid Put changed the file on disk")
	}
	if got := s.Policies(); len(got) != 1 || got[0].Spec.Mode != "enforce" {
		t.Errorf("invalid Put changed the policy in force: %+v", got)
	}
}

func TestStoreKeepsLastValidVersionOfEditedFile(t *testing.T) {
	s := newTestStore(t)
	path := filepath.Join(s.Dir(), "web.yaml")
	if err := os.WriteFile(path, []byte(validPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := s.Reload(); err != nil || !changed {
		t.Fatalf("Reload = %v, %v; want changed", changed, err)
	}
	if err := os.WriteFile(path, []byte(validPolicy+"  bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := s.Reload(); err != nil || changed {
		t.Fatalf("Reload of invalid edit = %v, %v; want unchanged", changed, err)
	}
	if got := s.Policies(); len(got) != 1 || got[0].Metadata.Name != "web" {
		t.Fatalf("previous version not kept: %v", got)
	}
	probs := s.Problems()
	if !strings.Contains(probs["web.yaml"], "web.yaml:") {
		t.Errorf("problem %q does not name file:line", probs["web.yaml"])
	}
	// A fixed file clears the problem and counts as a change only when the
	// policy differs.
	if err := os.WriteFile(path, []byte(strings.Replace(validPolicy, "enforce", "audit", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := s.Reload(); err != nil || !changed {
		t.Fatalf("Reload of fix = %v, %v; want changed", changed, err)
	}
	if len(s.Problems()) != 0 {
		t.Errorf("problems not cleared: %v", s.Problems())
	}
}

func TestStoreRejectsDuplicateNamesAcrossFiles(t *testing.T) {
	s := newTestStore(t)
	if _, err := s.Put([]byte(validPolicy)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir(), "copy.yaml"), []byte(validPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if p := s.Problems()["copy.yaml"]; !strings.Contains(p, "already defined") {
		t.Errorf("duplicate name not reported: %q", p)
	}
	if got := s.Policies(); len(got) != 1 {
		t.Errorf("duplicate policy loaded: %d policies", len(got))
	}
}

func TestStoreDelete(t *testing.T) {
	s := newTestStore(t)
	if _, err := s.Put([]byte(validPolicy)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("nope"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Delete unknown: %v", err)
	}
	if err := s.Delete("web"); err != nil {
		t.Fatal(err)
	}
	if len(s.Policies()) != 0 {
		t.Errorf("policy still in force after Delete")
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "web.yaml")); !os.IsNotExist(err) {
		t.Errorf("file not removed: %v", err)
	}
}

func TestStoreIgnoresNonPolicyFiles(t *testing.T) {
	s := newTestStore(t)
	for name, data := range map[string]string{"README": "x", ".web.yaml.swp": "x: [", "notes.txt": "x"} {
		if err := os.WriteFile(filepath.Join(s.Dir(), name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if len(s.Problems()) != 0 || len(s.Policies()) != 0 {
		t.Errorf("non-policy files were read: %v %v", s.Problems(), s.Policies())
	}
}

// TestStorePutReplacesPoliciesWhereTheyAre: a policy applied again,
// alone or with others, replaces its version in the file that holds it;
// the file's other policies stay in force.
func TestStorePutReplacesPoliciesWhereTheyAre(t *testing.T) {
	s := newTestStore(t)
	db := strings.NewReplacer("name: web", "name: db", "nginx:latest", "postgres:16").Replace(validPolicy)
	if _, err := s.Put([]byte(validPolicy + "---\n" + db)); err != nil {
		t.Fatal(err)
	}
	modes := func() map[string]string {
		out := map[string]string{}
		for _, p := range s.Policies() {
			out[p.Metadata.Name] = p.Spec.Mode
		}
		return out
	}
	for _, step := range []struct {
		apply string
		want  map[string]string
	}{
		{strings.Replace(validPolicy, "mode: enforce", "mode: audit", 1), map[string]string{"web": "audit", "db": "enforce"}},
		{strings.Replace(db, "mode: enforce", "mode: audit", 1), map[string]string{"web": "audit", "db": "audit"}},
	} {
		if _, err := s.Put([]byte(step.apply)); err != nil {
			t.Fatalf("Put:\n%s\n%v", step.apply, err)
		}
		if got := modes(); !maps.Equal(got, step.want) {
			t.Errorf("after Put: policies %v, want %v", got, step.want)
		}
		// What is on disk is what is in force.
		if changed, err := s.Reload(); err != nil || changed || len(s.Problems()) != 0 {
			t.Errorf("Reload after Put = %v, %v, problems %v; want unchanged", changed, err, s.Problems())
		}
		if got := modes(); !maps.Equal(got, step.want) {
			t.Errorf("after Reload: policies %v, want %v", got, step.want)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(s.Dir(), "*.yaml")); len(files) != 1 {
		t.Errorf("policy files %v, want web.yaml alone", files)
	}
}

// TestStoreLoadsPolicyWithoutModeInAudit: a policy file that leaves
// spec.mode out is in force in audit mode (never enforce), and the agent
// logs that it filled the mode in.
func TestStoreLoadsPolicyWithoutModeInAudit(t *testing.T) {
	var log strings.Builder
	s := NewStore(t.TempDir(), slog.New(slog.NewTextHandler(&log, nil)))
	text := strings.Replace(validPolicy, "  mode: enforce\n", "", 1)
	if err := os.WriteFile(filepath.Join(s.Dir(), "web.yaml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	got := s.Policies()
	if len(got) != 1 || got[0].Spec.Mode != "audit" {
		t.Fatalf("policies %+v, want web in audit mode", got)
	}
	if !strings.Contains(log.String(), "spec.mode: not set: loaded in audit mode") {
		t.Errorf("log %q does not say the mode was filled in", log.String())
	}
}
