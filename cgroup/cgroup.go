// Package cgroup finds the cgroup v2 hierarchy (pure v2 or the "unified"
// mount of a hybrid layout), maps cgroup paths to their ids and back,
// creates and removes cgroups, resolves a process's v2 cgroup and starts
// processes directly inside a cgroup (CLONE_INTO_CGROUP).
//
// A cgroup's id is the inode number of its directory in the v2 hierarchy,
// which is also what name_to_handle_at returns and what the kernel's
// bpf_get_current_cgroup_id() reports.
package cgroup

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Candidate mount points of the v2 hierarchy, in the order they are tried.
const (
	pureMount   = "/sys/fs/cgroup"
	hybridMount = "/sys/fs/cgroup/unified"
)

// Mountpoint returns where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup
// on a pure v2 host, /sys/fs/cgroup/unified on a hybrid one.
func Mountpoint() (string, error) {
	for _, p := range []string{pureMount, hybridMount} {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err != nil {
			continue
		}
		if st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p, nil
		}
	}
	return "", fmt.Errorf("no cgroup v2 hierarchy at %s or %s", pureMount, hybridMount)
}

// ID returns the id of the cgroup directory at path (absolute, inside the
// v2 hierarchy).
func ID(path string) (uint64, error) {
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, path, 0)
	if err != nil {
		return 0, fmt.Errorf("cgroup id of %s: %w", path, err)
	}
	b := h.Bytes()
	if len(b) < 8 {
		return 0, fmt.Errorf("cgroup id of %s: short file handle (%d bytes)", path, len(b))
	}
	return binary.NativeEndian.Uint64(b[:8]), nil
}

// Path returns the absolute directory of the cgroup with the given id, by
// walking the v2 hierarchy mounted at root.
func Path(root string, id uint64) (string, error) {
	var found string
	errFound := errors.New("found")
	err := walk(root, func(p string) error {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return nil
		}
		if st.Ino == id {
			found = p
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		return found, nil
	}
	if err != nil {
		return "", fmt.Errorf("find cgroup %d under %s: %w", id, root, err)
	}
	return "", fmt.Errorf("find cgroup %d under %s: %w", id, root, fs.ErrNotExist)
}

// IDs returns the ids of every cgroup of the v2 hierarchy mounted at
// root: those that exist now.
func IDs(root string) (map[uint64]bool, error) {
	ids := map[uint64]bool{}
	err := walk(root, func(p string) error {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err == nil {
			ids[st.Ino] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list cgroups under %s: %w", root, err)
	}
	return ids, nil
}

// Create makes the cgroup directory path (its parent must exist and belong
// to the caller) and returns its id.
func Create(path string) (uint64, error) {
	if err := os.Mkdir(path, 0o755); err != nil {
		return 0, fmt.Errorf("create cgroup %s: %w", path, err)
	}
	return ID(path)
}

// Remove removes the cgroup directory path. Processes still inside it are
// killed first (cgroup.kill) and waited for, so a test or `bulwark exec` can
// always clean up. Removing a cgroup that does not exist is not an error.
func Remove(path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// Children first: rmdir only removes an empty cgroup.
	entries, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("remove cgroup %s: %w", path, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := Remove(filepath.Join(path, e.Name())); err != nil {
				return err
			}
		}
	}
	var lastErr error
	for i := 0; i < 200; i++ {
		lastErr = unix.Rmdir(path)
		if lastErr == nil || errors.Is(lastErr, unix.ENOENT) {
			return nil
		}
		if !errors.Is(lastErr, unix.EBUSY) {
			break
		}
		// Still populated: kill what is left and retry.
		_ = os.WriteFile(filepath.Join(path, "cgroup.kill"), []byte("1"), 0)
		_ = unix.Nanosleep(&unix.Timespec{Nsec: 5_000_000}, nil)
	}
	return fmt.Errorf("remove cgroup %s: %w", path, lastErr)
}

// OfPID returns the absolute path of the v2 cgroup of process pid, from the
// "0::" line of /proc/PID/cgroup joined to the v2 mount point.
func OfPID(pid int) (string, error) {
	root, err := Mountpoint()
	if err != nil {
		return "", err
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", fmt.Errorf("cgroup of pid %d: %w", pid, err)
	}
	defer f.Close()
	rel, err := parseProcCgroup(bufio.NewScanner(f))
	if err != nil {
		return "", fmt.Errorf("cgroup of pid %d: %w", pid, err)
	}
	return filepath.Join(root, rel), nil
}

// parseProcCgroup returns the path of the "0::" (cgroup v2) line of a
// /proc/PID/cgroup file.
func parseProcCgroup(sc *bufio.Scanner) (string, error) {
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return rest, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no cgroup v2 (0::) line")
}

// StartIn starts cmd directly inside the cgroup directory path
// (CLONE_INTO_CGROUP): the child's first instruction already runs in it.
// cmd.SysProcAttr is created if nil and keeps its other settings.
func StartIn(cmd *exec.Cmd, path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup %s: %w", path, err)
	}
	defer unix.Close(fd)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &unix.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = fd
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s in cgroup %s: %w", cmd.Path, path, err)
	}
	return nil
}

// Level returns the depth of the cgroup directory path below the v2 root
// mounted at root (the root itself is level 0), as the kernel counts it for
// bpf_get_current_ancestor_cgroup_id.
func Level(root, path string) (int, error) {
	rel, err := filepath.Rel(root, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return 0, fmt.Errorf("cgroup %s is not under %s", path, root)
	}
	if rel == "." {
		return 0, nil
	}
	return len(strings.Split(rel, string(filepath.Separator))), nil
}

// Procs lists the processes in cgroup directory dir and its descendants,
// leaving out the descendants for which skip (unless nil) is true and the
// cgroups below them. Cgroups removed meanwhile are skipped.
func Procs(dir string, skip func(path string) bool) ([]int, error) {
	var pids []int
	err := walk(dir, func(p string) error {
		if p != dir && skip != nil && skip(p) {
			return fs.SkipDir
		}
		data, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("list processes of %s: %w", p, err)
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids, err
}

// walk calls fn for the cgroup directory dir and every cgroup below it
// (fn returns fs.SkipDir to leave out those below the one it is given).
// A cgroup removed during the walk is not an error.
func walk(dir string, fn func(path string) error) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		return fn(p)
	})
}
