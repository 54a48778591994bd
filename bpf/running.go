package bpf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/bulwarkhq/bulwark/cgroup"
)

// runningProcess is what placing a process already running in a workload
// needs from /proc: the same facts the kernel matches at exec.
type runningProcess struct {
	ppid int
	comm string // the process name (comm, at most 15 bytes)
	exe  string // the executable's path inside the process's root
	euid uint32
}

// placeRunning gives the processes already running in the workload of
// cgroup id (directory cgroupPath and below) their node under c, as if c had
// been in force when they were executed: a process keeps a node c has; a
// forked process that has executed nothing since shares its parent's new
// node; otherwise it takes the child of its parent's node that its name,
// exe and effective user match, if any. Listening sockets bound by a re-placed
// process follow it. Without this, a policy applied to a running workload
// would see every running process as outside it. The processes of a cgroup
// below that is armed as a workload of its own are left on its nodes.
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
	// Each process's node before placement: a forked process that has not
	// executed anything since has its parent's.
	before := make(map[int]uint64, len(pids))
	for _, pid := range pids {
		var cur uint64
		if err := e.net.TaskNodes.Lookup(uint32(pid), &cur); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			e.log.Warn("read process node", "pid", pid, "err", err)
		}
		before[pid] = cur
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
				f.p, f.ok = readProcess(pid)
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
		node := cur
		_, parentIn := running(p.ppid)
		var parent uint64
		if parentIn {
			parent = place(p.ppid)
		}
		switch {
		case parentIn && cur != 0 && (before[p.ppid] == cur || forkedEarlier(p.ppid, cur)):
			// Forked, not executed since: the kernel gives a child
			// its parent's node (an exec always gives another).
			node = parent
		default:
			if n := c.matchChild(parent, p); n != 0 {
				node = n
			}
		}
		placed[pid] = node
		if node != cur {
			if err := e.net.TaskNodes.Put(uint32(pid), node); err != nil {
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
	pn, ok := c.nodes[parent]
	if !ok {
		return 0
	}
	for _, h := range pn.Children[:pn.Nchildren] {
		n, ok := c.nodes[h]
		if !ok {
			continue
		}
		name := unlayout(n.Name.Kind, 0, n.Name.PrefixLen, n.Name.SuffixLen, n.Name.Bytes[:])
		if !name.matches(p.comm, 0, nameLen-1) {
			continue
		}
		cls := exeClass(p.exe)
		exeOK := false
		for _, x := range n.Exe[:n.Nexe] {
			if unlayout(x.Kind, x.Cls, x.PrefixLen, x.SuffixLen, x.Bytes[:]).matches(p.exe, cls, pathLen-1) {
				exeOK = true
				break
			}
		}
		if !exeOK {
			continue
		}
		if n.Nuids == 0 {
			return h
		}
		for _, u := range n.Uids[:n.Nuids] {
			if u == p.euid {
				return h
			}
		}
	}
	return 0
}

// readProcess reads pid's parent, name, exe (inside its own root) and
// effective uid; false when it is gone or unreadable (a kernel thread).
func readProcess(pid int) (runningProcess, bool) {
	dir := "/proc/" + strconv.Itoa(pid)
	var p runningProcess
	exe, err := os.Readlink(dir + "/exe")
	if err != nil {
		return p, false
	}
	// Spelled as the kernel's exe classes are: /proc shows a memfd as
	// "/memfd:NAME (deleted)", an unlinked file as "PATH (deleted)".
	if name, ok := strings.CutPrefix(exe, "/"+memfdPrefix); ok && strings.HasSuffix(name, deletedSuffix) {
		exe = memfdPrefix + strings.TrimSuffix(name, deletedSuffix)
	}
	if root, err := os.Readlink(dir + "/root"); err == nil && root != "/" {
		if rel, ok := strings.CutPrefix(exe, root); ok && strings.HasPrefix(rel, "/") {
			exe = rel
		}
	}
	p.exe = exe
	comm, err := os.ReadFile(dir + "/comm")
	if err != nil {
		return p, false
	}
	p.comm = strings.TrimSuffix(string(comm), "\n")
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return p, false
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), ":")
		f := strings.Fields(val)
		switch {
		case key == "PPid" && len(f) > 0:
			p.ppid, _ = strconv.Atoi(f[0])
		case key == "Uid" && len(f) > 1:
			u, _ := strconv.ParseUint(f[1], 10, 32)
			p.euid = uint32(u)
		}
	}
	return p, true
}
