package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/bpf"
)

// maxPasswdSize bounds the user table ReadUsers reads.
const maxPasswdSize = 4 << 20

// ReadUsers reads the user table (etc/passwd) of the file system rooted at
// root (a container's /proc/PID/root, or "/"). The path is resolved inside
// root as if root were "/": absolute symlinks and ".." cannot reach the
// host's files. Only a regular file of at most maxPasswdSize bytes is
// read, so a FIFO or a device cannot block or feed the agent. "root" is
// always uid 0, also when the table cannot be read.
func ReadUsers(root string) (map[string]uint32, error) {
	users := map[string]uint32{"root": 0}
	f, err := openInRoot(root, "etc/passwd")
	if err != nil {
		return users, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPasswdSize+1))
	if err != nil {
		return users, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if len(data) > maxPasswdSize {
		return users, fmt.Errorf("%s: larger than %d bytes", f.Name(), maxPasswdSize)
	}
	parsed, err := bpf.ParsePasswd(bytes.NewReader(data))
	if err != nil {
		return users, fmt.Errorf("%s: %w", f.Name(), err)
	}
	for k, v := range parsed {
		users[k] = v
	}
	return users, nil
}

// openInRoot opens the regular file rel resolved inside root (openat2
// RESOLVE_IN_ROOT, no magic links). The file is first opened as a path
// only and checked to be a regular file, then reopened
// for reading through that path descriptor: a FIFO or a device is never
// opened for reading. There is no fallback for kernels without openat2
// (before 5.6, older than any kernel Bulwark supports).
func openInRoot(root, rel string) (*os.File, error) {
	name := root + "/" + rel
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dir)
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	var pfd int
	for range 8 { // EAGAIN: a rename raced the resolution of ".."
		pfd, err = unix.Openat2(dir, rel, &how)
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open in root", Path: name, Err: err}
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s: not a regular file (mode %#o)", name, st.Mode)
	}
	// Reopening the path descriptor reaches the inode already checked.
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}
