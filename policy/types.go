// Package policy is Bulwark's data model: fingerprints, workload policies,
// deviations and flags, their loading and validation, selector matching,
// merging and diffing. It imports nothing else from Bulwark.
//
// Field names follow Spyderbat's open schema so that `apiVersion: spyderbat/v1`
// documents load unchanged; Bulwark's own documents (`apiVersion: bulwark/v1`)
// use the same fields under Bulwark kind names.
package policy

// API versions understood by the loader.
const (
	APIVersionSpyderbat = "spyderbat/v1"
	APIVersionBulwark   = "bulwark/v1"
)

// Document kinds. The Spyderbat names are accepted under APIVersionSpyderbat,
// the Bulwark names under APIVersionBulwark.
const (
	KindSpyderbatFingerprint = "SpyderbatFingerprint"
	KindSpyderbatPolicy      = "SpyderbatPolicy"
	KindGuardianDeviation    = "GuardianDeviation"
	// KindFingerprintGroup is what `spyctl get fingerprints` prints: the
	// fingerprints of one image or service under data.fingerprints. Load
	// returns its fingerprints as documents of their own.
	KindFingerprintGroup = "FingerprintGroup"
	// KindSpyderbatBaseline is the older form of a policy; it loads as a
	// WorkloadPolicy that keeps this kind.
	KindSpyderbatBaseline = "SpyderbatBaseline"

	KindFingerprint    = "Fingerprint"
	KindWorkloadPolicy = "WorkloadPolicy"
	KindDeviation      = "Deviation"
	KindFlag           = "Flag"
)

// Workload types (metadata.type).
const (
	TypeContainer    = "container"
	TypeLinuxService = "linux-service"
)

// Policy modes (spec.mode).
const (
	ModeAudit   = "audit"
	ModeEnforce = "enforce"
)

// Protocols (ports[].protocol, listeningSockets[].protocol).
const (
	ProtocolTCP = "TCP"
	ProtocolUDP = "UDP"
)

// Metadata is the metadata block shared by fingerprints, policies and
// deviations. Every field is optional at this level; which ones a document
// needs is decided by validation.
type Metadata struct {
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Type is the workload type: TypeContainer or TypeLinuxService.
	Type              string            `yaml:"type,omitempty" json:"type,omitempty"`
	UID               string            `yaml:"uid,omitempty" json:"uid,omitempty"`
	CreationTimestamp float64           `yaml:"creationTimestamp,omitempty" json:"creationTimestamp,omitempty"`
	FirstTimestamp    float64           `yaml:"firstTimestamp,omitempty" json:"firstTimestamp,omitempty"`
	LatestTimestamp   float64           `yaml:"latestTimestamp,omitempty" json:"latestTimestamp,omitempty"`
	SelectorHash      string            `yaml:"selectorHash,omitempty" json:"selectorHash,omitempty"`
	Checksum          string            `yaml:"checksum,omitempty" json:"checksum,omitempty"`
	Version           int               `yaml:"version,omitempty" json:"version,omitempty"`
	ClusterName       string            `yaml:"cluster_name,omitempty" json:"cluster_name,omitempty"`
	ClusterUID        string            `yaml:"cluster_uid,omitempty" json:"cluster_uid,omitempty"`
	Hostname          string            `yaml:"hostname,omitempty" json:"hostname,omitempty"`
	Image             string            `yaml:"image,omitempty" json:"image,omitempty"`
	ImageID           string            `yaml:"imageID,omitempty" json:"imageID,omitempty"`
	ContainerName     string            `yaml:"containerName,omitempty" json:"containerName,omitempty"`
	ContainerID       string            `yaml:"containerID,omitempty" json:"containerID,omitempty"`
	PodName           string            `yaml:"pod_name,omitempty" json:"pod_name,omitempty"`
	PodUID            string            `yaml:"pod_uid,omitempty" json:"pod_uid,omitempty"`
	Namespace         string            `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	PodLabels         map[string]string `yaml:"pod_labels,omitempty" json:"pod_labels,omitempty"`
	NamespaceLabels   map[string]string `yaml:"namespace_labels,omitempty" json:"namespace_labels,omitempty"`
	ServiceName       string            `yaml:"service_name,omitempty" json:"service_name,omitempty"`
	Cgroup            string            `yaml:"cgroup,omitempty" json:"cgroup,omitempty"`
	// PolicyUID and PolicyName name the policy a deviation was raised
	// against; PolicyMode is that policy's mode at the time.
	PolicyUID  string `yaml:"policy_uid,omitempty" json:"policy_uid,omitempty"`
	PolicyName string `yaml:"policy_name,omitempty" json:"policy_name,omitempty"`
	PolicyMode string `yaml:"policy_mode,omitempty" json:"policy_mode,omitempty"`
	// Event describes the kernel event behind a deviation (Bulwark only).
	Event *Event `yaml:"event,omitempty" json:"event,omitempty"`
	// Extra holds the metadata keys Bulwark does not know (Spyderbat
	// exports carry org_uid, muid, pod-uid and others); they are kept and
	// written back out unchanged. Only metadata is open: spec stays strict.
	Extra map[string]any `yaml:",inline" json:"-"`
}

// Event is what the kernel saw when it raised a deviation: the process, its
// parent's policy node, the connection (for network deviations) and what the
// kernel did about it.
type Event struct {
	// Kind is "exec", "cred" (an euid change), "connect" (egress) or
	// "accept" (ingress).
	Kind      string `yaml:"kind" json:"kind"`
	Verdict   string `yaml:"verdict" json:"verdict"` // "blocked" or "allowed"
	Timestamp string `yaml:"timestamp,omitempty" json:"timestamp,omitempty"`
	CgroupID  uint64 `yaml:"cgroupID,omitempty" json:"cgroupID,omitempty"`
	PID       int    `yaml:"pid,omitempty" json:"pid,omitempty"`
	PPID      int    `yaml:"ppid,omitempty" json:"ppid,omitempty"`
	UID       int    `yaml:"uid" json:"uid"`
	EUID      int    `yaml:"euid" json:"euid"`
	// OldEUID is the euid before a cred change (kind "cred").
	OldEUID    *int   `yaml:"oldEuid,omitempty" json:"oldEuid,omitempty"`
	Exe        string `yaml:"exe,omitempty" json:"exe,omitempty"`
	Comm       string `yaml:"comm,omitempty" json:"comm,omitempty"`
	ParentNode string `yaml:"parentNode,omitempty" json:"parentNode,omitempty"`
	Node       string `yaml:"node,omitempty" json:"node,omitempty"`
	Protocol   string `yaml:"protocol,omitempty" json:"protocol,omitempty"`
	SrcAddr    string `yaml:"srcAddr,omitempty" json:"srcAddr,omitempty"`
	SrcPort    int    `yaml:"srcPort,omitempty" json:"srcPort,omitempty"`
	DstAddr    string `yaml:"dstAddr,omitempty" json:"dstAddr,omitempty"`
	DstPort    int    `yaml:"dstPort,omitempty" json:"dstPort,omitempty"`
	// DNSName is the name the workload resolved to DstAddr (connect),
	// as the kernel saw it in the DNS answer; empty without a lookup.
	DNSName string `yaml:"dnsName,omitempty" json:"dnsName,omitempty"`
	// Count is how many occurrences the record stands for, between the
	// deviation's firstTimestamp and latestTimestamp (the kernel counts
	// repeats instead of reporting each); 0 means 1.
	Count uint64 `yaml:"count,omitempty" json:"count,omitempty"`

	// ExeStatus is ExeUnresolved or ExeTruncated when the kernel could
	// not resolve Exe (which then holds the part it saw) and so matched
	// no policy node; empty otherwise.
	ExeStatus string `yaml:"exeStatus,omitempty" json:"exeStatus,omitempty"`
}

// Occurrences is how many occurrences a deviation record stands for: its
// event's Count, at least 1.
func (d *Deviation) Occurrences() uint64 {
	if d.Metadata.Event == nil || d.Metadata.Event.Count == 0 {
		return 1
	}
	return d.Metadata.Event.Count
}

// Event.ExeStatus values.
const (
	// ExeUnresolved: the exe's path did not lead to the workload's root.
	ExeUnresolved = "unresolved"
	// ExeTruncated: the exe's path was too long or too deep.
	ExeTruncated = "truncated"
)

// Spec is the body shared by fingerprints, policies and deviations:
// selectors, options, the process tree, the network rules and the response.
type Spec struct {
	ContainerSelector *ContainerSelector `yaml:"containerSelector,omitempty" json:"containerSelector,omitempty"`
	ServiceSelector   *ServiceSelector   `yaml:"serviceSelector,omitempty" json:"serviceSelector,omitempty"`
	MachineSelector   *MachineSelector   `yaml:"machineSelector,omitempty" json:"machineSelector,omitempty"`
	PodSelector       *LabelSelector     `yaml:"podSelector,omitempty" json:"podSelector,omitempty"`
	NamespaceSelector *LabelSelector     `yaml:"namespaceSelector,omitempty" json:"namespaceSelector,omitempty"`

	// Mode is ModeAudit or ModeEnforce (policies only).
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
	// Enabled defaults to true when absent.
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// DisableProcesses is "all" or empty.
	DisableProcesses string `yaml:"disableProcesses,omitempty" json:"disableProcesses,omitempty"`
	// DisableConnections and its private/public variants are each
	// "all", "ingress", "egress" or empty.
	DisableConnections        string `yaml:"disableConnections,omitempty" json:"disableConnections,omitempty"`
	DisablePrivateConnections string `yaml:"disablePrivateConnections,omitempty" json:"disablePrivateConnections,omitempty"`
	DisablePublicConnections  string `yaml:"disablePublicConnections,omitempty" json:"disablePublicConnections,omitempty"`

	ProcessPolicy []ProcessNode  `yaml:"processPolicy,omitempty" json:"processPolicy,omitempty"`
	NetworkPolicy *NetworkPolicy `yaml:"networkPolicy,omitempty" json:"networkPolicy,omitempty"`
	Response      *Response      `yaml:"response,omitempty" json:"response,omitempty"`
}

// ContainerSelector selects containers; string values are globs.
type ContainerSelector struct {
	Image                  string            `yaml:"image,omitempty" json:"image,omitempty"`
	ImageID                string            `yaml:"imageID,omitempty" json:"imageID,omitempty"`
	ContainerName          string            `yaml:"containerName,omitempty" json:"containerName,omitempty"`
	ContainerID            string            `yaml:"containerID,omitempty" json:"containerID,omitempty"`
	MatchFields            map[string]string `yaml:"matchFields,omitempty" json:"matchFields,omitempty"`
	MatchFieldsExpressions []Requirement     `yaml:"matchFieldsExpressions,omitempty" json:"matchFieldsExpressions,omitempty"`
}

// ServiceSelector selects a systemd service by cgroup (for example
// "systemd:/system.slice/chronyd.service") or unit name; values are globs.
type ServiceSelector struct {
	Cgroup                 string            `yaml:"cgroup,omitempty" json:"cgroup,omitempty"`
	Name                   string            `yaml:"name,omitempty" json:"name,omitempty"`
	MatchFields            map[string]string `yaml:"matchFields,omitempty" json:"matchFields,omitempty"`
	MatchFieldsExpressions []Requirement     `yaml:"matchFieldsExpressions,omitempty" json:"matchFieldsExpressions,omitempty"`
}

// MachineSelector selects nodes by hostname or machine UID; each accepts a
// single string or a list of globs.
type MachineSelector struct {
	Hostname               StringList        `yaml:"hostname,omitempty" json:"hostname,omitempty"`
	MachineUID             StringList        `yaml:"machineUID,omitempty" json:"machineUID,omitempty"`
	MatchFields            map[string]string `yaml:"matchFields,omitempty" json:"matchFields,omitempty"`
	MatchFieldsExpressions []Requirement     `yaml:"matchFieldsExpressions,omitempty" json:"matchFieldsExpressions,omitempty"`
}

// ProcessSelector selects processes in response actions; values are globs.
type ProcessSelector struct {
	Name                   StringList        `yaml:"name,omitempty" json:"name,omitempty"`
	Exe                    StringList        `yaml:"exe,omitempty" json:"exe,omitempty"`
	Euser                  StringList        `yaml:"euser,omitempty" json:"euser,omitempty"`
	MatchFields            map[string]string `yaml:"matchFields,omitempty" json:"matchFields,omitempty"`
	MatchFieldsExpressions []Requirement     `yaml:"matchFieldsExpressions,omitempty" json:"matchFieldsExpressions,omitempty"`
}

// StringList is a list of strings that may be written as a single string.
type StringList []string

// LabelSelector is a Kubernetes-style label selector.
type LabelSelector struct {
	MatchLabels      map[string]string `yaml:"matchLabels,omitempty" json:"matchLabels,omitempty"`
	MatchExpressions []Requirement     `yaml:"matchExpressions,omitempty" json:"matchExpressions,omitempty"`
}

// Requirement is one matchExpressions / matchFieldsExpressions entry.
// Operator is In, NotIn, Exists or DoesNotExist.
type Requirement struct {
	Key      string   `yaml:"key" json:"key"`
	Operator string   `yaml:"operator" json:"operator"`
	Values   []string `yaml:"values,omitempty" json:"values,omitempty"`
}

// ProcessNode is one node of the allowed process forest. In a deviation an
// entry may instead carry only PolicyNode, which grafts new children under
// an existing node of the policy.
type ProcessNode struct {
	Name             string         `yaml:"name,omitempty" json:"name,omitempty"`
	Exe              []string       `yaml:"exe,omitempty" json:"exe,omitempty"`
	Euser            []string       `yaml:"euser,omitempty" json:"euser,omitempty"`
	ID               string         `yaml:"id,omitempty" json:"id,omitempty"`
	ListeningSockets []Port         `yaml:"listeningSockets,omitempty" json:"listeningSockets,omitempty"`
	Children         []ProcessNode  `yaml:"children,omitempty" json:"children,omitempty"`
	PolicyNode       *PolicyNodeRef `yaml:"policyNode,omitempty" json:"policyNode,omitempty"`
}

// PolicyNodeRef grafts Children under the existing policy node ID.
type PolicyNodeRef struct {
	ID       string        `yaml:"id" json:"id"`
	Children []ProcessNode `yaml:"children,omitempty" json:"children,omitempty"`
}

// NetworkPolicy lists the allowed inbound and outbound connections.
type NetworkPolicy struct {
	Ingress []NetworkRule `yaml:"ingress" json:"ingress"`
	Egress  []NetworkRule `yaml:"egress" json:"egress"`
}

// NetworkRule allows connections with any of its peers on any of its ports,
// made (egress) or accepted (ingress) by any of its processes (policy node
// ids; empty means any process). Ingress rules use From, egress rules To.
type NetworkRule struct {
	From      []Peer   `yaml:"from,omitempty" json:"from,omitempty"`
	To        []Peer   `yaml:"to,omitempty" json:"to,omitempty"`
	Ports     []Port   `yaml:"ports" json:"ports"`
	Processes []string `yaml:"processes,omitempty" json:"processes,omitempty"`
}

// Peer is either an address block or a list of DNS name globs.
type Peer struct {
	IPBlock     *IPBlock `yaml:"ipBlock,omitempty" json:"ipBlock,omitempty"`
	DNSSelector []string `yaml:"dnsSelector,omitempty" json:"dnsSelector,omitempty"`
}

// IPBlock is a CIDR minus the CIDRs in Except.
type IPBlock struct {
	CIDR   string   `yaml:"cidr" json:"cidr"`
	Except []string `yaml:"except,omitempty" json:"except,omitempty"`
}

// Port is a port or, with EndPort, an inclusive port range for one protocol.
type Port struct {
	Port     int    `yaml:"port" json:"port"`
	Protocol string `yaml:"protocol" json:"protocol"`
	EndPort  int    `yaml:"endPort,omitempty" json:"endPort,omitempty"`
}

// Response says what to do when a deviation happens: Default applies to
// every deviation, Actions only where their selectors match.
type Response struct {
	Default []Action `yaml:"default" json:"default"`
	Actions []Action `yaml:"actions" json:"actions"`
}

// Action holds exactly one response action.
type Action struct {
	MakeRedFlag           *FlagAction `yaml:"makeRedFlag,omitempty" json:"makeRedFlag,omitempty"`
	MakeOpsFlag           *FlagAction `yaml:"makeOpsFlag,omitempty" json:"makeOpsFlag,omitempty"`
	AgentKillProcess      *KillAction `yaml:"agentKillProcess,omitempty" json:"agentKillProcess,omitempty"`
	AgentKillProcessGroup *KillAction `yaml:"agentKillProcessGroup,omitempty" json:"agentKillProcessGroup,omitempty"`
	AgentKillPod          *KillAction `yaml:"agentKillPod,omitempty" json:"agentKillPod,omitempty"`
}

// ActionSelectors limit an entry of Response.Actions to matching workloads
// and processes.
type ActionSelectors struct {
	ContainerSelector *ContainerSelector `yaml:"containerSelector,omitempty" json:"containerSelector,omitempty"`
	PodSelector       *LabelSelector     `yaml:"podSelector,omitempty" json:"podSelector,omitempty"`
	NamespaceSelector *LabelSelector     `yaml:"namespaceSelector,omitempty" json:"namespaceSelector,omitempty"`
	MachineSelector   *MachineSelector   `yaml:"machineSelector,omitempty" json:"machineSelector,omitempty"`
	ServiceSelector   *ServiceSelector   `yaml:"serviceSelector,omitempty" json:"serviceSelector,omitempty"`
	ProcessSelector   *ProcessSelector   `yaml:"processSelector,omitempty" json:"processSelector,omitempty"`
}

// FlagAction raises a flag. Severity is critical, high, medium, low or info.
type FlagAction struct {
	ActionSelectors `yaml:",inline"`
	Severity        string `yaml:"severity" json:"severity"`
	Impact          string `yaml:"impact,omitempty" json:"impact,omitempty"`
	Content         string `yaml:"content,omitempty" json:"content,omitempty"`
	Description     string `yaml:"description,omitempty" json:"description,omitempty"`
	Enabled         *bool  `yaml:"enabled,omitempty" json:"enabled,omitempty"`
}

// KillAction kills the deviant process, its process group or its pod.
type KillAction struct {
	ActionSelectors `yaml:",inline"`
}

// Fingerprint is the observed behaviour of one workload instance.
type Fingerprint struct {
	APIVersion string   `yaml:"apiVersion" json:"apiVersion"`
	Kind       string   `yaml:"kind" json:"kind"`
	Metadata   Metadata `yaml:"metadata" json:"metadata"`
	Spec       Spec     `yaml:"spec" json:"spec"`
}

// FingerprintGroup is the fingerprints of one image (containers) or one
// service cgroup, as spyctl prints them.
type FingerprintGroup struct {
	APIVersion string        `yaml:"apiVersion" json:"apiVersion"`
	Kind       string        `yaml:"kind" json:"kind"`
	Metadata   GroupMetadata `yaml:"metadata" json:"metadata"`
	Data       GroupData     `yaml:"data" json:"data"`
}

// GroupMetadata says what a FingerprintGroup groups by; unknown keys are
// kept in Extra, as in Metadata.
type GroupMetadata struct {
	Image           string         `yaml:"image,omitempty" json:"image,omitempty"`
	ImageID         string         `yaml:"imageID,omitempty" json:"imageID,omitempty"`
	Cgroup          string         `yaml:"cgroup,omitempty" json:"cgroup,omitempty"`
	FirstTimestamp  float64        `yaml:"firstTimestamp,omitempty" json:"firstTimestamp,omitempty"`
	LatestTimestamp float64        `yaml:"latestTimestamp,omitempty" json:"latestTimestamp,omitempty"`
	Extra           map[string]any `yaml:",inline" json:"-"`
}

// GroupData holds a FingerprintGroup's fingerprints and where they were
// seen.
type GroupData struct {
	Fingerprints   []Fingerprint `yaml:"fingerprints" json:"fingerprints"`
	ContainerNames StringList    `yaml:"containerNames,omitempty" json:"containerNames,omitempty"`
	ContainerIDs   StringList    `yaml:"containerIDs,omitempty" json:"containerIDs,omitempty"`
	Machines       StringList    `yaml:"machines,omitempty" json:"machines,omitempty"`
}

// WorkloadPolicy is the allowed behaviour of every workload its selectors
// match.
type WorkloadPolicy struct {
	APIVersion string   `yaml:"apiVersion" json:"apiVersion"`
	Kind       string   `yaml:"kind" json:"kind"`
	Metadata   Metadata `yaml:"metadata" json:"metadata"`
	Spec       Spec     `yaml:"spec" json:"spec"`
}

// Deviation records activity outside a policy: its Spec holds exactly what
// must be merged into the policy to allow the activity.
type Deviation struct {
	APIVersion string   `yaml:"apiVersion" json:"apiVersion"`
	Kind       string   `yaml:"kind" json:"kind"`
	Metadata   Metadata `yaml:"metadata" json:"metadata"`
	Spec       Spec     `yaml:"spec" json:"spec"`
}

// Flag is raised by a makeRedFlag or makeOpsFlag response action.
type Flag struct {
	APIVersion string       `yaml:"apiVersion" json:"apiVersion"`
	Kind       string       `yaml:"kind" json:"kind"`
	Metadata   FlagMetadata `yaml:"metadata" json:"metadata"`
}

// FlagMetadata describes a flag: its class ("redflag" or "opsflag"), its
// severity, the policy and deviation that raised it and the workload.
type FlagMetadata struct {
	UID          string  `yaml:"uid" json:"uid"`
	Class        string  `yaml:"class" json:"class"`
	Severity     string  `yaml:"severity" json:"severity"`
	Timestamp    float64 `yaml:"timestamp" json:"timestamp"`
	PolicyUID    string  `yaml:"policy_uid,omitempty" json:"policy_uid,omitempty"`
	PolicyName   string  `yaml:"policy_name,omitempty" json:"policy_name,omitempty"`
	DeviationUID string  `yaml:"deviation_uid,omitempty" json:"deviation_uid,omitempty"`
	Workload     string  `yaml:"workload,omitempty" json:"workload,omitempty"`
	Hostname     string  `yaml:"hostname,omitempty" json:"hostname,omitempty"`
	Impact       string  `yaml:"impact,omitempty" json:"impact,omitempty"`
	Content      string  `yaml:"content,omitempty" json:"content,omitempty"`
	Description  string  `yaml:"description,omitempty" json:"description,omitempty"`
}
