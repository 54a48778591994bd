package bpf

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/policy"
)

// lookupRules is what the kernel's longest-prefix match returns for addr.
func (t netTables) lookupRules(addr netip.Addr) uint64 {
	best, bits := uint64(0), -1
	m := t.v6
	if addr.Is4() {
		m = t.v4
	}
	for p, mask := range m {
		if p.Contains(addr) && p.Bits() > bits {
			best, bits = mask, p.Bits()
		}
	}
	return best
}

func TestCompileCIDRExceptIsExact(t *testing.T) {
	// Overlapping rules with excepts, checked against a brute-force
	// evaluation of the policy for many addresses.
	rules := []policy.NetworkRule{
		{To: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16", "10.2.3.0/24"}}}}, Ports: []policy.Port{{Port: 80, Protocol: "TCP"}}},
		{To: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "10.1.0.0/16", Except: []string{"10.1.1.0/24"}}}}, Ports: []policy.Port{{Port: 443, Protocol: "TCP"}}},
		{To: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"10.0.0.0/8"}}}, {IPBlock: &policy.IPBlock{CIDR: "10.2.3.4/32"}}}, Ports: []policy.Port{{Port: 53, Protocol: "UDP"}}},
		{To: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "fd00::/8", Except: []string{"fd00:1::/32"}}}}, Ports: []policy.Port{{Port: 22, Protocol: "TCP"}}},
	}
	c, err := Compile(&policy.Spec{NetworkPolicy: &policy.NetworkPolicy{Egress: rules}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	inBlock := func(b *policy.IPBlock, a netip.Addr) bool {
		if !netip.MustParsePrefix(b.CIDR).Contains(a) {
			return false
		}
		for _, e := range b.Except {
			if netip.MustParsePrefix(e).Contains(a) {
				return false
			}
		}
		return true
	}
	addrs := []string{"10.0.0.1", "10.1.0.1", "10.1.1.1", "10.1.2.1", "10.2.3.4", "10.2.3.5", "10.2.4.1",
		"11.0.0.1", "192.168.1.1", "9.255.255.255", "fd00::1", "fd00:1::1", "fd00:2::1", "fe80::1"}
	for _, s := range addrs {
		a := netip.MustParseAddr(s)
		var want uint64
		for i, r := range rules {
			for _, p := range r.To {
				if inBlock(p.IPBlock, a) {
					want |= 1 << i
				}
			}
		}
		if got := c.egress.lookupRules(a); got != want {
			t.Errorf("%s: rules %b, want %b", s, got, want)
		}
	}
}

func TestCompilePrivatePublicSwitches(t *testing.T) {
	c, err := Compile(&policy.Spec{DisablePublicConnections: "egress", DisablePrivateConnections: "ingress"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{"8.8.8.8": true, "10.1.2.3": false, "127.0.0.1": false, "2001:db8::1": true, "fd00::1": false} {
		if got := c.egress.lookupRules(netip.MustParseAddr(addr)) != 0; got != want {
			t.Errorf("egress %s allowed %v, want %v", addr, got, want)
		}
	}
	for addr, want := range map[string]bool{"8.8.8.8": false, "192.168.0.9": true, "::1": true} {
		if got := c.ingress.lookupRules(netip.MustParseAddr(addr)) != 0; got != want {
			t.Errorf("ingress %s allowed %v, want %v", addr, got, want)
		}
	}
	c, err = Compile(&policy.Spec{DisableConnections: "all", DisableProcesses: "all"}, nil)
	if err != nil || c.flags != wlNoEgress|wlNoIngress|wlNoProcess {
		t.Fatalf("flags %b, %v", c.flags, err)
	}
}

func TestCompilePatterns(t *testing.T) {
	for _, tc := range []struct {
		in       string
		isName   bool
		kind     uint8
		pre, suf string
		cls      uint8
	}{
		{"/usr/bin/python3", false, patExact, "/usr/bin/python3", "", exePath},
		{"/usr/bin/python*", false, patGlob, "/usr/bin/python", "", exePath},
		{"*/python3", false, patGlob, "", "/python3", exePath},
		// Globs a prefix and a suffix cannot express keep their text.
		{"*tables*", true, patWild, "*tables*", "", 0},
		{"*0-a*", true, patWild, "*0-a*", "", 0},
		{"*", false, patAny, "", "", exePath},
		{"*", true, patAny, "", "", 0},
		{"a-very-long-process-name", true, patExact, "a-very-long-pro", "", 0},
		{"memfd:x", false, patExact, "memfd:x", "", exeMemfd},
		{"memfd:*", false, patGlob, "memfd:", "", exeMemfd},
		{"run?", true, patWild, "run?", "", 0},
		{"/tmp/x (deleted)", false, patExact, "/tmp/x (deleted)", "", exeDeleted},
		{"* (deleted)", false, patGlob, "", " (deleted)", exeDeleted},
		{"bind:/sbin/docker-init", false, patExact, "bind:/sbin/docker-init", "", exeBind},
		{strings.Repeat("p", 128) + "*" + strings.Repeat("s", 127), false, patGlob, strings.Repeat("p", 128), strings.Repeat("s", 127), exePath},
	} {
		p, err := compilePattern(tc.in, map[bool]int{true: 15, false: 255}[tc.isName], tc.isName, "f")
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		want := pattern{kind: tc.kind, prefix: tc.pre, suffix: tc.suf, cls: tc.cls}
		if p != want {
			t.Errorf("%q: %+v, want %+v", tc.in, p, want)
		}
		// The kernel layout holds the same strings.
		k := p.exe()
		if back := unlayout(k.Kind, k.Cls, k.PrefixLen, k.SuffixLen, k.Bytes[:]); back != want {
			t.Errorf("%q: laid out as %+v, want %+v", tc.in, back, want)
		}
	}
	// What the kernel cannot match exactly is uncheckable, never widened.
	for _, tc := range []struct {
		in     string
		isName bool
	}{
		{"/bin/[bd]ash", false},
		{"ls[ab]", true},
		{"*a-name-longer-*", true},
		{"/usr/*/bin/*python", false},
		{"/bin/?sh", false},
	} {
		_, err := compilePattern(tc.in, map[bool]int{true: 15, false: 255}[tc.isName], tc.isName, "f")
		if u := (*uncheckable)(nil); !errors.As(err, &u) {
			t.Errorf("%q: error %v, want an uncheckable one", tc.in, err)
		}
	}
}

// refGlob is fnmatch for '*' and '?' by its definition, recursively: the
// reference the step matcher (and glob.h, which mirrors it) must agree with.
func refGlob(g, s string) bool {
	if g == "" {
		return s == ""
	}
	switch g[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if refGlob(g[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && refGlob(g[1:], s[1:])
	}
	return s != "" && s[0] == g[0] && refGlob(g[1:], s[1:])
}

func TestGlobMatchAgreesWithDefinition(t *testing.T) {
	globs := []string{"*tables*", "*0-a*", "a*b*c", "*?", "??", "*a*a*a", "a?c*", "*", "**", "x", "*x*y", "?*?"}
	strs := []string{"", "a", "ab", "abc", "iptables", "ip6tables-save", "tablesx", "x10-ab", "x10a-b", "0-a", "aaa", "aa", "abcabc", "xay", "xy", "axbyc"}
	for _, g := range globs {
		for _, s := range strs {
			if got, want := globMatch(g, s), refGlob(g, s); got != want {
				t.Errorf("globMatch(%q, %q) = %v, want %v", g, s, got, want)
			}
		}
	}
}

func TestCompileErrorsNameTheField(t *testing.T) {
	node := func(id string) policy.ProcessNode {
		return policy.ProcessNode{Name: id, Exe: []string{"/bin/" + id}, ID: id}
	}
	many := make([]policy.ProcessNode, maxChildren+1)
	for i := range many {
		many[i] = node(fmt.Sprintf("n%d", i))
	}
	manyRules := make([]policy.NetworkRule, maxRules+1)
	for i := range manyRules {
		manyRules[i] = policy.NetworkRule{Ports: []policy.Port{{Port: i + 1, Protocol: "TCP"}}}
	}
	for _, tc := range []struct {
		spec policy.Spec
		want string
	}{
		{policy.Spec{ProcessPolicy: many}, "processPolicy: 65 nodes"},
		{policy.Spec{ProcessPolicy: []policy.ProcessNode{node("a"), node("a")}}, `processPolicy[1]: id "a" is used twice`},
		{policy.Spec{ProcessPolicy: []policy.ProcessNode{{Name: "x", ID: "x"}}}, "processPolicy[0].exe: at least one"},
		{policy.Spec{ProcessPolicy: []policy.ProcessNode{{Name: "x", ID: "x", Exe: []string{"/x"}, Euser: []string{"UID x"}}}}, `processPolicy[0].euser[0]: "UID x": want UID and a number`},
		{policy.Spec{NetworkPolicy: &policy.NetworkPolicy{Egress: manyRules}}, "networkPolicy.egress: 65 rules"},
		{policy.Spec{NetworkPolicy: &policy.NetworkPolicy{Ingress: []policy.NetworkRule{{Ports: []policy.Port{{Port: 1, Protocol: "TCP"}}, Processes: []string{"nope"}}}}}, `networkPolicy.ingress[0].processes[0]: no process node "nope"`},
		{policy.Spec{NetworkPolicy: &policy.NetworkPolicy{Egress: []policy.NetworkRule{{To: []policy.Peer{{IPBlock: &policy.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"11.0.0.0/8"}}}}, Ports: []policy.Port{{Port: 1, Protocol: "TCP"}}}}}}, "networkPolicy.egress[0].to[0].ipBlock.except[0]"},
		{policy.Spec{NetworkPolicy: &policy.NetworkPolicy{Egress: []policy.NetworkRule{{Ports: []policy.Port{{Port: 9, EndPort: 3, Protocol: "TCP"}}}}}}, "networkPolicy.egress[0].ports[0].endPort"},
		{policy.Spec{DisableConnections: "private"}, "disableConnections"},
	} {
		_, err := Compile(&tc.spec, map[string]uint32{"root": 0})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one containing %q", err, tc.want)
		}
	}
}

func TestCompileTreeAndEuserInheritance(t *testing.T) {
	spec := &policy.Spec{ProcessPolicy: []policy.ProcessNode{{
		Name: "sh", Exe: []string{"/bin/sh"}, ID: "sh_0", Euser: []string{"root", "1001"},
		Children: []policy.ProcessNode{
			{Name: "a", Exe: []string{"/a"}, ID: "a_0"},
			{Name: "b", Exe: []string{"/b"}, ID: "b_0", Euser: []string{"www"}},
		},
	}}}
	c, err := Compile(spec, map[string]uint32{"root": 0, "www": 33})
	if err != nil {
		t.Fatal(err)
	}
	roots := c.nodes[0]
	if roots.Nchildren != 1 || roots.Children[0] != nodeHash("sh_0") {
		t.Fatalf("roots %+v", roots)
	}
	sh := c.nodes[nodeHash("sh_0")]
	if sh.Nchildren != 2 || sh.Nuids != 2 || sh.Uids[0] != 0 || sh.Uids[1] != 1001 {
		t.Fatalf("sh %+v", sh)
	}
	if a := c.nodes[nodeHash("a_0")]; a.Nuids != 2 || a.Uids[1] != 1001 {
		t.Fatalf("a does not inherit sh's users: %+v", a.Uids)
	}
	if b := c.nodes[nodeHash("b_0")]; b.Nuids != 1 || b.Uids[0] != 33 {
		t.Fatalf("b users %+v", b.Uids)
	}
	if c.NodeID(nodeHash("b_0")) != "b_0" || c.NodeID(12345) != "" {
		t.Fatal("NodeID does not map hashes back")
	}
}

func TestParsePasswd(t *testing.T) {
	users, err := ParsePasswd(strings.NewReader("# comment\nroot:x:0:0:root:/root:/bin/sh\n\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n"))
	if err != nil || users["root"] != 0 || users["www-data"] != 33 || len(users) != 2 {
		t.Fatalf("users %v, %v", users, err)
	}
	if _, err := ParsePasswd(strings.NewReader("root:x:zero:0::/:/bin/sh\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad uid: %v", err)
	}
}

// TestCompileFailsClosed: an euser nothing resolves and a glob the kernel
// cannot match make their node unreachable (not linked under its parent,
// listed in Unreachable); its siblings and the rest of the policy compile
// as written, and a partly uncheckable node keeps only what is checkable.
func TestCompileFailsClosed(t *testing.T) {
	spec := &policy.Spec{ProcessPolicy: []policy.ProcessNode{{
		Name: "sh", Exe: []string{"/bin/sh"}, ID: "sh_0", Euser: []string{"root"},
		Children: []policy.ProcessNode{
			{Name: "ghost", Exe: []string{"/bin/ghost"}, ID: "ghost_0", Euser: []string{"ghost"},
				Children: []policy.ProcessNode{{Name: "under", Exe: []string{"/bin/under"}, ID: "under_0"}}},
			{Name: "cls[ab]", Exe: []string{"/bin/cls"}, ID: "cls_0"},
			{Name: "ok", Exe: []string{"/bin/ok"}, ID: "ok_0", Euser: []string{"ec2-user", "UID 65535", "1001", "lxd"}},
			{Name: "part", Exe: []string{"/bin/[xy]part", "/bin/part"}, ID: "part_0"},
		},
	}}, NetworkPolicy: &policy.NetworkPolicy{Egress: []policy.NetworkRule{
		{Ports: []policy.Port{{Port: 443, Protocol: "TCP"}}, Processes: []string{"under_0"}},
	}}}
	c, err := Compile(spec, map[string]uint32{"root": 0, "ec2-user": 1000})
	if err != nil {
		t.Fatal(err)
	}
	sh := c.nodes[nodeHash("sh_0")]
	var linked []string
	for _, h := range sh.Children[:sh.Nchildren] {
		linked = append(linked, c.NodeID(h))
	}
	if strings.Join(linked, ",") != "ok_0,part_0" {
		t.Fatalf("children of sh_0: %v, want ok_0,part_0", linked)
	}
	ok := c.nodes[nodeHash("ok_0")]
	if got := ok.Uids[:ok.Nuids]; fmt.Sprint(got) != "[1000 65535 1001]" {
		t.Errorf("ok_0 uids %v, want [1000 65535 1001]", got)
	}
	if part := c.nodes[nodeHash("part_0")]; part.Nexe != 1 {
		t.Errorf("part_0 has %d exes, want the checkable one only", part.Nexe)
	}
	all := strings.Join(c.Unreachable, "\n")
	for _, want := range []string{
		`node "ghost_0" and its children are unreachable: processPolicy[0].children[0].euser: no user "ghost"`,
		`node "cls_0" and its children are unreachable: processPolicy[0].children[1].name: "cls[ab]"`,
		`node "ok_0": processPolicy[0].children[2].euser: no user "lxd"`,
		`node "part_0": processPolicy[0].children[3].exe[0]: "/bin/[xy]part"`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("unreachable:\n%s\nwant a line containing %s", all, want)
		}
	}
	if len(c.Unreachable) != 4 {
		t.Errorf("%d unreachable entries, want 4:\n%s", len(c.Unreachable), all)
	}
}
