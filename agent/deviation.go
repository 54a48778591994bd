package agent

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/policy"
)

// BuildDeviation turns a kernel deviation event into a Deviation document
// whose spec holds exactly what merging into pol allows the activity:
//   - exec: the new process as a child of its parent's policy node
//     (`policyNode: {id, children: [...]}`), or as a new root node when the
//     process had no policy node (it entered the workload from outside, or
//     its parent was itself outside the policy); its name and exe are
//     written as fingerprints write them (execPatterns);
//   - cred (an euid change without exec): the same, the child having the
//     process's name and exe and the new user;
//   - connect: an egress rule to the destination and port, for the process
//     node when it has one; the destination is the name the workload
//     resolved to the address (`dnsSelector: [name]`, so merging allows the
//     name, not the address it had today) when the event carries one, else
//     the address (/32 or /128);
//   - accept: an ingress rule from the source address to the local port.
//
// pol may be nil (`bulwark exec` without a named policy). uidName maps the
// effective uid to a user name of the workload. metadata.checksum is a
// stable hash of the spec, so repeats of one deviation share it;
// metadata.uid is unique to this occurrence. metadata.event.count is the
// number of occurrences the event stands for (more than 1 when the events
// of earlier ones were lost); later repeats come as records of their own
// (deviationTally).
func BuildDeviation(ev bpf.Event, pol *policy.WorkloadPolicy, uidName func(uint32) string) policy.Deviation {
	d := policy.Deviation{APIVersion: policy.APIVersionBulwark, Kind: policy.KindDeviation}
	if pol != nil {
		d.Metadata.Type = pol.Metadata.Type
		d.Metadata.PolicyName = pol.Metadata.Name
		d.Metadata.PolicyUID = pol.Metadata.UID
		d.Metadata.PolicyMode = pol.Spec.Mode
	}
	switch ev.Kind {
	case bpf.KindExec, bpf.KindCred:
		name, exe := execPatterns(ev)
		node := policy.ProcessNode{
			Name:  name,
			Exe:   []string{exe},
			Euser: []string{uidName(ev.EUID)},
			ID:    idBase(name) + "_0", // merging renames it on a clash
		}
		if ev.ParentNode != "" {
			d.Spec.ProcessPolicy = []policy.ProcessNode{{PolicyNode: &policy.PolicyNodeRef{ID: ev.ParentNode, Children: []policy.ProcessNode{node}}}}
		} else {
			d.Spec.ProcessPolicy = []policy.ProcessNode{node}
		}
	case bpf.KindConnect:
		d.Spec.NetworkPolicy = &policy.NetworkPolicy{Egress: []policy.NetworkRule{
			connRule(egressConn(ev), ev, true),
		}}
	case bpf.KindAccept:
		d.Spec.NetworkPolicy = &policy.NetworkPolicy{Ingress: []policy.NetworkRule{
			connRule(fpConn{peer: ev.Src.Addr().Unmap(), port: ev.Dst.Port()}, ev, false),
		}}
	}
	if d.Spec.NetworkPolicy != nil && ev.Node != "" {
		// The rule names a node of the policy: reference it, so the
		// deviation stands on its own (it validates, and merging knows
		// the node is the policy's, not a new one).
		d.Spec.ProcessPolicy = []policy.ProcessNode{{PolicyNode: &policy.PolicyNodeRef{ID: ev.Node}}}
	}
	d.Metadata.Checksum = d.Spec.Checksum()
	d.Metadata.UID = "deviation:" + randomHex(8)
	ts := unixSeconds(ev.Time)
	d.Metadata.FirstTimestamp, d.Metadata.LatestTimestamp = ts, ts
	verdict := "allowed"
	if ev.Blocked {
		verdict = "blocked"
	}
	d.Metadata.Event = &policy.Event{
		Kind:       ev.Kind.String(),
		Verdict:    verdict,
		Timestamp:  ev.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		CgroupID:   ev.CgroupID,
		PID:        int(ev.PID),
		PPID:       int(ev.PPID),
		UID:        int(ev.UID),
		EUID:       int(ev.EUID),
		Exe:        ev.Exe,
		Comm:       ev.Comm,
		ParentNode: ev.ParentNode,
		Node:       ev.Node,
		Protocol:   ev.Protocol,
		Count:      max(ev.Count, 1),
	}
	if ev.Kind == bpf.KindCred {
		old := int(ev.OldEUID)
		d.Metadata.Event.OldEUID = &old
	}
	switch {
	case ev.Unresolved:
		d.Metadata.Event.ExeStatus = policy.ExeUnresolved
	case ev.Truncated:
		d.Metadata.Event.ExeStatus = policy.ExeTruncated
	}
	if ev.Src.IsValid() {
		d.Metadata.Event.SrcAddr, d.Metadata.Event.SrcPort = ev.Src.Addr().String(), int(ev.Src.Port())
	}
	if ev.Dst.IsValid() {
		d.Metadata.Event.DstAddr, d.Metadata.Event.DstPort = ev.Dst.Addr().String(), int(ev.Dst.Port())
	}
	if ev.Kind == bpf.KindConnect {
		d.Metadata.Event.DNSName = ev.DNSName
	}
	return d
}

// UserNames turns a workload's user table (name → uid, as
// bpf.ParsePasswd reads it) into the naming of effective uids that
// deviations and fingerprints use: the smallest name when several share a
// uid, so the same uid is always written the same way, and the number when
// no name has it.
func UserNames(users map[string]uint32) func(uid uint32) string {
	names := make(map[uint32]string, len(users))
	for n, u := range users {
		if old, ok := names[u]; !ok || n < old {
			names[u] = n
		}
	}
	return func(uid uint32) string {
		if n, ok := names[uid]; ok {
			return n
		}
		return strconv.FormatUint(uint64(uid), 10)
	}
}

// connRule is a rule allowing exactly one peer (c's name, else its
// address) on c's port, for the event's process node when it has one.
func connRule(c fpConn, ev bpf.Event, egress bool) policy.NetworkRule {
	peers := []policy.Peer{c.policyPeer()}
	r := policy.NetworkRule{Ports: []policy.Port{{Port: int(c.port), Protocol: ev.Protocol}}}
	if egress {
		r.To = peers
	} else {
		r.From = peers
	}
	if ev.Node != "" {
		r.Processes = []string{ev.Node}
	}
	return r
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
