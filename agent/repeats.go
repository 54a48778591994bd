package agent

import (
	"sync"
	"time"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/policy"
)

// How long the tally keeps what it cannot use yet.
const (
	// pendingRepeatTTL bounds how long repeats wait for the event of
	// their first occurrence (still queued when the kernel was drained).
	pendingRepeatTTL = time.Minute
	// knownDeviationTTL is how long a deviation with no new occurrence
	// stays known, for repeats drained later.
	knownDeviationTTL = 10 * time.Minute
)

// deviationTally joins the kernel's counts of a deviation's repeats
// (bpf.Repeat, drained periodically) to the deviation record built from
// the event of its first occurrence; the two arrive in either order.
type deviationTally struct {
	mu      sync.Mutex
	known   map[bpf.DeviationKey]*knownDeviation
	pending map[bpf.DeviationKey]*pendingRepeat
}

type knownDeviation struct {
	d    policy.Deviation
	seen time.Time
}

type pendingRepeat struct {
	r     bpf.Repeat
	since time.Time
}

func newDeviationTally() *deviationTally {
	return &deviationTally{known: map[bpf.DeviationKey]*knownDeviation{}, pending: map[bpf.DeviationKey]*pendingRepeat{}}
}

// recorded notes deviation d, built from an event with key, and folds in
// the repeats that were drained before the event was read: d's count and
// timestamps grow by them.
func (t *deviationTally) recorded(key bpf.DeviationKey, d *policy.Deviation, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.pending[key]; p != nil {
		delete(t.pending, key)
		addRepeat(d, p.r)
	}
	t.known[key] = &knownDeviation{d: *d, seen: now}
}

// repeated returns the record for repeats r: the known deviation with r's
// count and times, and true; or false when its first occurrence has not
// been read yet (the repeats wait for it).
func (t *deviationTally) repeated(r bpf.Repeat, now time.Time) (policy.Deviation, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.known[r.Key]
	if k == nil {
		if p := t.pending[r.Key]; p != nil {
			p.r.Count += r.Count
			p.r.Last = r.Last
		} else {
			t.pending[r.Key] = &pendingRepeat{r: r, since: now}
		}
		return policy.Deviation{}, false
	}
	k.seen = now
	d := k.d
	ev := *d.Metadata.Event
	d.Metadata.Event = &ev
	d.Metadata.UID = "deviation:" + randomHex(8)
	ev.Count = 0
	d.Metadata.FirstTimestamp, d.Metadata.LatestTimestamp = 0, 0
	addRepeat(&d, r)
	return d, true
}

// expire forgets known deviations idle for knownDeviationTTL and returns
// the repeats that waited pendingRepeatTTL for an event in vain.
func (t *deviationTally) expire(now time.Time) []bpf.Repeat {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key, k := range t.known {
		if now.Sub(k.seen) > knownDeviationTTL {
			delete(t.known, key)
		}
	}
	var out []bpf.Repeat
	for key, p := range t.pending {
		if now.Sub(p.since) > pendingRepeatTTL {
			delete(t.pending, key)
			out = append(out, p.r)
		}
	}
	return out
}

// addRepeat adds repeats r to deviation record d: its count, and its
// first and latest timestamps (0: unset).
func addRepeat(d *policy.Deviation, r bpf.Repeat) {
	m := &d.Metadata
	m.Event.Count += r.Count
	if first := unixSeconds(r.First); m.FirstTimestamp == 0 || first < m.FirstTimestamp {
		m.FirstTimestamp = first
	}
	if last := unixSeconds(r.Last); last > m.LatestTimestamp {
		m.LatestTimestamp = last
	}
}
