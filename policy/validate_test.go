package policy

import (
	"errors"
	"strings"
	"testing"
)

// basePolicy is a valid container policy that exercises every rule; the
// cases of TestValidatePolicyRules each break one rule in it.
const basePolicy = `apiVersion: spyderbat/v1
kind: SpyderbatPolicy
metadata:
  name: nginx-policy
  type: container
spec:
  containerSelector:
    image: docker.io/library/nginx:*
  podSelector:
    matchLabels:
      app: nginx
      tier: web-*
    matchExpressions:
    - {key: tier, operator: In, values: [web]}
    - {key: example.com/canary, operator: DoesNotExist}
  mode: enforce
  disableConnections: ingress
  processPolicy:
  - name: nginx
    exe: [/usr/sbin/nginx]
    euser: [root]
    id: nginx_0
    listeningSockets: [{port: 443, protocol: TCP}]
    children:
    - name: nginx
      exe: [/usr/sbin/nginx]
      id: nginx_1
    - name: sh
      exe: [/bin/sh, /usr/bin/*sh]
      id: sh_0
  networkPolicy:
    ingress:
    - from:
      - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
      ports: [{port: 443, protocol: TCP}]
      processes: [nginx_1]
    egress:
    - to:
      - dnsSelector: ["*.example.com", api.example.org]
      - ipBlock: {cidr: "2001:db8::/32"}
      ports: [{port: 8000, protocol: TCP, endPort: 8100}]
  response:
    default:
    - makeRedFlag: {severity: high, impact: short}
    actions:
    - agentKillPod: {podSelector: {matchLabels: {app: nginx}}}
    - makeOpsFlag: {severity: info, processSelector: {exe: /bin/sh}}
`

func TestValidateBasePolicyIsValid(t *testing.T) {
	docs, err := Load("base.yaml", []byte(basePolicy))
	if err != nil {
		t.Fatalf("base policy: %v", err)
	}
	if err := ValidatePolicy(docs[0].Policy); err != nil {
		t.Fatalf("ValidatePolicy on the loaded base policy: %v", err)
	}
}

// TestValidatePolicyRules breaks one rule per case by replacing text in
// basePolicy and checks that exactly that rule's problem is reported.
func TestValidatePolicyRules(t *testing.T) {
	cases := []struct {
		name     string
		old, new string
		want     string // a substring of the problems
	}{
		// metadata
		{"name required", "  name: nginx-policy\n", "", "metadata.name: required"},
		{"type required", "  type: container\n", "", "metadata.type: required"},
		{"type value", "type: container", "type: pod", `metadata.type: must be container or linux-service, got "pod"`},
		// selectors
		{"container selector required", "  containerSelector:\n    image: docker.io/library/nginx:*\n", "", "spec.containerSelector: required for container workloads"},
		{"container selector empty", "  containerSelector:\n    image: docker.io/library/nginx:*\n", "  containerSelector: {}\n", "spec.containerSelector: needs at least one of"},
		{"container selector matchFields suffices", "    image: docker.io/library/nginx:*\n", "    matchFields: {image: \"nginx:[\"}\n", `spec.containerSelector.matchFields[image]: invalid glob "nginx:["`},
		{"service selector required", "type: container", "type: linux-service", "spec.serviceSelector: required for linux-service workloads"},
		{"service selector empty", "type: container\nspec:\n  containerSelector:\n    image: docker.io/library/nginx:*\n", "type: linux-service\nspec:\n  serviceSelector: {}\n", "spec.serviceSelector: needs cgroup, name or matchFields"},
		{"selector of the other type", "  mode: enforce\n", "  mode: enforce\n  serviceSelector: {name: cron}\n", "spec.serviceSelector: not allowed for container workloads"},
		{"image glob", "image: docker.io/library/nginx:*", "image: docker.io/library/nginx:[", `spec.containerSelector.image: invalid glob`},
		// mode and options
		{"mode value", "mode: enforce", "mode: block", `spec.mode: must be audit or enforce, got "block"`},
		{"disableProcesses", "  mode: enforce\n", "  mode: enforce\n  disableProcesses: some\n", `spec.disableProcesses: must be all (or left out), got "some"`},
		{"disableConnections", "disableConnections: ingress", "disableConnections: private", `spec.disableConnections: must be all, ingress or egress`},
		{"disablePrivateConnections", "disableConnections: ingress", "disablePrivateConnections: inbound", `spec.disablePrivateConnections: must be all, ingress or egress`},
		{"disablePublicConnections", "disableConnections: ingress", "disablePublicConnections: yes", `spec.disablePublicConnections: must be all, ingress or egress`},
		// processPolicy
		{"node name required", "  - name: nginx\n    exe", "  - exe", "spec.processPolicy[0].name: required"},
		{"node exe required", "    exe: [/usr/sbin/nginx]\n    euser", "    euser", "spec.processPolicy[0].exe: required"},
		{"node exe not empty", "exe: [/bin/sh, /usr/bin/*sh]", "exe: [/bin/sh, \"\"]", "spec.processPolicy[0].children[1].exe[1]: must not be empty"},
		{"node id required", "    id: nginx_0\n", "", "spec.processPolicy[0].id: required"},
		{"ids unique", "id: sh_0", "id: nginx_0", `spec.processPolicy[0].children[1].id: duplicate id "nginx_0" (also used at spec.processPolicy[0])`},
		{"euser on root", "    euser: [root]\n", "", "spec.processPolicy[0].euser: required on root nodes"},
		{"euser not empty", "euser: [root]", "euser: [root, \"\"]", "spec.processPolicy[0].euser[1]: must not be empty"},
		{"exe glob", "/usr/bin/*sh", "\"/usr/bin/[sh\"", `spec.processPolicy[0].children[1].exe[1]: invalid glob "/usr/bin/[sh"`},
		{"name glob", "name: sh", "name: \"s[h\"", `spec.processPolicy[0].children[1].name: invalid glob`},
		{"listening port", "listeningSockets: [{port: 443", "listeningSockets: [{port: 65536", "spec.processPolicy[0].listeningSockets[0].port: must be between 0 and 65535, got 65536"},
		{"listening protocol", "listeningSockets: [{port: 443, protocol: TCP}]", "listeningSockets: [{port: 443, protocol: SCTP}]", `spec.processPolicy[0].listeningSockets[0].protocol: must be TCP or UDP, got "SCTP"`},
		{"policyNode outside deviations", "  networkPolicy:\n", "  - policyNode: {id: nginx_0}\n  networkPolicy:\n", "spec.processPolicy[1].policyNode: only allowed in the top-level processPolicy entries of a deviation"},
		// networkPolicy
		{"ingress key required", "    ingress:\n    - from:\n      - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}\n      ports: [{port: 443, protocol: TCP}]\n      processes: [nginx_1]\n", "", "spec.networkPolicy.ingress: required in a policy"},
		{"egress key required", "    egress:\n", "    egres:\n", "spec.networkPolicy.egress: required in a policy"},
		{"ingress needs from", "    - from:\n      - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}\n", "    - from: []\n", "spec.networkPolicy.ingress[0].from: required: at least one peer"},
		{"ingress without to", "      processes: [nginx_1]\n", "      processes: [nginx_1]\n      to: [{ipBlock: {cidr: 1.1.1.1/32}}]\n", "spec.networkPolicy.ingress[0].to: not allowed in ingress rules (use from)"},
		{"egress needs to", "    - to:\n      - dnsSelector", "    - from:\n      - dnsSelector", "spec.networkPolicy.egress[0].to: required: at least one peer"},
		{"egress without from", "    - to:\n      - dnsSelector", "    - from:\n      - dnsSelector", "spec.networkPolicy.egress[0].from: not allowed in egress rules (use to)"},
		{"peer has both", "- ipBlock: {cidr: \"2001:db8::/32\"}", "- ipBlock: {cidr: \"2001:db8::/32\"}\n        dnsSelector: [a.b]", "spec.networkPolicy.egress[0].to[1]: must have exactly one of ipBlock and dnsSelector, has both"},
		{"peer has neither", "- ipBlock: {cidr: \"2001:db8::/32\"}", "- {}", "spec.networkPolicy.egress[0].to[1]: must have exactly one of ipBlock and dnsSelector"},
		{"cidr required", "{cidr: \"2001:db8::/32\"}", "{except: []}", "spec.networkPolicy.egress[0].to[1].ipBlock.cidr: required"},
		{"cidr syntax", "cidr: 10.0.0.0/8", "cidr: 10.0.0.0/33", `spec.networkPolicy.ingress[0].from[0].ipBlock.cidr: invalid CIDR "10.0.0.0/33"`},
		{"cidr is an address", "cidr: 10.0.0.0/8", "cidr: 10.0.0.1", `"10.0.0.1" is an address, not a CIDR`},
		{"cidr host bits", "cidr: 10.0.0.0/8", "cidr: 10.1.2.3/8", `spec.networkPolicy.ingress[0].from[0].ipBlock.cidr: "10.1.2.3/8" has bits set beyond the /8 prefix; did you mean 10.0.0.0/8?`},
		{"cidr host bits v6", "cidr: \"2001:db8::/32\"", "cidr: \"2001:db8::1/32\"", `did you mean 2001:db8::/32?`},
		{"except count", "except: [10.1.0.0/16]", "except: [10.1.0.0/16, 10.2.0.0/16, 10.3.0.0/16, 10.4.0.0/16, 10.5.0.0/16, 10.6.0.0/16, 10.7.0.0/16, 10.8.0.0/16, 10.9.0.0/16, 10.10.0.0/16, 10.11.0.0/16]", "spec.networkPolicy.ingress[0].from[0].ipBlock.except: at most 10 entries, got 11"},
		{"except inside cidr", "except: [10.1.0.0/16]", "except: [11.1.0.0/16]", "spec.networkPolicy.ingress[0].from[0].ipBlock.except[0]: 11.1.0.0/16 is not inside 10.0.0.0/8"},
		{"except not wider than cidr", "except: [10.1.0.0/16]", "except: [0.0.0.0/0]", "except[0]: 0.0.0.0/0 is not inside 10.0.0.0/8"},
		{"except family", "except: [10.1.0.0/16]", "except: [\"::/0\"]", "spec.networkPolicy.ingress[0].from[0].ipBlock.except[0]: ::/0 is not of the same IP family as 10.0.0.0/8"},
		{"except canonical", "except: [10.1.0.0/16]", "except: [10.1.0.1/16]", "did you mean 10.1.0.0/16?"},
		{"dns empty", "dnsSelector: [\"*.example.com\", api.example.org]", "dnsSelector: [\"\"]", `spec.networkPolicy.egress[0].to[0].dnsSelector[0]: invalid DNS name "": must not be empty`},
		{"dns label", "api.example.org", "api..example.org", `invalid DNS name "api..example.org": empty label`},
		{"dns character", "api.example.org", "api/example.org", `invalid DNS name "api/example.org": character '/' not allowed`},
		{"dns glob", "api.example.org", "\"api[.example.org\"", `invalid DNS name "api[.example.org": syntax error in pattern`},
		{"dns too long", "api.example.org", strings.Repeat("a.", 127) + "org", "longer than 253 characters"},
		{"ports required", "ports: [{port: 8000, protocol: TCP, endPort: 8100}]", "ports: []", "spec.networkPolicy.egress[0].ports: required: at least one port"},
		{"port negative", "port: 8000", "port: -1", "spec.networkPolicy.egress[0].ports[0].port: must be between 0 and 65535, got -1"},
		{"port protocol required", "{port: 8000, protocol: TCP, endPort: 8100}", "{port: 8000, endPort: 8100}", "spec.networkPolicy.egress[0].ports[0].protocol: required: TCP or UDP"},
		{"endPort below port", "endPort: 8100", "endPort: 7999", "spec.networkPolicy.egress[0].ports[0].endPort: must not be below port 8000, got 7999"},
		{"endPort max", "endPort: 8100", "endPort: 65536", "spec.networkPolicy.egress[0].ports[0].endPort: must be at most 65535, got 65536"},
		{"processes known", "processes: [nginx_1]", "processes: [nginx_1, nginx_9]", `spec.networkPolicy.ingress[0].processes[1]: no process node has id "nginx_9"`},
		// label selectors
		{"operator value", "operator: In", "operator: Contains", `spec.podSelector.matchExpressions[0].operator: must be In, NotIn, Exists or DoesNotExist, got "Contains"`},
		{"operator required", "{key: tier, operator: In, values: [web]}", "{key: tier, values: [web]}", "spec.podSelector.matchExpressions[0].operator: required"},
		{"In needs values", "operator: In, values: [web]", "operator: NotIn", "spec.podSelector.matchExpressions[0].values: required with operator NotIn"},
		{"Exists takes no values", "operator: DoesNotExist}", "operator: Exists, values: [x]}", "spec.podSelector.matchExpressions[1].values: must be empty with operator Exists"},
		{"expression key", "key: example.com/canary", "key: Example.com/canary", `spec.podSelector.matchExpressions[1].key: invalid label key "Example.com/canary"`},
		{"label key", "      app: nginx\n", "      -app: nginx\n", `spec.podSelector.matchLabels[-app]: invalid label key "-app": must begin and end with a letter or digit`},
		{"label key length", "      app: nginx\n", "      " + strings.Repeat("a", 64) + ": nginx\n", "longer than 63 characters"},
		{"label value", "app: nginx\n", "app: \"nginx proxy\"\n", `spec.podSelector.matchLabels[app]: invalid label value "nginx proxy": character ' ' not allowed`},
		{"label value glob", "tier: web-*", "tier: \"web-[\"", `spec.podSelector.matchLabels[tier]: invalid label value "web-[": syntax error in pattern`},
		{"expression value", "values: [web]", "values: [\"w b\"]", `spec.podSelector.matchExpressions[0].values[0]: invalid label value "w b"`},
		// response
		{"one action per entry", "- makeRedFlag: {severity: high, impact: short}", "- makeRedFlag: {severity: high}\n      agentKillProcess: {}", "spec.response.default[0]: must hold exactly one action"},
		{"empty action", "- makeRedFlag: {severity: high, impact: short}", "- {}", "spec.response.default[0]: must hold exactly one action"},
		{"severity required", "{severity: high, impact: short}", "{impact: short}", "spec.response.default[0].makeRedFlag.severity: required"},
		{"severity value", "severity: high", "severity: urgent", `spec.response.default[0].makeRedFlag.severity: must be one of critical, high, medium, low, info, got "urgent"`},
		{"ops severity value", "severity: info", "severity: debug", `spec.response.actions[1].makeOpsFlag.severity: must be one of`},
		{"impact length", "impact: short", "impact: " + strings.Repeat("é", 101), "spec.response.default[0].makeRedFlag.impact: at most 100 characters, got 101"},
		{"content length", "impact: short", "content: " + strings.Repeat("x", 351), "spec.response.default[0].makeRedFlag.content: at most 350 characters, got 351"},
		{"actions need a selector", "- agentKillPod: {podSelector: {matchLabels: {app: nginx}}}", "- agentKillPod: {}", "spec.response.actions[0].agentKillPod: entries of actions need at least one selector"},
		{"action selector syntax", "processSelector: {exe: /bin/sh}", "processSelector: {exe: \"/bin/[sh\"}", "spec.response.actions[1].makeOpsFlag.processSelector.exe[0]: invalid glob"},
		{"agentKillPod only for containers", "type: container\nspec:\n  containerSelector:\n    image: docker.io/library/nginx:*\n", "type: linux-service\nspec:\n  serviceSelector:\n    cgroup: \"systemd:/system.slice/nginx.service\"\n", "spec.response.actions[0].agentKillPod: only allowed in container policies"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(basePolicy, c.old) {
				t.Fatalf("basePolicy does not contain %q", c.old)
			}
			text := strings.Replace(basePolicy, c.old, c.new, 1)
			ps := problemsOf(t, "p.yaml", text)
			if !strings.Contains(ps.Error(), c.want) {
				t.Errorf("problems:\n%s\nwant one containing %q", ps, c.want)
			}
			for _, p := range ps {
				if p.Pos.File != "p.yaml" || p.Pos.Line == 0 {
					t.Errorf("problem without a position: %v", p)
				}
			}
		})
	}
}

func TestValidateNetworkPolicyRequired(t *testing.T) {
	i, j := strings.Index(basePolicy, "  networkPolicy:\n"), strings.Index(basePolicy, "  response:\n")
	ps := problemsOf(t, "p.yaml", basePolicy[:i]+basePolicy[j:])
	want := "p.yaml:6:1: spec.networkPolicy: required in a policy (with ingress and egress, each may be [])"
	if ps.Error() != want {
		t.Errorf("problems:\n%s\nwant:\n%s", ps, want)
	}
}

func TestValidateProblemPositions(t *testing.T) {
	text := strings.Replace(basePolicy, "endPort: 8100", "endPort: 7999", 1)
	text = strings.Replace(text, "processes: [nginx_1]", "processes: [nginx_1, nginx_9]", 1)
	ps := problemsOf(t, "p.yaml", text)
	want := "p.yaml:36:28: spec.networkPolicy.ingress[0].processes[1]: no process node has id \"nginx_9\"\n" +
		"p.yaml:41:43: spec.networkPolicy.egress[0].ports[0].endPort: must not be below port 8000, got 7999"
	if ps.Error() != want {
		t.Errorf("problems:\n%s\nwant:\n%s", ps, want)
	}
}

func TestValidateDeviationRules(t *testing.T) {
	const base = `apiVersion: spyderbat/v1
kind: GuardianDeviation
metadata: {type: container, policy_uid: pol:1}
spec:
  processPolicy:
  - policyNode:
      id: mongod_0
      children:
      - {name: sh, exe: [/bin/sh], id: sh_0}
  - {name: cron, exe: [/usr/sbin/cron], id: cron_0}
  networkPolicy:
    egress:
    - to: [{ipBlock: {cidr: 1.2.3.4/32}}]
      ports: [{port: 443, protocol: TCP}]
      processes: [sh_0, mongod_0, cron_0]
`
	if _, err := Load("d.yaml", []byte(base)); err != nil {
		t.Fatalf("base deviation: %v", err)
	}
	cases := []struct{ name, old, new, want string }{
		{"policyNode alone", "  - policyNode:\n", "  - name: x\n    policyNode:\n", "spec.processPolicy[0]: an entry with policyNode must have no other fields"},
		{"policyNode id", "      id: mongod_0\n", "", "spec.processPolicy[0].policyNode.id: required"},
		{"policyNode only top level", "  - {name: cron, exe: [/usr/sbin/cron], id: cron_0}", "  - {name: cron, exe: [/usr/sbin/cron], id: cron_0, children: [{policyNode: {id: x}}]}", "spec.processPolicy[1].children[0].policyNode: only allowed in the top-level processPolicy entries of a deviation"},
		{"grafted children checked", "{name: sh, exe: [/bin/sh], id: sh_0}", "{name: sh, id: sh_0}", "spec.processPolicy[0].policyNode.children[0].exe: required"},
		{"processes known", "processes: [sh_0, mongod_0, cron_0]", "processes: [nginx_0]", `spec.networkPolicy.egress[0].processes[0]: no process node has id "nginx_0"`},
		{"ids unique with grafts", "id: cron_0", "id: sh_0", `spec.processPolicy[1].id: duplicate id "sh_0" (also used at spec.processPolicy[0].policyNode.children[0])`},
		{"type value", "type: container", "type: vm", `metadata.type: must be container or linux-service, got "vm"`},
		{"mode value", "metadata: {type: container, policy_uid: pol:1}\nspec:\n", "metadata: {type: container, policy_uid: pol:1}\nspec:\n  mode: learn\n", `spec.mode: must be audit or enforce, got "learn"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(base, c.old) {
				t.Fatalf("base does not contain %q", c.old)
			}
			ps := problemsOf(t, "d.yaml", strings.Replace(base, c.old, c.new, 1))
			if !strings.Contains(ps.Error(), c.want) {
				t.Errorf("problems:\n%s\nwant one containing %q", ps, c.want)
			}
		})
	}
}

func TestValidateFingerprintRules(t *testing.T) {
	data := mustLoad(t, "testdata/load/seed-fingerprint.yaml")
	f := *data[0].Fingerprint
	if err := ValidateFingerprint(&f); err != nil {
		t.Fatalf("seed fingerprint: %v", err)
	}
	cases := []struct {
		name   string
		change func(f *Fingerprint)
		want   string
	}{
		{"name required", func(f *Fingerprint) { f.Metadata.Name = "" }, "metadata.name: required"},
		{"euser on root", func(f *Fingerprint) { f.Spec.ProcessPolicy[0].Euser = nil }, "spec.processPolicy[0].euser: required on root nodes"},
		{"policyNode not allowed", func(f *Fingerprint) {
			f.Spec.ProcessPolicy = append(f.Spec.ProcessPolicy, ProcessNode{PolicyNode: &PolicyNodeRef{ID: "nginx_0"}})
		}, "spec.processPolicy[1].policyNode: only allowed in the top-level processPolicy entries of a deviation"},
		{"mode not required", func(f *Fingerprint) { f.Spec.Mode = "x" }, `spec.mode: must be audit or enforce, got "x"`},
		{"kind", func(f *Fingerprint) { f.Kind = KindSpyderbatPolicy }, `kind: apiVersion "spyderbat/v1" with kind "SpyderbatPolicy" is not a fingerprint`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			docs := mustLoad(t, "testdata/load/seed-fingerprint.yaml")
			fp := docs[0].Fingerprint
			c.change(fp)
			err := ValidateFingerprint(fp)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("ValidateFingerprint = %v, want Problems", err)
			}
			if !strings.Contains(ps.Error(), c.want) {
				t.Errorf("problems:\n%s\nwant one containing %q", ps, c.want)
			}
		})
	}
}

func TestValidatePolicyInMemory(t *testing.T) {
	p := &WorkloadPolicy{
		APIVersion: APIVersionBulwark, Kind: KindWorkloadPolicy,
		Metadata: Metadata{Name: "p", Type: TypeContainer},
		Spec: Spec{
			ContainerSelector: &ContainerSelector{Image: "nginx"},
			Mode:              ModeAudit,
			NetworkPolicy:     &NetworkPolicy{},
		},
	}
	if err := ValidatePolicy(p); err != nil {
		t.Fatalf("minimal policy: %v", err)
	}
	p.Spec.NetworkPolicy = nil
	err := ValidatePolicy(p)
	want := "spec.networkPolicy: required in a policy (with ingress and egress, each may be [])"
	if err == nil || err.Error() != want {
		t.Errorf("ValidatePolicy = %v, want %q", err, want)
	}
}

func TestValidateDeviationInMemory(t *testing.T) {
	d := &Deviation{APIVersion: APIVersionBulwark, Kind: KindDeviation, Spec: Spec{
		ProcessPolicy: []ProcessNode{{PolicyNode: &PolicyNodeRef{ID: "a_0", Children: []ProcessNode{{Name: "sh", Exe: []string{"/bin/sh"}, ID: "sh_0"}}}}},
		NetworkPolicy: &NetworkPolicy{Egress: []NetworkRule{{To: []Peer{{DNSSelector: []string{"example.com"}}}, Ports: []Port{{Port: 53, Protocol: ProtocolUDP}}, Processes: []string{"a_0", "sh_0"}}}},
	}}
	if err := ValidateDeviation(d); err != nil {
		t.Fatalf("deviation: %v", err)
	}
	d.Kind = KindWorkloadPolicy
	if err := ValidateDeviation(d); err == nil || !strings.Contains(err.Error(), "is not a deviation") {
		t.Errorf("ValidateDeviation with a policy kind = %v", err)
	}
}

func TestValidateFlagRules(t *testing.T) {
	cases := []struct {
		name   string
		change func(m *FlagMetadata)
		want   string
	}{
		{"valid", func(*FlagMetadata) {}, ""},
		{"uid required", func(m *FlagMetadata) { m.UID = "" }, "metadata.uid: required"},
		{"class required", func(m *FlagMetadata) { m.Class = "" }, "metadata.class: required: redflag or opsflag"},
		{"class value", func(m *FlagMetadata) { m.Class = "greenflag" }, `metadata.class: must be redflag or opsflag, got "greenflag"`},
		{"severity required", func(m *FlagMetadata) { m.Severity = "" }, "metadata.severity: required: one of critical, high, medium, low, info"},
		{"severity value", func(m *FlagMetadata) { m.Severity = "huge" }, `metadata.severity: must be one of critical, high, medium, low, info, got "huge"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &Flag{APIVersion: APIVersionBulwark, Kind: KindFlag, Metadata: FlagMetadata{UID: "flag:1", Class: FlagClassOps, Severity: "low"}}
			c.change(&f.Metadata)
			err := ValidateFlag(f)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("ValidateFlag = %v, want nil", err)
			case c.want != "" && (err == nil || err.Error() != c.want):
				t.Errorf("ValidateFlag = %v, want %q", err, c.want)
			}
		})
	}
}

func TestLearnedDNSName(t *testing.T) {
	for in, want := range map[string]string{
		"api.example.com":                "api.example.com",
		"API.Example.COM.":               "api.example.com",
		"_srv._tcp.x-y.org":              "_srv._tcp.x-y.org",
		"localhost":                      "localhost",
		"*.example.com":                  "",
		"a?.example.com":                 "",
		"[ab].example.com":               "",
		"a..example.com":                 "",
		".":                              "",
		"":                               "",
		"a b.example.com":                "",
		"a\x00.example.com":              "",
		strings.Repeat("a", 64) + ".com": "",
		strings.Repeat(strings.Repeat("a", 63)+".", 4): "",
	} {
		got, ok := LearnedDNSName(in)
		if got != want || ok != (want != "") {
			t.Errorf("LearnedDNSName(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
