package policy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// CreateOptions control PolicyFromFingerprints.
type CreateOptions struct {
	// Name is the policy's metadata.name; empty derives it from the
	// fingerprints' image (containers) or service (linux services).
	Name string
	// Mode is ModeAudit (the default when empty) or ModeEnforce.
	Mode string
	// IncludeImageID keeps containerSelector.imageID when every fingerprint
	// has the same one; by default it is left out so that a rebuilt image
	// with the same tag stays selected.
	IncludeImageID bool
}

// minWildcardLen is the shortest common substring that may generalise two
// different names into one glob.
const minWildcardLen = 3

// PolicyFromFingerprints builds one policy from the fingerprints of every
// instance of a workload, following Spyderbat's create: the first
// fingerprint is the base and the others are merged into it symmetrically,
// so the policy allows the union of what every instance did.
//
// Process nodes that match (same name by glob either way, or generalised to
// a common "*sub*" glob of at least three characters; every exe of one
// matched by the other's, exactly, by glob or by base name) are merged:
// exes, eusers and listening sockets are unioned; unmatched subtrees are
// appended under fresh ids; a listening socket range replaces the ranges it
// contains. Network rules are merged as Merge does. Selectors are merged: image and containerName by glob or common wildcard,
// imageID, containerID and cgroup kept only when all are equal (imageID only
// with opts.IncludeImageID), matchLabels intersected, hostnames unioned, and
// empty selectors removed. The policy is enabled, in opts.Mode (audit by
// default: a new policy should not block until a person has read it), with
// the default response (a high-severity red flag).
//
// Mixing container and linux-service fingerprints is an error, and so is a
// set of container fingerprints of different image repositories.
func PolicyFromFingerprints(fps []*Fingerprint, opts CreateOptions) (*WorkloadPolicy, error) {
	if len(fps) == 0 {
		return nil, fmt.Errorf("create policy: no fingerprints")
	}
	mode := opts.Mode
	if mode == "" {
		mode = ModeAudit
	}
	if mode != ModeAudit && mode != ModeEnforce {
		return nil, fmt.Errorf("create policy: mode %q is neither %s nor %s", mode, ModeAudit, ModeEnforce)
	}
	typ := ""
	for i, fp := range fps {
		if fp == nil {
			return nil, fmt.Errorf("create policy: fingerprint %d is missing", i+1)
		}
		t := fingerprintType(fp)
		if t == "" {
			return nil, fmt.Errorf("create policy: fingerprint %s: unknown workload type %q", fingerprintName(fp, i), fp.Metadata.Type)
		}
		if typ == "" {
			typ = t
		} else if t != typ {
			return nil, fmt.Errorf("create policy: fingerprint %s is of type %s, but %s is of type %s; a policy covers one type",
				fingerprintName(fp, i), t, fingerprintName(fps[0], 0), typ)
		}
	}
	enabled := true
	p := &WorkloadPolicy{
		APIVersion: APIVersionBulwark,
		Kind:       KindWorkloadPolicy,
		Metadata:   Metadata{Type: typ},
		Spec: Spec{
			Mode:          mode,
			Enabled:       &enabled,
			NetworkPolicy: &NetworkPolicy{Ingress: []NetworkRule{}, Egress: []NetworkRule{}},
			Response:      DefaultResponse(),
		},
	}
	base, err := deepCopy(&fps[0].Spec)
	if err != nil {
		return nil, fmt.Errorf("create policy: %w", err)
	}
	p.Spec.ContainerSelector = base.ContainerSelector
	p.Spec.ServiceSelector = base.ServiceSelector
	p.Spec.MachineSelector = base.MachineSelector
	p.Spec.PodSelector = base.PodSelector
	p.Spec.NamespaceSelector = base.NamespaceSelector
	m := newMerger(true, p)
	for i, fp := range fps {
		if err := m.mergeSpec(&fp.Spec); err != nil {
			return nil, fmt.Errorf("create policy: fingerprint %s: %w", fingerprintName(fp, i), err)
		}
		if i > 0 {
			if err := mergeSelectors(&p.Spec, &fp.Spec); err != nil {
				return nil, fmt.Errorf("create policy: fingerprint %s: %w", fingerprintName(fp, i), err)
			}
		}
	}
	if !opts.IncludeImageID && p.Spec.ContainerSelector != nil {
		p.Spec.ContainerSelector.ImageID = ""
	}
	dropEmptySelectors(&p.Spec)
	switch {
	case typ == TypeContainer && p.Spec.ContainerSelector == nil:
		return nil, fmt.Errorf("create policy: the fingerprints have no container selector in common")
	case typ == TypeLinuxService && p.Spec.ServiceSelector == nil:
		return nil, fmt.Errorf("create policy: the fingerprints have no service selector in common")
	}
	p.Metadata.Name = opts.Name
	if p.Metadata.Name == "" {
		p.Metadata.Name = derivedName(p, fps[0])
	}
	if p.Metadata.Name == "" {
		return nil, fmt.Errorf("create policy: cannot derive a name from the fingerprints; give one")
	}
	return p, nil
}

// DefaultResponse returns the response of a new policy: a high-severity red
// flag for every deviation, no other actions.
func DefaultResponse() *Response {
	return &Response{
		Default: []Action{{MakeRedFlag: &FlagAction{Severity: "high"}}},
		Actions: []Action{},
	}
}

// fingerprintType returns a fingerprint's workload type, from its metadata
// or, when absent, from its selectors.
func fingerprintType(fp *Fingerprint) string {
	switch fp.Metadata.Type {
	case TypeContainer, TypeLinuxService:
		return fp.Metadata.Type
	case "":
		switch {
		case fp.Spec.ContainerSelector != nil && fp.Spec.ServiceSelector == nil:
			return TypeContainer
		case fp.Spec.ServiceSelector != nil && fp.Spec.ContainerSelector == nil:
			return TypeLinuxService
		}
	}
	return ""
}

// fingerprintName names the i-th fingerprint in errors.
func fingerprintName(fp *Fingerprint, i int) string {
	if fp.Metadata.Name != "" {
		return strconv.Quote(fp.Metadata.Name)
	}
	return "#" + strconv.Itoa(i+1)
}

// derivedName names a created policy after its image or service.
func derivedName(p *WorkloadPolicy, first *Fingerprint) string {
	if cs := p.Spec.ContainerSelector; cs != nil && cs.Image != "" {
		return cs.Image
	}
	if ss := p.Spec.ServiceSelector; ss != nil {
		if ss.Name != "" {
			return ss.Name
		}
		if ss.Cgroup != "" {
			return path.Base(ss.Cgroup)
		}
	}
	for _, s := range []string{first.Metadata.Image, first.Metadata.ServiceName, first.Metadata.Name} {
		if s != "" {
			return s
		}
	}
	return ""
}

// Merge folds deviations, fingerprints or other policies into a copy of base
// and returns the copy; base is not modified. The merge is add-only
// (asymmetric, as Spyderbat's update from deviations): base's metadata,
// selectors, mode, enabled, disable* options and response are kept, and
// nothing base allows is removed or renamed.
//
// A process node joins an existing node only when the existing node's name
// pattern matches its name and every one of its exes is matched by the
// existing exes (exactly, by glob or by base name); among several such
// nodes, one that already allows the node, its subtree and its connections
// is preferred, else the first. The node then adds the exes no existing
// glob covers, its eusers and the listening sockets no existing range
// contains, and its children are merged the same way. Other nodes are
// appended with fresh ids ("name_N", N one more than the highest N in use
// for the name); existing ids never change. A deviation's
// {policyNode: {id, children}} entry grafts the children under the
// existing node id. Network rules are merged as described at mergeRules,
// and the processes of incoming rules are renamed to the ids their nodes
// got.
func Merge(base *WorkloadPolicy, with ...Document) (*WorkloadPolicy, error) {
	if base == nil {
		return nil, fmt.Errorf("merge: no policy")
	}
	out, err := deepCopy(base)
	if err != nil {
		return nil, fmt.Errorf("merge into policy %q: %w", base.Metadata.Name, err)
	}
	m := newMerger(false, out)
	for i, d := range with {
		what, typ, spec := documentSpec(d)
		if spec == nil {
			return nil, fmt.Errorf("merge into policy %q: document %d (%s): only fingerprints, deviations and policies can be merged",
				base.Metadata.Name, i+1, d.Kind)
		}
		if typ != "" && out.Metadata.Type != "" && typ != out.Metadata.Type {
			return nil, fmt.Errorf("merge into policy %q: %s is of type %s, the policy of type %s",
				base.Metadata.Name, what, typ, out.Metadata.Type)
		}
		if err := m.mergeSpec(spec); err != nil {
			return nil, fmt.Errorf("merge %s into policy %q: %w", what, base.Metadata.Name, err)
		}
	}
	if out.Spec.NetworkPolicy == nil {
		out.Spec.NetworkPolicy = &NetworkPolicy{}
	}
	if out.Spec.NetworkPolicy.Ingress == nil {
		out.Spec.NetworkPolicy.Ingress = []NetworkRule{}
	}
	if out.Spec.NetworkPolicy.Egress == nil {
		out.Spec.NetworkPolicy.Egress = []NetworkRule{}
	}
	return out, nil
}

// documentSpec returns a description, the workload type and the spec of a
// mergeable document, or a nil spec.
func documentSpec(d Document) (what, typ string, spec *Spec) {
	switch {
	case d.Deviation != nil:
		return describeDoc("deviation", d.Deviation.Metadata), d.Deviation.Metadata.Type, &d.Deviation.Spec
	case d.Fingerprint != nil:
		return describeDoc("fingerprint", d.Fingerprint.Metadata), d.Fingerprint.Metadata.Type, &d.Fingerprint.Spec
	case d.Policy != nil:
		return describeDoc("policy", d.Policy.Metadata), d.Policy.Metadata.Type, &d.Policy.Spec
	}
	return "", "", nil
}

func describeDoc(kind string, md Metadata) string {
	switch {
	case md.Name != "":
		return kind + " " + strconv.Quote(md.Name)
	case md.UID != "":
		return kind + " " + md.UID
	}
	return kind
}

// Covers reports whether merging d into p would change nothing: everything
// the deviation records is already allowed (Spyderbat calls such a
// deviation irrelevant). A deviation that cannot be merged (its policyNode
// names no node of p) is not covered, and the error says why.
func Covers(p *WorkloadPolicy, d *Deviation) (bool, error) {
	merged, err := Merge(p, Document{Deviation: d})
	if err != nil {
		return false, err
	}
	return DiffPolicies(p, merged).Empty(), nil
}

// deepCopy returns an independent copy of v.
func deepCopy[T any](v *T) (*T, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	return out, nil
}

// merger folds specs into one policy. Symmetric merges (creating a policy
// from fingerprints) widen node names and match in both directions;
// asymmetric ones (updating a policy) only add.
type merger struct {
	symmetric bool
	p         *WorkloadPolicy
	// used holds every node id of the result; next the next free number
	// per id prefix.
	used map[string]bool
	next map[string]int
	// in and ids are the network rules of the spec being merged and the
	// result id of each of its nodes merged so far.
	in  *NetworkPolicy
	ids map[string]string
}

func newMerger(symmetric bool, p *WorkloadPolicy) *merger {
	m := &merger{symmetric: symmetric, p: p, used: map[string]bool{}, next: map[string]int{}}
	walkNodes(p.Spec.ProcessPolicy, func(n *ProcessNode) { m.reserve(n.ID) })
	return m
}

// walkNodes calls f on every node of the forest, parents first.
func walkNodes(nodes []ProcessNode, f func(*ProcessNode)) {
	for i := range nodes {
		f(&nodes[i])
		walkNodes(nodes[i].Children, f)
	}
}

// reserve records id as in use.
func (m *merger) reserve(id string) {
	if id == "" {
		return
	}
	m.used[id] = true
	prefix, n := splitID(id)
	if n >= m.next[prefix] {
		m.next[prefix] = n + 1
	}
}

// splitID splits "name_N" into "name" and N; an id without a numeric
// suffix has N -1.
func splitID(id string) (string, int) {
	i := strings.LastIndexByte(id, '_')
	if i < 0 || i == len(id)-1 {
		return id, -1
	}
	n, err := strconv.Atoi(id[i+1:])
	if err != nil || n < 0 || strconv.Itoa(n) != id[i+1:] {
		return id, -1
	}
	return id[:i], n
}

// freshID returns an unused id for a node appended to the result:
// "name_N" with N one more than the highest number in use for that name.
func (m *merger) freshID(name string) string {
	prefix := idFromName(name)
	n := m.next[prefix]
	for m.used[prefix+"_"+strconv.Itoa(n)] {
		n++
	}
	id := prefix + "_" + strconv.Itoa(n)
	m.reserve(id)
	return id
}

// idFromName makes an id prefix from a process name (which may be a glob).
func idFromName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(isAlnum(c) || c == '-' || c == '.') {
			b[i] = '_'
		}
	}
	s := strings.Trim(string(b), "_")
	if s == "" {
		return "process"
	}
	return s
}

// mergeSpec merges a spec's process tree and network rules into the result.
func (m *merger) mergeSpec(s *Spec) error {
	ids := map[string]string{}
	m.in, m.ids = s.NetworkPolicy, ids
	var roots []ProcessNode
	for _, n := range s.ProcessPolicy {
		if n.PolicyNode == nil {
			roots = append(roots, n)
			continue
		}
		target, eff := findNode(m.p.Spec.ProcessPolicy, n.PolicyNode.ID, nil)
		if target == nil {
			return fmt.Errorf("policyNode %q: no node with that id in the policy", n.PolicyNode.ID)
		}
		ids[n.PolicyNode.ID] = target.ID
		m.mergeSiblings(&target.Children, n.PolicyNode.Children, eff, eff, ids)
	}
	m.mergeSiblings(&m.p.Spec.ProcessPolicy, roots, nil, nil, ids)
	if s.NetworkPolicy == nil {
		return nil
	}
	if m.p.Spec.NetworkPolicy == nil {
		m.p.Spec.NetworkPolicy = &NetworkPolicy{Ingress: []NetworkRule{}, Egress: []NetworkRule{}}
	}
	np := m.p.Spec.NetworkPolicy
	np.Ingress = mergeRules(np.Ingress, s.NetworkPolicy.Ingress, true, ids)
	np.Egress = mergeRules(np.Egress, s.NetworkPolicy.Egress, false, ids)
	return nil
}

// findNode finds the node with id and returns it with its effective euser
// (its own, else inherited).
func findNode(nodes []ProcessNode, id string, parentEuser []string) (*ProcessNode, []string) {
	for i := range nodes {
		eff := effectiveEuser(&nodes[i], parentEuser)
		if nodes[i].ID == id {
			return &nodes[i], eff
		}
		if n, e := findNode(nodes[i].Children, id, eff); n != nil {
			return n, e
		}
	}
	return nil, nil
}

// effectiveEuser is a node's euser list, inherited from its parent when
// empty.
func effectiveEuser(n *ProcessNode, parent []string) []string {
	if len(n.Euser) > 0 {
		return n.Euser
	}
	return parent
}

// mergeSiblings merges the incoming sibling nodes in into *dst. dstEuser and
// inEuser are the effective eusers of the two parents; ids collects the
// id each incoming node got in the result.
func (m *merger) mergeSiblings(dst *[]ProcessNode, in []ProcessNode, dstEuser, inEuser []string, ids map[string]string) {
	for _, n := range in {
		if n.PolicyNode != nil {
			continue // grafts are only meaningful at the top of a deviation
		}
		i, name := m.findMatch(*dst, &n, dstEuser, inEuser)
		if i < 0 {
			*dst = append(*dst, m.adopt(n, dstEuser, inEuser, ids))
			continue
		}
		d := &(*dst)[i]
		if name != "" {
			d.Name = name
		}
		m.mergeNode(d, &n, dstEuser, inEuser, ids)
	}
}

// findMatch returns the index of the node of dst that n merges into, or -1,
// and in symmetric merges the name that node must take ("" to keep its
// name). Among matching nodes, one that already allows all of n's subtree
// is preferred (so that merging what is allowed changes nothing), then the
// first; in symmetric merges a node whose name must be generalised comes
// last.
func (m *merger) findMatch(dst []ProcessNode, n *ProcessNode, dstEuser, inEuser []string) (int, string) {
	first, firstName, covering := -1, "", -1
	for i := range dst {
		name, ok := m.matches(&dst[i], n)
		if !ok {
			continue
		}
		if name == "" && m.nodeCovers(&dst[i], effectiveEuser(&dst[i], dstEuser), n, effectiveEuser(n, inEuser)) {
			if m.rulesCoveredAs(n.ID, dst[i].ID) {
				return i, ""
			}
			if covering < 0 {
				covering = i
			}
		}
		if first < 0 {
			first, firstName = i, name
		}
	}
	if covering >= 0 {
		return covering, ""
	}
	if first >= 0 || !m.symmetric {
		return first, firstName
	}
	for i := range dst {
		if !exesMatchEitherWay(dst[i].Exe, n.Exe) {
			continue
		}
		if w := wildcard(dst[i].Name, n.Name); w != "" {
			return i, w
		}
	}
	return -1, ""
}

// rulesCoveredAs reports whether the incoming network rules that name the
// incoming node id are already allowed if that node becomes the result node
// as. The rules' other processes count as far as their nodes are merged
// already; the rest are left out (optimistically: they are checked when
// their own nodes are placed). It lets a node that several result nodes
// cover map to the one its connections are allowed for.
func (m *merger) rulesCoveredAs(id, as string) bool {
	if m.in == nil || id == "" {
		return true
	}
	var have *NetworkPolicy
	if have = m.p.Spec.NetworkPolicy; have == nil {
		have = &NetworkPolicy{}
	}
	for _, dir := range []struct {
		in, have []NetworkRule
		ingress  bool
	}{{m.in.Ingress, have.Ingress, true}, {m.in.Egress, have.Egress, false}} {
		for _, r := range dir.in {
			if !slices.Contains(r.Processes, id) {
				continue
			}
			known := make([]string, 0, len(r.Processes))
			for _, p := range r.Processes {
				switch mapped, ok := m.ids[p]; {
				case p == id:
					known = append(known, as)
				case ok:
					known = append(known, mapped)
				}
			}
			r.Processes = known
			r = remapRule(r, nil)
			for _, q := range splitPeers(*rulePeers(&r, dir.ingress)) {
				if !peerAllowed(dir.have, &r, q, dir.ingress) {
					return false
				}
			}
		}
	}
	return true
}

// matches reports whether n may merge into d without generalising names,
// and the name d must take in a symmetric merge ("" to keep its own).
// Symmetric: names match by glob either way and the exes of one are all
// matched by the other's. Asymmetric: d's name pattern matches n's name and
// d's exes match all of n's.
func (m *merger) matches(d, n *ProcessNode) (string, bool) {
	if !m.symmetric {
		return "", globMatch(d.Name, n.Name) && allExesMatched(d.Exe, n.Exe)
	}
	if !exesMatchEitherWay(d.Exe, n.Exe) {
		return "", false
	}
	if globMatch(d.Name, n.Name) {
		return "", true
	}
	if globMatch(n.Name, d.Name) {
		return n.Name, true
	}
	return "", false
}

// nodeCovers reports whether merging n into d would change nothing: d
// allows every exe, euser and listening socket of n, and each of n's
// children is covered by a matching child of d. dEuser and nEuser are the
// nodes' effective eusers.
func (m *merger) nodeCovers(d *ProcessNode, dEuser []string, n *ProcessNode, nEuser []string) bool {
	for _, e := range n.Exe {
		if !exeCovered(d.Exe, e) {
			return false
		}
	}
	if len(dEuser) > 0 {
		for _, u := range nEuser {
			if !slices.Contains(dEuser, u) {
				return false
			}
		}
	}
	for _, s := range n.ListeningSockets {
		if !portCovered(d.ListeningSockets, s) {
			return false
		}
	}
	for i := range n.Children {
		c := &n.Children[i]
		if c.PolicyNode != nil {
			continue
		}
		cEuser := effectiveEuser(c, nEuser)
		if !slices.ContainsFunc(d.Children, func(dc ProcessNode) bool {
			name, ok := m.matches(&dc, c)
			return ok && name == "" && m.nodeCovers(&dc, effectiveEuser(&dc, dEuser), c, cEuser)
		}) {
			return false
		}
	}
	return true
}

func exesMatchEitherWay(a, b []string) bool {
	return allExesMatched(a, b) || allExesMatched(b, a)
}

// allExesMatched reports whether every exe is matched by one of the
// patterns (exactly, by glob or by base-name glob).
func allExesMatched(patterns, exes []string) bool {
	for _, e := range exes {
		if !slices.ContainsFunc(patterns, func(p string) bool { return exeMatches(p, e) }) {
			return false
		}
	}
	return true
}

// exeCovered reports whether exe is already allowed by one of the patterns
// exactly or by glob (a base-name match allows nothing by itself).
func exeCovered(patterns []string, exe string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return p == exe || globMatch(p, exe) })
}

// mergeNode merges n into the matching result node d.
func (m *merger) mergeNode(d, n *ProcessNode, dstParentEuser, inParentEuser []string, ids map[string]string) {
	if n.ID != "" {
		ids[n.ID] = d.ID
	}
	for _, e := range n.Exe {
		if !exeCovered(d.Exe, e) {
			d.Exe = append(d.Exe, e)
		}
	}
	// An empty effective euser allows any user and needs nothing added.
	// Children that inherit d's eusers keep the old ones explicitly, so
	// that widening d widens nothing below it.
	dEff := effectiveEuser(d, dstParentEuser)
	nEff := effectiveEuser(n, inParentEuser)
	if union := sortedUnion(dEff, nEff); len(dEff) > 0 && !slices.Equal(union, sortedUnion(dEff, nil)) {
		for i := range d.Children {
			if len(d.Children[i].Euser) == 0 {
				d.Children[i].Euser = sortedUnion(dEff, nil)
			}
		}
		d.Euser = union
	}
	for _, s := range n.ListeningSockets {
		if !portCovered(d.ListeningSockets, s) {
			d.ListeningSockets = slices.DeleteFunc(d.ListeningSockets, func(o Port) bool { return portCovered([]Port{s}, o) })
			d.ListeningSockets = append(d.ListeningSockets, s)
		}
	}
	m.mergeSiblings(&d.Children, n.Children, effectiveEuser(d, dstParentEuser), nEff, ids)
}

// adopt copies an unmatched incoming subtree for appending under a parent
// whose effective euser is dstEuser, giving every node a fresh id. A root
// of the subtree that inherited its euser keeps the inherited value
// explicitly when the new parent's differs.
func (m *merger) adopt(n ProcessNode, dstEuser, inEuser []string, ids map[string]string) ProcessNode {
	out := cloneNode(n)
	if len(out.Euser) == 0 && len(inEuser) > 0 && !slices.Equal(sortedUnion(inEuser, nil), sortedUnion(dstEuser, nil)) {
		out.Euser = sortedUnion(inEuser, nil)
	}
	var assign func(*ProcessNode)
	assign = func(c *ProcessNode) {
		id := m.freshID(c.Name)
		if c.ID != "" {
			ids[c.ID] = id
		}
		c.ID = id
		c.Euser = sortedUnion(c.Euser, nil)
		for i := range c.Children {
			assign(&c.Children[i])
		}
	}
	assign(&out)
	return out
}

// cloneNode deep-copies a process node.
func cloneNode(n ProcessNode) ProcessNode {
	n.Exe = slices.Clone(n.Exe)
	n.Euser = slices.Clone(n.Euser)
	n.ListeningSockets = slices.Clone(n.ListeningSockets)
	n.PolicyNode = nil
	if n.Children != nil {
		children := make([]ProcessNode, len(n.Children))
		for i, c := range n.Children {
			children[i] = cloneNode(c)
		}
		n.Children = children
	}
	return n
}

// sortedUnion returns the sorted, de-duplicated union of a and b, or nil.
func sortedUnion(a, b []string) []string {
	if len(a)+len(b) == 0 {
		return nil
	}
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// wildcard generalises two names by their longest common substring, as
// Spyderbat's make_wildcard does: "sub*" when both start with it, "*sub"
// when both end with it, "*sub*" otherwise. It returns "" when the common
// substring is shorter than minWildcardLen.
func wildcard(a, b string) string {
	sub := longestCommonSubstring(a, b)
	if len(sub) < minWildcardLen {
		return ""
	}
	prefix := strings.HasPrefix(a, sub) && strings.HasPrefix(b, sub)
	suffix := strings.HasSuffix(a, sub) && strings.HasSuffix(b, sub)
	switch {
	case prefix && suffix:
		return sub
	case prefix:
		return sub + "*"
	case suffix:
		return "*" + sub
	}
	return "*" + sub + "*"
}

// longestCommonSubstring returns the longest string that occurs in both a
// and b; among equals, the one that occurs first in a.
func longestCommonSubstring(a, b string) string {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	best, end := 0, 0
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			if a[i-1] == b[j-1] {
				cur[j] = prev[j-1] + 1
				if cur[j] > best {
					best, end = cur[j], i
				}
			} else {
				cur[j] = 0
			}
		}
		prev, cur = cur, prev
	}
	return a[end-best : end]
}

// portEnd is the last port of a port range.
func portEnd(p Port) int {
	if p.EndPort > p.Port {
		return p.EndPort
	}
	return p.Port
}

// portCovered reports whether one of the ranges contains all of p.
func portCovered(ranges []Port, p Port) bool {
	return slices.ContainsFunc(ranges, func(r Port) bool {
		return strings.EqualFold(r.Protocol, p.Protocol) && r.Port <= p.Port && portEnd(p) <= portEnd(r)
	})
}

// mergeRules merges incoming network rules into dst and returns the result.
// Incoming rules' processes are first renamed through ids.
//
// An incoming rule adds only what is not already allowed: a peer is
// already allowed when a rule whose port ranges contain all of the
// incoming rule's ranges and whose processes include all of its processes
// (no processes meaning any) has a peer containing it: a CIDR inside the
// other's CIDR and outside its excepts (unless the incoming peer excepts
// them too), or a DNS name matched by the other's glob. The remaining peers
// join the rule with exactly the same ports and processes if there is one,
// else they form a new rule appended at the end. Peers of a changed rule are
// de-duplicated by containment, never aggregated into wider CIDRs, and
// ordered DNS names first, then IPv4, then IPv6, one name per dnsSelector.
//
// Bulwark deliberately differs from spyctl here: spyctl folds the peers of
// a single-port rule into any single-port rule whose port range contains it,
// which can grant a peer ports or processes it was never seen with;
// Bulwark only folds peers into a rule with the same ports and processes.
func mergeRules(dst, in []NetworkRule, ingress bool, ids map[string]string) []NetworkRule {
	for _, r := range in {
		r = remapRule(r, ids)
		peers := splitPeers(*rulePeers(&r, ingress))
		var fresh []Peer
		if len(peers) == 0 {
			if !slices.ContainsFunc(dst, func(a NetworkRule) bool {
				return len(*rulePeers(&a, ingress)) == 0 && ruleContains(&a, &r)
			}) {
				dst = append(dst, r)
			}
			continue
		}
		for _, q := range peers {
			if !peerAllowed(dst, &r, q, ingress) {
				fresh = append(fresh, q)
			}
		}
		if len(fresh) == 0 {
			continue
		}
		i := slices.IndexFunc(dst, func(a NetworkRule) bool {
			return len(*rulePeers(&a, ingress)) > 0 && samePorts(a.Ports, r.Ports) && slices.Equal(sortedUnion(a.Processes, nil), r.Processes)
		})
		if i >= 0 {
			ps := rulePeers(&dst[i], ingress)
			*ps = addPeers(splitPeers(*ps), fresh)
			continue
		}
		*rulePeers(&r, ingress) = addPeers(nil, fresh)
		dst = append(dst, r)
	}
	return dst
}

// rulePeers points at a rule's peer list: From for ingress, To for egress.
func rulePeers(r *NetworkRule, ingress bool) *[]Peer {
	if ingress {
		return &r.From
	}
	return &r.To
}

// remapRule copies a rule with its processes renamed through ids, sorted
// and de-duplicated.
func remapRule(r NetworkRule, ids map[string]string) NetworkRule {
	out := NetworkRule{
		From:  slices.Clone(r.From),
		To:    slices.Clone(r.To),
		Ports: slices.Clone(r.Ports),
	}
	if out.Ports == nil {
		out.Ports = []Port{}
	}
	for _, p := range r.Processes {
		if id, ok := ids[p]; ok {
			p = id
		}
		out.Processes = append(out.Processes, p)
	}
	out.Processes = sortedUnion(out.Processes, nil)
	return out
}

// ruleContains reports whether rule a allows every port and process of b.
func ruleContains(a, b *NetworkRule) bool {
	for _, p := range b.Ports {
		if !portCovered(a.Ports, p) {
			return false
		}
	}
	if len(a.Processes) == 0 {
		return true
	}
	if len(b.Processes) == 0 {
		return false
	}
	for _, id := range b.Processes {
		if !slices.Contains(a.Processes, id) {
			return false
		}
	}
	return true
}

// peerAllowed reports whether some rule of rules containing r's ports and
// processes has a peer containing q.
func peerAllowed(rules []NetworkRule, r *NetworkRule, q Peer, ingress bool) bool {
	for i := range rules {
		a := &rules[i]
		if !ruleContains(a, r) {
			continue
		}
		for _, p := range *rulePeers(a, ingress) {
			for _, s := range splitPeers([]Peer{p}) {
				if peerCovers(s, q) {
					return true
				}
			}
		}
	}
	return false
}

// samePorts reports whether two port lists hold the same ranges.
func samePorts(a, b []Port) bool {
	key := func(ps []Port) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = strings.ToUpper(p.Protocol) + "/" + strconv.Itoa(p.Port) + "-" + strconv.Itoa(portEnd(p))
		}
		return sortedUnion(out, nil)
	}
	return slices.Equal(key(a), key(b))
}

// splitPeers returns the peers with one name per dnsSelector and an ipBlock
// apart from any names, copied.
func splitPeers(peers []Peer) []Peer {
	var out []Peer
	for _, p := range peers {
		if p.IPBlock != nil {
			out = append(out, Peer{IPBlock: &IPBlock{CIDR: p.IPBlock.CIDR, Except: slices.Clone(p.IPBlock.Except)}})
		}
		for _, name := range p.DNSSelector {
			out = append(out, Peer{DNSSelector: []string{name}})
		}
		if p.IPBlock == nil && len(p.DNSSelector) == 0 {
			out = append(out, Peer{})
		}
	}
	return out
}

// addPeers adds split peers to split peers: a peer contained in one already
// there is dropped, one containing peers already there replaces them. The
// result is sorted.
func addPeers(have, add []Peer) []Peer {
	for _, q := range add {
		if slices.ContainsFunc(have, func(p Peer) bool { return peerCovers(p, q) }) {
			continue
		}
		have = slices.DeleteFunc(have, func(p Peer) bool { return peerCovers(q, p) })
		have = append(have, q)
	}
	sortPeers(have)
	return have
}

// peerCovers reports whether split peer a contains split peer b.
func peerCovers(a, b Peer) bool {
	switch {
	case a.IPBlock != nil && b.IPBlock != nil:
		return ipBlockCovers(a.IPBlock, b.IPBlock)
	case len(a.DNSSelector) == 1 && len(b.DNSSelector) == 1:
		return globMatch(strings.ToLower(a.DNSSelector[0]), strings.ToLower(b.DNSSelector[0]))
	case a.IPBlock == nil && b.IPBlock == nil && len(a.DNSSelector) == 0 && len(b.DNSSelector) == 0:
		return true
	}
	return false
}

// ipBlockCovers reports whether every address b allows, a allows too.
func ipBlockCovers(a, b *IPBlock) bool {
	pa, errA := netip.ParsePrefix(a.CIDR)
	pb, errB := netip.ParsePrefix(b.CIDR)
	if errA != nil || errB != nil {
		return a.CIDR == b.CIDR && slices.Equal(sortedUnion(a.Except, nil), sortedUnion(b.Except, nil))
	}
	pa, pb = pa.Masked(), pb.Masked()
	if pa.Addr().Is4() != pb.Addr().Is4() || pa.Bits() > pb.Bits() || !pa.Contains(pb.Addr()) {
		return false
	}
	for _, e := range a.Except {
		pe, err := netip.ParsePrefix(e)
		if err != nil {
			return false
		}
		pe = pe.Masked()
		if !pe.Overlaps(pb) {
			continue
		}
		if pe.Bits() <= pb.Bits() {
			return false // a excepts all of b
		}
		if !slices.ContainsFunc(b.Except, func(be string) bool {
			pbe, err := netip.ParsePrefix(be)
			return err == nil && pbe.Masked().Bits() <= pe.Bits() && pbe.Masked().Contains(pe.Addr())
		}) {
			return false
		}
	}
	return true
}

// sortPeers orders split peers: DNS names, then IPv4 blocks, then IPv6
// blocks (by address, then prefix length), then anything unparsable.
func sortPeers(peers []Peer) {
	type key struct {
		group int
		addr  netip.Addr
		bits  int
		text  string
	}
	keyOf := func(p Peer) key {
		switch {
		case p.IPBlock != nil:
			text := p.IPBlock.CIDR + " " + strings.Join(p.IPBlock.Except, ",")
			pfx, err := netip.ParsePrefix(p.IPBlock.CIDR)
			if err != nil {
				return key{group: 3, text: text}
			}
			g := 1
			if !pfx.Addr().Is4() {
				g = 2
			}
			return key{group: g, addr: pfx.Masked().Addr(), bits: pfx.Bits(), text: text}
		case len(p.DNSSelector) > 0:
			return key{group: 0, text: strings.ToLower(strings.Join(p.DNSSelector, ","))}
		}
		return key{group: 4}
	}
	sort.SliceStable(peers, func(i, j int) bool {
		a, b := keyOf(peers[i]), keyOf(peers[j])
		if a.group != b.group {
			return a.group < b.group
		}
		if c := a.addr.Compare(b.addr); c != 0 {
			return c < 0
		}
		if a.bits != b.bits {
			return a.bits < b.bits
		}
		return a.text < b.text
	})
}

// mergeSelectors merges the selectors of another fingerprint into s for a
// symmetric create (see PolicyFromFingerprints).
func mergeSelectors(s, o *Spec) error {
	if s.ContainerSelector != nil {
		cs, oc := s.ContainerSelector, o.ContainerSelector
		if oc == nil {
			oc = &ContainerSelector{}
		}
		if cs.Image != "" {
			img, err := mergeImages(cs.Image, oc.Image)
			if err != nil {
				return err
			}
			cs.Image = img
		}
		cs.ContainerName = mergeGlob(cs.ContainerName, oc.ContainerName)
		cs.ImageID = keepIfEqual(cs.ImageID, oc.ImageID)
		cs.ContainerID = keepIfEqual(cs.ContainerID, oc.ContainerID)
		cs.MatchFields = intersectLabels(cs.MatchFields, oc.MatchFields)
		cs.MatchFieldsExpressions = intersectRequirements(cs.MatchFieldsExpressions, oc.MatchFieldsExpressions)
	}
	if s.ServiceSelector != nil {
		ss, os := s.ServiceSelector, o.ServiceSelector
		if os == nil {
			os = &ServiceSelector{}
		}
		ss.Cgroup = keepIfEqual(ss.Cgroup, os.Cgroup)
		ss.Name = mergeGlob(ss.Name, os.Name)
		ss.MatchFields = intersectLabels(ss.MatchFields, os.MatchFields)
		ss.MatchFieldsExpressions = intersectRequirements(ss.MatchFieldsExpressions, os.MatchFieldsExpressions)
	}
	if s.MachineSelector != nil {
		ms, om := s.MachineSelector, o.MachineSelector
		if om == nil || (len(om.Hostname) == 0 && len(om.MachineUID) == 0) {
			// An instance on a machine the fingerprint does not name: the
			// policy cannot be limited to the machines seen.
			ms.Hostname, ms.MachineUID = nil, nil
		} else {
			ms.Hostname = unionIfBoth(ms.Hostname, om.Hostname)
			ms.MachineUID = unionIfBoth(ms.MachineUID, om.MachineUID)
		}
		var fields map[string]string
		var exprs []Requirement
		if om != nil {
			fields, exprs = om.MatchFields, om.MatchFieldsExpressions
		}
		ms.MatchFields = intersectLabels(ms.MatchFields, fields)
		ms.MatchFieldsExpressions = intersectRequirements(ms.MatchFieldsExpressions, exprs)
	}
	s.PodSelector = intersectLabelSelector(s.PodSelector, o.PodSelector)
	s.NamespaceSelector = intersectLabelSelector(s.NamespaceSelector, o.NamespaceSelector)
	return nil
}

// mergeImages merges two image selectors: the same image, the one whose
// glob matches the other, or, for two tags or digests of one repository,
// their common wildcard ("docker.io/library/nginx:1.2*"). Bulwark
// deliberately differs from spyctl, which would generalise any two images
// sharing three characters ("*io/*"): images of different repositories are
// an error.
func mergeImages(a, b string) (string, error) {
	if b == "" {
		return "", fmt.Errorf("a fingerprint has no image selector; give the image with --name and edit the selector")
	}
	switch {
	case a == b:
		return a, nil
	case isGlob(a) && imageMatches(a, b):
		return a, nil
	case isGlob(b) && imageMatches(b, a):
		return b, nil
	}
	na, errA := NormalizeImage(a)
	nb, errB := NormalizeImage(b)
	if errA == nil && errB == nil {
		if na == nb {
			return na, nil
		}
		if ImageRepository(na) == ImageRepository(nb) {
			if w := wildcard(na, nb); strings.HasPrefix(w, ImageRepository(na)) {
				return w, nil
			}
		}
	}
	return "", fmt.Errorf("images %q and %q are not of one repository; create one policy per image", a, b)
}

// ImageRepository strips the tag and digest from a normalised image
// reference.
func ImageRepository(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	return ref
}

// unionIfBoth unions two machine lists; when either is empty (any machine)
// the result is empty too.
func unionIfBoth(a, b StringList) StringList {
	if len(a) == 0 || len(b) == 0 {
		return nil
	}
	return StringList(sortedUnion(a, b))
}

// mergeGlob merges two selector values: the same value, the one whose glob
// matches the other, or their common wildcard; "" when either is empty or
// they have nothing in common.
func mergeGlob(a, b string) string {
	switch {
	case a == "" || b == "":
		return ""
	case globMatch(a, b):
		return a
	case globMatch(b, a):
		return b
	}
	return wildcard(a, b)
}

func keepIfEqual(a, b string) string {
	if a == b {
		return a
	}
	return ""
}

// intersectLabels keeps the key/value pairs present in both maps.
func intersectLabels(a, b map[string]string) map[string]string {
	var out map[string]string
	for k, v := range a {
		if w, ok := b[k]; ok && w == v {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// intersectRequirements keeps the requirements present, identical, in both.
func intersectRequirements(a, b []Requirement) []Requirement {
	var out []Requirement
	for _, r := range a {
		if slices.ContainsFunc(b, func(o Requirement) bool {
			return o.Key == r.Key && o.Operator == r.Operator && slices.Equal(o.Values, r.Values)
		}) {
			out = append(out, r)
		}
	}
	return out
}

// intersectLabelSelector keeps what two label selectors share; nil when
// either is absent.
func intersectLabelSelector(a, b *LabelSelector) *LabelSelector {
	if a == nil || b == nil {
		return nil
	}
	return &LabelSelector{
		MatchLabels:      intersectLabels(a.MatchLabels, b.MatchLabels),
		MatchExpressions: intersectRequirements(a.MatchExpressions, b.MatchExpressions),
	}
}

// dropEmptySelectors removes selectors left without any criterion.
func dropEmptySelectors(s *Spec) {
	if c := s.ContainerSelector; c != nil && c.Image == "" && c.ImageID == "" && c.ContainerName == "" &&
		c.ContainerID == "" && len(c.MatchFields) == 0 && len(c.MatchFieldsExpressions) == 0 {
		s.ContainerSelector = nil
	}
	if c := s.ServiceSelector; c != nil && c.Cgroup == "" && c.Name == "" &&
		len(c.MatchFields) == 0 && len(c.MatchFieldsExpressions) == 0 {
		s.ServiceSelector = nil
	}
	if c := s.MachineSelector; c != nil && len(c.Hostname) == 0 && len(c.MachineUID) == 0 &&
		len(c.MatchFields) == 0 && len(c.MatchFieldsExpressions) == 0 {
		s.MachineSelector = nil
	}
	if c := s.PodSelector; c != nil && len(c.MatchLabels) == 0 && len(c.MatchExpressions) == 0 {
		s.PodSelector = nil
	}
	if c := s.NamespaceSelector; c != nil && len(c.MatchLabels) == 0 && len(c.MatchExpressions) == 0 {
		s.NamespaceSelector = nil
	}
}
