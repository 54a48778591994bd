// Package edit plans and applies the file changes of bulwark install and
// uninstall: each change is shown as a unified diff, written atomically,
// and a file that install modifies keeps a backup of its old bytes.
package edit

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/pmezard/go-difflib/difflib"
)

// BackupSuffix names the copy of a file's old content written next to it
// before it is modified.
const BackupSuffix = ".bulwark-backup"

// Change is one file's planned new state. Old is what the file holds now
// (nil when it does not exist); New is what it will hold (nil removes it).
type Change struct {
	Path string
	Old  []byte
	New  []byte
	// Perm is the mode of a file the change creates.
	Perm fs.FileMode
	// Backup keeps Old in Path+BackupSuffix before the file is modified.
	Backup bool
	// Dir is a directory the change creates (MkdirDir) or removes when it
	// is empty afterwards (RemoveDir); empty for a file change.
	Dir string
	// DirOp says what to do with Dir.
	DirOp DirOp
}

// DirOp is what a Change does to a directory.
type DirOp int

// Directory operations.
const (
	NoDir DirOp = iota
	MkdirDir
	RemoveDir
)

// Plan is an ordered list of changes. Directory creations come before the
// files in them and removals after, as the caller orders them.
type Plan []Change

// Read returns the content of path, or nil when it does not exist.
func Read(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if b == nil && err == nil {
		b = []byte{}
	}
	return b, err
}

// Exists reports whether path exists.
func Exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// Changed drops the changes that would change nothing.
func (p Plan) Changed() Plan {
	var out Plan
	for _, c := range p {
		if c.DirOp == NoDir && c.Old == nil && c.New == nil {
			continue
		}
		if c.DirOp == NoDir && c.Old != nil && c.New != nil && bytes.Equal(c.Old, c.New) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// Diff renders the plan as unified diffs (a removed file diffs against
// /dev/null) with directory operations as comment lines.
func (p Plan) Diff() string {
	var b strings.Builder
	for _, c := range p.Changed() {
		switch c.DirOp {
		case MkdirDir:
			fmt.Fprintf(&b, "# mkdir %s\n", c.Dir)
			continue
		case RemoveDir:
			fmt.Fprintf(&b, "# rmdir %s (when empty)\n", c.Dir)
			continue
		}
		from, to := c.Path, c.Path
		if c.Old == nil {
			from = "/dev/null"
		}
		if c.New == nil {
			to = "/dev/null"
		}
		d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
			A: lines(c.Old), B: lines(c.New), FromFile: from, ToFile: to, Context: 3,
		})
		b.WriteString(d)
		if c.Backup && c.Old != nil && c.New != nil {
			fmt.Fprintf(&b, "# backup of the old %s in %s\n", c.Path, c.Path+BackupSuffix)
		}
	}
	return b.String()
}

// Apply carries out the plan. Before writing, every file is checked to
// still hold what the plan read, so a concurrent edit is not overwritten;
// each file is replaced by an atomic rename.
func (p Plan) Apply() error {
	p = p.Changed()
	for _, c := range p {
		if c.DirOp != NoDir {
			continue
		}
		now, err := Read(c.Path)
		if err != nil {
			return err
		}
		if (now == nil) != (c.Old == nil) || !bytes.Equal(now, c.Old) {
			return fmt.Errorf("%s changed while planning; nothing written to it, run again", c.Path)
		}
	}
	for _, c := range p {
		var err error
		switch {
		case c.DirOp == MkdirDir:
			err = os.MkdirAll(c.Dir, 0o755)
		case c.DirOp == RemoveDir:
			err = os.Remove(c.Dir)
			if errors.Is(err, fs.ErrNotExist) || dirHasEntries(c.Dir) {
				err = nil // gone already, or the user put files there: keep it
			}
		case c.New == nil:
			err = os.Remove(c.Path)
		default:
			if c.Backup && c.Old != nil {
				if err = WriteAtomic(c.Path+BackupSuffix, c.Old, modeOf(c.Path, c.Perm)); err != nil {
					return err
				}
			}
			err = WriteAtomic(c.Path, c.New, modeOf(c.Path, c.Perm))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// lines splits data into lines that each end in a newline (one is added
// to a last line without it; the diff is for reading).
func lines(data []byte) []string {
	if len(data) == 0 {
		return nil
	}
	l := strings.SplitAfter(string(data), "\n")
	if l[len(l)-1] == "" {
		return l[:len(l)-1]
	}
	l[len(l)-1] += "\n"
	return l
}

func dirHasEntries(dir string) bool {
	ents, err := os.ReadDir(dir)
	return err == nil && len(ents) > 0
}

// modeOf returns the mode of the existing path, or perm for a new one.
func modeOf(path string, perm fs.FileMode) fs.FileMode {
	if fi, err := os.Stat(path); err == nil {
		return fi.Mode().Perm()
	}
	if perm == 0 {
		return 0o644
	}
	return perm
}

// WriteAtomic replaces path with data: a temporary file in the same
// directory is written, synced and renamed over path, then the directory
// is synced. A reader sees the old or the new content, never a mix. A
// symlink at path stays: the file it points to is replaced.
func WriteAtomic(path string, data []byte, perm fs.FileMode) error {
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// CreatedDirMark starts a comment line that records, in a file install
// wrote, a directory install created for it; uninstall removes it again.
const CreatedDirMark = "# bulwark-created-dir: "

// CreatedDirs returns the directories data records with CreatedDirMark.
func CreatedDirs(data []byte) []string {
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if d, ok := strings.CutPrefix(l, CreatedDirMark); ok {
			out = append(out, d)
		}
	}
	return out
}

// TOMLError names the file and line of a TOML decoding error of data.
func TOMLError(path string, data []byte, err error) error {
	var perr toml.ParseError
	if !errors.As(err, &perr) {
		return fmt.Errorf("%s: %w", path, err)
	}
	// The line of the offending byte: Position.Line counts an unexpected
	// newline as the start of the next line.
	line := perr.Position.Line
	if s := perr.Position.Start; s >= 0 && s <= len(data) {
		line = 1 + bytes.Count(data[:s], []byte("\n"))
	}
	return fmt.Errorf("%s:%d: %s", path, line, perr.Message)
}
