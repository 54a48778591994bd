// Package collector is Bulwark's local collector: agents stream records
// (fingerprints, deviations, flags, workload lifecycle, policies in force
// and their own counters) to it over a unix socket; it stores them in an
// embedded bbolt database with retention by age and size, answers queries
// for the CLI and exposes Prometheus metrics. The package also holds the
// agent's side: a client that spools records to a bounded on-disk queue
// and delivers them at least once, and a query client for the CLI.
package collector

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/bulwarkhq/bulwark/policy"
)

// Default locations of the collector's socket and database.
const (
	DefaultSocket = "/run/bulwark/collector.sock"
	DefaultDB     = "/var/lib/bulwark/collector.db"
)

// Kind says what a record's document is.
type Kind string

// Record kinds and the document each one carries.
const (
	// KindFingerprint carries a policy.Fingerprint: the current
	// fingerprint of one workload instance (a newer one replaces it).
	KindFingerprint Kind = "fingerprint"
	// KindDeviation carries a policy.Deviation.
	KindDeviation Kind = "deviation"
	// KindFlag carries a policy.Flag.
	KindFlag Kind = "flag"
	// KindWorkload carries a WorkloadEvent (a workload started or stopped).
	KindWorkload Kind = "workload"
	// KindPolicy carries a policy.WorkloadPolicy the agent has in force.
	KindPolicy Kind = "policy"
	// KindStats carries the agent's Stats.
	KindStats Kind = "stats"
)

// Record is one document an agent sends. Seq numbers the agent's records
// 1, 2, 3, … without gaps; the collector stores each (Agent, Seq) once
// however often it is delivered. Time is when the agent produced it.
type Record struct {
	Agent string          `json:"agent"`
	Seq   uint64          `json:"seq"`
	Kind  Kind            `json:"kind"`
	Time  time.Time       `json:"time"`
	Doc   json.RawMessage `json:"doc"`
}

// Workload lifecycle events (WorkloadEvent.Event).
const (
	WorkloadStarted = "started"
	WorkloadStopped = "stopped"
)

// WorkloadEvent reports that a workload instance started or stopped, with
// its identity and the policy (if any) the agent put it under.
type WorkloadEvent struct {
	// Event is WorkloadStarted or WorkloadStopped.
	Event string `json:"event" yaml:"event"`
	// Type is policy.TypeContainer or policy.TypeLinuxService.
	Type          string            `json:"type" yaml:"type"`
	ContainerID   string            `json:"containerID,omitempty" yaml:"containerID,omitempty"`
	ContainerName string            `json:"containerName,omitempty" yaml:"containerName,omitempty"`
	Image         string            `json:"image,omitempty" yaml:"image,omitempty"`
	ImageID       string            `json:"imageID,omitempty" yaml:"imageID,omitempty"`
	PodName       string            `json:"podName,omitempty" yaml:"podName,omitempty"`
	PodUID        string            `json:"podUID,omitempty" yaml:"podUID,omitempty"`
	Namespace     string            `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	Labels        map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	// Cgroup is the workload's cgroup path; ServiceCgroup and ServiceName
	// are set for systemd services ("systemd:/system.slice/x.service").
	Cgroup        string `json:"cgroup,omitempty" yaml:"cgroup,omitempty"`
	ServiceCgroup string `json:"serviceCgroup,omitempty" yaml:"serviceCgroup,omitempty"`
	ServiceName   string `json:"serviceName,omitempty" yaml:"serviceName,omitempty"`
	Hostname      string `json:"hostname,omitempty" yaml:"hostname,omitempty"`
	PolicyName    string `json:"policyName,omitempty" yaml:"policyName,omitempty"`
	PolicyMode    string `json:"policyMode,omitempty" yaml:"policyMode,omitempty"`
}

// instance names the workload instance: its container ID, else its
// service cgroup, else its cgroup.
func (w *WorkloadEvent) instance() string {
	switch {
	case w.ContainerID != "":
		return w.ContainerID
	case w.ServiceCgroup != "":
		return w.ServiceCgroup
	}
	return w.Cgroup
}

// Stats are an agent's counters. Counters are cumulative since the agent
// started; the collector derives rates from successive reports.
type Stats struct {
	// Events is the number of kernel events the agent read.
	Events uint64 `json:"events" yaml:"events"`
	// LostEvents is the number of kernel events lost before the agent read
	// them (ring buffer full).
	LostEvents uint64 `json:"lostEvents" yaml:"lostEvents"`
	// UnaggregatedDeviations counts deviations the kernel emitted one by
	// one because its aggregation table was full.
	UnaggregatedDeviations uint64 `json:"unaggregatedDeviations,omitempty" yaml:"unaggregatedDeviations,omitempty"`
	// UnparsedDNSAnswers counts DNS answers the kernel could not parse
	// within its bounds (they granted nothing to dnsSelector rules).
	UnparsedDNSAnswers uint64 `json:"unparsedDNSAnswers,omitempty" yaml:"unparsedDNSAnswers,omitempty"`
	// WorkloadLostEvents is LostEvents of each workload that lost any, by
	// workload name.
	WorkloadLostEvents map[string]uint64 `json:"workloadLostEvents,omitempty" yaml:"workloadLostEvents,omitempty"`
	// LinkRepairs counts enforcement links found detached or unpinned
	// out of band and restored by the agent.
	LinkRepairs uint64 `json:"linkRepairs,omitempty" yaml:"linkRepairs,omitempty"`
	// EnforcedWorkloads is the number of workloads under a policy now.
	EnforcedWorkloads int `json:"enforcedWorkloads" yaml:"enforcedWorkloads"`
	// SpoolDepth and SpoolDropped are filled in by Client.Send: the
	// records waiting in the spool and the records it dropped, full,
	// since the spool was created.
	SpoolDepth   int    `json:"spoolDepth" yaml:"spoolDepth"`
	SpoolDropped uint64 `json:"spoolDropped" yaml:"spoolDropped"`
	// Policies, when not nil, names every policy the agent has in force:
	// the collector forgets the agent's other policies and keeps these
	// fresh (so that retention and --since see them as current). Leave it
	// nil not to report policies; an empty list means none.
	Policies []string `json:"policies" yaml:"policies"`
}

// encodeDoc checks that doc is the document kind carries and marshals it.
func encodeDoc(kind Kind, doc any) (json.RawMessage, error) {
	ok := false
	switch kind {
	case KindFingerprint:
		ok = isType[policy.Fingerprint](doc)
	case KindDeviation:
		ok = isType[policy.Deviation](doc)
	case KindFlag:
		ok = isType[policy.Flag](doc)
	case KindWorkload:
		ok = isType[WorkloadEvent](doc)
	case KindPolicy:
		ok = isType[policy.WorkloadPolicy](doc)
	case KindStats:
		ok = isType[Stats](doc)
	default:
		return nil, fmt.Errorf("unknown record kind %q", kind)
	}
	if !ok {
		return nil, fmt.Errorf("a %s record cannot carry a %T", kind, doc)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode %s record: %w", kind, err)
	}
	return b, nil
}

// isType reports whether v is a T or a non-nil *T.
func isType[T any](v any) bool {
	switch v := v.(type) {
	case T:
		return true
	case *T:
		return v != nil
	}
	return false
}
