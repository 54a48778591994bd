package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// Pins of the io_uring accept checks (uring.bpf.c), global like the exec
// links.
const (
	pinURingSubmit   = "link_uring_submit"
	pinURingComplete = "link_uring_complete"
	pinURingOverflow = "link_uring_overflow"
)

// uringHooks names the programs of uring.bpf.c that match the kernel's
// io_uring tracepoints.
type uringHooks struct {
	submit, complete string
}

// errNoURing: the kernel has no io_uring tracepoints (built without
// io_uring), so there are no io_uring accepts to check.
var errNoURing = errors.New("kernel has no io_uring tracepoints")

// pickURingHooks chooses, from the kernel's BTF, the submit program
// (io_uring_submit_req from Linux 6.5, io_uring_submit_sqe before) and the
// complete program (io_uring_complete with the CQE from 6.18, with its
// fields before).
func pickURingHooks(spec *btf.Spec) (uringHooks, error) {
	var h uringHooks
	switch {
	case hasType(spec, "btf_trace_io_uring_submit_req"):
		h.submit = "on_uring_submit"
	case hasType(spec, "btf_trace_io_uring_submit_sqe"):
		h.submit = "on_uring_submit_sqe"
	default:
		return h, errNoURing
	}
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_io_uring_complete", &td); err != nil {
		return h, fmt.Errorf("io_uring_complete tracepoint: %w", err)
	}
	ptr, _ := td.Type.(*btf.Pointer)
	var proto *btf.FuncProto
	if ptr != nil {
		proto, _ = ptr.Target.(*btf.FuncProto)
	}
	switch {
	case proto == nil:
		return h, fmt.Errorf("io_uring_complete tracepoint: unexpected type %v", td.Type)
	case len(proto.Params) == 4: // data, ctx, req, cqe
		h.complete = "on_uring_complete"
	case len(proto.Params) == 8: // data, ctx, req, user_data, res, cflags, extra1, extra2
		h.complete = "on_uring_complete_args"
	default:
		return h, fmt.Errorf("io_uring_complete tracepoint: %d arguments, want 3 or 7", len(proto.Params)-1)
	}
	if !hasType(spec, "btf_trace_io_uring_cqe_overflow") {
		return h, errors.New("kernel has io_uring tracepoints but no io_uring_cqe_overflow")
	}
	return h, nil
}

func hasType(spec *btf.Spec, name string) bool {
	_, err := spec.AnyTypeByName(name)
	return err == nil
}

// openURing loads and attaches the io_uring accept checks (both backends),
// adopting pinned links as openSocketGuards does. A kernel without
// io_uring tracepoints is logged and skipped; any other failure is an
// error, since io_uring accepts would then go unchecked for the acceptor.
func (e *Engine) openURing() error {
	kspec, err := btf.LoadKernelSpec()
	if err != nil {
		return fmt.Errorf("io_uring checks: kernel BTF: %w", err)
	}
	h, err := pickURingHooks(kspec)
	if errors.Is(err, errNoURing) {
		e.log.Warn("io_uring accepts not checked for the acceptor", "reason", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("io_uring checks: %w", err)
	}
	spec, err := loadUring()
	if err != nil {
		return fmt.Errorf("load io_uring object: %w", err)
	}
	for name := range spec.Programs {
		if name != h.submit && name != h.complete && name != "on_uring_overflow" {
			delete(spec.Programs, name)
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, *e.collectionOptions())
	if err != nil {
		return fmt.Errorf("load io_uring programs: %w", err)
	}
	e.exec = closers{e.exec, collection{coll}}
	tracing := func(p *ebpf.Program) func() (link.Link, error) {
		return func() (link.Link, error) { return link.AttachTracing(link.TracingOptions{Program: p}) }
	}
	for _, g := range []guard{
		// Completions first: an accept remembered at submit is never
		// missed at completion.
		{pinURingOverflow, tracing(coll.Programs["on_uring_overflow"])},
		{pinURingComplete, tracing(coll.Programs[h.complete])},
		{pinURingSubmit, tracing(coll.Programs[h.submit])},
	} {
		if err := e.attachGuard(g); err != nil {
			return err
		}
	}
	return nil
}

// collection closes a loaded collection as one of closers.
type collection struct{ c *ebpf.Collection }

// Close closes the collection's programs and maps.
func (c collection) Close() error {
	c.c.Close()
	return nil
}
