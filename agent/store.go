package agent

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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
	data, err := os.ReadFile(path)
	if err != nil {
		err = fmt.Errorf("read policy file: %w", err)
	}
	var pols []*policy.WorkloadPolicy
	if err == nil {
		pols, err = s.parsePolicies(path, data)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		err = s.checkNames(name, pols)
	}
	if err != nil {
		s.problems[name] = err.Error()
		return false, err
	}
	delete(s.problems, name)
	old, had := s.files[name]
	s.files[name] = pols
	return !had || !samePolicies(old, pols), nil
}

// parsePolicies parses data (the file or request called name), which must
// hold only workload policies. What the loader filled in (audit mode for a
// policy without spec.mode) is logged.
func (s *Store) parsePolicies(name string, data []byte) ([]*policy.WorkloadPolicy, error) {
	docs, err := policy.Load(name, data)
	if err != nil {
		return nil, err
	}
	var pols []*policy.WorkloadPolicy
	for _, d := range docs {
		for _, n := range d.Notes {
			s.log.Warn("policy loaded with a default", "note", n.String())
		}
		if d.Policy == nil {
			return nil, fmt.Errorf("%s:%d:%d: expected a workload policy, found %s", d.Pos.File, d.Pos.Line, d.Pos.Column, d.Kind)
		}
		pols = append(pols, d.Policy)
	}
	return pols, nil
}

// checkNames rejects policies whose names another file already uses or
// that repeat within the file. s.mu is held.
func (s *Store) checkNames(file string, pols []*policy.WorkloadPolicy) error {
	mine := map[string]bool{}
	for _, p := range pols {
		n := p.Metadata.Name
		if mine[n] {
			return fmt.Errorf("%s: policy %q is defined twice", filepath.Join(s.dir, file), n)
		}
		mine[n] = true
		if other := s.fileOf(n); other != "" && other != file {
			return fmt.Errorf("%s: policy %q is already defined in %s", filepath.Join(s.dir, file), n, filepath.Join(s.dir, other))
		}
	}
	return nil
}

// fileOf returns the file holding the policy called name, "" when none
// does. s.mu is held.
func (s *Store) fileOf(name string) string {
	for f, ps := range s.files {
		for _, p := range ps {
			if p.Metadata.Name == name {
				return f
			}
		}
	}
	return ""
}

// othersIn returns the policies of file not named in names. s.mu is held.
func (s *Store) othersIn(file string, names ...string) []*policy.WorkloadPolicy {
	var out []*policy.WorkloadPolicy
	for _, p := range s.files[file] {
		if !slices.Contains(names, p.Metadata.Name) {
			out = append(out, p)
		}
	}
	return out
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
// valid, stores it and puts it in force. It returns the names it stored.
//
// A policy already in force is replaced in the file that holds it, so the
// policies of one request must not be spread over several files; new
// policies go to the file NAME.yaml, NAME being the first policy's name.
// The file is written atomically: as data when the request holds all of
// its policies, else re-encoded with the file's other policies kept.
func (s *Store) Put(data []byte) ([]string, error) {
	pols, err := s.parsePolicies("request", data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalidPolicy, err)
	}
	if len(pols) == 0 {
		return nil, fmt.Errorf("%w: no policy in request", errInvalidPolicy)
	}
	names := make([]string, len(pols))
	for i, p := range pols {
		names[i] = p.Metadata.Name
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	file := ""
	for _, n := range names {
		if file = s.fileOf(n); file != "" {
			break
		}
	}
	if file == "" {
		file = safeFileName(names[0]) + ".yaml"
	}
	if err := s.checkNames(file, pols); err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalidPolicy, err)
	}
	path := filepath.Join(s.dir, file)
	if others := s.othersIn(file, names...); len(others) > 0 {
		pols = append(pols, others...)
		if data, err = encodePolicies(pols); err != nil {
			return nil, fmt.Errorf("encode %s: %w", path, err)
		}
	}
	if err := writeFileAtomic(path, data); err != nil {
		return nil, err
	}
	s.files[file] = pols
	delete(s.problems, file)
	return names, nil
}

// Delete removes the policy called name. A file holding only that policy
// is removed; a file holding others is rewritten without it.
func (s *Store) Delete(name string) error {
	s.mu.Lock()
	file := s.fileOf(name)
	rest := s.othersIn(file, name)
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
		data, err := encodePolicies(rest)
		if err != nil {
			return fmt.Errorf("encode %s: %w", path, err)
		}
		if err := writeFileAtomic(path, data); err != nil {
			return err
		}
	}
	_, err := s.Reload()
	return err
}

// encodePolicies encodes policies as one YAML stream.
func encodePolicies(pols []*policy.WorkloadPolicy) ([]byte, error) {
	var buf bytes.Buffer
	docs := make([]any, len(pols))
	for i, p := range pols {
		docs[i] = p
	}
	if err := policy.Encode(&buf, "yaml", docs...); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
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
