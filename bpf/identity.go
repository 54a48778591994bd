package bpf

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// Root identifies a workload's root directory, from which the kernel
// resolves the paths of the files it executes: the id of its mount and,
// when it is a directory on that mount rather than its root (a chroot),
// its inode number. An exe whose dentry walk does not end there (a mount
// namespace or a detached tree of the workload's own, a file from outside)
// matches no policy node.
type Root struct {
	MountID uint32
	// Inode is 0 for the root of the mount (a container's root), which
	// the kernel recognises as the mount's root dentry, without trusting
	// an inode number stat reports (overlayfs may map it).
	Inode uint64
}

// RootOf returns the root of process pid (/proc/PID/root): for a
// container, its init process's; for `bulwark exec`, the caller's.
func RootOf(pid int) (Root, error) {
	r, err := RootAt("/proc/" + strconv.Itoa(pid) + "/root")
	if err != nil {
		return Root{}, fmt.Errorf("root of process %d: %w", pid, err)
	}
	return r, nil
}

// RootAt returns the root that directory path would be for a process
// chrooted or pivoted into it: a container's root filesystem before its
// init process has entered it (an OCI createRuntime hook runs before
// pivot_root, and the mount it pivots to is already there).
func RootAt(path string) (Root, error) {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_INO|unix.STATX_MNT_ID, &st); err != nil {
		return Root{}, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mask&unix.STATX_MNT_ID == 0 {
		return Root{}, fmt.Errorf("%s: the kernel reports no mount id", path)
	}
	r := Root{MountID: uint32(st.Mnt_id), Inode: st.Ino}
	if st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return Root{}, fmt.Errorf("%s: the kernel does not say whether it is a mount's root", path)
	}
	if st.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		r.Inode = 0
	}
	return r, nil
}

// ensureHashKey gives the exec seen-set and synthetic nodes their SipHash
// key: random, once per set of pinned maps (an adopted key is kept, so the
// seen-set stays valid across agent restarts).
func (e *Engine) ensureHashKey() error {
	var k networkHashKey
	if err := e.net.ExecHashKey.Lookup(uint32(0), &k); err != nil {
		return fmt.Errorf("read exec hash key: %w", err)
	}
	if k.K0 != 0 || k.K1 != 0 {
		return nil
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("exec hash key: %w", err)
	}
	k.K0, k.K1 = binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])
	if err := e.net.ExecHashKey.Put(uint32(0), &k); err != nil {
		return fmt.Errorf("write exec hash key: %w", err)
	}
	return nil
}
