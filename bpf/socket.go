package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Pins of the socket guards, global like the exec links.
const (
	pinSockCreate     = "link_sock_create"
	pinSocketPrefix   = "link_socket_" // + program: the lsm backend's socket hooks
	pinPacketTracing  = "link_packet_tracing"
	pinEgressPassedIn = "link_egress_passed_in"
)

// openSocketGuards attaches the global checks of protocols the policy
// cannot name: sock_create on the root cgroup (both backends: it refuses
// them by the calling task and marks user sockets for the egress
// programs), and per backend what sees sockets the per-cgroup programs do
// not: on lsm, lsm/socket_create (AF_PACKET, AF_XDP) and the checks of
// passed-in sockets (socket_connect, socket_sendmsg); on tracing,
// tp_btf/cap_capable (AF_PACKET, AF_XDP) and a root egress program for
// raw sockets passed in, both skipped with a warning where the kernel
// refuses them. Pinned links are adopted as in openExec.
func (e *Engine) openSocketGuards(backend string) error {
	onRoot := func(p *ebpf.Program, typ ebpf.AttachType) func() (link.Link, error) {
		return func() (link.Link, error) {
			return link.AttachCgroup(link.CgroupOptions{Path: e.cgRoot, Attach: typ, Program: p})
		}
	}
	guards := []guard{{pinSockCreate, onRoot(e.net.SockCreate, ebpf.AttachCGroupInetSockCreate)}}
	var objs interface{ Close() error }
	switch backend {
	case BackendLSM:
		var o socketLSMObjects
		if err := loadGuards(loadSocketLSM, &o, e.collectionOptions()); err != nil {
			return err
		}
		objs = &o
		for name, p := range map[string]*ebpf.Program{
			"create": o.CheckSocketCreate, "connect": o.CheckSocketConnect, "sendmsg": o.CheckSocketSendmsg,
		} {
			guards = append(guards, guard{pinSocketPrefix + name, func() (link.Link, error) {
				return link.AttachLSM(link.LSMOptions{Program: p})
			}})
		}
	case BackendTracing:
		var o packetTracingObjects
		if err := loadGuards(loadPacketTracing, &o, e.collectionOptions()); err != nil {
			e.log.Warn("packet sockets (AF_PACKET, AF_XDP) and raw sockets passed in go unchecked: kernel too old", "err", err)
			break
		}
		objs = &o
		guards = append(guards,
			guard{pinPacketTracing, func() (link.Link, error) {
				return link.AttachTracing(link.TracingOptions{Program: o.OnCapCapable})
			}},
			guard{pinEgressPassedIn, onRoot(o.EgressPassedIn, ebpf.AttachCGroupInetEgress)})
	}
	if objs != nil {
		e.exec = closers{e.exec, objs}
	}
	for _, g := range guards {
		if err := e.attachGuard(g); err != nil {
			return err
		}
	}
	return nil
}

// guard is a global link of the socket guards and how to make it.
type guard struct {
	pin    string
	attach func() (link.Link, error)
}

// attachGuard attaches and pins g unless its pin exists (adopted).
func (e *Engine) attachGuard(g guard) error {
	path := filepath.Join(e.pinDir, g.pin)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	l, err := g.attach()
	if err != nil {
		return fmt.Errorf("attach %s: %w", g.pin, err)
	}
	defer l.Close()
	if err := l.Pin(path); err != nil {
		return fmt.Errorf("pin %s: %w", path, err)
	}
	return nil
}

// loadGuards loads one guard object into objs with the shared maps.
func loadGuards(load func() (*ebpf.CollectionSpec, error), objs any, opts *ebpf.CollectionOptions) error {
	spec, err := load()
	if err != nil {
		return fmt.Errorf("load socket guard object: %w", err)
	}
	if err := spec.LoadAndAssign(objs, opts); err != nil {
		return fmt.Errorf("load socket guard programs: %w", err)
	}
	return nil
}

// closers closes several objects as one.
type closers []interface{ Close() error }

// Close closes each object.
func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Protocol names of events beyond TCP and UDP.
const (
	protoICMP    = 1
	protoSCTP    = 132
	protoUDPLite = 136
	protoICMPv6  = 58
	protoRaw     = 255 // the kernel reports raw sockets as IPPROTO_RAW
)

// protocolName names an event's protocol: "TCP", "UDP", or for socket
// events "RAW" (any SOCK_RAW socket), "PACKET" (AF_PACKET), "XDP"
// (AF_XDP), "UDPLITE", "ICMP", "ICMPv6", "SCTP", "IP/N" for another IP
// protocol N, "AF/N" for another address family N.
func protocolName(family uint16, proto uint8) string {
	switch family {
	case unix.AF_INET, unix.AF_INET6, 0:
	case unix.AF_PACKET:
		return "PACKET"
	case unix.AF_XDP:
		return "XDP"
	default:
		return fmt.Sprintf("AF/%d", family)
	}
	switch proto {
	case 0:
		return ""
	case protoTCP:
		return "TCP"
	case protoUDP:
		return "UDP"
	case protoRaw:
		return "RAW"
	case protoUDPLite:
		return "UDPLITE"
	case protoICMP:
		return "ICMP"
	case protoICMPv6:
		return "ICMPv6"
	case protoSCTP:
		return "SCTP"
	}
	return fmt.Sprintf("IP/%d", proto)
}
