package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bulwarkhq/bulwark/cgroup"
)

// Mode is how a workload is armed.
type Mode uint32

// Modes, as the kernel numbers them.
const (
	// ModeObserve checks nothing and reports what runs (deduplicated):
	// for workloads without a policy, to learn their fingerprint.
	ModeObserve Mode = 0
	// ModeAudit checks the policy and reports deviations, blocks nothing.
	ModeAudit Mode = 1
	// ModeEnforce checks the policy, blocks deviations and reports them.
	ModeEnforce Mode = 2
)

// String returns "observe", "audit" or "enforce".
func (m Mode) String() string {
	switch m {
	case ModeObserve:
		return "observe"
	case ModeAudit:
		return "audit"
	case ModeEnforce:
		return "enforce"
	}
	return fmt.Sprintf("mode(%d)", uint32(m))
}

// Attachment is one armed workload.
type Attachment struct {
	CgroupID   uint64
	Mode       Mode
	Generation uint32
}

// cgroupProgram is a per-cgroup network program, the name of its link's
// pin and its attach type.
type cgroupProgram struct {
	name string
	prog *ebpf.Program
	typ  ebpf.AttachType
}

// cgroupPrograms are the per-cgroup network programs: the network
// object's and, on the tracing backend, the UDP receive check's recvmsg.
func (e *Engine) cgroupPrograms() []cgroupProgram {
	progs := []cgroupProgram{
		{"bind4", e.net.Bind4, ebpf.AttachCGroupInet4Bind},
		{"bind6", e.net.Bind6, ebpf.AttachCGroupInet6Bind},
		{"connect4", e.net.Connect4, ebpf.AttachCGroupInet4Connect},
		{"connect6", e.net.Connect6, ebpf.AttachCGroupInet6Connect},
		{"sendmsg4", e.net.Sendmsg4, ebpf.AttachCGroupUDP4Sendmsg},
		{"sendmsg6", e.net.Sendmsg6, ebpf.AttachCGroupUDP6Sendmsg},
		{"ingress", e.net.Ingress, ebpf.AttachCGroupInetIngress},
		{"egress", e.net.Egress, ebpf.AttachCGroupInetEgress},
	}
	if u := e.udpRecv; u != nil {
		progs = append(progs,
			cgroupProgram{"recvmsg4", u.Recvmsg4, ebpf.AttachCGroupUDP4Recvmsg},
			cgroupProgram{"recvmsg6", u.Recvmsg6, ebpf.AttachCGroupUDP6Recvmsg})
	}
	return progs
}

// Apply arms the workload whose cgroup directory is cgroupPath with c in
// mode (c may be nil only for ModeObserve), or replaces what it is armed
// with: the new generation's tables are written first, then one update of
// the workload's entry switches every check over at once, then the old
// generation's tables are deleted. Processes keep their node across the
// switch when the new policy has a node with the same id; other running
// processes are placed on c's nodes (placeRunning), also before the switch
// when no policy checked their nodes until then (not armed, or observed).
// Exe paths are resolved from the calling process's root; ApplyIn names
// the workload's own.
func (e *Engine) Apply(cgroupPath string, c *Compiled, mode Mode) (uint64, error) {
	root, err := RootOf(os.Getpid())
	if err != nil {
		return 0, fmt.Errorf("arm %s: %w", cgroupPath, err)
	}
	return e.ApplyIn(cgroupPath, root, c, mode)
}

// ApplyIn is Apply for a workload whose executables the kernel resolves
// from root (RootOf its init process), recorded as the workload is armed.
func (e *Engine) ApplyIn(cgroupPath string, root Root, c *Compiled, mode Mode) (uint64, error) {
	if c == nil && mode != ModeObserve {
		return 0, fmt.Errorf("arm %s in %s mode: no compiled policy", cgroupPath, mode)
	}
	if c == nil {
		c = &Compiled{}
	}
	id, err := cgroup.ID(cgroupPath)
	if err != nil {
		return 0, err
	}
	level, err := cgroup.Level(e.cgRoot, cgroupPath)
	if err != nil {
		return 0, err
	}
	if level < 1 || level >= maxLevel {
		return 0, fmt.Errorf("arm %s: cgroup level %d outside 1..%d", cgroupPath, level, maxLevel-1)
	}
	e.mu.Lock()
	defer e.mu.Unlock()

	var old networkWorkload
	armed := e.net.Workloads.Lookup(id, &old) == nil
	// Its DNS grants stay in their table across a re-Apply; a workload
	// armed anew (or by an engine that keyed grants by cgroup id) takes
	// an empty one, given back when arming fails.
	grants, taken := old.Grants, uint32(0)
	if grants == 0 {
		if taken, err = e.takeGrantTable(); err != nil {
			return 0, fmt.Errorf("arm %s: %w", cgroupPath, err)
		}
		grants = taken
		defer func() {
			if taken != 0 {
				e.giveBackGrantTable(taken)
			}
		}()
	}
	gen, err := e.nextGen()
	if err != nil {
		return 0, err
	}
	if err := e.writeTables(gen, c); err != nil {
		e.deleteGen(gen)
		return 0, fmt.Errorf("arm %s: %w", cgroupPath, err)
	}
	if err := e.attachCgroup(id, cgroupPath); err != nil {
		e.deleteGen(gen)
		return 0, err
	}
	// Running processes take their nodes under c (placeRunning): before
	// the switch too when no policy checks their nodes until then, so that
	// none of them runs under c with the node it had. Each time twice: the
	// second pass places the processes forked during the first from a
	// parent it had not placed yet, which inherited the parent's old node.
	earlier := map[int]uint64{}
	place := func() {
		for range 2 {
			if err := e.placeRunning(id, cgroupPath, c, earlier); err != nil {
				e.log.Warn("place running processes", "cgroup", cgroupPath, "err", err)
			}
		}
	}
	if mode != ModeObserve {
		switch checked, err := e.nodesChecked(cgroupPath, level); {
		case err != nil:
			e.log.Warn("place running processes before the switch", "cgroup", cgroupPath, "err", err)
		case !checked:
			place()
		}
	}
	w := networkWorkload{Gen: gen, Mode: uint32(mode), Flags: c.flags, Level: uint32(level),
		RootMnt: root.MountID, RootIno: root.Inode, Grants: grants}
	if err := e.net.Workloads.Put(id, &w); err != nil {
		e.deleteGen(gen)
		return 0, fmt.Errorf("arm %s: write workload entry: %w", cgroupPath, err)
	}
	taken = 0 // the workload's now
	e.compiled[id] = c
	if err := e.updateLevels(); err != nil {
		return id, err
	}
	if mode != ModeObserve {
		place()
	}
	if armed {
		if err := e.deleteGen(old.Gen); err != nil {
			e.log.Warn("stale policy tables left", "generation", old.Gen, "err", err)
		}
		if err := e.forgetReported(id); err != nil {
			e.log.Warn("deviation counts of the old policy left", "cgroup", cgroupPath, "err", err)
		}
	}
	e.log.Debug("workload armed", "cgroup", cgroupPath, "id", id, "mode", mode, "generation", gen)
	return id, nil
}

// Remove disarms the workload with cgroup id: its entry goes first (checks
// stop at once), then its links, tables, listener and seen entries, its
// undrained deviation counts and its loss counters; the grant keeper
// deletes its table of DNS grants.
func (e *Engine) Remove(cgroupID uint64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var w networkWorkload
	if err := e.net.Workloads.Lookup(cgroupID, &w); err != nil {
		return fmt.Errorf("remove workload %d: not armed: %w", cgroupID, err)
	}
	var errs []error
	if err := e.net.Workloads.Delete(cgroupID); err != nil {
		errs = append(errs, fmt.Errorf("remove workload %d: %w", cgroupID, err))
	}
	delete(e.compiled, cgroupID)
	dir := e.cgroupPinDir(cgroupID)
	errs = append(errs, e.release(dir), unpinLinks(dir), e.deleteGen(w.Gen), e.updateLevels())
	errs = append(errs, deleteWhere(e.net.Listeners, func(k *networkListenerKey) bool { return k.Cgid == cgroupID }))
	errs = append(errs, deleteWhere(e.net.Seen, func(k *networkSeenKey) bool { return k.Cgid == cgroupID }))
	errs = append(errs, deleteWhere(e.net.Deviations, func(k *networkDevKey) bool { return k.Cgid == cgroupID }))
	if err := e.net.WorkloadLosses.Delete(cgroupID); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		errs = append(errs, fmt.Errorf("remove workload %d: losses: %w", cgroupID, err))
	}
	e.dropGrantTables(cgroupID, &w)
	return errors.Join(errs...)
}

// Attached lists the armed workloads, including those armed by an earlier
// process and adopted from the pins.
func (e *Engine) Attached() ([]Attachment, error) {
	var out []Attachment
	var id uint64
	var w networkWorkload
	it := e.net.Workloads.Iterate()
	for it.Next(&id, &w) {
		out = append(out, Attachment{CgroupID: id, Mode: Mode(w.Mode), Generation: w.Gen})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list workloads: %w", err)
	}
	return out, nil
}

// nodesChecked reports whether a policy checks the nodes of the processes
// in cgroupPath (at level) now: whether the workload that governs them, as
// the kernel finds it (the cgroup's own, else its nearest armed ancestor's),
// is in audit or enforce mode. Observe mode only reports nodes.
func (e *Engine) nodesChecked(cgroupPath string, level int) (bool, error) {
	for dir := cgroupPath; level >= 1; dir, level = filepath.Dir(dir), level-1 {
		id, err := cgroup.ID(dir)
		if err != nil {
			return true, err
		}
		var w networkWorkload
		err = e.net.Workloads.Lookup(id, &w)
		if err == nil {
			return Mode(w.Mode) != ModeObserve, nil
		}
		if !errors.Is(err, ebpf.ErrKeyNotExist) {
			return true, fmt.Errorf("read workload entry of %s: %w", dir, err)
		}
	}
	return false, nil
}

// nextGen hands out a policy generation, kept in the pinned config so a
// restarted agent never reuses one.
func (e *Engine) nextGen() (uint32, error) {
	var cfg networkEngineConfig
	if err := e.net.Config.Lookup(uint32(0), &cfg); err != nil {
		return 0, fmt.Errorf("read engine config: %w", err)
	}
	cfg.NextGen++
	if cfg.NextGen >= 1<<24 {
		cfg.NextGen = 1 // the seen-set keeps 24 bits of generation
	}
	if err := e.net.Config.Put(uint32(0), &cfg); err != nil {
		return 0, fmt.Errorf("write engine config: %w", err)
	}
	return cfg.NextGen, nil
}

// updateLevels recomputes which cgroup levels hold workloads, so nested
// cgroups find their workload through bpf_get_current_ancestor_cgroup_id.
func (e *Engine) updateLevels() error {
	var cfg networkEngineConfig
	if err := e.net.Config.Lookup(uint32(0), &cfg); err != nil {
		return fmt.Errorf("read engine config: %w", err)
	}
	cfg.LevelMask = 0
	var id uint64
	var w networkWorkload
	it := e.net.Workloads.Iterate()
	for it.Next(&id, &w) {
		cfg.LevelMask |= 1 << w.Level
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("list workloads: %w", err)
	}
	if err := e.net.Config.Put(uint32(0), &cfg); err != nil {
		return fmt.Errorf("write engine config: %w", err)
	}
	return nil
}

// writeTables writes c's tables under generation gen.
func (e *Engine) writeTables(gen uint32, c *Compiled) error {
	for h, n := range c.nodes {
		n := n
		if err := e.net.PolicyNodes.Put(networkNodeKey{Gen: gen, Node: h}, &n); err != nil {
			return fmt.Errorf("write policy node %q: %w", c.ids[h], err)
		}
	}
	for i := range c.dns {
		if err := e.net.DnsPatterns.Put(networkRuleKey{GenDir: gen << 1, Index: uint32(i)}, &c.dns[i]); err != nil {
			return fmt.Errorf("write dnsSelector name %d: %w", i, err)
		}
	}
	for dir, t := range []netTables{c.egress, c.ingress} {
		gd := gen<<1 | uint32(dir)
		v4, v6 := e.net.EgressV4, e.net.EgressV6
		if dir == 1 {
			v4, v6 = e.net.IngressV4, e.net.IngressV6
		}
		for i, r := range t.rules {
			r := r
			if err := e.net.NetRules.Put(networkRuleKey{GenDir: gd, Index: uint32(i)}, &r); err != nil {
				return fmt.Errorf("write network rule %d: %w", i, err)
			}
		}
		for p, mask := range t.v4 {
			k := networkLpmV4Key{Prefixlen: 32 + uint32(p.Bits()), GenDir: gd, Addr: p.Addr().As4()}
			if err := v4.Put(&k, mask); err != nil {
				return fmt.Errorf("write prefix %s: %w", p, err)
			}
		}
		for p, mask := range t.v6 {
			k := networkLpmV6Key{Prefixlen: 32 + uint32(p.Bits()), GenDir: gd, Addr: p.Addr().As16()}
			if err := v6.Put(&k, mask); err != nil {
				return fmt.Errorf("write prefix %s: %w", p, err)
			}
		}
	}
	return nil
}

// deleteGen deletes every table entry of generation gen.
func (e *Engine) deleteGen(gen uint32) error {
	ofGen := func(gd uint32) bool { return gd>>1 == gen }
	return errors.Join(
		deleteWhere(e.net.PolicyNodes, func(k *networkNodeKey) bool { return k.Gen == gen }),
		deleteWhere(e.net.NetRules, func(k *networkRuleKey) bool { return ofGen(k.GenDir) }),
		deleteWhere(e.net.DnsPatterns, func(k *networkRuleKey) bool { return ofGen(k.GenDir) }),
		deleteWhere(e.net.EgressV4, func(k *networkLpmV4Key) bool { return ofGen(k.GenDir) }),
		deleteWhere(e.net.IngressV4, func(k *networkLpmV4Key) bool { return ofGen(k.GenDir) }),
		deleteWhere(e.net.EgressV6, func(k *networkLpmV6Key) bool { return ofGen(k.GenDir) }),
		deleteWhere(e.net.IngressV6, func(k *networkLpmV6Key) bool { return ofGen(k.GenDir) }),
	)
}

// deleteWhere deletes the entries of m whose key matches.
func deleteWhere[K any](m *ebpf.Map, match func(*K) bool) error {
	var doomed []K
	var k K
	it := m.Iterate()
	var v []byte
	for it.Next(&k, &v) {
		if match(&k) {
			doomed = append(doomed, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate %s: %w", m, err)
	}
	for i := range doomed {
		if err := m.Delete(&doomed[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete from %s: %w", m, err)
		}
	}
	return nil
}

// attachCgroup attaches the network programs to the workload cgroup, pins
// the links and holds them, unless they are pinned already (re-Apply,
// adoption: then it holds what is pinned).
func (e *Engine) attachCgroup(id uint64, path string) error {
	dir := e.cgroupPinDir(id)
	if _, err := os.Stat(dir); err == nil {
		return e.adoptLinks(id)
	}
	tmp := dir + "_new" // bpffs reserves dots in names
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("attach cgroup %s: %w", path, err)
	}
	var attached []link.Link
	undo := func() {
		for _, l := range attached {
			l.Close()
		}
		unpinLinks(tmp)
	}
	for _, p := range e.cgroupPrograms() {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: path, Attach: p.typ, Program: p.prog})
		if err != nil {
			undo()
			return fmt.Errorf("attach %s to cgroup %s: %w", p.name, path, err)
		}
		attached = append(attached, l)
		if err := l.Pin(filepath.Join(tmp, p.name)); err != nil {
			undo()
			return fmt.Errorf("pin %s of cgroup %s: %w", p.name, path, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		undo()
		return fmt.Errorf("attach cgroup %s: %w", path, err)
	}
	// The links' pins moved with the directory: hold them under their
	// final paths (LoadPinnedLink there, so each knows where it is pinned).
	for _, l := range attached {
		l.Close()
	}
	return e.adoptLinks(id)
}

// forgetReported makes the aggregated deviations of workload cgroupID
// report again, so that the same deviation under a new policy emits an
// event instead of only being counted: entries whose every occurrence an
// event reported are deleted, the others are marked to emit with their
// next occurrence (carrying the occurrences not reported yet).
func (e *Engine) forgetReported(cgroupID uint64) error {
	var k networkDevKey
	var c networkDevCount
	var done, pending []networkDevKey
	it := e.net.Deviations.Iterate()
	for it.Next(&k, &c) {
		switch {
		case k.Cgid != cgroupID:
		case c.Count <= c.Reported:
			done = append(done, k)
		default:
			pending = append(pending, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read deviation counts: %w", err)
	}
	for i := range done {
		if err := e.net.Deviations.Delete(&done[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete deviation count: %w", err)
		}
	}
	for i := range pending {
		if err := e.net.Deviations.Lookup(&pending[i], &c); err != nil {
			continue // drained meanwhile
		}
		c.Retry = 1
		if err := e.net.Deviations.Update(&pending[i], &c, ebpf.UpdateExist); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("mark deviation count: %w", err)
		}
	}
	return nil
}
