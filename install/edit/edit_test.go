package edit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A file edited between planning and applying is not overwritten, and
// nothing of the plan is written.
func TestApplyRefusesConcurrentEdit(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("old\n"), 0o644)
	p := Plan{
		{Path: b, New: []byte("new b\n")},
		{Path: a, Old: []byte("old\n"), New: []byte("new\n"), Backup: true},
	}
	os.WriteFile(a, []byte("edited meanwhile\n"), 0o644)
	if err := p.Apply(); err == nil || !strings.Contains(err.Error(), "changed while planning") {
		t.Fatalf("error %v", err)
	}
	if got, _ := os.ReadFile(a); string(got) != "edited meanwhile\n" {
		t.Fatalf("a overwritten: %q", got)
	}
	if Exists(b) || Exists(a+BackupSuffix) {
		t.Fatal("part of the plan was written")
	}
}

// Apply keeps the mode of a modified file and writes the backup; a
// directory the user put files in survives RemoveDir.
func TestApplyModesBackupDirs(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	os.WriteFile(a, []byte("old\n"), 0o600)
	sub := filepath.Join(dir, "sub")
	p := Plan{
		{Dir: sub, DirOp: MkdirDir},
		{Path: a, Old: []byte("old\n"), New: []byte("new\n"), Backup: true},
		{Path: filepath.Join(sub, "f"), New: []byte("f\n"), Perm: 0o644},
	}
	if d := p.Diff(); !strings.Contains(d, "-old\n+new\n") || !strings.Contains(d, "# mkdir "+sub) {
		t.Fatalf("diff:\n%s", d)
	}
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(a); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 kept", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(a + BackupSuffix); string(b) != "old\n" {
		t.Errorf("backup %q", b)
	}
	os.WriteFile(filepath.Join(sub, "user"), nil, 0o644)
	rm := Plan{{Path: filepath.Join(sub, "f"), Old: []byte("f\n")}, {Dir: sub, DirOp: RemoveDir}}
	if err := rm.Apply(); err != nil {
		t.Fatal(err)
	}
	if !Exists(filepath.Join(sub, "user")) {
		t.Fatal("removed a directory holding the user's file")
	}
	if Exists(filepath.Join(sub, "f")) {
		t.Fatal("file not removed")
	}
}

// A configuration file that is a symlink stays one; its target changes.
func TestWriteAtomicKeepsSymlink(t *testing.T) {
	dir := t.TempDir()
	real, link := filepath.Join(dir, "real.toml"), filepath.Join(dir, "config.toml")
	os.WriteFile(real, []byte("old\n"), 0o640)
	os.Symlink("real.toml", link)
	p := Plan{{Path: link, Old: []byte("old\n"), New: []byte("new\n")}}
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("symlink replaced: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(real); string(b) != "new\n" {
		t.Fatalf("target holds %q", b)
	}
	if fi, _ := os.Stat(real); fi.Mode().Perm() != 0o640 {
		t.Fatalf("target mode %v", fi.Mode().Perm())
	}
}
