package agent

import (
	"sync"

	"github.com/bulwarkhq/bulwark/policy"
)

// records keeps the latest deviations and flags in memory, bounded, with
// deviations de-duplicated by (policy, checksum): a repeated deviation is
// not stored again.
type records struct {
	max int

	mu         sync.Mutex
	deviations []policy.Deviation
	seen       map[string]bool // policy + checksum of the stored deviations
	flags      []policy.Flag
}

func newRecords(max int) *records {
	return &records{max: max, seen: map[string]bool{}}
}

// addDeviation stores d unless the same deviation of the same policy was
// stored before. It reports whether d is new.
func (r *records) addDeviation(d policy.Deviation) bool {
	key := d.Metadata.PolicyName + "\x00" + d.Metadata.Checksum
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[key] {
		return false
	}
	r.seen[key] = true
	r.deviations = append(r.deviations, d)
	if len(r.deviations) > r.max {
		old := r.deviations[0]
		delete(r.seen, old.Metadata.PolicyName+"\x00"+old.Metadata.Checksum)
		r.deviations = r.deviations[1:]
	}
	return true
}

func (r *records) addFlag(f policy.Flag) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flags = append(r.flags, f)
	if len(r.flags) > r.max {
		r.flags = r.flags[1:]
	}
}

func (r *records) deviationList() []policy.Deviation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]policy.Deviation(nil), r.deviations...)
}

func (r *records) flagList() []policy.Flag {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]policy.Flag(nil), r.flags...)
}

func (r *records) counts() (deviations, flags int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.deviations), len(r.flags)
}
