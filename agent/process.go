package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/cgroup"
)

// clockTick is the unit of the times in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture).
const clockTick = 10 * time.Millisecond

// procStat is what the agent reads of /proc/PID/stat.
type procStat struct {
	start time.Duration // since boot, truncated to clockTick
	pgrp  int
}

// readProcStat reads process pid's start time and process group.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return procStat{}, unix.ESRCH
		}
		return procStat{}, err
	}
	// The name (field 2) may hold spaces and parentheses: the fields
	// counted from 3 (state) start after its last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	pgrp, err := strconv.Atoi(f[2]) // field 5
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: pgrp %q", pid, f[2])
	}
	ticks, err := strconv.ParseUint(f[19], 10, 64) // field 22, starttime
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: starttime %q", pid, f[19])
	}
	return procStat{start: time.Duration(ticks) * clockTick, pgrp: pgrp}, nil
}

// procPIDs lists the pids of every process.
func procPIDs() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// openProcess takes a pidfd for pid and checks that it is the process that
// started at start (since boot, as bpf.Event.ProcessStart) and that it
// runs in cgroup cgid or below it. The pidfd is taken first and the start
// time read last: a match proves that pid named this one process from
// before the pidfd was taken until after the cgroup was read, so the
// pidfd cannot be another process that reused the pid. The caller closes
// the pidfd. unix.ESRCH means the process is gone.
func openProcess(pid int, start time.Duration, cgid uint64) (int, procStat, error) {
	if start == 0 {
		return -1, procStat{}, errors.New("the event carries no process start time")
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, procStat{}, err
	}
	fail := func(err error) (int, procStat, error) {
		unix.Close(fd)
		return -1, procStat{}, err
	}
	in, err := inCgroup(pid, cgid)
	if err != nil {
		return fail(err)
	}
	st, err := readProcStat(pid)
	if err != nil {
		return fail(err)
	}
	if st.start != start/clockTick*clockTick {
		return fail(fmt.Errorf("pid %d started at %v, the deviant at %v: another process", pid, st.start, start))
	}
	if !in {
		return fail(fmt.Errorf("pid %d runs outside the workload's cgroup %d", pid, cgid))
	}
	return fd, st, nil
}

// inCgroup reports whether process pid runs in the cgroup v2 cgroup cgid
// or in a cgroup below it.
func inCgroup(pid int, cgid uint64) (bool, error) {
	root, err := cgroup.Mountpoint()
	if err != nil {
		return false, err
	}
	dir, err := cgroup.OfPID(pid)
	if errors.Is(err, os.ErrNotExist) {
		return false, unix.ESRCH
	}
	if err != nil {
		return false, err
	}
	for ; strings.HasPrefix(dir, root+"/"); dir = filepath.Dir(dir) {
		id, err := cgroup.ID(dir)
		if err != nil {
			return false, err
		}
		if id == cgid {
			return true, nil
		}
	}
	return false, nil
}
