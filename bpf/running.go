package bpf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/cgroup"
)

// runningProcess is what placing a process already running in a workload
// needs: its parent from /proc, and the facts the kernel matched at its
// last exec, from the kernel's record in its task state (never /proc's
// comm and exe, which the process can change).
type runningProcess struct {
	ppid int
	comm string // the name at the last exec (comm, at most 15 bytes)
	exe  string // the executable's path inside the process's root
	euid uint32
}

// Task state flags from include/bulwark.h.
const (
	tsTruncated = 1
	tsNoExec    = 4
)

// taskState reads the kernel's state of process pid (its thread-group
// leader's task storage, looked up by pidfd); false when it has none.
func (e *Engine) taskState(pid int) (networkTaskState, bool, error) {
	var st networkTaskState
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return st, false, fmt.Errorf("pidfd of %d: %w", pid, err)
	}
	defer unix.Close(fd)
	err = e.net.TaskStates.Lookup(uint32(fd), &st)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("read task state of %d: %w", pid, err)
	}
	return st, true, nil
}

// putTaskState writes the state of process pid (and its threads'), stamped
// now so that threads the kernel could not reach take it too, and its
// net_tasks entry.
func (e *Engine) putTaskState(pid int, st *networkTaskState) error {
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		return err
	}
	st.Stamp = uint64(now.Nano())
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd of %d: %w", pid, err)
	}
	defer unix.Close(fd)
	if err := e.net.TaskStates.Put(uint32(fd), st); err != nil {
		return fmt.Errorf("write task state of %d: %w", pid, err)
	}
	if err := e.net.NetTasks.Put(uint32(pid), networkNetTask{Node: st.Node, Cgid: st.Cgid}); err != nil {
		return fmt.Errorf("write network task entry of %d: %w", pid, err)
	}
	return e.putThreadStates(pid, st)
}

// putThreadStates writes st to the other threads of process pid too, where
// the kernel gives pidfds of threads (PIDFD_THREAD, Linux 6.9). Elsewhere
// the kernel takes the leader's newer state for a thread, except where the
// tracing backend checks an exec from that thread (after de_thread, on the
// thread's own state).
func (e *Engine) putThreadStates(pid int, st *networkTaskState) error {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil // gone
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil || tid == pid {
			continue
		}
		fd, err := unix.PidfdOpen(tid, unix.PIDFD_THREAD)
		if errors.Is(err, unix.EINVAL) {
			return nil // no thread pidfds here
		}
		if err != nil {
			continue // exited
		}
		err = e.net.TaskStates.Put(uint32(fd), st)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("write task state of thread %d of %d: %w", tid, pid, err)
		}
	}
	return nil
}

// placeRunning gives the processes already running in the workload of
// cgroup id (directory cgroupPath and below) their node under c, as if c had
// been in force when they were executed: a process keeps a node c has; a
// forked process that has executed nothing since shares its parent's new
// node; otherwise it takes the child of its parent's node that the name,
// exe and effective user the kernel recorded at its last exec match, if
// any. A process with no record has executed nothing inside the workload
// (a runtime's init, or a process running since before the engine): it is
// left without state, like a task entering from outside, and may exec only
// a root node; renaming itself cannot pick another node. Listening sockets bound by a re-placed process follow
// it. Without this, a policy applied to a running workload would see every
// running process as outside it. The processes of a cgroup below that is
// armed as a workload of its own are left on its nodes.
//
// earlier holds each process's node before the earlier passes of this
// Apply placed it, and gains this pass's: a process whose node is its
// parent's earlier one was forked from it before the parent was placed, so
// it shares the parent's new node too.
func (e *Engine) placeRunning(id uint64, cgroupPath string, c *Compiled, earlier map[int]uint64) error {
	ownWorkload := func(dir string) bool {
		id, err := cgroup.ID(dir)
		var w networkWorkload
		return err == nil && e.net.Workloads.Lookup(id, &w) == nil
	}
	pids, err := cgroup.Procs(cgroupPath, ownWorkload)
	if err != nil {
		return err
	}
	// Each process's state before placement: a forked process that has
	// not executed anything since has its parent's node.
	before := make(map[int]uint64, len(pids))
	states := make(map[int]networkTaskState, len(pids))
	for _, pid := range pids {
		st, ok, err := e.taskState(pid)
		if err != nil {
			if !errors.Is(err, unix.ESRCH) {
				e.log.Warn("read process state", "pid", pid, "err", err)
			}
			continue
		}
		before[pid] = st.Node
		if ok {
			states[pid] = st
		}
	}
	// /proc is read only for the processes to place (and their parents):
	// a process with a node c has keeps it.
	type facts struct {
		p  runningProcess
		ok bool // listed, and still running
	}
	read := map[int]facts{}
	running := func(pid int) (runningProcess, bool) {
		f, done := read[pid]
		if !done {
			if _, listed := before[pid]; listed {
				f.p.ppid, f.ok = readPPid(pid)
				st := states[pid]
				f.p.comm, f.p.exe, f.p.euid = cString(st.Name[:]), cString(st.Exe[:]), st.Euid
			}
			read[pid] = f
		}
		return f.p, f.ok
	}
	forkedEarlier := func(ppid int, cur uint64) bool {
		n, ok := earlier[ppid]
		return ok && n == cur
	}
	placed := map[int]uint64{} // pid → node under c
	moved := map[uint64]uint64{}
	var place func(pid int) uint64
	place = func(pid int) uint64 {
		if n, ok := placed[pid]; ok {
			return n
		}
		cur := before[pid]
		placed[pid] = cur // until decided (parent links cannot loop, but stay safe)
		if _, ok := c.ids[cur]; ok {
			return cur
		}
		p, ok := running(pid)
		if !ok {
			return cur
		}
		st, recorded := states[pid]
		node := cur
		_, parentIn := running(p.ppid)
		var parent uint64
		if parentIn {
			parent = place(p.ppid)
		}
		switch {
		case !recorded:
			// Executed nothing inside the workload yet: it entered
			// from outside (a runtime's init at StartContainer, a
			// process running since before the engine) and stays
			// without state, so it may exec only a root node, as
			// the kernel treats a task that enters from outside.
		case parentIn && cur != 0 && (before[p.ppid] == cur || forkedEarlier(p.ppid, cur)):
			// Forked, not executed since: the kernel gives a child
			// its parent's node (an exec always gives another).
			node = parent
		case st.Flags&(tsTruncated|tsNoExec) == 0:
			if n := c.matchChild(parent, p); n != 0 {
				node = n
			} else if n := c.matchCredChild(parent, p); n != 0 {
				node = n
			}
		}
		placed[pid] = node
		if node != cur {
			st.Node = node
			if err := e.putTaskState(pid, &st); err != nil {
				e.log.Warn("place running process", "pid", pid, "err", err)
			} else if cur != 0 {
				moved[cur] = node
			}
		}
		return node
	}
	for _, pid := range pids {
		place(pid)
	}
	for pid, cur := range before {
		if _, ok := earlier[pid]; !ok {
			earlier[pid] = cur
		}
	}
	if len(moved) == 0 {
		return nil
	}
	var k networkListenerKey
	var node uint64
	var update []networkListenerKey
	var to []uint64
	it := e.net.Listeners.Iterate()
	for it.Next(&k, &node) {
		if n, ok := moved[node]; ok && k.Cgid == id {
			update = append(update, k)
			to = append(to, n)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("list listeners: %w", err)
	}
	for i := range update {
		if err := e.net.Listeners.Put(&update[i], to[i]); err != nil {
			return fmt.Errorf("move listener on port %d: %w", update[i].Port, err)
		}
	}
	return nil
}

// matchChild returns the node key of the child of parent (0: the roots)
// that p matches, the way the kernel's match_child decides an exec, or 0.
func (c *Compiled) matchChild(parent uint64, p runningProcess) uint64 {
	for _, h := range c.namedChildren(parent, p) {
		n := c.nodes[h]
		if n.Nuids == 0 || slices.Contains(n.Uids[:n.Nuids], p.euid) {
			return h
		}
	}
	return 0
}

// matchCredChild returns the node of p when it changed its euid without
// an exec after matching a child of parent by name and exe: that child's
// child for its current euid (the kernel moves it there at the change);
// 0 when there is none.
func (c *Compiled) matchCredChild(parent uint64, p runningProcess) uint64 {
	for _, h := range c.namedChildren(parent, p) {
		if n := c.matchChild(h, p); n != 0 {
			return n
		}
	}
	return 0
}

// namedChildren returns the children of parent whose name and exe
// patterns match p, whatever their users.
func (c *Compiled) namedChildren(parent uint64, p runningProcess) []uint64 {
	pn, ok := c.nodes[parent]
	if !ok {
		return nil
	}
	cls := exeClass(p.exe)
	var out []uint64
	for _, h := range pn.Children[:pn.Nchildren] {
		n, ok := c.nodes[h]
		if !ok {
			continue
		}
		name := unlayout(n.Name.Kind, 0, n.Name.PrefixLen, n.Name.SuffixLen, n.Name.Bytes[:])
		if !name.matches(p.comm, 0, nameLen-1) {
			continue
		}
		if slices.ContainsFunc(n.Exe[:n.Nexe], func(x networkPattern) bool {
			return unlayout(x.Kind, x.Cls, x.PrefixLen, x.SuffixLen, x.Bytes[:]).matches(p.exe, cls, pathLen-1)
		}) {
			out = append(out, h)
		}
	}
	return out
}

// readPPid reads pid's parent; false when it is gone or unreadable.
func readPPid(pid int) (int, bool) {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PPid:"); ok {
			ppid, err := strconv.Atoi(strings.TrimSpace(v))
			return ppid, err == nil
		}
	}
	return 0, false
}
