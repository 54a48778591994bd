// Package bpf is Bulwark's kernel enforcement engine: it compiles workload
// policies into BPF tables, loads and attaches the programs that check
// every exec and connection of a workload's cgroup against them, and
// decodes what the kernel reports.
//
// Two backends check execs: "lsm" (lsm/bprm_creds_from_file, EPERM once
// the new credentials are known, before the old image is replaced) where
// BPF LSM is active, and "tracing" (tp_btf/sched_process_exec + SIGKILL)
// elsewhere; Open probes the kernel and picks one. Network checks are
// per-cgroup programs in both.
//
// Everything is pinned under Options.PinDir: the kernel keeps enforcing when
// the agent exits, and the next Open adopts the pins.
package bpf

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/cgroup"
)

// Backend names.
const (
	BackendAuto    = "auto"
	BackendLSM     = "lsm"
	BackendTracing = "tracing"
)

// DefaultPinDir is where the engine pins its programs, links and maps.
const DefaultPinDir = "/sys/fs/bpf/bulwark"

// Options configure Open.
type Options struct {
	// PinDir is a directory on a bpffs (default DefaultPinDir; when it
	// is under /sys/fs/bpf and nothing is mounted there, Open mounts
	// bpffs there).
	PinDir string
	// Backend is "auto" (default), "lsm" or "tracing".
	Backend string
	// Logger receives what the engine decides; default slog.Default().
	Logger *slog.Logger
	// DNSTTLFloor and DNSTTLCap bound how long a DNS answer lets a
	// workload reach an address under a dnsSelector rule: the record's
	// TTL, raised to the floor (default 60 s) and cut to the cap (default
	// 1 h), whole seconds. They apply to every workload of the pins.
	DNSTTLFloor, DNSTTLCap time.Duration
}

// Engine is the loaded kernel side: the shared tables, the network programs
// to attach to workload cgroups and the exec backend.
type Engine struct {
	log     *slog.Logger
	pinDir  string
	backend string
	cgRoot  string
	net     networkObjects
	exec    interface{ Close() error }
	// udpRecv is the tracing backend's UDP receive check, whose recvmsg
	// programs go to each workload cgroup; nil on lsm or where the
	// kernel refused it (udprecv.go).
	udpRecv *udpRecvTracing
	// udpAtReceive: UDP datagrams are decided for the receiving task's
	// node (udprecv.go); else for the node bound to their port.
	udpAtReceive bool
	// grantSpec makes the tables of DNS grants, which grants hands out
	// (grants.go).
	grantSpec *ebpf.MapSpec
	grants    grantTables
	// readers read the process ring first, then the network ring; poll
	// is an epoll instance waiting on both.
	readers [2]*ringbuf.Reader
	poll    int

	mu       sync.Mutex
	compiled map[uint64]*Compiled // policies this Engine applied, by cgroup id
	links    map[string]*heldLink // every link attached or adopted, by pin path
	// pinInodes: the inode of each pin CheckLinks found to name its
	// object, so it opens a pin again only when it was replaced.
	pinInodes map[string]uint64
}

// Names of the pins under PinDir besides the maps (pinned by their names).
const (
	pinExecPrefix = "link_exec_" // + backend: the exec program's link
	pinFork       = "link_fork"
	pinExit       = "link_exit"
	pinMigrate    = "link_migrate"
	pinSysExit    = "link_sys_exit" // credential changes and accepts
	pinSetuid     = "link_setuid"   // lsm: credential changes, before commit
	pinCgroupDir  = "cgroup_"       // + cgroup id: that workload's links
)

// Open loads the engine: it picks the backend (adopting the one already
// pinned, if any), loads the programs with the maps pinned by name (reusing
// existing pins) and attaches the global exec programs unless their links
// are pinned already.
func Open(opts Options) (*Engine, error) {
	if opts.PinDir == "" {
		opts.PinDir = DefaultPinDir
	}
	if opts.Backend == "" {
		opts.Backend = BackendAuto
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cgRoot, err := cgroup.Mountpoint()
	if err != nil {
		return nil, err
	}
	if err := ensurePinDir(opts.PinDir); err != nil {
		return nil, err
	}
	e := &Engine{log: opts.Logger, pinDir: opts.PinDir, cgRoot: cgRoot, poll: -1, compiled: map[uint64]*Compiled{}, links: map[string]*heldLink{}, pinInodes: map[string]uint64{}}

	backend, err := e.chooseBackend(opts.Backend)
	if err != nil {
		return nil, err
	}
	spec, err := loadNetwork()
	if err != nil {
		return nil, fmt.Errorf("load network object: %w", err)
	}
	if err := features.HaveProgramHelper(ebpf.CGroupSockAddr, asm.FnTaskStorageGet); err != nil {
		// Before Linux 6.x cgroup programs cannot read task storage:
		// they read net_tasks.
		e.log.Info("network programs read net_tasks", "reason", err)
		if err := spec.Variables["use_task_storage"].Set(uint32(0)); err != nil {
			return nil, fmt.Errorf("configure network object: %w", err)
		}
	}
	e.grantSpec = spec.Maps["dns_grants"].InnerMap
	if err := spec.LoadAndAssign(&e.net, e.collectionOptions()); err != nil {
		return nil, fmt.Errorf("load network programs: %w", err)
	}
	if err := e.setDNSTTL(opts.DNSTTLFloor, opts.DNSTTLCap); err != nil {
		e.net.Close()
		return nil, err
	}
	if err := e.ensureHashKey(); err != nil {
		e.net.Close()
		return nil, err
	}
	if err := e.openExec(backend); err != nil {
		e.Close()
		return nil, err
	}
	e.backend = backend
	if err := e.adoptCgroupLinks(); err != nil {
		e.Close()
		return nil, err
	}
	if err := e.startGrantKeeper(); err != nil {
		e.Close()
		return nil, err
	}
	if err := e.openReaders(); err != nil {
		e.Close()
		return nil, err
	}
	e.log.Info("bpf engine ready", "backend", backend, "pins", opts.PinDir)
	return e, nil
}

func (e *Engine) collectionOptions() *ebpf.CollectionOptions {
	return &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: e.pinDir}}
}

// ensurePinDir creates dir, mounting bpffs on /sys/fs/bpf first when dir
// lives there and it is not mounted yet.
func ensurePinDir(dir string) error {
	const bpffs = "/sys/fs/bpf"
	if strings.HasPrefix(dir, bpffs+"/") {
		var st unix.Statfs_t
		if err := unix.Statfs(bpffs, &st); err == nil && st.Type != unix.BPF_FS_MAGIC {
			if err := unix.Mount("bpffs", bpffs, "bpf", 0, "mode=0700"); err != nil {
				return fmt.Errorf("mount bpffs on %s: %w", bpffs, err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin directory: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("pin directory %s: %w", dir, err)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("pin directory %s is not on a bpf filesystem", dir)
	}
	return nil
}

// chooseBackend returns the backend to use: the pinned one if the exec
// link of a backend is pinned, else the requested one, else (auto) lsm
// when the kernel accepts it and tracing otherwise.
func (e *Engine) chooseBackend(want string) (string, error) {
	for _, b := range []string{BackendLSM, BackendTracing} {
		if _, err := os.Stat(filepath.Join(e.pinDir, pinExecPrefix+b)); err == nil {
			if want != BackendAuto && want != b {
				return "", fmt.Errorf("backend %s requested but %s is pinned in %s (Unpin first)", want, b, e.pinDir)
			}
			e.log.Info("adopting pinned exec backend", "backend", b)
			return b, nil
		}
	}
	switch want {
	case BackendLSM, BackendTracing:
		return want, nil
	case BackendAuto:
		if err := probeLSM(); err != nil {
			e.log.Info("BPF LSM unavailable, using the tracing backend", "reason", err)
			return BackendTracing, nil
		}
		return BackendLSM, nil
	}
	return "", fmt.Errorf("unknown backend %q (want auto, lsm or tracing)", want)
}

// openExec loads the exec programs of backend and attaches them, adopting
// links that are pinned already.
func (e *Engine) openExec(backend string) error {
	type progs struct {
		exec, fork, exit, migrate, sysExit, setuid *ebpf.Program
	}
	var p progs
	switch backend {
	case BackendTracing:
		var objs execTracingObjects
		spec, err := loadExecTracing()
		if err != nil {
			return fmt.Errorf("load tracing exec object: %w", err)
		}
		if err := spec.LoadAndAssign(&objs, e.collectionOptions()); err != nil {
			return fmt.Errorf("load tracing exec programs: %w", err)
		}
		e.exec = &objs
		p = progs{objs.OnExec, objs.OnFork, objs.OnExit, objs.OnCgroupAttach, objs.OnSysExit, nil}
	case BackendLSM:
		objs, err := loadLSMObjects(e.collectionOptions())
		if err != nil {
			return err
		}
		e.exec = objs
		p = progs{objs.CheckBprm, objs.OnFork, objs.OnExit, objs.OnCgroupAttach, objs.OnSysExit, objs.CheckSetuid}
	}
	attach := []struct {
		pin  string
		prog *ebpf.Program
		lsm  bool
	}{
		// Fork tracking first, so no process escapes between the two.
		{pinFork, p.fork, false},
		{pinExit, p.exit, false},
		{pinMigrate, p.migrate, false},
		{pinSysExit, p.sysExit, false},
		{pinSetuid, p.setuid, true},
		{pinExecPrefix + backend, p.exec, backend == BackendLSM},
	}
	for _, a := range attach {
		if a.prog == nil {
			continue // not this backend's
		}
		path := filepath.Join(e.pinDir, a.pin)
		if l, err := link.LoadPinnedLink(path, nil); err == nil {
			// Adopted: the pinned link keeps the old program running.
			e.hold(l, path, 0, "")
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("adopt %s: %w", path, err)
		}
		var l link.Link
		var err error
		if a.lsm {
			l, err = link.AttachLSM(link.LSMOptions{Program: a.prog})
		} else {
			l, err = link.AttachTracing(link.TracingOptions{Program: a.prog})
		}
		if err != nil {
			return fmt.Errorf("attach %s: %w", a.pin, err)
		}
		if err := l.Pin(path); err != nil {
			l.Close()
			return fmt.Errorf("pin %s: %w", path, err)
		}
		e.hold(l, path, 0, "")
	}
	if err := e.openSocketGuards(backend); err != nil {
		e.exec.Close()
		return err
	}
	if err := e.openURing(); err != nil {
		return err
	}
	return e.openUDPRecv(backend)
}

// Backend returns the exec backend in use: "lsm" or "tracing".
func (e *Engine) Backend() string { return e.backend }

// UDPAtReceive reports whether a UDP datagram is decided for the node of
// the task that receives it (the kernel has the receive hooks), rather
// than for the node bound to its port.
func (e *Engine) UDPAtReceive() bool { return e.udpAtReceive }

// Close releases the engine's file descriptors, the links' included. Pins
// stay, so the kernel keeps enforcing every armed workload.
func (e *Engine) Close() error {
	e.stopGrantKeeper()
	e.mu.Lock()
	errs := []error{e.release(e.pinDir)}
	e.mu.Unlock()
	for i, r := range e.readers {
		if r != nil {
			errs = append(errs, r.Close())
			e.readers[i] = nil
		}
	}
	if e.poll >= 0 {
		errs = append(errs, unix.Close(e.poll))
		e.poll = -1
	}
	if e.exec != nil {
		errs = append(errs, e.exec.Close())
		e.exec = nil
	}
	errs = append(errs, e.net.Close())
	return errors.Join(errs...)
}

// Unpin detaches every workload and the exec programs and removes every pin
// (uninstall, tests). Close the engine afterwards.
func (e *Engine) Unpin() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	entries, err := os.ReadDir(e.pinDir)
	if err != nil {
		return fmt.Errorf("read pin directory: %w", err)
	}
	// Held descriptors would keep the links attached.
	errs := []error{e.release(e.pinDir)}
	for _, ent := range entries {
		path := filepath.Join(e.pinDir, ent.Name())
		if ent.IsDir() && strings.HasPrefix(ent.Name(), pinCgroupDir) {
			errs = append(errs, unpinLinks(path))
			continue
		}
		if strings.HasPrefix(ent.Name(), "link_") {
			errs = append(errs, unpinLink(path))
			continue
		}
		errs = append(errs, os.Remove(path))
	}
	errs = append(errs, os.Remove(e.pinDir))
	return errors.Join(errs...)
}

// unpinLink detaches the link pinned at path and removes the pin.
func unpinLink(path string) error {
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("load pinned link %s: %w", path, err)
	}
	defer l.Close()
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpin %s: %w", path, err)
	}
	return nil
}

// unpinLinks detaches every link pinned in dir and removes dir.
func unpinLinks(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("read %s: %w", dir, err)
	}
	var errs []error
	for _, ent := range entries {
		errs = append(errs, unpinLink(filepath.Join(dir, ent.Name())))
	}
	errs = append(errs, os.Remove(dir))
	return errors.Join(errs...)
}

// openReaders opens a reader on each ring buffer and an epoll instance
// that waits for either.
func (e *Engine) openReaders() error {
	rings := [2]*ebpf.Map{e.net.Events, e.net.NetEvents}
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open event poller: %w", err)
	}
	e.poll = fd
	for i, m := range rings {
		if e.readers[i], err = ringbuf.NewReader(m); err != nil {
			return fmt.Errorf("open ring buffer %s: %w", m, err)
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(m.FD())}
		if err := unix.EpollCtl(e.poll, unix.EPOLL_CTL_ADD, m.FD(), &ev); err != nil {
			return fmt.Errorf("poll ring buffer %s: %w", m, err)
		}
	}
	return nil
}

// ReadEvent blocks until the kernel reports an event or ctx ends. Process
// events (execs) come before network events waiting at the same time, so
// a flood of one cannot delay the other.
func (e *Engine) ReadEvent(ctx context.Context) (Event, error) {
	var rec ringbuf.Record
	past := time.Unix(0, 1)
	for {
		if err := ctx.Err(); err != nil {
			return Event{}, err
		}
		read := false
		for _, r := range e.readers {
			r.SetDeadline(past) // no waiting: what is there now
			err := r.ReadInto(&rec)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if err != nil {
				return Event{}, fmt.Errorf("read event: %w", err)
			}
			read = true
			break
		}
		if !read {
			// Wait in short slices to notice ctx ending.
			var evs [2]unix.EpollEvent
			if _, err := unix.EpollWait(e.poll, evs[:], 100); err != nil && !errors.Is(err, unix.EINTR) {
				return Event{}, fmt.Errorf("wait for events: %w", err)
			}
			continue
		}
		ev, err := decodeEvent(rec.RawSample)
		if err != nil {
			e.log.Warn("undecodable event", "err", err)
			continue
		}
		e.mu.Lock()
		c := e.compiled[ev.CgroupID]
		e.mu.Unlock()
		ev.Node, ev.ParentNode = c.NodeID(ev.NodeKey), c.NodeID(ev.ParentKey)
		return ev, nil
	}
}

// Lost returns how many events the kernel could not queue (ring buffer
// full), summed over CPUs since the maps were created.
func (e *Engine) Lost() (uint64, error) {
	return e.lostCount(lossEvents)
}

// lostCount sums the global loss counter which over CPUs.
func (e *Engine) lostCount(which uint32) (uint64, error) {
	return sumPerCPU(e.net.Lost, which, "lost-event")
}

// TaskStateFailures returns how many times a task inside a workload had no
// state where it should have (its creation failed, or it was found
// missing), summed over CPUs since the maps were created. Each such task's
// exec was failed closed.
func (e *Engine) TaskStateFailures() (uint64, error) {
	return sumPerCPU(e.net.StateFailures, 0, "task state failure")
}

// sumPerCPU sums the per-CPU counter at index of m, counting what.
func sumPerCPU(m *ebpf.Map, index uint32, what string) (uint64, error) {
	var perCPU []uint64
	if err := m.Lookup(index, &perCPU); err != nil {
		return 0, fmt.Errorf("read %s counters: %w", what, err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n, nil
}

// Losses counts what the kernel could not report in full.
type Losses struct {
	// Events is how many events found their ring buffer full: a deviation
	// whose event is lost is still counted (see Repeat.Unreported), an
	// observation is gone.
	Events uint64
	// Unaggregated is how many deviations found the aggregation table full
	// (too many distinct deviations between two drains): each of them was
	// emitted on its own.
	Unaggregated uint64
	// DNS is how many DNS answers (from port 53, to a socket that asked)
	// could not be parsed within the kernel's bounds (include/dns.h):
	// malformed, longer than 2047 bytes, a TCP message not in one
	// segment, more than 32 records or 3 CNAMEs. They granted nothing
	// from the point the parse stopped.
	DNS uint64
}

// Losses returns the losses of every workload since it was armed, and of
// all workloads together since the maps were created.
func (e *Engine) Losses() (total Losses, byCgroup map[uint64]Losses, err error) {
	if total.Events, err = e.lostCount(lossEvents); err != nil {
		return
	}
	if total.Unaggregated, err = e.lostCount(lossUnaggregated); err != nil {
		return
	}
	if total.DNS, err = e.lostCount(lossDNS); err != nil {
		return
	}
	byCgroup = map[uint64]Losses{}
	var id uint64
	var l networkLosses
	it := e.net.WorkloadLosses.Iterate()
	for it.Next(&id, &l) {
		byCgroup[id] = Losses{Events: l.Events, Unaggregated: l.Unaggregated, DNS: l.Dns}
	}
	if err = it.Err(); err != nil {
		err = fmt.Errorf("read workload losses: %w", err)
	}
	return
}

// Indexes of the kernel's global loss counters (enum loss).
const (
	lossEvents       uint32 = 0
	lossUnaggregated uint32 = 1
	lossDNS          uint32 = 2
)

// setDNSTTL writes the bounds of DNS grants to the pinned config (zero:
// the kernel's defaults, 60 s and 1 h).
func (e *Engine) setDNSTTL(floor, cap time.Duration) error {
	if floor < 0 || cap < 0 || (cap > 0 && floor > cap) {
		return fmt.Errorf("DNS TTL floor %s and cap %s: want 0 <= floor <= cap", floor, cap)
	}
	var cfg networkEngineConfig
	if err := e.net.Config.Lookup(uint32(0), &cfg); err != nil {
		return fmt.Errorf("read engine config: %w", err)
	}
	cfg.DnsFloorS, cfg.DnsCapS = uint32(floor/time.Second), uint32(cap/time.Second)
	if err := e.net.Config.Put(uint32(0), &cfg); err != nil {
		return fmt.Errorf("write engine config: %w", err)
	}
	return nil
}

// cgroupPinDir is where the links of workload cgroup id are pinned.
func (e *Engine) cgroupPinDir(id uint64) string {
	return filepath.Join(e.pinDir, pinCgroupDir+strconv.FormatUint(id, 10))
}
