package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
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
	// KindSocket: a socket or packet of a protocol the policy cannot
	// name (see Event.Protocol); a deviation in audit and enforce mode.
	KindSocket Kind = 5
	// KindMigrate: a task bound to a workload left the workload's cgroup
	// (always a deviation; in enforce the task is killed).
	KindMigrate Kind = 6
	// KindCred: a task's effective uid changed without an exec (setuid
	// and the like): the task moved from ParentNode to Node, a child of
	// it with the same name and exe and the new euid (EUID; OldEUID the
	// one before). A deviation when no policy node allows it; in enforce
	// it is denied (lsm) or the task killed (tracing).
	KindCred Kind = 7
)

// String returns "exec", "connect", "accept", "listen", "socket",
// "migrate" or "cred".
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
	case KindSocket:
		return "socket"
	case KindMigrate:
		return "migrate"
	case KindCred:
		return "cred"
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
	// Unresolved: the exe's path did not lead to the workload's root (a
	// mount namespace or detached tree of the workload's own, a file
	// from outside, too many mounts), so it matched no policy node; Exe
	// holds the components seen.
	Unresolved bool
	CgroupID   uint64
	// PID and PPID are process (thread-group) ids; UID and EUID the
	// credentials. Accept events are the accepting task's (TCP) or the
	// receiving task's (UDP, where Engine.UDPAtReceive); those decided at
	// the packet run without a task (TCP requests and UDP datagrams no
	// node may receive, UDP on kernels without the receive hooks, and on
	// the tracing backend UDP to a socket read without asking for the
	// source address): 0.
	PID, PPID, UID, EUID uint32
	// OldEUID is the effective uid before a cred change (cred events).
	OldEUID uint32
	// ProcessStart is when process PID started, as time since boot
	// (CLOCK_BOOTTIME, what /proc/PID/stat's starttime counts in clock
	// ticks): with PID it names the process across pid reuse. 0 when the
	// event has no task (accept events decided at the packet).
	ProcessStart time.Duration
	// Exe is the resolved executable path (exec events; migrate and
	// cred events: of the task's last exec), Comm the name.
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
	// Protocol is "TCP" or "UDP" for network events; for socket events
	// what protocolName says (e.g. "RAW", with the IP protocol as the
	// port of Dst, "UDPLITE", "ICMP", "PACKET").
	Protocol string
	// Src and Dst: connect events carry the destination in Dst (Src
	// unset); accept events the remote peer in Src and the local address
	// and port in Dst; listen events the bound address and port in Dst
	// (Src unset). IPv4-mapped IPv6 addresses are reported as IPv4.
	Src, Dst netip.AddrPort
	// DNSName is the name the workload resolved to Dst (connect events):
	// the question of the DNS answer it received that mapped the name,
	// through any CNAME chain, to Dst; lower case, no trailing dot. ""
	// when Dst was reached without a lookup.
	DNSName string
	Time    time.Time
	// Count is how many occurrences the event stands for: 1, or more for
	// a deviation whose earlier events were lost. Later repeats of a
	// deviation are only counted in the kernel: DrainRepeats reports them
	// under the event's Key.
	Count uint64
	// Key is what the kernel aggregates a deviation's repeats by (zero for
	// observations).
	Key DeviationKey
}

// DeviationKey identifies one deviation in the kernel's aggregation: the
// workload, the process node (for exec the node and its parent), the kind
// and verdict, and the target (exec: the euid and, through the node, exe
// and name; network: peer address, protocol and policy port).
type DeviationKey struct{ k networkDevKey }

// Repeat is how often a deviation occurred beyond what its events
// reported, between two drains.
type Repeat struct {
	Key      DeviationKey
	CgroupID uint64
	Kind     Kind
	// Count is the number of occurrences no event carried.
	Count uint64
	// Unreported: no event was emitted for this deviation since the last
	// drain (each one was lost, ring buffer full); it is known by its key
	// and count only.
	Unreported bool
	// First and Last are the first and the last occurrence since the
	// last drain (including the one an event reported).
	First, Last time.Time
}

// DrainRepeats takes the kernel's deviation counts and returns those with
// occurrences no event reported, clearing the table: the next occurrence
// of each deviation is emitted again. Call it periodically (the table holds
// 16,384 distinct deviations; beyond that, deviations are emitted one by
// one and counted in Losses.Unaggregated).
func (e *Engine) DrainRepeats() ([]Repeat, error) {
	var keys []networkDevKey
	var k networkDevKey
	var c networkDevCount
	it := e.net.Deviations.Iterate()
	for it.Next(&k, &c) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read deviation counts: %w", err)
	}
	var out []Repeat
	for _, k := range keys {
		if err := e.net.Deviations.LookupAndDelete(&k, &c); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				continue
			}
			return out, fmt.Errorf("drain deviation counts: %w", err)
		}
		if c.Count <= c.Reported {
			continue
		}
		out = append(out, Repeat{
			Key: DeviationKey{k}, CgroupID: k.Cgid, Kind: Kind(k.KindFlags >> 16),
			Count: c.Count - c.Reported, Unreported: c.Reported == 0,
			First: monoToTime(c.FirstNs), Last: monoToTime(c.LastNs),
		})
	}
	return out, nil
}

// deviationKey is the aggregation key the kernel used for raw event r, a
// deviation (dev_key in bulwark.h).
func deviationKey(r *networkEvent) DeviationKey {
	k := networkDevKey{Cgid: r.Cgid, Node: r.Node, KindFlags: r.Kind<<16 | r.Flags}
	if r.Flags&evNamed != 0 {
		k.Name = dnsNameHash(cString(r.Exe[:]))
	}
	switch Kind(r.Kind) {
	case KindExec, KindCred:
		k.A, k.C = r.ParentNode, r.Euid
	default:
		peer := r.Daddr
		if Kind(r.Kind) == KindAccept {
			peer = r.Saddr
		}
		k.A = binary.NativeEndian.Uint64(peer[:8])
		k.B = binary.NativeEndian.Uint64(peer[8:])
		k.C = uint32(r.Family&0xff)<<24 | uint32(r.Proto)<<16 | uint32(r.Dport)
	}
	return DeviationKey{k}
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
		Kind:         Kind(r.Kind),
		Deviation:    r.Flags&evDeviation != 0,
		Blocked:      r.Flags&evBlocked != 0,
		Unresolved:   r.Flags&evUnresolved != 0,
		Truncated:    r.Flags&evTruncated != 0,
		CgroupID:     r.Cgid,
		PID:          r.Pid,
		PPID:         r.Ppid,
		UID:          r.Uid,
		EUID:         r.Euid,
		OldEUID:      r.OldEuid,
		ProcessStart: time.Duration(r.StartNs),
		Exe:          cString(r.Exe[:]),
		Comm:         cString(r.Comm[:]),
		NodeKey:      r.Node,
		ParentKey:    r.ParentNode,
		Time:         monoToTime(r.TimeNs),
		Count:        r.Count,
	}
	if ev.Deviation {
		ev.Key = deviationKey(&r)
	}
	if r.Flags&evNamed != 0 {
		ev.DNSName, ev.Exe = ev.Exe, "" // a named connect carries the name in exe
	}
	ev.Protocol = protocolName(r.Family, r.Proto)
	if ev.Kind != KindExec && ev.Kind != KindMigrate && ev.Kind != KindCred {
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
