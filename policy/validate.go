package policy

import (
	"fmt"
	"net/netip"
	"path"
	"strings"
	"unicode/utf8"
)

// Limits from the Spyderbat schema.
const (
	maxExcept        = 10
	maxImpactRunes   = 100
	maxContentRunes  = 350
	maxPort          = 65535
	maxDNSNameLength = 253
	maxDNSLabel      = 63
	maxLabelName     = 63
)

// severityNames lists the severities of flags and flag actions.
const severityNames = "critical, high, medium, low, info"

// validSeverity reports whether s is one of severityNames.
func validSeverity(s string) bool {
	return oneOf(s, "critical", "high", "medium", "low", "info")
}

// Flag classes (FlagMetadata.Class).
const (
	FlagClassRed = "redflag"
	FlagClassOps = "opsflag"
)

// ValidateFingerprint checks an in-memory fingerprint against the
// validation rules. The error is Problems (with field paths but no
// positions) or nil.
func ValidateFingerprint(f *Fingerprint) error {
	var v validator
	v.fingerprint(f)
	return v.err()
}

// ValidatePolicy checks an in-memory workload policy; see
// ValidateFingerprint.
func ValidatePolicy(p *WorkloadPolicy) error {
	var v validator
	v.policy(p)
	return v.err()
}

// ValidateDeviation checks an in-memory deviation; see ValidateFingerprint.
func ValidateDeviation(d *Deviation) error {
	var v validator
	v.deviation(d)
	return v.err()
}

// ValidateFlag checks an in-memory flag; see ValidateFingerprint.
func ValidateFlag(f *Flag) error {
	var v validator
	v.flag(f)
	return v.err()
}

// validator collects the problems of one object.
type validator struct {
	probs Problems
}

func (v *validator) addf(path, format string, args ...any) {
	v.probs = append(v.probs, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) err() error {
	if len(v.probs) == 0 {
		return nil
	}
	return v.probs
}

func (v *validator) kind(apiVersion, kind string, want kindClass) {
	if c := classOf(apiVersion, kind); c != want {
		v.addf("kind", "apiVersion %q with kind %q is not a %s", apiVersion, kind, want)
	}
}

// String names the class for messages.
func (c kindClass) String() string {
	switch c {
	case classFingerprint:
		return "fingerprint"
	case classPolicy:
		return "policy"
	case classDeviation:
		return "deviation"
	case classFlag:
		return "flag"
	case classGroup:
		return "fingerprint group"
	}
	return "document"
}

func (v *validator) fingerprint(f *Fingerprint) {
	v.kind(f.APIVersion, f.Kind, classFingerprint)
	v.metadata(&f.Metadata, classFingerprint)
	v.spec(&f.Spec, f.Metadata.Type, classFingerprint)
}

func (v *validator) policy(p *WorkloadPolicy) {
	v.kind(p.APIVersion, p.Kind, classPolicy)
	v.metadata(&p.Metadata, classPolicy)
	v.spec(&p.Spec, p.Metadata.Type, classPolicy)
}

func (v *validator) deviation(d *Deviation) {
	v.kind(d.APIVersion, d.Kind, classDeviation)
	v.metadata(&d.Metadata, classDeviation)
	v.spec(&d.Spec, d.Metadata.Type, classDeviation)
}

func (v *validator) flag(f *Flag) {
	v.kind(f.APIVersion, f.Kind, classFlag)
	m := &f.Metadata
	if m.UID == "" {
		v.addf("metadata.uid", "required")
	}
	switch m.Class {
	case FlagClassRed, FlagClassOps:
	case "":
		v.addf("metadata.class", "required: %s or %s", FlagClassRed, FlagClassOps)
	default:
		v.addf("metadata.class", "must be %s or %s, got %q", FlagClassRed, FlagClassOps, m.Class)
	}
	v.severity("metadata.severity", m.Severity)
}

func (v *validator) severity(p, s string) {
	switch {
	case s == "":
		v.addf(p, "required: one of %s", severityNames)
	case !validSeverity(s):
		v.addf(p, "must be one of %s, got %q", severityNames, s)
	}
}

func (v *validator) metadata(m *Metadata, c kindClass) {
	if m.Name == "" && c != classDeviation {
		v.addf("metadata.name", "required")
	}
	switch m.Type {
	case TypeContainer, TypeLinuxService:
	case "":
		if c != classDeviation {
			v.addf("metadata.type", "required: %s or %s", TypeContainer, TypeLinuxService)
		}
	default:
		v.addf("metadata.type", "must be %s or %s, got %q", TypeContainer, TypeLinuxService, m.Type)
	}
}

func oneOf(s string, allowed ...string) bool {
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	return false
}

func (v *validator) spec(s *Spec, typ string, c kindClass) {
	v.selectors(s, typ, c)
	switch {
	case s.Mode == "" && c == classPolicy:
		v.addf("spec.mode", "required: %s or %s", ModeAudit, ModeEnforce)
	case s.Mode != "" && !oneOf(s.Mode, ModeAudit, ModeEnforce):
		v.addf("spec.mode", "must be %s or %s, got %q", ModeAudit, ModeEnforce, s.Mode)
	}
	if !oneOf(s.DisableProcesses, "", "all") {
		v.addf("spec.disableProcesses", "must be all (or left out), got %q", s.DisableProcesses)
	}
	for _, d := range []struct{ field, value string }{
		{"disableConnections", s.DisableConnections},
		{"disablePrivateConnections", s.DisablePrivateConnections},
		{"disablePublicConnections", s.DisablePublicConnections},
	} {
		if !oneOf(d.value, "", "all", "ingress", "egress") {
			v.addf("spec."+d.field, "must be all, ingress or egress (or left out), got %q", d.value)
		}
	}
	ids := v.processes(s.ProcessPolicy, c)
	v.network(s.NetworkPolicy, ids, c)
	v.response(s.Response, typ)
}

// selectors checks the workload selectors: the one required by the
// workload type, and the syntax of every selector present.
func (v *validator) selectors(s *Spec, typ string, c kindClass) {
	if c != classDeviation {
		switch typ {
		case TypeContainer:
			cs := s.ContainerSelector
			if cs == nil {
				v.addf("spec.containerSelector", "required for %s workloads", typ)
			} else if cs.Image == "" && cs.ImageID == "" && cs.ContainerName == "" && cs.ContainerID == "" && len(cs.MatchFields) == 0 && len(cs.MatchFieldsExpressions) == 0 {
				v.addf("spec.containerSelector", "needs at least one of image, imageID, containerName, containerID or matchFields")
			}
		case TypeLinuxService:
			ss := s.ServiceSelector
			if ss == nil {
				v.addf("spec.serviceSelector", "required for %s workloads", typ)
			} else if ss.Cgroup == "" && ss.Name == "" && len(ss.MatchFields) == 0 && len(ss.MatchFieldsExpressions) == 0 {
				v.addf("spec.serviceSelector", "needs cgroup, name or matchFields")
			}
		}
	}
	switch {
	case typ == TypeContainer && s.ServiceSelector != nil:
		v.addf("spec.serviceSelector", "not allowed for %s workloads", typ)
	case typ == TypeLinuxService && s.ContainerSelector != nil:
		v.addf("spec.containerSelector", "not allowed for %s workloads", typ)
	}
	v.containerSelector("spec.containerSelector", s.ContainerSelector)
	v.serviceSelector("spec.serviceSelector", s.ServiceSelector)
	v.machineSelector("spec.machineSelector", s.MachineSelector)
	v.labelSelector("spec.podSelector", s.PodSelector)
	v.labelSelector("spec.namespaceSelector", s.NamespaceSelector)
}

func (v *validator) glob(p, g string) {
	if _, err := path.Match(g, ""); err != nil {
		v.addf(p, "invalid glob %q: %v", g, err)
	}
}

func (v *validator) containerSelector(p string, cs *ContainerSelector) {
	if cs == nil {
		return
	}
	v.glob(p+".image", cs.Image)
	v.glob(p+".imageID", cs.ImageID)
	v.glob(p+".containerName", cs.ContainerName)
	v.glob(p+".containerID", cs.ContainerID)
	v.fields(p, cs.MatchFields, cs.MatchFieldsExpressions)
}

func (v *validator) serviceSelector(p string, ss *ServiceSelector) {
	if ss == nil {
		return
	}
	v.glob(p+".cgroup", ss.Cgroup)
	v.glob(p+".name", ss.Name)
	v.fields(p, ss.MatchFields, ss.MatchFieldsExpressions)
}

func (v *validator) machineSelector(p string, ms *MachineSelector) {
	if ms == nil {
		return
	}
	for i, h := range ms.Hostname {
		v.glob(fmt.Sprintf("%s.hostname[%d]", p, i), h)
	}
	for i, u := range ms.MachineUID {
		v.glob(fmt.Sprintf("%s.machineUID[%d]", p, i), u)
	}
	v.fields(p, ms.MatchFields, ms.MatchFieldsExpressions)
}

func (v *validator) processSelector(p string, ps *ProcessSelector) {
	if ps == nil {
		return
	}
	for _, l := range []struct {
		field string
		globs StringList
	}{{"name", ps.Name}, {"exe", ps.Exe}, {"euser", ps.Euser}} {
		for i, g := range l.globs {
			v.glob(fmt.Sprintf("%s.%s[%d]", p, l.field, i), g)
		}
	}
	v.fields(p, ps.MatchFields, ps.MatchFieldsExpressions)
}

// fields checks matchFields values (globs) and matchFieldsExpressions.
func (v *validator) fields(p string, m map[string]string, reqs []Requirement) {
	for k, g := range m {
		v.glob(p+".matchFields["+k+"]", g)
	}
	for i, r := range reqs {
		v.requirement(fmt.Sprintf("%s.matchFieldsExpressions[%d]", p, i), r, false)
	}
}

func (v *validator) labelSelector(p string, ls *LabelSelector) {
	if ls == nil {
		return
	}
	for k, val := range ls.MatchLabels {
		kp := p + ".matchLabels[" + k + "]"
		if msg := labelKeyProblem(k); msg != "" {
			v.addf(kp, "invalid label key %q: %s", k, msg)
		}
		if msg := labelValueProblem(val); msg != "" {
			v.addf(kp, "invalid label value %q: %s", val, msg)
		}
	}
	for i, r := range ls.MatchExpressions {
		v.requirement(fmt.Sprintf("%s.matchExpressions[%d]", p, i), r, true)
	}
}

// requirement checks one matchExpressions entry; labels says whether key
// and values are Kubernetes labels (else they are field names and globs).
func (v *validator) requirement(p string, r Requirement, labels bool) {
	if r.Key == "" {
		v.addf(p+".key", "required")
	} else if labels {
		if msg := labelKeyProblem(r.Key); msg != "" {
			v.addf(p+".key", "invalid label key %q: %s", r.Key, msg)
		}
	}
	switch r.Operator {
	case "In", "NotIn":
		if len(r.Values) == 0 {
			v.addf(p+".values", "required with operator %s", r.Operator)
		}
	case "Exists", "DoesNotExist":
		if len(r.Values) > 0 {
			v.addf(p+".values", "must be empty with operator %s", r.Operator)
		}
	case "":
		v.addf(p+".operator", "required: In, NotIn, Exists or DoesNotExist")
	default:
		v.addf(p+".operator", "must be In, NotIn, Exists or DoesNotExist, got %q", r.Operator)
	}
	for i, val := range r.Values {
		vp := fmt.Sprintf("%s.values[%d]", p, i)
		if labels {
			if msg := labelValueProblem(val); msg != "" {
				v.addf(vp, "invalid label value %q: %s", val, msg)
			}
		} else {
			v.glob(vp, val)
		}
	}
}

// labelKeyProblem checks a Kubernetes label key: an optional DNS subdomain
// prefix and "/", then a name of at most 63 characters.
func labelKeyProblem(k string) string {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name = prefix
	} else {
		if prefix == "" || len(prefix) > maxDNSNameLength {
			return "the prefix before / must be a DNS subdomain of 1 to 253 characters"
		}
		for _, label := range strings.Split(prefix, ".") {
			if !isDNSLabel(label) {
				return "the prefix before / must be a DNS subdomain (lower-case letters, digits, '-' and '.')"
			}
		}
	}
	if name == "" {
		return "the name part must not be empty"
	}
	return labelNameProblem(name)
}

// labelValueProblem checks a label value; empty values are allowed, and so
// are glob characters (selectors match values by glob).
func labelValueProblem(val string) string {
	if val == "" {
		return ""
	}
	if strings.ContainsAny(val, "*?[") {
		if _, err := path.Match(val, ""); err != nil {
			return err.Error()
		}
		if len(val) > maxLabelName {
			return "longer than 63 characters"
		}
		for _, r := range val {
			if !isAlnumRune(r) && !strings.ContainsRune("-_.*?[]!^", r) {
				return fmt.Sprintf("character %q not allowed", r)
			}
		}
		return ""
	}
	return labelNameProblem(val)
}

// labelNameProblem checks the name part of a label key, or a label value.
func labelNameProblem(s string) string {
	if len(s) > maxLabelName {
		return "longer than 63 characters"
	}
	for i, r := range s {
		switch {
		case isAlnumRune(r):
		case r == '-' || r == '_' || r == '.':
			if i == 0 || i == len(s)-1 {
				return "must begin and end with a letter or digit"
			}
		default:
			return fmt.Sprintf("character %q not allowed (letters, digits, '-', '_' and '.')", r)
		}
	}
	return ""
}

func isAlnumRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// isDNSLabel reports whether s is an RFC 1123 label.
func isDNSLabel(s string) bool {
	if s == "" || len(s) > maxDNSLabel {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
		case r == '-':
			if i == 0 || i == len(s)-1 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// processes checks the process forest and returns the ids a network rule
// may name: every node id, plus (in deviations) the policy node ids that
// policyNode entries refer to.
func (v *validator) processes(nodes []ProcessNode, c kindClass) map[string]bool {
	ids := map[string]string{} // id → path of its first node
	v.collectIDs(nodes, "spec.processPolicy", ids)
	for i := range nodes {
		v.processNode(fmt.Sprintf("spec.processPolicy[%d]", i), &nodes[i], true, c)
	}
	refs := make(map[string]bool, len(ids))
	for id := range ids {
		refs[id] = true
	}
	for _, n := range nodes {
		if n.PolicyNode != nil && n.PolicyNode.ID != "" {
			refs[n.PolicyNode.ID] = true
		}
	}
	return refs
}

// collectIDs reports ids used by more than one node.
func (v *validator) collectIDs(nodes []ProcessNode, p string, ids map[string]string) {
	for i, n := range nodes {
		np := fmt.Sprintf("%s[%d]", p, i)
		if n.ID != "" {
			if first, dup := ids[n.ID]; dup {
				v.addf(np+".id", "duplicate id %q (also used at %s)", n.ID, first)
			} else {
				ids[n.ID] = np
			}
		}
		v.collectIDs(n.Children, np+".children", ids)
		if n.PolicyNode != nil {
			v.collectIDs(n.PolicyNode.Children, np+".policyNode.children", ids)
		}
	}
}

func (v *validator) processNode(p string, n *ProcessNode, root bool, c kindClass) {
	if n.PolicyNode != nil {
		if c != classDeviation || !root {
			v.addf(p+".policyNode", "only allowed in the top-level processPolicy entries of a deviation")
		}
		if n.Name != "" || len(n.Exe) > 0 || len(n.Euser) > 0 || n.ID != "" || len(n.ListeningSockets) > 0 || len(n.Children) > 0 {
			v.addf(p, "an entry with policyNode must have no other fields")
		}
		if n.PolicyNode.ID == "" {
			v.addf(p+".policyNode.id", "required: the id of the policy node to add children to")
		}
		for i := range n.PolicyNode.Children {
			v.processNode(fmt.Sprintf("%s.policyNode.children[%d]", p, i), &n.PolicyNode.Children[i], false, c)
		}
		return
	}
	if n.Name == "" {
		v.addf(p+".name", "required")
	} else {
		v.glob(p+".name", n.Name)
	}
	if len(n.Exe) == 0 {
		v.addf(p+".exe", "required: at least one executable path")
	}
	for i, e := range n.Exe {
		ep := fmt.Sprintf("%s.exe[%d]", p, i)
		if e == "" {
			v.addf(ep, "must not be empty")
		} else {
			v.glob(ep, e)
		}
	}
	if n.ID == "" {
		v.addf(p+".id", "required")
	}
	if root && len(n.Euser) == 0 && c != classDeviation {
		v.addf(p+".euser", "required on root nodes (children inherit it)")
	}
	for i, u := range n.Euser {
		if u == "" {
			v.addf(fmt.Sprintf("%s.euser[%d]", p, i), "must not be empty")
		}
	}
	for i, s := range n.ListeningSockets {
		v.port(fmt.Sprintf("%s.listeningSockets[%d]", p, i), s)
	}
	for i := range n.Children {
		v.processNode(fmt.Sprintf("%s.children[%d]", p, i), &n.Children[i], false, c)
	}
}

func (v *validator) port(p string, pt Port) {
	if pt.Port < 0 || pt.Port > maxPort {
		v.addf(p+".port", "must be between 0 and 65535, got %d", pt.Port)
	}
	switch pt.Protocol {
	case ProtocolTCP, ProtocolUDP:
	case "":
		v.addf(p+".protocol", "required: TCP or UDP")
	default:
		v.addf(p+".protocol", "must be TCP or UDP, got %q", pt.Protocol)
	}
	switch {
	case pt.EndPort == 0:
	case pt.EndPort > maxPort:
		v.addf(p+".endPort", "must be at most 65535, got %d", pt.EndPort)
	case pt.EndPort < pt.Port:
		v.addf(p+".endPort", "must not be below port %d, got %d", pt.Port, pt.EndPort)
	}
}

func (v *validator) network(np *NetworkPolicy, ids map[string]bool, c kindClass) {
	if np == nil {
		if c == classPolicy {
			v.addf("spec.networkPolicy", "required in a policy (with ingress and egress, each may be [])")
		}
		return
	}
	for i, r := range np.Ingress {
		v.rule(fmt.Sprintf("spec.networkPolicy.ingress[%d]", i), r, true, ids)
	}
	for i, r := range np.Egress {
		v.rule(fmt.Sprintf("spec.networkPolicy.egress[%d]", i), r, false, ids)
	}
}

func (v *validator) rule(p string, r NetworkRule, ingress bool, ids map[string]bool) {
	peers, field, other, otherPeers := r.From, "from", "to", r.To
	if !ingress {
		peers, field, other, otherPeers = r.To, "to", "from", r.From
	}
	if len(peers) == 0 {
		v.addf(p+"."+field, "required: at least one peer")
	}
	if len(otherPeers) > 0 {
		dir := "ingress"
		if !ingress {
			dir = "egress"
		}
		v.addf(p+"."+other, "not allowed in %s rules (use %s)", dir, field)
	}
	for i, peer := range peers {
		v.peer(fmt.Sprintf("%s.%s[%d]", p, field, i), peer)
	}
	if len(r.Ports) == 0 {
		v.addf(p+".ports", "required: at least one port")
	}
	for i, pt := range r.Ports {
		v.port(fmt.Sprintf("%s.ports[%d]", p, i), pt)
	}
	for i, id := range r.Processes {
		if !ids[id] {
			v.addf(fmt.Sprintf("%s.processes[%d]", p, i), "no process node has id %q", id)
		}
	}
}

func (v *validator) peer(p string, peer Peer) {
	switch {
	case peer.IPBlock != nil && len(peer.DNSSelector) > 0:
		v.addf(p, "must have exactly one of ipBlock and dnsSelector, has both")
	case peer.IPBlock == nil && len(peer.DNSSelector) == 0:
		v.addf(p, "must have exactly one of ipBlock and dnsSelector")
	case peer.IPBlock != nil:
		v.ipBlock(p+".ipBlock", peer.IPBlock)
	default:
		for i, name := range peer.DNSSelector {
			if msg := dnsGlobProblem(name); msg != "" {
				v.addf(fmt.Sprintf("%s.dnsSelector[%d]", p, i), "invalid DNS name %q: %s", name, msg)
			}
		}
	}
}

// prefix parses a CIDR, requiring it in canonical form.
func (v *validator) prefix(p, s string) (netip.Prefix, bool) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		if _, aerr := netip.ParseAddr(s); aerr == nil {
			v.addf(p, "%q is an address, not a CIDR (add /32 or /128)", s)
		} else {
			v.addf(p, "invalid CIDR %q", s)
		}
		return netip.Prefix{}, false
	}
	if m := pfx.Masked(); m != pfx {
		v.addf(p, "%q has bits set beyond the /%d prefix; did you mean %s?", s, pfx.Bits(), m)
		return netip.Prefix{}, false
	}
	return pfx, true
}

func (v *validator) ipBlock(p string, b *IPBlock) {
	if b.CIDR == "" {
		v.addf(p+".cidr", "required")
		return
	}
	cidr, ok := v.prefix(p+".cidr", b.CIDR)
	if len(b.Except) > maxExcept {
		v.addf(p+".except", "at most %d entries, got %d", maxExcept, len(b.Except))
	}
	for i, e := range b.Except {
		ep := fmt.Sprintf("%s.except[%d]", p, i)
		ex, eok := v.prefix(ep, e)
		if !ok || !eok {
			continue
		}
		switch {
		case ex.Addr().Is4() != cidr.Addr().Is4():
			v.addf(ep, "%s is not of the same IP family as %s", e, b.CIDR)
		case ex.Bits() < cidr.Bits() || !cidr.Contains(ex.Addr()):
			v.addf(ep, "%s is not inside %s", e, b.CIDR)
		}
	}
}

// LearnedDNSName returns a name a workload resolved, as fingerprints and
// deviations write it in a dnsSelector: lower case, without the trailing
// dot. ok is false for a name that is not a plain host name (letters,
// digits, '-' and '_' in labels of 1 to 63 characters, 253 in all): a name
// with glob characters would allow more than the name itself, so the
// caller writes the address instead.
func LearnedDNSName(name string) (learned string, ok bool) {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	if n == "" || len(n) > maxDNSNameLength {
		return "", false
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > maxDNSLabel {
			return "", false
		}
		for _, r := range label {
			if !isAlnumRune(r) && r != '-' && r != '_' {
				return "", false
			}
		}
	}
	return n, true
}

// dnsGlobProblem checks a DNS name that may contain glob characters.
func dnsGlobProblem(name string) string {
	if name == "" {
		return "must not be empty"
	}
	if _, err := path.Match(name, ""); err != nil {
		return err.Error()
	}
	n := strings.TrimSuffix(name, ".")
	if len(n) > maxDNSNameLength {
		return "longer than 253 characters"
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" {
			return "empty label"
		}
		if len(label) > maxDNSLabel {
			return "label longer than 63 characters"
		}
		for _, r := range label {
			if !isAlnumRune(r) && !strings.ContainsRune("-_*?[]!^", r) {
				return fmt.Sprintf("character %q not allowed", r)
			}
		}
	}
	return ""
}

func (v *validator) response(r *Response, typ string) {
	if r == nil {
		return
	}
	for i, a := range r.Default {
		v.action(fmt.Sprintf("spec.response.default[%d]", i), a, typ, false)
	}
	for i, a := range r.Actions {
		v.action(fmt.Sprintf("spec.response.actions[%d]", i), a, typ, true)
	}
}

func (v *validator) action(p string, a Action, typ string, needSelector bool) {
	type one struct {
		name string
		sel  *ActionSelectors
		flag *FlagAction
	}
	var set []one
	if a.MakeRedFlag != nil {
		set = append(set, one{"makeRedFlag", &a.MakeRedFlag.ActionSelectors, a.MakeRedFlag})
	}
	if a.MakeOpsFlag != nil {
		set = append(set, one{"makeOpsFlag", &a.MakeOpsFlag.ActionSelectors, a.MakeOpsFlag})
	}
	if a.AgentKillProcess != nil {
		set = append(set, one{"agentKillProcess", &a.AgentKillProcess.ActionSelectors, nil})
	}
	if a.AgentKillProcessGroup != nil {
		set = append(set, one{"agentKillProcessGroup", &a.AgentKillProcessGroup.ActionSelectors, nil})
	}
	if a.AgentKillPod != nil {
		set = append(set, one{"agentKillPod", &a.AgentKillPod.ActionSelectors, nil})
	}
	if len(set) != 1 {
		v.addf(p, "must hold exactly one action (makeRedFlag, makeOpsFlag, agentKillProcess, agentKillProcessGroup or agentKillPod; an action without options is written as {}), has %d", len(set))
		return
	}
	s := set[0]
	ap := p + "." + s.name
	if s.name == "agentKillPod" && typ != TypeContainer {
		v.addf(ap, "only allowed in container policies")
	}
	if f := s.flag; f != nil {
		v.severity(ap+".severity", f.Severity)
		if n := utf8.RuneCountInString(f.Impact); n > maxImpactRunes {
			v.addf(ap+".impact", "at most %d characters, got %d", maxImpactRunes, n)
		}
		if n := utf8.RuneCountInString(f.Content); n > maxContentRunes {
			v.addf(ap+".content", "at most %d characters, got %d", maxContentRunes, n)
		}
	}
	sel := s.sel
	if needSelector && *sel == (ActionSelectors{}) {
		v.addf(ap, "entries of actions need at least one selector")
	}
	v.containerSelector(ap+".containerSelector", sel.ContainerSelector)
	v.labelSelector(ap+".podSelector", sel.PodSelector)
	v.labelSelector(ap+".namespaceSelector", sel.NamespaceSelector)
	v.machineSelector(ap+".machineSelector", sel.MachineSelector)
	v.serviceSelector(ap+".serviceSelector", sel.ServiceSelector)
	v.processSelector(ap+".processSelector", sel.ProcessSelector)
}
