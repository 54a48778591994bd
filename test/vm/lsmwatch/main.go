// Command lsmwatch runs inside the test VM next to the binary under test and
// reports, once, that a BPF LSM program actually ran: with the kernel's BPF
// run statistics switched on, it polls the loaded programs until one of type
// LSM has a run count above zero, prints a marker line carrying the nonce it
// was given (run.sh --require-lsm looks for it) and exits.
//
// It only opens programs, never links, so it cannot delay a detach that a
// test under observation performs.
package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// pollInterval is how often the program list is scanned.
const pollInterval = 100 * time.Millisecond

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: lsmwatch NONCE")
		os.Exit(2)
	}
	if err := watch(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "lsmwatch:", err)
		os.Exit(1)
	}
}

// watch waits until an LSM program has run, then prints the marker.
func watch(nonce string) error {
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return fmt.Errorf("enable BPF run statistics: %w", err)
	}
	defer stats.Close()
	for {
		name, runs, err := lsmRuns()
		if err != nil {
			return err
		}
		if runs > 0 {
			fmt.Printf("@@bulwark-vm-lsm %s program %q ran %d times@@\n", nonce, name, runs)
			return nil
		}
		time.Sleep(pollInterval)
	}
}

// lsmRuns returns the name and run count of the first loaded LSM program
// that has run, or a zero count when none has.
func lsmRuns() (string, uint64, error) {
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return "", 0, nil
		}
		if err != nil {
			return "", 0, fmt.Errorf("next program id after %d: %w", id, err)
		}
		id = next
		name, runs, err := lsmProgramRuns(id)
		if err != nil {
			return "", 0, err
		}
		if runs > 0 {
			return name, runs, nil
		}
	}
}

// lsmProgramRuns returns program id's name and run count if it is an LSM
// program, else a zero count (also when it was unloaded meanwhile).
func lsmProgramRuns(id ebpf.ProgramID) (string, uint64, error) {
	prog, err := ebpf.NewProgramFromID(id)
	if errors.Is(err, os.ErrNotExist) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("open program %d: %w", id, err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return "", 0, fmt.Errorf("program %d info: %w", id, err)
	}
	if info.Type != ebpf.LSM {
		return "", 0, nil
	}
	st, err := prog.Stats()
	if err != nil {
		return "", 0, fmt.Errorf("program %d stats: %w", id, err)
	}
	return info.Name, st.RunCount, nil
}
