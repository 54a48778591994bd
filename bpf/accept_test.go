package bpf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/policy"
)

// The ia32 ways to accept: socketcall(SYS_ACCEPT), socketcall(SYS_ACCEPT4)
// and the accept4 syscall of the i386 table.
const (
	ia32SocketcallAccept  = 5
	ia32SocketcallAccept4 = 18
	ia32Accept4           = 364
)

// int80Accept is a static x86-64 ELF that accepts a connection on
// descriptor 3 through the ia32 entry (int 0x80) the way call says, writes
// greeting to it and exits with the new descriptor (the low byte of
// -errno when the accept failed).
func int80Accept(call uint32) []byte {
	var data []byte
	for _, a := range []uint32{3, 0, 0, 0} { // socketcall's args: fd, addr, addrlen, flags
		data = binary.LittleEndian.AppendUint32(data, a)
	}
	data = append(data, greeting[:]...)
	return ia32ELF(data, func(addr uint32) []byte {
		le := binary.LittleEndian
		var code []byte
		if call == ia32Accept4 {
			code = le.AppendUint32([]byte{0xb8}, ia32Accept4) // mov eax, 364
			code = append(code, 0xbb, 3, 0, 0, 0,             // mov ebx, 3
				0x31, 0xc9, 0x31, 0xd2, 0x31, 0xf6) // xor ecx, edx, esi
		} else {
			code = []byte{0xb8, 102, 0, 0, 0} // mov eax, 102 (socketcall)
			code = le.AppendUint32(append(code, 0xbb), call)
			code = le.AppendUint32(append(code, 0xb9), addr) // mov ecx, args
		}
		code = append(code,
			0xcd, 0x80, // int 0x80
			0x89, 0xc7, // mov edi, eax (the descriptor)
			0x89, 0xc3, // mov ebx, eax
			0xb8, 4, 0, 0, 0, // mov eax, 4 (write)
		)
		code = le.AppendUint32(append(code, 0xb9), addr+16) // mov ecx, greeting
		return append(code,
			0xba, 2, 0, 0, 0, // mov edx, 2
			0xcd, 0x80, // int 0x80
			0x89, 0xfb, // mov ebx, edi
			0xb8, 1, 0, 0, 0, // mov eax, 1 (exit)
			0xcd, 0x80, // int 0x80
		)
	})
}

// acceptOnce runs prog in cgroup cg (empty: no workload) with a blocking
// TCP listener on addr as descriptor 3, connects to it and returns prog's
// exit status (128+signal when killed) and why no greeting came back (nil:
// it did).
func acceptOnce(t *testing.T, cg, addr, prog string, args ...string) (int, error) {
	t.Helper()
	return acceptWith(t, cg, addr, nil, 1, prog, args...)
}

// acceptWith is acceptOnce with env added to prog's environment and up to
// dials connections (until one gets no greeting); what prog wrote is
// logged.
func acceptWith(t *testing.T, cg, addr string, env []string, dials int, prog string, args ...string) (int, error) {
	t.Helper()
	fd, err := listenRaw(addr)
	// The io_uring ring of an earlier program may hold its listener a
	// moment after that program exited (a multishot accept in flight).
	for end := time.Now().Add(5 * time.Second); errors.Is(err, unix.EADDRINUSE) && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
		fd, err = listenRaw(addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	lf := os.NewFile(uintptr(fd), "listener")
	defer lf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.ExtraFiles = []*os.File{lf}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if cg == "" {
		err = cmd.Start()
	} else {
		err = cgroup.StartIn(cmd, cg)
	}
	if err != nil {
		t.Fatal(err)
	}
	served := dialFrom("", addr)
	for i := 1; i < dials && served == nil; i++ {
		served = dialFrom("", addr)
	}
	lf.Close() // the program's copy stays
	st := exitStatus(t, cmd.Wait())
	if out.Len() > 0 {
		t.Logf("%s: %s", prog, out.String())
	}
	return st, served
}

// acceptSpec is a workload of one program, node ID prog's base name +
// "_0", next to a node "other" (busybox's true), with the TCP ingress from
// 127.0.0.1 to port given to process node to.
func acceptSpec(prog string, port int, to string) *policy.Spec {
	name := filepath.Base(prog)
	return &policy.Spec{
		ProcessPolicy: []policy.ProcessNode{
			{Name: name, Exe: []string{prog}, Euser: []string{"root"}, ID: name + "_0"},
			{Name: "true", Exe: []string{busyboxExe()}, ID: "other"},
		},
		NetworkPolicy: &policy.NetworkPolicy{Ingress: []policy.NetworkRule{{
			From:      []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "127.0.0.1/32"}}},
			Ports:     []policy.Port{{Port: port, Protocol: "TCP"}},
			Processes: []string{to},
		}}},
	}
}

// TestInt80AcceptChecksAcceptor: accepts through the ia32 entry (int 0x80
// from a 64-bit program: socketcall accept and accept4, and accept4) are
// decided for the acceptor's node like native ones: served when its node
// has the ingress, killed before it runs on and reported when only another
// node has it. The listener comes from outside the workload, so no packet
// check of the workload's cgroup runs: the accept is the only check.
func TestInt80AcceptChecksAcceptor(t *testing.T) {
	e, _ := openTestEngine(t)
	for _, tc := range []struct {
		name string
		call uint32
	}{
		{"socketcall-accept", ia32SocketcallAccept},
		{"socketcall-accept4", ia32SocketcallAccept4},
		{"accept4", ia32Accept4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog := filepath.Join(t.TempDir(), "accept32")
			if err := os.WriteFile(prog, int80Accept(tc.call), 0o755); err != nil {
				t.Fatal(err)
			}
			port := freePort(t, "tcp4", "127.0.0.1:0")
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			if st, served := acceptOnce(t, "", addr, prog); served != nil || st != 4 {
				t.Skipf("ia32 accept outside any workload: %v, status %d (no IA32 emulation?)", served, st)
			}
			cg := testCgroup(t)
			ev := collect(t, e)
			if _, err := e.Apply(cg, mustCompile(t, acceptSpec(prog, port, "accept32_0")), ModeEnforce); err != nil {
				t.Fatal(err)
			}
			if st, served := acceptOnce(t, cg, addr, prog); served != nil || st != 4 {
				t.Fatalf("acceptor's node allowed: served %v, status %d, want served and 4", served, st)
			}
			seen := ev.wait(t, "accept", func(x Event) bool { return x.Kind == KindAccept })
			if seen.Deviation || seen.Node != "accept32_0" || seen.Dst.Port() != uint16(port) {
				t.Fatalf("accept %+v", seen)
			}
			if _, err := e.Apply(cg, mustCompile(t, acceptSpec(prog, port, "other")), ModeEnforce); err != nil {
				t.Fatal(err)
			}
			if st, served := acceptOnce(t, cg, addr, prog); served == nil || st != 128+9 {
				t.Fatalf("only another node allowed: served %v, status %d, want refused and 137", served, st)
			}
			dev := ev.wait(t, "accept deviation", func(x Event) bool { return x.Kind == KindAccept && x.Deviation })
			if !dev.Blocked || dev.Node != "accept32_0" || dev.Dst.Port() != uint16(port) {
				t.Fatalf("deviation %+v", dev)
			}
		})
	}
}
