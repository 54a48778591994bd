package collector

import (
	"time"

	"github.com/bulwarkhq/bulwark/policy"
)

// Batch is what a client posts to /v1/records: the next records of one
// agent in sequence order. Epoch identifies the agent's spool: a new spool
// (a new Epoch) restarts the agent's sequence at 1. After says that the
// client holds no record numbered After or below any more (they were
// acknowledged, or dropped when the spool was full), so the collector
// stops waiting for them.
type Batch struct {
	Agent   string   `json:"agent"`
	Epoch   string   `json:"epoch"`
	After   uint64   `json:"after"`
	Records []Record `json:"records"`
}

// Ack is the collector's reply to a Batch: every record of the agent up to
// and including Seq is stored (or was skipped as dropped), and the client
// may forget them.
type Ack struct {
	Seq uint64 `json:"seq"`
}

// Filter selects stored records. Empty fields select everything.
type Filter struct {
	// Image is an image reference or glob, matched as a policy's
	// containerSelector.image; a reference without tag or digest also
	// matches every tag of that repository.
	Image string
	// Service is a service cgroup or glob, matched as a policy's
	// serviceSelector.cgroup.
	Service string
	// Namespace is a namespace name or glob.
	Namespace string
	// Policy is a policy name or glob. Fingerprints pass when a stored
	// policy of that name selects their workload.
	Policy string
	// Since keeps only records last seen within this long before now.
	Since time.Duration
}

// Workload states (Workload.State).
const (
	StateRunning = "running"
	StateStopped = "stopped"
)

// Workload is a workload instance as the collector knows it from the
// agents' lifecycle events.
type Workload struct {
	Agent         string `json:"agent" yaml:"agent"`
	WorkloadEvent `yaml:",inline"`
	State         string    `json:"state" yaml:"state"`
	Started       time.Time `json:"started,omitzero" yaml:"started,omitempty"`
	Stopped       time.Time `json:"stopped,omitzero" yaml:"stopped,omitempty"`
	LastSeen      time.Time `json:"lastSeen" yaml:"lastSeen"`
}

// FingerprintGroup gathers the current fingerprints of every instance of
// one image (containers) or one service cgroup (systemd services), as
// Spyderbat's FingerprintGroup does.
type FingerprintGroup struct {
	// Key is "image:" plus the normalised image reference, "service:"
	// plus the service cgroup, or "name:" plus the fingerprint's name.
	Key       string                `json:"key" yaml:"key"`
	Type      string                `json:"type" yaml:"type"`
	Image     string                `json:"image,omitempty" yaml:"image,omitempty"`
	Service   string                `json:"service,omitempty" yaml:"service,omitempty"`
	FirstSeen time.Time             `json:"firstSeen" yaml:"firstSeen"`
	LastSeen  time.Time             `json:"lastSeen" yaml:"lastSeen"`
	Instances []FingerprintInstance `json:"instances" yaml:"instances"`
}

// FingerprintInstance is the current fingerprint of one workload instance.
type FingerprintInstance struct {
	Agent       string             `json:"agent" yaml:"agent"`
	Group       string             `json:"group" yaml:"group"`
	FirstSeen   time.Time          `json:"firstSeen" yaml:"firstSeen"`
	LastSeen    time.Time          `json:"lastSeen" yaml:"lastSeen"`
	Fingerprint policy.Fingerprint `json:"fingerprint" yaml:"fingerprint"`
}

// StoredPolicy is a policy an agent reported in force.
type StoredPolicy struct {
	Agent     string                `json:"agent" yaml:"agent"`
	FirstSeen time.Time             `json:"firstSeen" yaml:"firstSeen"`
	LastSeen  time.Time             `json:"lastSeen" yaml:"lastSeen"`
	Policy    policy.WorkloadPolicy `json:"policy" yaml:"policy"`
}

// StoredDeviation is one distinct deviation (one checksum under one
// policy) with how often and when it occurred. Deviation is its latest
// occurrence.
type StoredDeviation struct {
	Count     uint64           `json:"count" yaml:"count"`
	Agents    []string         `json:"agents" yaml:"agents"`
	FirstSeen time.Time        `json:"firstSeen" yaml:"firstSeen"`
	LastSeen  time.Time        `json:"lastSeen" yaml:"lastSeen"`
	Deviation policy.Deviation `json:"deviation" yaml:"deviation"`
}

// StoredFlag is a flag an agent raised.
type StoredFlag struct {
	Agent    string      `json:"agent" yaml:"agent"`
	LastSeen time.Time   `json:"lastSeen" yaml:"lastSeen"`
	Flag     policy.Flag `json:"flag" yaml:"flag"`
}

// AgentState is what the collector knows of one agent: its sequence
// position and its latest Stats.
type AgentState struct {
	Agent string `json:"agent"`
	Epoch string `json:"epoch"`
	// Last is the highest sequence number stored (or skipped).
	Last uint64 `json:"last"`
	// Skipped counts records the agent's spool dropped before delivering
	// them (sequence numbers the collector was told to skip).
	Skipped uint64 `json:"skipped"`
	// Rejected counts records that could not be decoded.
	Rejected  uint64    `json:"rejected"`
	StatsTime time.Time `json:"statsTime,omitzero"`
	Stats     Stats     `json:"stats"`
	// EventsPerSecond is the agent's kernel event rate between its last
	// two Stats reports.
	EventsPerSecond float64 `json:"eventsPerSecond"`
}
