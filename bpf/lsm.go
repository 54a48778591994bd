package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// lsmListPath lists the active Linux security modules.
const lsmListPath = "/sys/kernel/security/lsm"

// probeLSM reports why the lsm backend cannot run here, or nil when it can:
// BPF LSM must be active (lsm=...,bpf) and the kernel must accept the
// program (some hosts refuse the trampolines it needs, failing the load
// with EPERM).
func probeLSM() error {
	list, err := os.ReadFile(lsmListPath)
	if err != nil {
		return fmt.Errorf("read %s: %w", lsmListPath, err)
	}
	if !bytes.Contains(append([]byte(","), append(bytes.TrimSpace(list), ',')...), []byte(",bpf,")) {
		return fmt.Errorf("bpf is not an active LSM (%s: %s)", lsmListPath, bytes.TrimSpace(list))
	}
	spec, err := loadExecLSM()
	if err != nil {
		return fmt.Errorf("load lsm exec object: %w", err)
	}
	// Probe without touching the pins: private, unpinned maps.
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinNone
	}
	var objs execLSMObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return fmt.Errorf("kernel refused the lsm program: %w", err)
	}
	return objs.Close()
}

// loadLSMObjects loads the lsm backend's exec programs with the shared maps.
func loadLSMObjects(opts *ebpf.CollectionOptions) (*execLSMObjects, error) {
	spec, err := loadExecLSM()
	if err != nil {
		return nil, fmt.Errorf("load lsm exec object: %w", err)
	}
	var objs execLSMObjects
	if err := spec.LoadAndAssign(&objs, opts); err != nil {
		// Only EPERM means that: a verifier rejection is EACCES, which
		// os.ErrPermission would match too.
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("load lsm exec programs (EPERM: BPF LSM inactive or trampolines refused): %w", err)
		}
		return nil, fmt.Errorf("load lsm exec programs: %w", err)
	}
	return &objs, nil
}
