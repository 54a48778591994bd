package bpf

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/policy"
)

// io_uring ABI (linux/io_uring.h), used through raw syscalls.
const (
	ioringOffSQRing   = 0
	ioringOffCQRing   = 0x8000000
	ioringOffSQEs     = 0x10000000
	ioringEnterGetev  = 1
	ioringRegFiles    = 2
	ioringOpNop       = 0
	ioringOpAccept    = 13
	ioringOpSend      = 26
	iosqeFixedFile    = 1 << 0
	iosqeCQESkip      = 1 << 6
	ioringFeatSkipCQE = 1 << 11
	ioringAcceptMulti = 1 << 0 // sqe ioprio of IORING_OP_ACCEPT
	sqeSize           = 64
	cqeSize           = 16
	// helperNoURing is the status of a helper that could not set up a
	// ring (io_uring disabled or missing).
	helperNoURing = 6
)

type uringParams struct {
	SQEntries, CQEntries, Flags, SQThreadCPU, SQThreadIdle, Features, WQFd uint32
	Resv                                                                   [3]uint32
	SQOff                                                                  struct {
		Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
		UserAddr                                                        uint64
	}
	CQOff struct {
		Head, Tail, RingMask, RingEntries, Overflow, CQEs, Flags, Resv1 uint32
		UserAddr                                                        uint64
	}
}

// uring is a minimal io_uring: one submission at a time.
type uring struct {
	fd           int
	p            uringParams
	sq, cq, sqes []byte
}

func newURing(entries uint32) (*uring, error) {
	r := &uring{}
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&r.p)), 0)
	if e != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", e)
	}
	r.fd = int(fd)
	mm := func(off int64, size uint32) ([]byte, error) {
		return unix.Mmap(r.fd, off, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	}
	var err error
	if r.sq, err = mm(ioringOffSQRing, r.p.SQOff.Array+r.p.SQEntries*4); err != nil {
		return nil, err
	}
	if r.cq, err = mm(ioringOffCQRing, r.p.CQOff.CQEs+r.p.CQEntries*cqeSize); err != nil {
		return nil, err
	}
	if r.sqes, err = mm(ioringOffSQEs, r.p.SQEntries*sqeSize); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *uring) u32(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }

// sqe is the fields of a submission the tests use.
type sqe struct {
	op, flags uint8
	ioprio    uint16
	fd        int32
	addr      uint64
	len       uint32
	userData  uint64
	fileIndex uint32
}

// push queues s (the kernel reads it at the next enter).
func (r *uring) push(s sqe) {
	tail := atomic.LoadUint32(r.u32(r.sq, r.p.SQOff.Tail))
	idx := tail & *r.u32(r.sq, r.p.SQOff.RingMask)
	b := r.sqes[idx*sqeSize : (idx+1)*sqeSize]
	clear(b)
	le := binary.LittleEndian
	b[0], b[1] = s.op, s.flags
	le.PutUint16(b[2:], s.ioprio)
	le.PutUint32(b[4:], uint32(s.fd))
	le.PutUint64(b[16:], s.addr)
	le.PutUint32(b[24:], s.len)
	le.PutUint64(b[32:], s.userData)
	le.PutUint32(b[44:], s.fileIndex)
	*r.u32(r.sq, r.p.SQOff.Array+idx*4) = idx
	atomic.StoreUint32(r.u32(r.sq, r.p.SQOff.Tail), tail+1)
}

// nextRes points at the result of the next completion.
func (r *uring) nextRes() *int32 {
	head := atomic.LoadUint32(r.u32(r.cq, r.p.CQOff.Head))
	idx := head & *r.u32(r.cq, r.p.CQOff.RingMask)
	return (*int32)(unsafe.Pointer(&r.cq[r.p.CQOff.CQEs+idx*cqeSize+8]))
}

// enter submits n queued entries and, with wait, waits for a completion.
func (r *uring) enter(n uint, wait bool) error {
	var min, flags uintptr
	if wait {
		min, flags = 1, ioringEnterGetev
	}
	for {
		_, _, e := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), min, flags, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return fmt.Errorf("io_uring_enter: %w", e)
		}
		return nil
	}
}

// run submits what is queued and waits for one completion: its result.
func (r *uring) run() (int32, error) {
	res := r.nextRes()
	head := r.u32(r.cq, r.p.CQOff.Head)
	// A signal ends the wait of an enter that submitted something
	// without an error: wait again until a completion is there.
	for n := uint(1); atomic.LoadUint32(head) == atomic.LoadUint32(r.u32(r.cq, r.p.CQOff.Tail)); n = 0 {
		if err := r.enter(n, true); err != nil {
			return 0, err
		}
	}
	v := atomic.LoadInt32(res)
	atomic.StoreUint32(head, atomic.LoadUint32(head)+1)
	return v, nil
}

// uringHelper performs the io_uring actions of runHelper:
//
//	uring-accept MODE           accept one connection on the listener at fd
//	                            3 with IORING_OP_ACCEPT and send greeting on
//	                            it; MODE fd, fixed (into slot 0 of the
//	                            ring's fixed-file table), skip (with
//	                            IOSQE_CQE_SKIP_SUCCESS, then wait for the
//	                            send), multishot (two connections), or
//	                            overflow (its completion finds the CQ
//	                            ring full)
//	uring-serve-fork UID ADDR   listen on TCP ADDR, queue an accept on a
//	                            new ring, print "listening", fork; the child
//	                            sets its uids to UID, submits the accept,
//	                            greets the connection; prints how the child
//	                            ended ("child exit N" or "child signal N")
func uringHelper(args []string) int {
	runtime.LockOSThread()
	r, err := newURing(4)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return helperNoURing
	}
	if args[0] == "uring-serve-fork" {
		return uringServeFork(r, args[1:])
	}
	fail := func(what string, err error) int {
		fmt.Fprintln(os.Stderr, what+":", err)
		return helperFailed
	}
	mode := args[1]
	accept := sqe{op: ioringOpAccept, fd: 3, userData: 1}
	send := sqe{op: ioringOpSend, addr: uint64(uintptr(unsafe.Pointer(&greeting[0]))), len: 2, userData: 2}
	switch mode {
	case "fixed":
		slots := []int32{-1}
		if _, _, e := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), ioringRegFiles,
			uintptr(unsafe.Pointer(&slots[0])), 1, 0, 0); e != 0 {
			return fail("register files", e)
		}
		accept.fileIndex = 1 // slot 0
		send.fd, send.flags = 0, iosqeFixedFile
	case "skip":
		if r.p.Features&ioringFeatSkipCQE == 0 {
			return helperNoURing
		}
		accept.flags = iosqeCQESkip
		send.fd = 4 // the lowest free descriptor
	case "multishot":
		accept.ioprio = ioringAcceptMulti
	case "overflow":
		// Fill the CQ ring (twice the SQ's size) with completions
		// nobody reaps: the accept's completion overflows.
		for range 2 {
			for range r.p.SQEntries {
				r.push(sqe{op: ioringOpNop})
			}
			if err := r.enter(uint(r.p.SQEntries), false); err != nil {
				return fail("nop", err)
			}
		}
	}
	r.push(accept)
	switch mode {
	case "skip":
		// The accept completes silently: the send is what is waited for.
		r.push(send)
		if err := r.enter(2, false); err != nil {
			return fail("submit", err)
		}
		time.Sleep(time.Second)
		return helperOK
	case "multishot":
		for range 2 {
			res, err := r.run()
			if err != nil || res < 0 {
				return fail("accept", fmt.Errorf("%d, %v", res, err))
			}
			unix.Write(int(res), greeting[:])
			unix.Close(int(res))
		}
		return helperOK
	case "overflow":
		if err := r.enter(1, false); err != nil {
			return fail("submit", err)
		}
		time.Sleep(300 * time.Millisecond) // the accept completes meanwhile
		head := r.u32(r.cq, r.p.CQOff.Head)
		atomic.StoreUint32(head, atomic.LoadUint32(head)+r.p.CQEntries) // drop the NOPs'
		res, err := r.run()                                             // flushes the overflowed completion
		if err != nil || res < 0 {
			return fail("accept", fmt.Errorf("%d, %v", res, err))
		}
		unix.Write(int(res), greeting[:])
		return helperOK
	}
	res, err := r.run()
	if err != nil {
		return fail("accept", err)
	}
	if res < 0 {
		return fail("accept", syscall.Errno(-res))
	}
	if mode == "fd" {
		send.fd = res
	}
	r.push(send)
	if res, err = r.run(); err != nil || res != 2 {
		return fail("send", fmt.Errorf("%d, %v", res, err))
	}
	return helperOK
}

// uringServeFork is the uring-serve-fork action.
func uringServeFork(r *uring, args []string) int {
	uid, err := strconv.Atoi(args[0])
	if err != nil {
		return helperFailed
	}
	lfd, err := listenRaw(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return helperFailed
	}
	r.push(sqe{op: ioringOpAccept, fd: int32(lfd), userData: 1})
	fmt.Println("listening")
	return reportChild(forkURingChild(uintptr(uid), uintptr(r.fd), r.nextRes()))
}

// forkURingChild forks (no exec); the child sets its uids to uid, submits
// the accept queued on ring (so it is the accept's submitter), reads the
// result at res and greets the connection. Raw syscalls only, as in
// forkChild.
//
//go:nosplit
//go:norace
func forkURingChild(uid, ring uintptr, res *int32) (uintptr, syscall.Errno) {
	pid, _, e := syscall.RawSyscall(syscall.SYS_FORK, 0, 0, 0)
	if e != 0 || pid != 0 {
		return pid, e
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uid, uid, uid); e != 0 {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, childSetuidFailed+uintptr(e), 0, 0)
	}
	for {
		_, _, e := syscall.RawSyscall6(unix.SYS_IO_URING_ENTER, ring, 1, 1, ioringEnterGetev, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, childAcceptFailed+uintptr(e), 0, 0)
		}
		break
	}
	fd := *res
	if fd < 0 {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, childAcceptFailed+uintptr(-fd), 0, 0)
	}
	syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&greeting[0])), 2)
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	return 0, 0
}

// needURing skips the test when this kernel gives no io_uring.
func needURing(t *testing.T) {
	t.Helper()
	r, err := newURing(4)
	if err != nil {
		t.Skipf("no io_uring: %v", err)
	}
	unix.Close(r.fd)
}

// uringAcceptOnce runs the uring-accept helper (mode fd, fixed, skip,
// multishot or overflow) as acceptOnce runs a program: in cgroup cg, with
// a TCP listener on addr from outside the workload as descriptor 3.
func uringAcceptOnce(t *testing.T, cg, addr, mode string) (int, error) {
	t.Helper()
	dials := 1
	if mode == "multishot" {
		dials = 2
	}
	self, _ := os.Executable()
	st, served := acceptWith(t, cg, addr, []string{helperEnv + "=uring-accept " + mode}, dials, self)
	if st == helperNoURing {
		t.Skip("helper: no io_uring")
	}
	return st, served
}

// uringSpec is credSpec's helper (root, node helper) and worker (nobody)
// with the TCP ingress from 127.0.0.1 to port given to process node to.
func uringSpec(t *testing.T, port int, to string) *policy.Spec {
	spec := credSpec(t, []string{"nobody"})
	spec.NetworkPolicy = &policy.NetworkPolicy{Ingress: []policy.NetworkRule{{
		From:      []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.0.0.1/32"}}},
		Ports:     []policy.Port{{Port: port, Protocol: "TCP"}},
		Processes: []string{to},
	}}}
	return spec
}

// TestURingAcceptChecksAcceptor: io_uring accepts (IORING_OP_ACCEPT) are
// decided for the node of the task that submitted them, as accept(2) is:
// served when that node has the ingress; when only another node has it,
// reported with the submitter's node and, in enforce, the submitter is
// killed before it sends a byte (audit only reports). Descriptor, direct
// (fixed-file), multishot and overflowed accepts, one whose success posts
// no completion (decided at submit, for an unknown peer), and a forked
// child (another node) that submits an accept on its parent's listener.
// The listener of the non-forking cases comes from outside the workload,
// so no packet check of the workload's cgroup runs: the accept is the
// only check.
func TestURingAcceptChecksAcceptor(t *testing.T) {
	needURing(t)
	e, _ := openTestEngine(t)
	for _, tc := range []struct {
		name   string
		helper string // the uring-accept mode, or fork (uring-serve-fork)
		to     string // the node the policy gives the ingress
		mode   Mode
		node   string // the node the accept is decided for
		dev    bool   // a deviation
		peer   string // the peer it is reported with
	}{
		{"fd", "fd", "helper", ModeEnforce, "helper", false, "127.0.0.1"},
		{"fd other node", "fd", "worker", ModeEnforce, "helper", true, "127.0.0.1"},
		{"fixed", "fixed", "helper", ModeEnforce, "helper", false, "127.0.0.1"},
		{"fixed other node", "fixed", "worker", ModeEnforce, "helper", true, "127.0.0.1"},
		{"multishot", "multishot", "helper", ModeEnforce, "helper", false, "127.0.0.1"},
		{"multishot other node", "multishot", "worker", ModeEnforce, "helper", true, "127.0.0.1"},
		{"overflow", "overflow", "helper", ModeEnforce, "helper", false, "127.0.0.1"},
		{"overflow other node", "overflow", "worker", ModeEnforce, "helper", true, "127.0.0.1"},
		{"audit", "fd", "worker", ModeAudit, "helper", true, "127.0.0.1"},
		{"cqe skip", "skip", "helper", ModeEnforce, "helper", true, "0.0.0.0"},
		{"forked child", "fork", "worker", ModeEnforce, "worker", false, "127.0.0.1"},
		{"forked child, listener's node", "fork", "helper", ModeEnforce, "worker", true, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t, "tcp4", "127.0.0.1:0")
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			cg := testCgroup(t)
			ev := collect(t, e)
			if _, err := e.Apply(cg, mustCompile(t, uringSpec(t, port, tc.to)), tc.mode); err != nil {
				t.Fatal(err)
			}
			var served error
			var ended string
			if tc.helper == "fork" {
				end := forkServer(t, cg, "uring-serve-fork 65534 "+addr)
				served = dialFrom("", addr)
				ended = end()
			} else {
				var st int
				st, served = uringAcceptOnce(t, cg, addr, tc.helper)
				ended = fmt.Sprintf("exit %d", st)
				if st == 128+9 {
					ended = "signal 9"
				}
			}
			blocked := tc.dev && tc.mode == ModeEnforce
			if want := map[bool]string{false: "exit 0", true: "signal 9"}[blocked]; (served != nil) != blocked || ended != want {
				t.Fatalf("served %v, %s; want %s, served %v", served, ended, want, !blocked)
			}
			got := ev.wait(t, "accept", func(x Event) bool { return x.Kind == KindAccept && x.Deviation == tc.dev })
			if got.Blocked != blocked || got.Node != tc.node || got.Dst.Port() != uint16(port) ||
				got.Src.Addr() != netip.MustParseAddr(tc.peer) {
				t.Fatalf("accept %+v", got)
			}
		})
	}
}
