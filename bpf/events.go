package bpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kind says what an event is about.
type Kind uint32

// Event kinds.
const (
	KindExec    Kind = 1 // a process image was executed
	KindConnect Kind = 2 // an outbound connection or UDP datagram
	KindAccept  Kind = 3 // an inbound connection request or UDP datagram
	// KindListen: a process bound a port (a TCP listener or UDP receiver),
	// reported once per process node, port and protocol; never a deviation.
	KindListen Kind = 4
	// KindMigrate: a task bound to a workload left the workload's cgroup
	// (always a deviation; in enforce the task is killed).
	KindMigrate Kind = 5
)

// String returns "exec", "connect", "accept", "listen" or "migrate".
func (k Kind) String() string {
	switch k {
	case KindExec:
		return "exec"
	case KindConnect:
		return "connect"
	case KindAccept:
		return "accept"
	case KindListen:
		return "listen"
	case KindMigrate:
		return "migrate"
	}
	return fmt.Sprintf("kind(%d)", uint32(k))
}

// Event is what the kernel reports: a deviation (always) or an
// observation (the first of its kind per workload, for fingerprints).
type Event struct {
	Kind Kind
	// Deviation: outside the policy. Blocked: and stopped (enforce).
	Deviation, Blocked bool
	// Truncated: the exe path was too long or deep to resolve fully, so
	// it matched no policy node.
	Truncated bool
	CgroupID  uint64
	// PID and PPID are process (thread-group) ids; UID and EUID the
	// credentials. Accept events run without the listener's task: 0.
	PID, PPID, UID, EUID uint32
	// Exe is the resolved executable path (exec events; migrate events:
	// of the task's last exec), Comm the name.
	Exe, Comm string
	// Node is the policy node id the process runs as (exec: the node
	// the new image matched), ParentNode the node it ran as before the
	// exec; "" when not a node of the policy this Engine applied.
	Node, ParentNode string
	// NodeKey and ParentKey are the kernel's node keys behind Node and
	// ParentNode. Nodes outside the policy (observe mode, audited
	// deviations) get synthetic keys (bit 63 set) derived from the parent
	// key, exe, name and euid, so observations still form a tree.
	NodeKey, ParentKey uint64
	// Protocol is "TCP" or "UDP" for network events.
	Protocol string
	// Src and Dst: connect events carry the destination in Dst (Src
	// unset); accept events the remote peer in Src and the local address
	// and port in Dst; listen events the bound address and port in Dst
	// (Src unset). IPv4-mapped IPv6 addresses are reported as IPv4.
	Src, Dst netip.AddrPort
	Time     time.Time
}

// decodeEvent decodes one ring buffer record: a whole event, or a network
// event, which stops before exe.
func decodeEvent(raw []byte) (Event, error) {
	var r networkEvent
	if full := binary.Size(&r); len(raw) >= int(unsafe.Offsetof(r.Exe)) && len(raw) < full {
		raw = append(raw[:len(raw):len(raw)], make([]byte, full-len(raw))...)
	}
	if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &r); err != nil {
		return Event{}, fmt.Errorf("decode event (%d bytes): %w", len(raw), err)
	}
	ev := Event{
		Kind:      Kind(r.Kind),
		Deviation: r.Flags&evDeviation != 0,
		Blocked:   r.Flags&evBlocked != 0,
		Truncated: r.Flags&evTruncated != 0,
		CgroupID:  r.Cgid,
		PID:       r.Pid,
		PPID:      r.Ppid,
		UID:       r.Uid,
		EUID:      r.Euid,
		Exe:       cString(r.Exe[:]),
		Comm:      cString(r.Comm[:]),
		NodeKey:   r.Node,
		ParentKey: r.ParentNode,
		Time:      monoToTime(r.TimeNs),
	}
	switch r.Proto {
	case protoTCP:
		ev.Protocol = "TCP"
	case protoUDP:
		ev.Protocol = "UDP"
	}
	if ev.Kind != KindExec && ev.Kind != KindMigrate {
		ev.Src = netip.AddrPortFrom(addrOf(r.Family, r.Saddr), r.Sport)
		ev.Dst = netip.AddrPortFrom(addrOf(r.Family, r.Daddr), r.Dport)
		if ev.Kind == KindConnect || ev.Kind == KindListen {
			ev.Src = netip.AddrPort{}
		}
	}
	return ev, nil
}

func addrOf(family uint16, b [16]uint8) netip.Addr {
	if family == unix.AF_INET {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

func cString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

// monoToTime converts a CLOCK_MONOTONIC timestamp to wall-clock time.
func monoToTime(ns uint64) time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Now()
	}
	return time.Now().Add(-time.Duration(ts.Nano() - int64(ns)))
}
