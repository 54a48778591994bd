package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// pinUDPRecv is the pin of the UDP receive check's global link.
const pinUDPRecv = "link_udp_recv"

// udpRecvLSM is the lsm backend's UDP receive check (udp_recv.bpf.c): the
// datagram is at hand when __skb_recv_udp returns.
type udpRecvLSM struct {
	OnSkbRecvUdp *ebpf.Program `ebpf:"on_skb_recv_udp"`
}

// Close closes the program.
func (o *udpRecvLSM) Close() error { return o.OnSkbRecvUdp.Close() }

// udpRecvTracing is the tracing backend's UDP receive check: the source
// of the datagram read comes from the per-cgroup recvmsg programs, the
// check runs at sock_recv_length.
type udpRecvTracing struct {
	OnSockRecvLength *ebpf.Program `ebpf:"on_sock_recv_length"`
	Recvmsg4         *ebpf.Program `ebpf:"recvmsg4"`
	Recvmsg6         *ebpf.Program `ebpf:"recvmsg6"`
}

// Close closes the programs.
func (o *udpRecvTracing) Close() error {
	return closers{o.OnSockRecvLength, o.Recvmsg4, o.Recvmsg6}.Close()
}

// openUDPRecv loads and attaches the check of each UDP datagram a
// workload task receives, for that task's node, and tells the ingress
// program that it runs (udp_at_receive), so the packet check keeps only
// dropping what no node may receive. Where the kernel lacks the hook
// (tracing: sock_recv_length, Linux 6.3) it warns and leaves ingress
// deciding a datagram for the node bound to its port.
func (e *Engine) openUDPRecv(backend string) error {
	spec, err := loadUdpRecv()
	if err != nil {
		return fmt.Errorf("load UDP receive object: %w", err)
	}
	var objs interface{ Close() error }
	var prog *ebpf.Program
	if backend == BackendLSM {
		var o udpRecvLSM
		err = spec.LoadAndAssign(&o, e.collectionOptions())
		objs, prog = &o, o.OnSkbRecvUdp
	} else {
		var o udpRecvTracing
		if err = spec.LoadAndAssign(&o, e.collectionOptions()); err == nil {
			e.udpRecv = &o
		}
		objs, prog = &o, o.OnSockRecvLength
	}
	if err != nil {
		e.log.Warn("UDP datagrams are decided for the node bound to their port, not the receiver's: kernel lacks the receive hook", "backend", backend, "err", err)
		return nil
	}
	e.exec = closers{e.exec, objs}
	if err := e.attachGuard(guard{pinUDPRecv, func() (link.Link, error) {
		return link.AttachTracing(link.TracingOptions{Program: prog})
	}}); err != nil {
		return err
	}
	if err := e.net.UdpAtReceive.Set(uint32(1)); err != nil {
		return fmt.Errorf("enable UDP receive checks: %w", err)
	}
	e.udpAtReceive = true
	e.log.Info("UDP datagrams are decided for the receiving task's node", "backend", backend)
	return nil
}
