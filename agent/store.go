package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/bulwarkhq/bulwark/policy"
)

// Store holds the workload policies of a policy directory: every *.yaml,
// *.yml and *.json file in it. A file that fails validation is reported and
// the last valid version of that file stays in force, so a typo never
// disarms a workload.
type Store struct {
	dir string
	log *slog.Logger

	mu sync.Mutex
	// files maps a file's base name to the policies it held when it was
	// last valid.
	files map[string][]*policy.WorkloadPolicy
	// problems maps a file's base name to the error of its latest
	// (rejected) version, until a valid version replaces it.
	problems map[string]string
}

// NewStore returns a store over dir. Call Reload to read it.
func NewStore(dir string, log *slog.Logger) *Store {
	return &Store{dir: dir, log: log, files: map[string][]*policy.WorkloadPolicy{}, problems: map[string]string{}}
}

// Dir returns the policy directory.
func (s *Store) Dir() string { return s.dir }

// isPolicyFile reports whether a directory entry name is read as a policy file.
func isPolicyFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	switch filepath.Ext(name) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// Reload rereads every policy file of the directory. It returns whether the
// set of policies in force changed. Files that no longer exist are dropped;
// invalid files keep their previous version and are reported by Problems.
func (s *Store) Reload() (bool, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return false, fmt.Errorf("read policy directory %s: %w", s.dir, err)
	}
	seen := map[string]bool{}
	changed := false
	for _, e := range entries {
		if e.IsDir() || !isPolicyFile(e.Name()) {
			continue
		}
		seen[e.Name()] = true
		c, err := s.reloadFile(e.Name())
		if err != nil {
			s.log.Warn("policy file rejected; previous version stays in force", "file", filepath.Join(s.dir, e.Name()), "error", err)
		}
		changed = changed || c
	}
	s.mu.Lock()
	for name := range s.files {
		if !seen[name] {
			delete(s.files, name)
			changed = true
		}
	}
	for name := range s.problems {
		if !seen[name] {
			delete(s.problems, name)
		}
	}
	s.mu.Unlock()
	return changed, nil
}

// reloadFile loads one file and, when it is valid and its policy names do
// not clash with another file's, makes it the file's version in force.
func (s *Store) reloadFile(name string) (bool, error) {
	path := filepath.Join(s.dir, name)
	pols, err := loadPolicies(path)
	if err == nil {
		err = s.checkNames(name, pols)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.problems[name] = err.Error()
		return false, err
	}
	delete(s.problems, name)
	old, had := s.files[name]
	s.files[name] = pols
	return !had || !samePolicies(old, pols), nil
}

// loadPolicies loads a file that must hold only workload policies.
func loadPolicies(path string) ([]*policy.WorkloadPolicy, error) {
	docs, err := policy.LoadFile(path)
	if err != nil {
		return nil, err
	}
	var pols []*policy.WorkloadPolicy
	for _, d := range docs {
		if d.Policy == nil {
			return nil, fmt.Errorf("%s:%d:%d: a policy directory holds only policies, found %s", d.Pos.File, d.Pos.Line, d.Pos.Column, d.Kind)
		}
		pols = append(pols, d.Policy)
	}
	return pols, nil
}

// checkNames rejects policies whose names another file already uses or
// that repeat within the file.
func (s *Store) checkNames(file string, pols []*policy.WorkloadPolicy) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mine := map[string]bool{}
	for _, p := range pols {
		n := p.Metadata.Name
		if mine[n] {
			return fmt.Errorf("%s: policy %q is defined twice", filepath.Join(s.dir, file), n)
		}
		mine[n] = true
		for other, ops := range s.files {
			if other == file {
				continue
			}
			for _, op := range ops {
				if op.Metadata.Name == n {
					return fmt.Errorf("%s: policy %q is already defined in %s", filepath.Join(s.dir, file), n, filepath.Join(s.dir, other))
				}
			}
		}
	}
	return nil
}

// samePolicies compares two policy lists by their encoded form.
func samePolicies(a, b []*policy.WorkloadPolicy) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if encodeYAML(a[i]) != encodeYAML(b[i]) {
			return false
		}
	}
	return true
}

func encodeYAML(v any) string {
	var sb strings.Builder
	if err := policy.Encode(&sb, "yaml", v); err != nil {
		return "!" + err.Error()
	}
	return sb.String()
}

// Policies returns every policy in force, ordered by name.
func (s *Store) Policies() []*policy.WorkloadPolicy {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*policy.WorkloadPolicy
	for _, ps := range s.files {
		out = append(out, ps...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metadata.Name < out[j].Metadata.Name })
	return out
}

// Problems returns, per rejected file, why its latest version was rejected.
func (s *Store) Problems() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.problems))
	for k, v := range s.problems {
		out[k] = v
	}
	return out
}

// errInvalidPolicy marks errors of Put caused by the request, not the node.
var errInvalidPolicy = errors.New("invalid policy")

// Put validates data (one or more policies) and, only when all of it is
// valid, writes it atomically as the file NAME.yaml, NAME being the first
// policy's name, and reloads that file. It returns the names it stored.
func (s *Store) Put(data []byte) ([]string, error) {
	docs, err := policy.Load("request", data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalidPolicy, err)
	}
	var names []string
	var pols []*policy.WorkloadPolicy
	for _, d := range docs {
		if d.Policy == nil {
			return nil, fmt.Errorf("%w: request:%d:%d: expected a policy, found %s", errInvalidPolicy, d.Pos.Line, d.Pos.Column, d.Kind)
		}
		names = append(names, d.Policy.Metadata.Name)
		pols = append(pols, d.Policy)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: no policy in request", errInvalidPolicy)
	}
	file := safeFileName(names[0]) + ".yaml"
	if err := s.checkNames(file, pols); err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalidPolicy, err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, file), data); err != nil {
		return nil, err
	}
	if _, err := s.reloadFile(file); err != nil {
		return nil, err
	}
	return names, nil
}

// Delete removes the policy called name. A file holding only that policy
// is removed; a file holding others is rewritten without it.
func (s *Store) Delete(name string) error {
	s.mu.Lock()
	var file string
	var rest []*policy.WorkloadPolicy
	for f, ps := range s.files {
		for _, p := range ps {
			if p.Metadata.Name == name {
				file = f
			}
		}
		if file != "" {
			for _, p := range ps {
				if p.Metadata.Name != name {
					rest = append(rest, p)
				}
			}
			break
		}
	}
	s.mu.Unlock()
	if file == "" {
		return fmt.Errorf("policy %q: %w", name, os.ErrNotExist)
	}
	path := filepath.Join(s.dir, file)
	if len(rest) == 0 {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove %s: %w", path, err)
		}
	} else {
		var sb strings.Builder
		docs := make([]any, len(rest))
		for i, p := range rest {
			docs[i] = p
		}
		if err := policy.Encode(&sb, "yaml", docs...); err != nil {
			return fmt.Errorf("encode %s: %w", path, err)
		}
		if err := writeFileAtomic(path, []byte(sb.String())); err != nil {
			return err
		}
	}
	_, err := s.Reload()
	return err
}

// safeFileName keeps the characters of a policy name that are safe in a
// file name and replaces the rest with '_'.
func safeFileName(name string) string {
	b := []byte(name)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok || (i == 0 && c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it over path, so readers never see a partial file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
