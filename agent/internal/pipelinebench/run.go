package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/collector"
)

// Polling of the agent and the collector.
const (
	pollInterval = 100 * time.Millisecond
	setupTimeout = 60 * time.Second
	stopTimeout  = 15 * time.Second
	agentName    = "bench-node"
)

// result is what one run measured.
type result struct {
	// produced is how long the load processes took (until the last one
	// exited: every observation made in the kernel), stored how long until
	// the collector held every observation; both from the start signal.
	produced, stored time.Duration
	// complete: the collector held every observation of every service.
	complete bool
	// storedPeers and storedProcs are what the collector held at the end
	// (egress peers and process nodes over all fingerprints).
	storedPeers, storedProcs int
	// lost is the kernel's count of events the ring buffer could not take,
	// spoolDropped the records the agent's full spool dropped, skipped and
	// rejected what the collector skipped (dropped by the spool) or could
	// not decode; agentEvents the kernel events the agent read, setup
	// included (from the agent's last stats).
	lost, spoolDropped, skipped, rejected, agentEvents uint64
	// Memory of each process once every service was armed and observed
	// idle, and after the load was stored.
	agentIdle, agentLoaded, collectorIdle, collectorLoaded memory
	// CPU time (user + system) each process used from the start of the
	// load until it was stored (or, when it was not, the load ended).
	agentCPU, collectorCPU time.Duration
}

// lossy reports whether the run lost or failed to store any observation.
func (r *result) lossy() bool {
	return !r.complete || r.lost > 0 || r.spoolDropped > 0 || r.skipped > 0 || r.rejected > 0
}

// runOnce sets up a collector, an agent and the service cgroups, runs the
// load once and tears everything down again, failure or not. A result is
// returned as soon as the load started, with an error when it went wrong.
func runOnce(ctx context.Context, cfg config) (res *result, err error) {
	tmp, err := os.MkdirTemp("", "bulwark-pipelinebench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	pins := filepath.Join(tmp, "bpf")
	if err := os.Mkdir(pins, 0o700); err != nil {
		return nil, err
	}
	if err := unix.Mount("bpffs", pins, "bpf", 0, "mode=0700"); err != nil {
		return nil, fmt.Errorf("mount bpffs on %s: %w", pins, err)
	}
	defer func() {
		if uerr := unix.Unmount(pins, unix.MNT_DETACH); uerr != nil {
			err = errors.Join(err, fmt.Errorf("unmount %s: %w", pins, uerr))
		}
	}()

	slice, err := makeSlice(cfg.services)
	// Removing the slice kills whatever still runs in its services.
	defer func() {
		if rerr := cgroup.Remove(slice); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	if err != nil {
		return nil, err
	}
	links, err := makeExecLinks(tmp, cfg.execs)
	if err != nil {
		return nil, err
	}

	csock := filepath.Join(tmp, "collector.sock")
	coll, err := startDaemon("collector", filepath.Join(tmp, "collector.log"), cfg.bulwark,
		"collector", "--socket", csock, "--db", filepath.Join(tmp, "collector.db"))
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, coll.stop()) }()
	query := collector.NewQueryClient(csock)
	if err := waitUntil(ctx, setupTimeout, "the collector answering", []*daemon{coll}, func() (bool, error) {
		_, qerr := query.Agents()
		return qerr == nil, nil
	}); err != nil {
		return nil, err
	}

	asock := filepath.Join(tmp, "agent.sock")
	ag, err := startDaemon("agent", filepath.Join(tmp, "agent.log"), cfg.bulwark,
		"agent", "--no-nri", "--docker=false", "--hostname", agentName, "--services-root", slice,
		"--collector-socket", csock, "--spool-dir", filepath.Join(tmp, "spool"),
		"--policy-dir", filepath.Join(tmp, "policies"), "--socket", asock,
		"--pin-dir", filepath.Join(pins, "bulwark"))
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, ag.stop()) }()
	api := agent.NewClient(asock)
	daemons := []*daemon{coll, ag}
	if err := waitUntil(ctx, setupTimeout, fmt.Sprintf("the agent guarding %d services", cfg.services), daemons, func() (bool, error) {
		st, serr := api.Status()
		if serr != nil {
			return false, nil
		}
		armed := 0
		for _, w := range st.Workloads {
			if w.CgroupID != 0 && strings.HasSuffix(w.Name, ".service") {
				armed++
			}
		}
		return armed == cfg.services, nil
	}); err != nil {
		return nil, err
	}

	load, err := startWorkers(slice, cfg, links)
	if err != nil {
		return nil, err
	}
	// The workers' own execs are observed before the load: wait until
	// the collector holds them, so idle means everything delivered.
	baseline := config{services: cfg.services}
	if err := waitUntil(ctx, setupTimeout, "the fingerprints of the idle workloads", daemons, func() (bool, error) {
		groups, qerr := query.Fingerprints(collector.Filter{})
		if qerr != nil {
			return false, nil // not yet: the collector may be busy storing
		}
		t, terr := countFingerprints(groups, baseline)
		return t.complete, terr
	}); err != nil {
		return nil, err
	}
	res = &result{}
	if res.agentIdle, err = readMemory(ag.pid()); err != nil {
		return nil, err
	}
	if res.collectorIdle, err = readMemory(coll.pid()); err != nil {
		return nil, err
	}
	agentCPU, err := readCPU(ag.pid())
	if err != nil {
		return nil, err
	}
	collectorCPU, err := readCPU(coll.pid())
	if err != nil {
		return nil, err
	}

	start := time.Now()
	load.start()
	last := uint64(0)
	err = waitUntil(ctx, cfg.timeout, "every observation stored", daemons, func() (bool, error) {
		st, serr := api.Status()
		if serr == nil && st.Lost > 0 {
			return false, fmt.Errorf("the kernel lost %d events (ring buffer full)", st.Lost)
		}
		// The fingerprints are large: read them only once every
		// observation was made (the last worker exited) and then each
		// time the collector stored something new, so that reading
		// them does not compete with the load.
		if !load.done() {
			return false, nil
		}
		agents, qerr := query.Agents()
		if qerr != nil || len(agents) != 1 || agents[0].Last == last {
			return false, nil
		}
		groups, qerr := query.Fingerprints(collector.Filter{})
		if qerr != nil {
			return false, nil // read them again next poll
		}
		last = agents[0].Last
		t, terr := countFingerprints(groups, cfg)
		if terr != nil {
			return false, terr
		}
		res.complete, res.storedPeers, res.storedProcs = t.complete, t.peers, t.procs
		return t.complete, nil
	})
	if res.complete {
		res.stored = time.Since(start)
	}
	if cerr := ctx.Err(); cerr != nil {
		return nil, errors.Join(err, cerr) // interrupted: only clean up
	}
	err = errors.Join(err, load.wait(ctx))
	if finished := load.finished(); !finished.IsZero() {
		res.produced = finished.Sub(start)
	}
	for _, c := range []struct {
		pid   int
		since time.Duration
		out   *time.Duration
	}{{ag.pid(), agentCPU, &res.agentCPU}, {coll.pid(), collectorCPU, &res.collectorCPU}} {
		now, cerr := readCPU(c.pid)
		err = errors.Join(err, cerr)
		*c.out = now - c.since
	}
	var merr error
	res.agentLoaded, merr = readMemory(ag.pid())
	err = errors.Join(err, merr)
	res.collectorLoaded, merr = readMemory(coll.pid())
	err = errors.Join(err, merr)

	// A stopping agent sends its counters and flushes its spool (stopping
	// it again when returning does nothing).
	err = errors.Join(err, ag.stop())
	agents, qerr := query.Agents()
	if qerr != nil || len(agents) != 1 {
		return res, errors.Join(err, fmt.Errorf("read the agent's counters from the collector (%d agents): %v", len(agents), qerr))
	}
	a := agents[0]
	res.lost, res.spoolDropped, res.agentEvents = a.Stats.LostEvents, a.Stats.SpoolDropped, a.Stats.Events
	res.skipped, res.rejected = a.Skipped, a.Rejected
	if !res.complete {
		// What reached the collector in the end (the stopped agent sent
		// its last fingerprints).
		groups, qerr := query.Fingerprints(collector.Filter{})
		if qerr != nil {
			return res, errors.Join(err, fmt.Errorf("read the stored fingerprints: %w", qerr))
		}
		t, _ := countFingerprints(groups, cfg)
		res.storedPeers, res.storedProcs = t.peers, t.procs
	}
	return res, err
}

// makeSlice creates the test slice <cgroup v2 root>/bulwark-bench-PID.slice
// with services service cgroups svc-N.service and returns its path (set
// even when creating a service failed, for cleanup).
func makeSlice(services int) (string, error) {
	root, err := cgroup.Mountpoint()
	if err != nil {
		return "", err
	}
	slice := filepath.Join(root, fmt.Sprintf("bulwark-bench-%d.slice", os.Getpid()))
	if _, err := cgroup.Create(slice); err != nil {
		return "", err
	}
	for i := range services {
		if _, err := cgroup.Create(filepath.Join(slice, fmt.Sprintf("svc-%d.service", i))); err != nil {
			return slice, err
		}
	}
	return slice, nil
}

// makeExecLinks makes links named execName(1..n) to true(1) (to this
// binary when there is none: slower to start) in a new directory under tmp
// and returns it.
func makeExecLinks(tmp string, n int) (string, error) {
	self, err := exec.LookPath("true")
	if err != nil {
		if self, err = os.Executable(); err != nil {
			return "", fmt.Errorf("find this binary: %w", err)
		}
	}
	dir := filepath.Join(tmp, "links")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	for i := 1; i <= n; i++ {
		if err := os.Symlink(self, filepath.Join(dir, execName(i))); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// daemon is a bulwark process the benchmark started.
type daemon struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process exited
	err     error         // its Wait error, once done
}

// startDaemon starts bin with args, its output in logPath. It is killed
// when the benchmark dies.
func startDaemon(name, logPath, bin string, args ...string) (*daemon, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		log.Close()
		close(d.done)
	}()
	return d, nil
}

// pid is the daemon's process id.
func (d *daemon) pid() int { return d.cmd.Process.Pid }

// exited returns an error with the end of the daemon's log when it is no
// longer running, else nil.
func (d *daemon) exited() error {
	select {
	case <-d.done:
		return fmt.Errorf("%s exited (%v):\n%s", d.name, d.err, d.logTail(20))
	default:
		return nil
	}
}

// stop asks the daemon to stop (SIGTERM) and kills it when it does not
// within stopTimeout. Stopping it again (or once it exited) does nothing.
func (d *daemon) stop() error {
	select {
	case <-d.done:
		return nil
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		var ee *exec.ExitError
		if d.err != nil && !errors.As(d.err, &ee) {
			return fmt.Errorf("stop %s: %w", d.name, d.err)
		}
		if d.err != nil {
			return fmt.Errorf("%s stopped with %v:\n%s", d.name, d.err, d.logTail(20))
		}
		return nil
	case <-time.After(stopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("%s did not stop within %v: killed", d.name, stopTimeout)
	}
}

// logTail returns the last n lines of the daemon's log.
func (d *daemon) logTail(n int) string {
	data, err := os.ReadFile(d.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitUntil polls cond every pollInterval until it reports true, returns an
// error, a daemon exits, ctx ends or timeout passes.
func waitUntil(ctx context.Context, timeout time.Duration, what string, daemons []*daemon, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		for _, d := range daemons {
			if err := d.exited(); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// workers are the load processes, one per service, waiting for start.
type workers struct {
	gates   []io.Closer
	exits   chan workerExit
	running int       // started and not seen exiting
	last    time.Time // latest exit seen
	errs    []error   // of the exits seen
}

// workerExit is how and when one worker ended.
type workerExit struct {
	at  time.Time
	err error
}

// startWorkers starts one worker in each service cgroup of slice; each
// waits for its stdin to close.
func startWorkers(slice string, cfg config, links string) (*workers, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this binary: %w", err)
	}
	w := &workers{exits: make(chan workerExit, cfg.services)}
	for i := range cfg.services {
		cmd := exec.Command(self)
		perWorker := cfg.rate / float64(cfg.services)
		cmd.Env = []string{fmt.Sprintf("%s=%d %g %d %s", workerEnv, cfg.peers, perWorker, cfg.execs, links)}
		cmd.Stderr = os.Stderr
		gate, err := cmd.StdinPipe()
		if err != nil {
			return nil, errors.Join(err, w.abort())
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cgroup.StartIn(cmd, filepath.Join(slice, fmt.Sprintf("svc-%d.service", i))); err != nil {
			gate.Close()
			return nil, errors.Join(err, w.abort())
		}
		w.gates = append(w.gates, gate)
		w.running++
		go func() {
			err := cmd.Wait()
			if err != nil {
				err = fmt.Errorf("worker in svc-%d.service: %w", i, err)
			}
			w.exits <- workerExit{at: time.Now(), err: err}
		}()
	}
	return w, nil
}

// start lets every worker go.
func (w *workers) start() {
	for _, g := range w.gates {
		g.Close()
	}
}

// abort lets the workers started so far go and waits for them (used when
// not all could start; they are killed with their cgroups anyway).
func (w *workers) abort() error {
	w.start()
	return w.wait(context.Background())
}

// note takes in one worker's exit.
func (w *workers) note(e workerExit) {
	w.running--
	w.errs = append(w.errs, e.err)
	if e.at.After(w.last) {
		w.last = e.at
	}
}

// done takes in the exits so far without waiting and reports whether
// every worker exited.
func (w *workers) done() bool {
	for w.running > 0 {
		select {
		case e := <-w.exits:
			w.note(e)
		default:
			return false
		}
	}
	return true
}

// wait waits until every worker exited (or ctx ended) and returns their
// errors.
func (w *workers) wait(ctx context.Context) error {
	for w.running > 0 {
		select {
		case e := <-w.exits:
			w.note(e)
		case <-ctx.Done():
			return errors.Join(append(w.errs, ctx.Err())...)
		}
	}
	return errors.Join(w.errs...)
}

// finished is when the last worker exited (zero while any runs).
func (w *workers) finished() time.Time {
	if w.running > 0 {
		return time.Time{}
	}
	return w.last
}

// memory is a process's resident memory in KiB: now (VmRSS) and its peak
// (VmHWM).
type memory struct {
	rss, hwm uint64
}

// readMemory reads VmRSS and VmHWM of process pid.
func readMemory(pid int) (memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	m, err := parseMemory(string(data))
	if err != nil {
		return memory{}, fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	return m, nil
}

// parseMemory reads VmRSS and VmHWM from the text of /proc/PID/status.
func parseMemory(status string) (memory, error) {
	var m memory
	var seen int
	for _, line := range strings.Split(status, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return memory{}, fmt.Errorf("unexpected %s line %q", key, line)
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("%s: %w", key, err)
		}
		if key == "VmRSS" {
			m.rss = n
		} else {
			m.hwm = n
		}
		seen++
	}
	if seen != 2 {
		return memory{}, errors.New("no VmRSS and VmHWM lines")
	}
	return m, nil
}

// clockTicks is the unit of the CPU times in /proc/PID/stat (USER_HZ).
const clockTicks = 100

// readCPU returns the CPU time (user + system) process pid used so far.
func readCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	d, err := parseCPU(string(data))
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	return d, nil
}

// parseCPU reads utime + stime from the text of /proc/PID/stat. The
// command name (field 2) may hold spaces and parentheses: fields are
// counted from the last ')'.
func parseCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command name in stat")
	}
	// After ") ": state is field 3; utime and stime are fields 14 and 15.
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("stat has %d fields after the name", len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu ticks %q: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
