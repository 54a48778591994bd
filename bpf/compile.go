package bpf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/bulwarkhq/bulwark/policy"
)

// Kernel limits, mirrored from include/bulwark.h.
const (
	pathLen     = 256
	nameLen     = 16
	maxChildren = 64
	maxExe      = 8
	maxUIDs     = 8
	maxRules    = 64
	maxPorts    = 8
	maxProcs    = 8
	maxLevel    = 16

	nodeSynthetic = uint64(1) << 63
)

// Pattern kinds, workload flags and event flags from include/bulwark.h.
const (
	patExact = 1
	patGlob  = 2
	patAny   = 3
	patWild  = 4 // names only (include/glob.h)

	wlNoProcess = 1
	wlNoIngress = 2
	wlNoEgress  = 4

	evDeviation  = 1
	evBlocked    = 2
	evTruncated  = 4
	evUnresolved = 8
	evNamed      = 16

	protoTCP = 6
	protoUDP = 17
)

// Compiled is a policy translated into the kernel's tables: the process
// forest (keyed by hashes of the policy node ids, which Compiled maps back),
// the network rules per direction and the checks the policy switches off.
type Compiled struct {
	nodes   map[uint64]networkNode // node id hash (0: the roots) → node
	ids     map[uint64]string      // node id hash → policy node id
	egress  netTables
	ingress netTables
	// dns holds the dnsSelector names of the egress rules (include/dns.h).
	dns   []networkDnsPattern
	flags uint32
	// Warnings lists what the kernel cannot check and Compile left out
	// (ingress dnsSelector peers, globs the kernel cannot match).
	Warnings []string
	// Unreachable lists the process nodes, and the exes and eusers of
	// nodes, that Compile fails closed for: an euser no passwd names, a
	// glob the kernel cannot match exactly. Such a node matches no exec
	// (a deviation: reported in audit, denied in enforce); the rest of the
	// policy is armed as written.
	Unreachable []string
}

// netTables is one direction's rules and its LPM entries.
type netTables struct {
	rules []networkRule
	v4    map[netip.Prefix]uint64 // prefix → mask of rules
	v6    map[netip.Prefix]uint64
}

// NodeID returns the policy node id of a node hash carried by an event, or
// "" when the hash is not a node of this policy.
func (c *Compiled) NodeID(hash uint64) string {
	if c == nil {
		return ""
	}
	return c.ids[hash]
}

// nodeHash is the kernel's key for a policy node id: stable across
// generations, so a running process keeps its node when its policy is
// replaced by one with the same ids.
func nodeHash(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte("node:" + id))
	v := h.Sum64() &^ nodeSynthetic
	if v == 0 {
		v = 1
	}
	return v
}

// Exe classes from include/bulwark.h: what kind of file an exec maps. A
// policy names the classes other than a plain path by their spelling, the
// same the kernel reports them with (see include/exec.h):
//
//	memfd:NAME            a memfd created with NAME (memfd:* names any)
//	/path (deleted)       a file unlinked from /path
//	bind:/path            a file bind-mounted over /path (a runtime's init,
//	                      e.g. bind:/sbin/docker-init)
//
// An exe pattern matches only executables of its own class: "*" or "/usr/*"
// never match an anonymous or bind-mounted executable.
const (
	exePath    = 0
	exeMemfd   = 1
	exeDeleted = 2
	exeBind    = 3
)

// Spellings of the exe classes.
const (
	memfdPrefix   = "memfd:"
	bindPrefix    = "bind:"
	deletedSuffix = " (deleted)"
)

// exeClass is the class an exe value or a reported exe names.
func exeClass(v string) uint8 {
	switch {
	case strings.HasPrefix(v, memfdPrefix):
		return exeMemfd
	case strings.HasPrefix(v, bindPrefix):
		return exeBind
	case strings.HasSuffix(v, deletedSuffix):
		return exeDeleted
	}
	return exePath
}

// pattern is a compiled name or exe value: the strings the kernel compares
// byte for byte.
type pattern struct {
	kind   uint8
	cls    uint8 // exe class (names: 0)
	prefix string
	suffix string // globs only
}

// layout writes the prefix from the first byte of words and the suffix
// ending at its last byte, little-endian, as the kernel reads them.
func (p pattern) layout(words []uint64) {
	b := make([]byte, 8*len(words))
	copy(b, p.prefix)
	copy(b[len(b)-len(p.suffix):], p.suffix)
	for i := range words {
		words[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
}

// exe is p as a kernel exe pattern.
func (p pattern) exe() networkPattern {
	k := networkPattern{Kind: p.kind, Cls: p.cls, PrefixLen: uint16(len(p.prefix)), SuffixLen: uint16(len(p.suffix))}
	p.layout(k.Bytes[:])
	return k
}

// name is p as a kernel name pattern.
func (p pattern) name() networkNamePattern {
	k := networkNamePattern{Kind: p.kind, PrefixLen: uint16(len(p.prefix)), SuffixLen: uint16(len(p.suffix))}
	p.layout(k.Bytes[:])
	return k
}

// unlayout is the pattern behind a kernel pattern's fields.
func unlayout(kind, cls uint8, pl, sl uint16, words []uint64) pattern {
	b := make([]byte, 8*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint64(b[8*i:], w)
	}
	pl, sl = min(pl, uint16(len(b))), min(sl, uint16(len(b)))
	return pattern{kind: kind, cls: cls, prefix: string(b[:pl]), suffix: string(b[len(b)-int(sl):])}
}

// globMatch matches s against glob g of '*' and '?' step by step as
// glob.h does: a '*' is retried one byte further on each mismatch.
func globMatch(g, s string) bool {
	i, j, star, mark := 0, 0, -1, 0
	for i < len(s) {
		switch {
		case j < len(g) && g[j] == '*':
			star, mark = j, i
			j++
		case j < len(g) && (g[j] == '?' || g[j] == s[i]):
			i++
			j++
		case star >= 0:
			j = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for j < len(g) && g[j] == '*' {
		j++
	}
	return j == len(g)
}

// matches tests s, of class cls, as the kernel's match_exe and match_name
// do; max is the longest string the kernel compares.
func (p pattern) matches(s string, cls uint8, max int) bool {
	if p.cls != cls || len(p.prefix) > max || len(p.suffix) > max || len(s) > max {
		return false
	}
	switch p.kind {
	case patAny:
		return true
	case patExact:
		return s == p.prefix
	case patGlob:
		return len(p.prefix)+len(p.suffix) <= len(s) && strings.HasPrefix(s, p.prefix) && strings.HasSuffix(s, p.suffix)
	case patWild:
		return globMatch(p.prefix, s)
	}
	return false
}

// uncheckable is a value the kernel cannot test exactly: Compile fails
// closed for it (see Compiled.Unreachable) instead of widening it.
type uncheckable struct{ msg string }

func (u *uncheckable) Error() string { return u.msg }

// compilePattern turns a name or exe value into a kernel pattern: an exact
// string, "*", a glob with one '*' (a prefix and a suffix test), or, for
// names, any other glob of '*' and '?' of at most max bytes (matched by
// glob.h). A glob the kernel cannot match exactly (a '[' class, an exe glob
// of several '*' or a '?', a longer name glob) is an *uncheckable error:
// the caller fails closed for it. max is the longest string the kernel
// compares (15 for names, whose comm is cut there, 255 for paths); longer
// exact names compare their first 15 bytes. An exe's class comes from its
// spelling (exeClass).
func compilePattern(v string, max int, isName bool, field string) (pattern, error) {
	var p pattern
	if v == "" {
		return p, fmt.Errorf("%s: empty value", field)
	}
	if !isName {
		p.cls = exeClass(v)
	}
	if v == "*" {
		p.kind = patAny
		return p, nil
	}
	if strings.Contains(v, "[") {
		return p, &uncheckable{fmt.Sprintf("%s: %q: '[' classes are not matched in the kernel", field, v)}
	}
	stars := strings.Count(v, "*")
	if stars == 0 && !strings.Contains(v, "?") {
		if len(v) > max {
			if !isName {
				return p, fmt.Errorf("%s: %q is longer than %d bytes", field, v, max)
			}
			v = v[:max]
		}
		p.kind, p.prefix = patExact, v
		return p, nil
	}
	if stars == 1 && !strings.Contains(v, "?") {
		first := strings.Index(v, "*")
		pre, suf := v[:first], v[first+1:]
		if len(pre) >= max && isName {
			pre, suf = pre[:max], ""
		}
		if len(pre)+len(suf) > max {
			return p, fmt.Errorf("%s: %q is longer than %d bytes", field, v, max)
		}
		p.kind, p.prefix, p.suffix = patGlob, pre, suf
		return p, nil
	}
	if !isName {
		return p, &uncheckable{fmt.Sprintf("%s: %q: an exe glob is matched in the kernel only as one prefix and one suffix (a single '*')", field, v)}
	}
	if len(v) > max {
		return p, &uncheckable{fmt.Sprintf("%s: %q: name globs of several '*' or with '?' are matched in the kernel up to %d bytes", field, v, max)}
	}
	p.kind, p.prefix = patWild, v
	return p, nil
}

// ParsePasswd reads an /etc/passwd file into user name → uid.
func ParsePasswd(r io.Reader) (map[string]uint32, error) {
	users := map[string]uint32{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < 3 {
			return nil, fmt.Errorf("passwd line %d: want name:password:uid:..., got %q", n, line)
		}
		uid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("passwd line %d: uid %q: %w", n, f[2], err)
		}
		if _, dup := users[f[0]]; !dup {
			users[f[0]] = uint32(uid)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read passwd: %w", err)
	}
	return users, nil
}

// Compile translates spec into kernel tables. users maps user names to
// uids (the workload's /etc/passwd, see ParsePasswd, then the host's for
// names the workload lacks); an euser that is a number or "UID N" is taken
// as a uid. What the kernel cannot check exactly is failed closed, node by
// node (Compiled.Unreachable). Every limit of the kernel tables is an error
// naming the policy field that exceeds it.
func Compile(spec *policy.Spec, users map[string]uint32) (*Compiled, error) {
	c := &Compiled{nodes: map[uint64]networkNode{}, ids: map[uint64]string{}}
	roots := networkNode{}
	if err := c.addChildren(&roots, spec.ProcessPolicy, nil, "processPolicy", users); err != nil {
		return nil, err
	}
	c.nodes[0] = roots
	if spec.DisableProcesses == "all" {
		c.flags |= wlNoProcess
	} else if spec.DisableProcesses != "" {
		return nil, fmt.Errorf("disableProcesses: %q: want \"all\" or nothing", spec.DisableProcesses)
	}
	dis, err := directions("disableConnections", spec.DisableConnections)
	if err != nil {
		return nil, err
	}
	if dis[0] {
		c.flags |= wlNoEgress
	}
	if dis[1] {
		c.flags |= wlNoIngress
	}
	priv, err := directions("disablePrivateConnections", spec.DisablePrivateConnections)
	if err != nil {
		return nil, err
	}
	pub, err := directions("disablePublicConnections", spec.DisablePublicConnections)
	if err != nil {
		return nil, err
	}
	var np policy.NetworkPolicy
	if spec.NetworkPolicy != nil {
		np = *spec.NetworkPolicy
	}
	if c.egress, err = c.compileRules(np.Egress, "networkPolicy.egress", true, priv[0], pub[0]); err != nil {
		return nil, err
	}
	if c.ingress, err = c.compileRules(np.Ingress, "networkPolicy.ingress", false, priv[1], pub[1]); err != nil {
		return nil, err
	}
	return c, nil
}

// directions parses an all|egress|ingress option into [egress, ingress].
func directions(field, v string) ([2]bool, error) {
	switch v {
	case "":
		return [2]bool{}, nil
	case "all":
		return [2]bool{true, true}, nil
	case "egress":
		return [2]bool{true, false}, nil
	case "ingress":
		return [2]bool{false, true}, nil
	}
	return [2]bool{}, fmt.Errorf("%s: %q: want all, egress or ingress", field, v)
}

// addChildren compiles nodes as the children of parent; inherited is the
// parent's resolved effective uids (nil: any).
func (c *Compiled) addChildren(parent *networkNode, nodes []policy.ProcessNode, inherited []uint32, field string, users map[string]uint32) error {
	if len(nodes) > maxChildren {
		return fmt.Errorf("%s: %d nodes, the kernel checks at most %d children of one node", field, len(nodes), maxChildren)
	}
	for i, n := range nodes {
		f := fmt.Sprintf("%s[%d]", field, i)
		if n.PolicyNode != nil {
			return fmt.Errorf("%s: policyNode references belong in deviations, not policies", f)
		}
		if n.ID == "" {
			return fmt.Errorf("%s: id is required", f)
		}
		h := nodeHash(n.ID)
		if prev, dup := c.ids[h]; dup {
			return fmt.Errorf("%s: id %q is used twice (or collides with %q)", f, n.ID, prev)
		}
		c.ids[h] = n.ID
		var kn networkNode
		var closed []string // why this node can match no exec
		name := n.Name
		if name == "" {
			name = "*"
		}
		np, err := compilePattern(name, nameLen-1, true, f+".name")
		if u := (*uncheckable)(nil); errors.As(err, &u) {
			closed = append(closed, u.msg)
		} else if err != nil {
			return err
		}
		kn.Name = np.name()
		if len(n.Exe) == 0 {
			return fmt.Errorf("%s.exe: at least one exe is required", f)
		}
		if len(n.Exe) > maxExe {
			return fmt.Errorf("%s.exe: %d entries, the kernel checks at most %d", f, len(n.Exe), maxExe)
		}
		var dropped []string
		for j, e := range n.Exe {
			ep, err := compilePattern(e, pathLen-1, false, fmt.Sprintf("%s.exe[%d]", f, j))
			if u := (*uncheckable)(nil); errors.As(err, &u) {
				dropped = append(dropped, u.msg)
				continue
			} else if err != nil {
				return err
			}
			kn.Exe[kn.Nexe] = ep.exe()
			kn.Nexe++
		}
		if kn.Nexe == 0 {
			closed = append(closed, dropped...)
		} else {
			for _, d := range dropped {
				c.Unreachable = append(c.Unreachable, fmt.Sprintf("node %q: %s; this exe is not allowed", n.ID, d))
			}
		}
		uids, unknown, err := resolveEusers(n.Euser, inherited, users, f)
		if err != nil {
			return err
		}
		switch {
		case len(unknown) > 0 && len(uids) == 0:
			closed = append(closed, fmt.Sprintf("%s.euser: %s", f, strings.Join(unknown, ", ")))
		case len(unknown) > 0:
			c.Unreachable = append(c.Unreachable, fmt.Sprintf("node %q: %s.euser: %s; only the other users are allowed", n.ID, f, strings.Join(unknown, ", ")))
		}
		if len(uids) > maxUIDs {
			return fmt.Errorf("%s.euser: %d users, the kernel checks at most %d", f, len(uids), maxUIDs)
		}
		copy(kn.Uids[:], uids)
		kn.Nuids = uint32(len(uids))
		if err := c.addChildren(&kn, n.Children, uids, f+".children", users); err != nil {
			return err
		}
		if len(closed) > 0 {
			// Not linked under its parent: no exec reaches it or its
			// subtree. Its id stays known for networkPolicy processes.
			c.Unreachable = append(c.Unreachable, fmt.Sprintf("node %q and its children are unreachable: %s", n.ID, strings.Join(closed, "; ")))
			continue
		}
		c.nodes[h] = kn
		parent.Children[parent.Nchildren] = h
		parent.Nchildren++
	}
	return nil
}

// resolveEusers resolves a node's eusers to uids: a name through users, a
// number or "UID N" as that uid, "*" as any (nil). A node without eusers
// inherits its parent's. unknown lists the names nothing resolves.
func resolveEusers(eusers []string, inherited []uint32, users map[string]uint32, f string) (uids []uint32, unknown []string, err error) {
	if len(eusers) == 0 {
		return inherited, nil, nil
	}
	for j, u := range eusers {
		if u == "*" {
			return nil, nil, nil
		}
		if uid, ok := users[u]; ok {
			uids = append(uids, uid)
			continue
		}
		num := u
		if rest, ok := strings.CutPrefix(u, "UID "); ok {
			num = strings.TrimSpace(rest)
		}
		if v, perr := strconv.ParseUint(num, 10, 32); perr == nil {
			uids = append(uids, uint32(v))
			continue
		} else if num != u {
			return nil, nil, fmt.Errorf("%s.euser[%d]: %q: want UID and a number", f, j, u)
		}
		unknown = append(unknown, fmt.Sprintf("no user %q in the workload's or the host's passwd", u))
	}
	return uids, unknown, nil
}

// Private address ranges for disablePrivateConnections and
// disablePublicConnections: RFC 1918, loopback, link-local, and IPv6
// unique-local, loopback and link-local.
const privateRanges = "10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 127.0.0.0/8 169.254.0.0/16 fc00::/7 fe80::/10 ::1/128"

// block is one peer: a CIDR minus excepts, for one rule.
type block struct {
	rule   int
	cidr   netip.Prefix
	except []netip.Prefix
}

// compileRules builds one direction's tables. Synthetic rules (any port,
// any process) come after the policy's for the private/public switches.
func (c *Compiled) compileRules(rules []policy.NetworkRule, field string, egress, private, public bool) (netTables, error) {
	t := netTables{v4: map[netip.Prefix]uint64{}, v6: map[netip.Prefix]uint64{}}
	var blocks []block
	anyPort := networkRule{Nports: 1}
	anyPort.Ports[0] = networkPortRange{Lo: 0, Hi: 65535}
	for i, r := range rules {
		f := fmt.Sprintf("%s[%d]", field, i)
		var kr networkRule
		if len(r.Ports) > maxPorts {
			return t, fmt.Errorf("%s.ports: %d entries, the kernel checks at most %d", f, len(r.Ports), maxPorts)
		}
		for j, p := range r.Ports {
			pr, err := compilePort(p, fmt.Sprintf("%s.ports[%d]", f, j))
			if err != nil {
				return t, err
			}
			kr.Ports[j] = pr
		}
		kr.Nports = uint32(len(r.Ports))
		if len(r.Processes) > maxProcs {
			return t, fmt.Errorf("%s.processes: %d entries, the kernel checks at most %d", f, len(r.Processes), maxProcs)
		}
		for j, id := range r.Processes {
			h := nodeHash(id)
			if c.ids[h] != id {
				return t, fmt.Errorf("%s.processes[%d]: no process node %q in processPolicy", f, j, id)
			}
			kr.Procs[j] = h
		}
		kr.Nprocs = uint32(len(r.Processes))
		peers := r.To
		pf := ".to"
		if !egress {
			peers, pf = r.From, ".from"
		}
		for j, p := range peers {
			pfield := fmt.Sprintf("%s%s[%d]", f, pf, j)
			if len(p.DNSSelector) > 0 && !egress {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s.dnsSelector %v: sources are not matched by name; these names are not allowed", pfield, p.DNSSelector))
			}
			for k, name := range p.DNSSelector {
				if !egress {
					break
				}
				dp, err := dnsPattern(name, len(t.rules), fmt.Sprintf("%s.dnsSelector[%d]", pfield, k))
				if u := (*uncheckable)(nil); errors.As(err, &u) {
					c.Warnings = append(c.Warnings, u.msg+"; this name is not allowed")
					continue
				} else if err != nil {
					return t, err
				}
				if len(c.dns) == dnsMaxPatterns {
					return t, fmt.Errorf("%s: more than %d dnsSelector names, the kernel checks at most %d", field, dnsMaxPatterns, dnsMaxPatterns)
				}
				c.dns = append(c.dns, dp)
			}
			if p.IPBlock == nil {
				continue
			}
			b, err := parseBlock(p.IPBlock, len(t.rules), pfield+".ipBlock")
			if err != nil {
				return t, err
			}
			blocks = append(blocks, b)
		}
		t.rules = append(t.rules, kr)
	}
	addSynthetic := func(cidrs, excepts []string) {
		for _, s := range cidrs {
			b := block{rule: len(t.rules), cidr: netip.MustParsePrefix(s)}
			for _, e := range excepts {
				ep := netip.MustParsePrefix(e)
				if ep.Addr().Is4() == b.cidr.Addr().Is4() {
					b.except = append(b.except, ep)
				}
			}
			blocks = append(blocks, b)
		}
		t.rules = append(t.rules, anyPort)
	}
	if private {
		addSynthetic(strings.Fields(privateRanges), nil)
	}
	if public {
		addSynthetic([]string{"0.0.0.0/0", "::/0"}, strings.Fields(privateRanges))
	}
	if len(t.rules) > maxRules {
		return t, fmt.Errorf("%s: %d rules, the kernel checks at most %d per direction", field, len(t.rules), maxRules)
	}
	// Every CIDR and except is a prefix of the trie; each holds the rules
	// whose CIDR contains it and none of whose excepts does. The longest
	// prefix containing an address then holds exactly its rules.
	var prefixes []netip.Prefix
	for _, b := range blocks {
		prefixes = append(prefixes, b.cidr)
		prefixes = append(prefixes, b.except...)
	}
	for _, p := range prefixes {
		var mask uint64
		for _, b := range blocks {
			if !contains(b.cidr, p) {
				continue
			}
			excluded := false
			for _, e := range b.except {
				if contains(e, p) {
					excluded = true
					break
				}
			}
			if !excluded {
				mask |= 1 << b.rule
			}
		}
		if p.Addr().Is4() {
			t.v4[p] = mask
		} else {
			t.v6[p] = mask
		}
	}
	return t, nil
}

// contains reports whether prefix outer contains prefix inner.
func contains(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

func parseBlock(ib *policy.IPBlock, rule int, field string) (block, error) {
	cidr, err := parsePrefix(ib.CIDR)
	if err != nil {
		return block{}, fmt.Errorf("%s.cidr: %w", field, err)
	}
	b := block{rule: rule, cidr: cidr}
	for i, e := range ib.Except {
		ep, err := parsePrefix(e)
		if err != nil {
			return block{}, fmt.Errorf("%s.except[%d]: %w", field, i, err)
		}
		if !contains(cidr, ep) {
			return block{}, fmt.Errorf("%s.except[%d]: %s is not inside %s", field, i, ep, cidr)
		}
		b.except = append(b.except, ep)
	}
	return b, nil
}

// parsePrefix accepts a CIDR or a bare address; a v4-mapped IPv6 prefix
// becomes the IPv4 prefix, since the kernel checks such addresses as IPv4.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return p, err
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

func compilePort(p policy.Port, field string) (networkPortRange, error) {
	var r networkPortRange
	switch strings.ToUpper(p.Protocol) {
	case policy.ProtocolTCP:
		r.Proto = protoTCP
	case policy.ProtocolUDP:
		r.Proto = protoUDP
	case "":
	default:
		return r, fmt.Errorf("%s.protocol: %q: want TCP or UDP", field, p.Protocol)
	}
	if p.Port < 0 || p.Port > 65535 || p.EndPort < 0 || p.EndPort > 65535 {
		return r, fmt.Errorf("%s: port out of range 0-65535", field)
	}
	switch {
	case p.Port == 0 && p.EndPort == 0:
		r.Lo, r.Hi = 0, 65535 // port 0: every port
	case p.EndPort == 0:
		r.Lo, r.Hi = uint16(p.Port), uint16(p.Port)
	case p.EndPort < p.Port:
		return r, fmt.Errorf("%s.endPort: %d is below port %d", field, p.EndPort, p.Port)
	default:
		r.Lo, r.Hi = uint16(p.Port), uint16(p.EndPort)
	}
	return r, nil
}
