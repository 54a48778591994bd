package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Diff is what one policy allows beyond another, typically what a merge
// added: new process nodes (with their parent), existing nodes that gained
// exes, eusers, listening sockets or a wider name, and network peers that
// were not allowed before. It marshals to YAML and JSON.
type Diff struct {
	Processes        []AddedProcess   `yaml:"processes,omitempty" json:"processes,omitempty"`
	ChangedProcesses []ChangedProcess `yaml:"changedProcesses,omitempty" json:"changedProcesses,omitempty"`
	Ingress          []AddedRule      `yaml:"ingress,omitempty" json:"ingress,omitempty"`
	Egress           []AddedRule      `yaml:"egress,omitempty" json:"egress,omitempty"`
}

// AddedProcess is a new process node, listed without its children (which
// are listed on their own, naming it as Parent). Parent is empty for a new
// root node. Euser is the node's effective euser (inherited when the node
// lists none).
type AddedProcess struct {
	ID               string   `yaml:"id" json:"id"`
	Parent           string   `yaml:"parent,omitempty" json:"parent,omitempty"`
	Name             string   `yaml:"name" json:"name"`
	Exe              []string `yaml:"exe,omitempty" json:"exe,omitempty"`
	Euser            []string `yaml:"euser,omitempty" json:"euser,omitempty"`
	ListeningSockets []Port   `yaml:"listeningSockets,omitempty" json:"listeningSockets,omitempty"`
}

// ChangedProcess is an existing process node that allows more: the exes,
// eusers and listening sockets it gained and, if its name was widened,
// the new name.
type ChangedProcess struct {
	ID               string   `yaml:"id" json:"id"`
	Name             string   `yaml:"name,omitempty" json:"name,omitempty"`
	Exe              []string `yaml:"exe,omitempty" json:"exe,omitempty"`
	Euser            []string `yaml:"euser,omitempty" json:"euser,omitempty"`
	ListeningSockets []Port   `yaml:"listeningSockets,omitempty" json:"listeningSockets,omitempty"`
}

// AddedRule is a set of newly allowed peers (one DNS name or address block
// each) on Ports for Processes (empty: any process).
type AddedRule struct {
	Peers     []Peer   `yaml:"peers,omitempty" json:"peers,omitempty"`
	Ports     []Port   `yaml:"ports" json:"ports"`
	Processes []string `yaml:"processes,omitempty" json:"processes,omitempty"`
}

// Empty reports whether the diff lists nothing.
func (d Diff) Empty() bool {
	return len(d.Processes) == 0 && len(d.ChangedProcesses) == 0 && len(d.Ingress) == 0 && len(d.Egress) == 0
}

// DiffPolicies returns what merged allows that base does not. Process nodes
// are compared by id (merges never change existing ids); a network peer is
// new unless a base rule containing its rule's ports and processes has a
// peer containing it.
func DiffPolicies(base, merged *WorkloadPolicy) Diff {
	var d Diff
	type known struct {
		node  *ProcessNode
		euser []string
	}
	old := map[string]known{}
	var index func([]ProcessNode, []string)
	index = func(nodes []ProcessNode, parentEuser []string) {
		for i := range nodes {
			eff := effectiveEuser(&nodes[i], parentEuser)
			if nodes[i].ID != "" {
				old[nodes[i].ID] = known{&nodes[i], eff}
			}
			index(nodes[i].Children, eff)
		}
	}
	index(base.Spec.ProcessPolicy, nil)

	var walk func([]ProcessNode, string, []string)
	walk = func(nodes []ProcessNode, parent string, parentEuser []string) {
		for i := range nodes {
			n := &nodes[i]
			eff := effectiveEuser(n, parentEuser)
			o, ok := old[n.ID]
			if !ok || n.ID == "" {
				d.Processes = append(d.Processes, AddedProcess{
					ID: n.ID, Parent: parent, Name: n.Name, Exe: slices.Clone(n.Exe),
					Euser: sortedUnion(eff, nil), ListeningSockets: slices.Clone(n.ListeningSockets),
				})
			} else if c, changed := nodeChange(o.node, o.euser, n, eff); changed {
				d.ChangedProcesses = append(d.ChangedProcesses, c)
			}
			walk(n.Children, n.ID, eff)
		}
	}
	walk(merged.Spec.ProcessPolicy, "", nil)

	var baseIn, baseOut, newIn, newOut []NetworkRule
	if np := base.Spec.NetworkPolicy; np != nil {
		baseIn, baseOut = np.Ingress, np.Egress
	}
	if np := merged.Spec.NetworkPolicy; np != nil {
		newIn, newOut = np.Ingress, np.Egress
	}
	d.Ingress = addedRules(baseIn, newIn, true)
	d.Egress = addedRules(baseOut, newOut, false)
	return d
}

// nodeChange lists what node n allows beyond the base node o with the same
// id; eusers are compared in effect (own or inherited).
func nodeChange(o *ProcessNode, oEuser []string, n *ProcessNode, nEuser []string) (ChangedProcess, bool) {
	c := ChangedProcess{ID: n.ID}
	if n.Name != o.Name && !globMatch(o.Name, n.Name) {
		c.Name = n.Name
	}
	for _, e := range n.Exe {
		if !exeCovered(o.Exe, e) {
			c.Exe = append(c.Exe, e)
		}
	}
	for _, u := range sortedUnion(nEuser, nil) {
		if len(oEuser) > 0 && !slices.Contains(oEuser, u) { // none allows any
			c.Euser = append(c.Euser, u)
		}
	}
	for _, s := range n.ListeningSockets {
		if !portCovered(o.ListeningSockets, s) {
			c.ListeningSockets = append(c.ListeningSockets, s)
		}
	}
	return c, c.Name != "" || len(c.Exe) > 0 || len(c.Euser) > 0 || len(c.ListeningSockets) > 0
}

// addedRules lists the peers of the rules in merged that no rule of base
// allows.
func addedRules(base, merged []NetworkRule, ingress bool) []AddedRule {
	var out []AddedRule
	for _, r := range merged {
		r = remapRule(r, nil)
		peers := splitPeers(*rulePeers(&r, ingress))
		var fresh []Peer
		if len(peers) == 0 {
			if !slices.ContainsFunc(base, func(a NetworkRule) bool {
				return len(*rulePeers(&a, ingress)) == 0 && ruleContains(&a, &r)
			}) {
				out = append(out, AddedRule{Ports: r.Ports, Processes: r.Processes})
			}
			continue
		}
		for _, q := range peers {
			if !peerAllowed(base, &r, q, ingress) {
				fresh = append(fresh, q)
			}
		}
		if len(fresh) > 0 {
			out = append(out, AddedRule{Peers: addPeers(nil, fresh), Ports: r.Ports, Processes: r.Processes})
		}
	}
	return out
}

// String renders the diff for a person, one line per change, or
// "no changes".
func (d Diff) String() string {
	if d.Empty() {
		return "no changes\n"
	}
	var b strings.Builder
	for _, p := range d.Processes {
		fmt.Fprintf(&b, "+ process %s (%s", p.ID, strings.Join(p.Exe, ", "))
		if len(p.Exe) == 0 {
			fmt.Fprintf(&b, "name %s", p.Name)
		}
		if len(p.Euser) > 0 {
			fmt.Fprintf(&b, ", euser %s", strings.Join(p.Euser, ", "))
		}
		if len(p.ListeningSockets) > 0 {
			fmt.Fprintf(&b, ", listening %s", formatPorts(p.ListeningSockets))
		}
		b.WriteString(")")
		if p.Parent != "" {
			fmt.Fprintf(&b, " under %s", p.Parent)
		} else {
			b.WriteString(" at the top level")
		}
		b.WriteString("\n")
	}
	for _, c := range d.ChangedProcesses {
		var parts []string
		if c.Name != "" {
			parts = append(parts, "name now "+c.Name)
		}
		for _, e := range c.Exe {
			parts = append(parts, "+ exe "+e)
		}
		for _, u := range c.Euser {
			parts = append(parts, "+ euser "+u)
		}
		if len(c.ListeningSockets) > 0 {
			parts = append(parts, "+ listening "+formatPorts(c.ListeningSockets))
		}
		fmt.Fprintf(&b, "~ process %s: %s\n", c.ID, strings.Join(parts, ", "))
	}
	writeRules := func(rules []AddedRule, dir, prep string) {
		for _, r := range rules {
			peers := "any peer"
			if len(r.Peers) > 0 {
				names := make([]string, len(r.Peers))
				for i, p := range r.Peers {
					names[i] = formatPeer(p)
				}
				peers = strings.Join(names, ", ")
			}
			by := "any process"
			if len(r.Processes) > 0 {
				by = strings.Join(r.Processes, ", ")
			}
			fmt.Fprintf(&b, "+ %s %s %s on %s by %s\n", dir, prep, peers, formatPorts(r.Ports), by)
		}
	}
	writeRules(d.Ingress, "ingress", "from")
	writeRules(d.Egress, "egress", "to")
	return b.String()
}

// formatPorts writes ports as "443/TCP, 8000-8080/UDP".
func formatPorts(ports []Port) string {
	if len(ports) == 0 {
		return "no ports"
	}
	out := make([]string, len(ports))
	for i, p := range ports {
		s := strconv.Itoa(p.Port)
		if portEnd(p) != p.Port {
			s += "-" + strconv.Itoa(portEnd(p))
		}
		out[i] = s + "/" + p.Protocol
	}
	return strings.Join(out, ", ")
}

// formatPeer writes a split peer: a DNS name, or a CIDR with its excepts.
func formatPeer(p Peer) string {
	if p.IPBlock != nil {
		s := p.IPBlock.CIDR
		if len(p.IPBlock.Except) > 0 {
			s += " except " + strings.Join(p.IPBlock.Except, " ")
		}
		return s
	}
	return strings.Join(p.DNSSelector, " ")
}
