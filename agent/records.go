package agent

import (
	"sync"

	"github.com/bulwarkhq/bulwark/policy"
)

// records keeps the latest deviations and flags in memory, bounded, with
// deviations de-duplicated by (policy, checksum): a repeated deviation is
// not stored again, its count and latest timestamp grow.
type records struct {
	max int

	mu         sync.Mutex
	deviations []*policy.Deviation
	seen       map[string]*policy.Deviation // the stored deviations by policy + checksum
	flags      []policy.Flag
}

func newRecords(max int) *records {
	return &records{max: max, seen: map[string]*policy.Deviation{}}
}

// addDeviation stores d unless the same deviation of the same policy was
// stored before, in which case the stored one counts d's occurrences. It
// reports whether d is new.
func (r *records) addDeviation(d policy.Deviation) bool {
	key := d.Metadata.PolicyName + "\x00" + d.Metadata.Checksum
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.seen[key]; old != nil {
		if old.Metadata.Event != nil {
			old.Metadata.Event.Count = old.Occurrences() + d.Occurrences()
		}
		old.Metadata.LatestTimestamp = max(old.Metadata.LatestTimestamp, d.Metadata.LatestTimestamp)
		return false
	}
	if d.Metadata.Event != nil {
		ev := *d.Metadata.Event
		d.Metadata.Event = &ev
	}
	r.seen[key] = &d
	r.deviations = append(r.deviations, &d)
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
	out := make([]policy.Deviation, len(r.deviations))
	for i, d := range r.deviations {
		out[i] = *d
		if d.Metadata.Event != nil {
			ev := *d.Metadata.Event
			out[i].Metadata.Event = &ev
		}
	}
	return out
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
