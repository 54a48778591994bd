package agent

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/policy"
)

// FingerprintBuilder accumulates the kernel's observations of one workload
// instance into its fingerprint (a Spyderbat-format SpyderbatFingerprint):
//   - exec events become the process tree: a node per kernel process node
//     (NodeKey) and name and exe, placed under the node of its ParentKey,
//     with its effective user; a node whose parent was never seen (the
//     entrypoint, or an event that was lost) is a root until the parent
//     shows up. Cred events (an euid change without exec) make a child
//     node the same way: same name and exe, the new user;
//   - connect events become egress rules and accept events ingress rules,
//     with the peer as a /32 (or /128), the port and protocol and the ids of
//     the processes that made (connected) or accepted (listened) them; a
//     connect to an address the workload resolved (the event's DNSName)
//     has the name as its peer instead (`dnsSelector: [name]`), so every
//     address the name turns out to have is one peer;
//   - listen events (a bound port), and UDP accepts, put the local port in
//     the listening process's listeningSockets; a TCP accept belongs to the
//     process that accepted, which may be another than the listener.
//
// Blocked events are ignored (what they tried never happened); audited
// deviations are behaviour and count. Process ids are NAME_N, numbered in
// the order processes are first seen, so the same events give the same ids
// and an id never changes once given. A FingerprintBuilder is not safe for
// concurrent use.
type FingerprintBuilder struct {
	id    policy.Identity
	euser func(uid uint32) string

	nodes   []*fpNode                // in the order first seen
	byKey   map[uint64]*fpNode       // kernel node key → its first node
	byIdent map[fpIdent]*fpNode      // kernel node key, name and exe → node
	idUsed  map[string]bool          // process ids handed out
	conns   map[fpConn]*fpPeer       // connections, both directions
	listens map[uint64][]policy.Port // kernel node key → its listening sockets
	first   time.Time                // earliest event
	latest  time.Time                // latest event
	version int                      // metadata.version: bumped on every change
}

// fpIdent tells process nodes apart: one kernel node may stand for several
// names or exes when it is a policy node matched by globs.
type fpIdent struct {
	key       uint64
	name, exe string
}

// fpNode is one process node of the tree.
type fpNode struct {
	id             string
	key, parentKey uint64
	name           string
	exe            string
	eusers         []string
}

// fpConn is one connection as the fingerprint records it: direction, peer
// (a DNS name, else an address), port (remote for egress, local for
// ingress) and protocol.
type fpConn struct {
	ingress bool
	name    string // the resolved name of an egress peer; peer is then unset
	peer    netip.Addr
	port    uint16
	proto   string
}

// fpPeer holds the kernel process nodes that made or accepted a
// connection; anyProcess is set when one of them was unknown (no node).
type fpPeer struct {
	keys       []uint64
	anyProcess bool
}

// NewFingerprintBuilder starts the fingerprint of the workload instance id
// (Type TypeContainer with image, container and pod fields, or
// TypeLinuxService with ServiceCgroup and/or ServiceName; Hostname is the
// node). users maps the workload's user names to uids (its /etc/passwd, as
// bpf.ParsePasswd reads it); a uid without a name is written as a number.
func NewFingerprintBuilder(id policy.Identity, users map[string]uint32) *FingerprintBuilder {
	return &FingerprintBuilder{
		id:      id,
		euser:   UserNames(users),
		byKey:   map[uint64]*fpNode{},
		byIdent: map[fpIdent]*fpNode{},
		idUsed:  map[string]bool{},
		conns:   map[fpConn]*fpPeer{},
		listens: map[uint64][]policy.Port{},
	}
}

// Observe adds one kernel event of the workload and reports whether the
// fingerprint changed (a process, user, connection, process of a connection
// or listening socket not seen before), so the caller re-sends it only
// then. Timestamps move with every event but alone are not a change.
func (b *FingerprintBuilder) Observe(ev bpf.Event) (changed bool) {
	if ev.Blocked {
		return false
	}
	switch ev.Kind {
	case bpf.KindExec, bpf.KindCred:
		changed = b.observeExec(ev)
	case bpf.KindConnect:
		changed = b.observeConn(egressConn(ev), ev.NodeKey)
	case bpf.KindAccept:
		changed = b.observeConn(fpConn{ingress: true, peer: ev.Src.Addr(), port: ev.Dst.Port(), proto: ev.Protocol}, ev.NodeKey)
		if ev.Protocol == policy.ProtocolUDP {
			// A datagram's node is the one that bound the socket; a
			// TCP connection's the one that accepted it, which need
			// not be the listener (a pre-forking server's worker).
			changed = b.observeListen(ev) || changed
		}
	case bpf.KindListen:
		changed = b.observeListen(ev)
	default:
		return false
	}
	if !ev.Time.IsZero() {
		if b.first.IsZero() || ev.Time.Before(b.first) {
			b.first = ev.Time
		}
		if ev.Time.After(b.latest) {
			b.latest = ev.Time
		}
	}
	if changed {
		b.version++
	}
	return changed
}

func (b *FingerprintBuilder) observeExec(ev bpf.Event) bool {
	ident := fpIdent{key: ev.NodeKey}
	ident.name, ident.exe = execPatterns(ev)
	euser := b.euser(ev.EUID)
	if n := b.byIdent[ident]; n != nil {
		if slices.Contains(n.eusers, euser) {
			return false
		}
		n.eusers = append(n.eusers, euser)
		return true
	}
	n := &fpNode{
		id:        b.newID(ident.name),
		key:       ev.NodeKey,
		parentKey: ev.ParentKey,
		name:      ident.name,
		exe:       ident.exe,
		eusers:    []string{euser},
	}
	b.nodes = append(b.nodes, n)
	b.byIdent[ident] = n
	if _, ok := b.byKey[ev.NodeKey]; !ok && ev.NodeKey != 0 {
		b.byKey[ev.NodeKey] = n
	}
	return true
}

// egressConn is the connection of a connect event: to the name the
// workload resolved when it is a plain DNS name, else to the address.
func egressConn(ev bpf.Event) fpConn {
	c := fpConn{peer: ev.Dst.Addr().Unmap(), port: ev.Dst.Port(), proto: ev.Protocol}
	if name, ok := policy.LearnedDNSName(ev.DNSName); ok && c.peer.IsValid() {
		c.name, c.peer = name, netip.Addr{}
	}
	return c
}

func (b *FingerprintBuilder) observeConn(c fpConn, node uint64) bool {
	if (!c.peer.IsValid() && c.name == "") || (c.proto != policy.ProtocolTCP && c.proto != policy.ProtocolUDP) {
		return false
	}
	c.peer = c.peer.Unmap()
	p := b.conns[c]
	changed := false
	if p == nil {
		p = &fpPeer{}
		b.conns[c] = p
		changed = true
	}
	if node == 0 {
		if p.anyProcess {
			return changed
		}
		p.anyProcess = true
		return true
	}
	if slices.Contains(p.keys, node) {
		return changed
	}
	p.keys = append(p.keys, node)
	return true
}

// observeListen records the local port of a listen or accept event as a
// listening socket of the event's process node (placed when the fingerprint
// is built, so a node seen later still gets it).
func (b *FingerprintBuilder) observeListen(ev bpf.Event) bool {
	if ev.NodeKey == 0 || ev.Dst.Port() == 0 || (ev.Protocol != policy.ProtocolTCP && ev.Protocol != policy.ProtocolUDP) {
		return false
	}
	p := policy.Port{Port: int(ev.Dst.Port()), Protocol: ev.Protocol}
	if slices.Contains(b.listens[ev.NodeKey], p) {
		return false
	}
	b.listens[ev.NodeKey] = append(b.listens[ev.NodeKey], p)
	return true
}

// newID hands out the next NAME_N id for a process named name.
func (b *FingerprintBuilder) newID(name string) string {
	base := idBase(name)
	for i := 0; ; i++ {
		id := base + "_" + strconv.Itoa(i)
		if !b.idUsed[id] {
			b.idUsed[id] = true
			return id
		}
	}
}

// idBase turns a process name into the letters, digits, '-', '_' and '.'
// of an id, the rest replaced by '_'.
func idBase(name string) string {
	var sb strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			sb.WriteRune(r)
		default:
			sb.WriteByte('_')
		}
	}
	if strings.Trim(sb.String(), "_") == "" {
		return "process"
	}
	return sb.String()
}

// execPatterns returns the name and exe patterns of a process node that
// match an exec event's process: its comm and exe made glob-safe, "*" for
// one the kernel did not report.
func execPatterns(ev bpf.Event) (name, exe string) {
	name, exe = globSafe(ev.Comm), globSafe(ev.Exe)
	if name == "" {
		name = "*"
	}
	if exe == "" {
		exe = "*"
	}
	return name, exe
}

// globSafe makes a name or path usable as a policy pattern that matches
// it: the glob characters policies cannot match literally ('*', '?', '[',
// ']', '\') each become '*'.
func globSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(`*?[]\`, r) {
			return '*'
		}
		return r
	}, s)
}

// Fingerprint returns the fingerprint as observed so far, a new document
// that shares nothing with the builder.
func (b *FingerprintBuilder) Fingerprint() *policy.Fingerprint {
	fp := &policy.Fingerprint{
		APIVersion: policy.APIVersionSpyderbat,
		Kind:       policy.KindSpyderbatFingerprint,
		Metadata:   b.metadata(),
		Spec:       b.selectors(),
	}
	fp.Spec.ProcessPolicy = b.processTree()
	fp.Spec.NetworkPolicy = &policy.NetworkPolicy{Ingress: b.rules(true), Egress: b.rules(false)}
	fp.Metadata.Checksum = fp.Spec.Checksum()
	return fp
}

// workloadName names the fingerprint: the image of a container (else its
// name or id), the unit of a service (else its cgroup's last element).
func (b *FingerprintBuilder) workloadName() string {
	id := b.id
	var cands []string
	if id.Type == policy.TypeLinuxService {
		cands = []string{id.ServiceName, path.Base(strings.TrimPrefix(id.ServiceCgroup, "systemd:"))}
	} else {
		cands = []string{id.Image, id.ContainerName, id.ContainerID}
	}
	for _, c := range cands {
		if c != "" && c != "." && c != "/" {
			return c
		}
	}
	return "unnamed-workload"
}

func (b *FingerprintBuilder) metadata() policy.Metadata {
	id := b.id
	typ := id.Type
	if typ != policy.TypeLinuxService {
		typ = policy.TypeContainer
	}
	m := policy.Metadata{Name: b.workloadName(), Type: typ, UID: b.uid(), Version: b.version}
	setIdentityMetadata(&m, id)
	if !b.first.IsZero() {
		m.FirstTimestamp = unixSeconds(b.first)
		m.LatestTimestamp = unixSeconds(b.latest)
	}
	return m
}

// setIdentityMetadata writes workload identity id into the metadata of a
// document about it (a fingerprint, a deviation): its node, image,
// container, pod, namespace with its labels, and service.
func setIdentityMetadata(m *policy.Metadata, id policy.Identity) {
	m.Hostname = id.Hostname
	m.Image, m.ImageID = id.Image, id.ImageID
	m.ContainerName, m.ContainerID = id.ContainerName, id.ContainerID
	m.PodName, m.PodUID, m.PodLabels = id.PodName, id.PodUID, maps.Clone(id.PodLabels)
	m.Namespace = id.Namespace
	if id.Namespace != "" {
		m.NamespaceLabels = policy.NamespaceLabels(id)
	}
	m.ServiceName, m.Cgroup = id.ServiceName, id.ServiceCgroup
}

// uid identifies the workload instance: a hash of its identity, the same
// for every version of its fingerprint.
func (b *FingerprintBuilder) uid() string {
	id := b.id
	h := sha256.New()
	for _, s := range []string{id.Type, id.Hostname, id.ContainerID, id.PodUID, id.ContainerName, id.Image, id.ImageID, id.ServiceCgroup, id.ServiceName} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return "fprint:" + hex.EncodeToString(h.Sum(nil)[:12])
}

// selectors are the selectors a policy for this workload would use:
// image (and image ID) for a container, or its container name when it has
// no image; its namespace and pod labels; cgroup and unit for a service.
func (b *FingerprintBuilder) selectors() policy.Spec {
	id := b.id
	var s policy.Spec
	if id.Type == policy.TypeLinuxService {
		s.ServiceSelector = &policy.ServiceSelector{Cgroup: id.ServiceCgroup, Name: id.ServiceName}
		if s.ServiceSelector.Cgroup == "" && s.ServiceSelector.Name == "" {
			s.ServiceSelector.Name = b.workloadName()
		}
		return s
	}
	cs := &policy.ContainerSelector{Image: id.Image, ImageID: id.ImageID}
	if cs.Image == "" {
		cs.ContainerName = id.ContainerName
		if cs.ContainerName == "" {
			cs.ContainerID = id.ContainerID
		}
		if cs.ContainerName == "" && cs.ContainerID == "" {
			cs.ContainerName = b.workloadName()
		}
	}
	s.ContainerSelector = cs
	if id.Namespace != "" {
		s.NamespaceSelector = &policy.LabelSelector{MatchLabels: map[string]string{policy.NamespaceNameLabel: id.Namespace}}
	}
	if len(id.PodLabels) > 0 {
		s.PodSelector = &policy.LabelSelector{MatchLabels: maps.Clone(id.PodLabels)}
	}
	return s
}

// processTree builds the forest: each node under the node of its parent
// key, roots (and nodes whose parent was not seen) at the top, siblings in
// the order they were first seen.
func (b *FingerprintBuilder) processTree() []policy.ProcessNode {
	children := map[*fpNode][]*fpNode{}
	var roots []*fpNode
	for _, n := range b.nodes {
		p := b.byKey[n.parentKey]
		if n.parentKey == 0 || p == nil || b.descends(p, n) {
			roots = append(roots, n)
			continue
		}
		children[p] = append(children[p], n)
	}
	var build func(ns []*fpNode) []policy.ProcessNode
	build = func(ns []*fpNode) []policy.ProcessNode {
		out := make([]policy.ProcessNode, 0, len(ns))
		for _, n := range ns {
			pn := policy.ProcessNode{
				Name:  n.name,
				Exe:   []string{n.exe},
				Euser: slices.Clone(n.eusers),
				ID:    n.id,
			}
			if ls := b.listens[n.key]; len(ls) > 0 && b.byKey[n.key] == n {
				pn.ListeningSockets = slices.Clone(ls)
				slices.SortFunc(pn.ListeningSockets, comparePorts)
			}
			if kids := children[n]; len(kids) > 0 {
				pn.Children = build(kids)
			}
			out = append(out, pn)
		}
		return out
	}
	return build(roots)
}

// descends reports whether p is n or below n when parents are followed by
// key: placing n under p would close a cycle (only possible when node keys
// collide), so n becomes a root instead.
func (b *FingerprintBuilder) descends(p, n *fpNode) bool {
	for i := 0; p != nil && i <= len(b.nodes); i++ {
		if p == n {
			return true
		}
		if p.parentKey == 0 {
			return false
		}
		p = b.byKey[p.parentKey]
	}
	return p != nil
}

// rules turns the connections of one direction into network rules: one
// per port, protocol and set of processes, listing every peer with exactly
// that port, protocol and set (names first, then addresses), sorted by
// port, protocol and processes.
func (b *FingerprintBuilder) rules(ingress bool) []policy.NetworkRule {
	type group struct {
		port  policy.Port
		procs string // process ids joined by ","; "" for any process
	}
	peers := map[group][]fpConn{}
	for c, p := range b.conns {
		if c.ingress != ingress {
			continue
		}
		g := group{port: policy.Port{Port: int(c.port), Protocol: c.proto}}
		if !p.anyProcess {
			var ids []string
			for _, k := range p.keys {
				n := b.byKey[k]
				if n == nil {
					ids = nil // a process of no known node: any process
					break
				}
				if !slices.Contains(ids, n.id) {
					ids = append(ids, n.id)
				}
			}
			slices.Sort(ids)
			g.procs = strings.Join(ids, ",")
		}
		peers[g] = append(peers[g], c)
	}
	groups := make([]group, 0, len(peers))
	for g := range peers {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(x, y group) int {
		return cmp.Or(comparePorts(x.port, y.port), cmp.Compare(x.procs, y.procs))
	})
	out := make([]policy.NetworkRule, 0, len(groups))
	for _, g := range groups {
		conns := peers[g]
		slices.SortFunc(conns, func(x, y fpConn) int {
			return cmp.Or(cmp.Compare(x.peer.BitLen(), y.peer.BitLen()), x.peer.Compare(y.peer), cmp.Compare(x.name, y.name))
		})
		r := policy.NetworkRule{Ports: []policy.Port{g.port}}
		if g.procs != "" {
			r.Processes = strings.Split(g.procs, ",")
		}
		for _, c := range conns {
			peer := c.policyPeer()
			if ingress {
				r.From = append(r.From, peer)
			} else {
				r.To = append(r.To, peer)
			}
		}
		out = append(out, r)
	}
	return out
}

func comparePorts(x, y policy.Port) int {
	return cmp.Or(cmp.Compare(x.Port, y.Port), cmp.Compare(x.Protocol, y.Protocol))
}

// policyPeer is the peer of the connection: its name, else exactly its
// address (a /32 or /128).
func (c fpConn) policyPeer() policy.Peer {
	if c.name != "" {
		return policy.Peer{DNSSelector: []string{c.name}}
	}
	return policy.Peer{IPBlock: &policy.IPBlock{CIDR: netip.PrefixFrom(c.peer, c.peer.BitLen()).String()}}
}

// unixSeconds is t in seconds since the epoch, as documents write time.
func unixSeconds(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}
