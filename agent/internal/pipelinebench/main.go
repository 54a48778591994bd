// Command pipelinebench measures Bulwark's observation pipeline end to
// end: a real `bulwark collector` and a real `bulwark agent`, each its own
// process, guard 100 service cgroups of a test-owned slice in observe mode;
// every service then produces N distinct observations (UDP datagrams to N
// distinct loopback peers, plus a few distinct execs), all services at once
// and as fast as they can unless -rate paces them, and the benchmark times
// how long it takes until the collector holds all of them, checking that
// nothing was lost on the way (kernel ring buffer, agent spool, collector).
// It prints observations/s from kernel to stored, the agent's and the
// collector's CPU time, and their memory (VmRSS, VmHWM) idle with 100
// workloads and after the load. It exits non-zero when any observation was
// lost.
//
// Run as root from the repository: `go run ./agent/internal/pipelinebench`
// (it builds bulwark itself unless -bulwark names a binary; -h lists the
// knobs).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// Environment variables that make this binary a load process instead of
// the benchmark (see worker.go).
const (
	// workerEnv makes it a service's workload: "PEERS RATE EXECS LINKDIR".
	workerEnv = "BULWARK_PIPELINEBENCH_WORKER"
	// execEnv makes it one of a workload's short-lived execs: it exits.
	execEnv = "BULWARK_PIPELINEBENCH_EXEC"
)

// config is what one benchmark run does.
type config struct {
	bulwark  string        // bulwark binary
	services int           // service cgroups
	peers    int           // distinct UDP peers per service
	execs    int           // distinct execs per service
	rate     float64       // datagrams a second over all services; 0: unpaced
	timeout  time.Duration // bound on the wait for everything stored
	verbose  bool          // print progress
}

// events is the number of distinct observations one run's load produces.
func (c config) events() int { return c.services * (c.peers + c.execs) }

func main() {
	if status, ok := loadProcess(); ok {
		os.Exit(status)
	}
	var cfg config
	runs := flag.Int("runs", 3, "benchmark runs (each with fresh processes, cgroups and kernel state)")
	flag.StringVar(&cfg.bulwark, "bulwark", "", "bulwark binary (default: build ./cmd/bulwark into a temporary directory)")
	flag.IntVar(&cfg.services, "services", 100, "service cgroups (workloads)")
	flag.IntVar(&cfg.peers, "peers", 1000, "distinct UDP peers each service sends to")
	flag.IntVar(&cfg.execs, "execs", 3, "distinct execs each service makes")
	flag.Float64Var(&cfg.rate, "rate", 0, "datagrams a second over all services (0: every service sends as fast as it can)")
	flag.DurationVar(&cfg.timeout, "timeout", 60*time.Second, "give up when the collector does not hold everything after this long")
	flag.BoolVar(&cfg.verbose, "v", false, "print progress")
	flag.Parse()
	if err := cfg.check(); err != nil || *runs < 1 {
		fmt.Fprintln(os.Stderr, "pipelinebench: bad flags:", errors.Join(err, errIf(*runs < 1, "-runs must be at least 1")))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(benchmark(ctx, cfg, *runs))
}

// loadProcess runs this binary as a load process when the environment says
// it is one, and returns its exit status and true; else false.
func loadProcess() (int, bool) {
	if os.Getenv(execEnv) != "" {
		return 0, true
	}
	if args := os.Getenv(workerEnv); args != "" {
		return worker(args), true
	}
	return 0, false
}

// errIf returns an error with text msg when cond holds.
func errIf(cond bool, msg string) error {
	if cond {
		return errors.New(msg)
	}
	return nil
}

// check validates the sizes of a run.
func (c config) check() error {
	return errors.Join(
		errIf(c.services < 1 || c.services > 1000, "-services must be between 1 and 1000"),
		errIf(c.peers < 0 || c.peers > maxPeers, fmt.Sprintf("-peers must be between 0 and %d", maxPeers)),
		errIf(c.execs < 0 || c.execs > 50, "-execs must be between 0 and 50"),
		errIf(c.peers+c.execs == 0, "no load: -peers and -execs are both 0"),
		errIf(c.rate < 0, "-rate must not be negative"),
	)
}

// benchmark runs the benchmark runs times, prints the table and returns the
// exit status: 1 when a run failed or lost observations.
func benchmark(ctx context.Context, cfg config, runs int) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "pipelinebench: needs root (BPF, cgroups, bpffs)")
		return 1
	}
	if cfg.bulwark == "" {
		dir, err := os.MkdirTemp("", "bulwark-pipelinebench-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "pipelinebench:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		cfg.bulwark = filepath.Join(dir, "bulwark")
		if err := buildBulwark(ctx, cfg.bulwark); err != nil {
			fmt.Fprintln(os.Stderr, "pipelinebench:", err)
			return 1
		}
	}
	fmt.Printf("pipelinebench: %d services × (%d UDP peers + %d execs) = %d distinct observations per run, %d run(s)\n",
		cfg.services, cfg.peers, cfg.execs, cfg.events(), runs)
	var results []result
	status := 0
	for i := 1; i <= runs; i++ {
		res, err := runOnce(ctx, cfg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pipelinebench: run %d: %v\n", i, err)
			status = 1
			if res == nil || ctx.Err() != nil {
				break
			}
		}
		if res != nil {
			results = append(results, *res)
			if res.lossy() {
				status = 1
			}
		}
	}
	printTable(os.Stdout, cfg, results)
	for i, r := range results {
		if r.lossy() {
			fmt.Fprintf(os.Stderr, "\n!!! run %d LOST OBSERVATIONS: kernel ring buffer lost %d, agent spool dropped %d, collector skipped %d, rejected %d, stored %d of %d peers and %d of %d processes\n",
				i+1, r.lost, r.spoolDropped, r.skipped, r.rejected, r.storedPeers, cfg.services*cfg.peers, r.storedProcs, cfg.services*(1+cfg.execs))
		}
	}
	return status
}

// buildBulwark builds ./cmd/bulwark of this module into out.
func buildBulwark(ctx context.Context, out string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build bulwark (or pass -bulwark): %w", err)
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "github.com/bulwarkhq/bulwark/cmd/bulwark")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build bulwark (or pass -bulwark): %w", err)
	}
	return nil
}
