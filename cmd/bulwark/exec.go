package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/policy"
)

func newExecCmd() *cobra.Command {
	var file, mode string
	cmd := &cobra.Command{
		Use:   "exec -f POLICY [--mode audit|enforce] -- CMD [ARGS...]",
		Short: "Run a command in a fresh cgroup under a policy, printing deviations",
		Long: "Runs CMD in a fresh cgroup armed with the first policy in POLICY, as the agent\n" +
			"arms a workload: CMD itself must match a root process node. Deviations are\n" +
			"printed to stderr as YAML Deviation documents, each the first time it occurs;\n" +
			"the kernel counts repeats, and at exit a summary in YAML comments lists every\n" +
			"deviation with its number of occurrences and the events the kernel lost (a\n" +
			"warning comment says so as soon as it loses any). The exit status is CMD's\n" +
			"(137 when the kernel killed it). Selectors are ignored.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pol, err := firstPolicy(file)
			if err != nil {
				return err
			}
			if mode == "" {
				mode = pol.Spec.Mode
			}
			var m bpf.Mode
			switch mode {
			case policy.ModeAudit, "":
				m, mode = bpf.ModeAudit, policy.ModeAudit
			case policy.ModeEnforce:
				m = bpf.ModeEnforce
			default:
				return fmt.Errorf("--mode %q: want audit or enforce", mode)
			}
			pol.Spec.Mode = mode
			return runExec(cmd.Context(), pol, m, args, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "policy file (YAML or JSON); its first policy is used")
	cmd.Flags().StringVar(&mode, "mode", "", "audit or enforce (default: the policy's mode)")
	cmd.MarkFlagRequired("file")
	return cmd
}

// firstPolicy loads the first policy document of file.
func firstPolicy(file string) (*policy.WorkloadPolicy, error) {
	docs, err := policy.LoadFile(file)
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		if d.Policy != nil {
			return d.Policy, nil
		}
	}
	return nil, fmt.Errorf("%s: no policy document", file)
}

// execQuiet is how long exec keeps printing deviations after CMD exits,
// for the last events of the run to arrive.
const execQuiet = 100 * time.Millisecond

// runExec arms a fresh cgroup with pol, runs argv in it and streams its
// deviations to stderr. It uses its own pin directory and removes every pin,
// link and the cgroup when argv ends, leaving nothing behind.
func runExec(ctx context.Context, pol *policy.WorkloadPolicy, mode bpf.Mode, argv []string, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	users, err := agent.ReadUsers("/")
	if err != nil {
		return err
	}
	compiled, err := bpf.Compile(&pol.Spec, users)
	if err != nil {
		return fmt.Errorf("policy %s: %w", pol.Metadata.Name, err)
	}
	for _, w := range compiled.Warnings {
		log.Warn("not enforced", "policy", pol.Metadata.Name, "what", w)
	}
	for _, u := range compiled.Unreachable {
		log.Warn("failed closed", "policy", pol.Metadata.Name, "what", u)
	}
	box, err := openSandbox("exec", compiled, mode, log)
	if err != nil {
		return err
	}
	defer box.close()
	child := exec.Command(argv[0], argv[1:]...)
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
	rep := newExecReport(pol, users, stderr)
	if err := box.start(ctx, child, rep.observe); err != nil {
		return err
	}
	stopPolling := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		tick := time.NewTicker(execPoll)
		defer tick.Stop()
		for {
			select {
			case <-stopPolling:
				return
			case <-tick.C:
				rep.poll(box.engine, box.id)
			}
		}
	}()
	status, _ := box.wait(execQuiet)
	close(stopPolling)
	<-polled
	rep.poll(box.engine, box.id)
	rep.summary()
	return status
}

// execPoll is how often exec takes the kernel's counts of repeated
// deviations, checks for lost events and checks its links.
const execPoll = time.Second

// execReport prints what the kernel reports about one exec run: each
// deviation the first time it occurs, a warning when events are lost, and
// at the end a summary with the occurrences of each deviation.
type execReport struct {
	pol     *policy.WorkloadPolicy
	uidName func(uint32) string

	mu       sync.Mutex
	w        io.Writer
	byKey    map[bpf.DeviationKey]*runDeviation
	order    []*runDeviation
	unknown  uint64     // occurrences of deviations whose event never came
	lost     bpf.Losses // the sandbox workload's losses as last seen
	pollErrs int
}

// runDeviation is one distinct deviation of the run.
type runDeviation struct {
	what  string
	count uint64
}

func newExecReport(pol *policy.WorkloadPolicy, users map[string]uint32, w io.Writer) *execReport {
	return &execReport{pol: pol, uidName: agent.UserNames(users), w: w, byKey: map[bpf.DeviationKey]*runDeviation{}}
}

// observe is the sandbox observer: it prints a deviation the first time
// its event comes (later events of it, after a drain, only count).
func (r *execReport) observe(ev bpf.Event) {
	if !ev.Deviation {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if d := r.byKey[ev.Key]; d != nil {
		d.count += max(ev.Count, 1)
		return
	}
	dev := agent.BuildDeviation(ev, r.pol, r.uidName)
	d := &runDeviation{what: describeEvent(ev), count: max(ev.Count, 1)}
	r.byKey[ev.Key] = d
	r.order = append(r.order, d)
	fmt.Fprintln(r.w, "---")
	policy.Encode(r.w, policy.FormatYAML, &dev)
}

// poll takes the kernel's counts of repeats, warns about new losses of the
// sandbox's workload id, and restores the sandbox's links if someone
// removed their pins or detached them.
func (r *execReport) poll(e *bpf.Engine, id uint64) {
	repairs, cerr := e.CheckLinks()
	repeats, err := e.DrainRepeats()
	_, byCgroup, lerr := e.Losses()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err = errors.Join(cerr, err, lerr); err != nil {
		if r.pollErrs++; r.pollErrs == 1 {
			fmt.Fprintf(r.w, "# warning: checking the kernel's links and counts: %v\n", err)
		}
	}
	for _, rp := range repairs {
		if rp.Reattached {
			fmt.Fprintf(r.w, "# warning: %s was detached out of band and is attached again (unguarded meanwhile)\n", rp.Pin)
		}
	}
	for _, rp := range repeats {
		if rp.CgroupID != id {
			continue
		}
		if d := r.byKey[rp.Key]; d != nil {
			d.count += rp.Count
		} else {
			r.unknown += rp.Count
		}
	}
	r.noteLosses(byCgroup[id])
}

// noteLosses prints a warning when the workload lost more than when last
// noted.
func (r *execReport) noteLosses(l bpf.Losses) {
	if l.Events > r.lost.Events {
		fmt.Fprintf(r.w, "# warning: the kernel lost %d events (ring buffer full); deviations may be missing details\n", l.Events-r.lost.Events)
	}
	if l.Unaggregated > r.lost.Unaggregated {
		fmt.Fprintf(r.w, "# warning: %d deviations reported one by one (aggregation table full)\n", l.Unaggregated-r.lost.Unaggregated)
	}
	if l.DNS > r.lost.DNS {
		fmt.Fprintf(r.w, "# warning: %d DNS answers not parsed in the kernel; they allowed no dnsSelector peer\n", l.DNS-r.lost.DNS)
	}
	r.lost = l
}

// summary prints every deviation of the run with its occurrences, and the
// losses.
func (r *execReport) summary() {
	r.mu.Lock()
	defer r.mu.Unlock()
	var total uint64
	for _, d := range r.order {
		total += d.count
	}
	fmt.Fprintf(r.w, "# bulwark exec: %d deviations, %d occurrences\n", len(r.order), total)
	for _, d := range r.order {
		fmt.Fprintf(r.w, "#   %d × %s\n", d.count, d.what)
	}
	if r.unknown > 0 {
		fmt.Fprintf(r.w, "#   %d occurrences of deviations whose events were lost\n", r.unknown)
	}
	if r.lost != (bpf.Losses{}) {
		fmt.Fprintf(r.w, "# bulwark exec: lost %d events, %d deviations not aggregated, %d DNS answers not parsed\n", r.lost.Events, r.lost.Unaggregated, r.lost.DNS)
	}
}

// describeEvent names a deviation's activity in a line: exec exe (comm),
// connect dst/protocol (and the name resolved to dst), accept src → local
// port/protocol.
func describeEvent(ev bpf.Event) string {
	switch ev.Kind {
	case bpf.KindExec:
		return fmt.Sprintf("exec %s (%s)", ev.Exe, ev.Comm)
	case bpf.KindCred:
		return fmt.Sprintf("cred euid %d→%d %s (%s)", ev.OldEUID, ev.EUID, ev.Exe, ev.Comm)
	case bpf.KindAccept:
		return fmt.Sprintf("accept %s from %s %s", ev.Dst, ev.Src.Addr(), ev.Protocol)
	case bpf.KindConnect:
		if ev.DNSName != "" {
			return fmt.Sprintf("connect %s (%s) %s", ev.Dst, printableName(ev.DNSName), ev.Protocol)
		}
	}
	return fmt.Sprintf("%s %s %s", ev.Kind, ev.Dst, ev.Protocol)
}
