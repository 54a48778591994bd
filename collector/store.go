package collector

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bulwarkhq/bulwark/policy"
)

// Buckets of the store. The data buckets hold one JSON value per entry
// with a "lastSeen" time; byTime indexes them by that time for retention;
// agents holds each agent's sequence position and latest stats; meta holds
// the total size of the data entries.
const (
	bucketWorkloads    = "workloads"
	bucketFingerprints = "fingerprints"
	bucketPolicies     = "policies"
	bucketDeviations   = "deviations"
	bucketFlags        = "flags"
	bucketByTime       = "bytime"
	bucketAgents       = "agents"
	bucketMeta         = "meta"
	keySize            = "size"
)

// dataBuckets returns the names of the buckets retention applies to.
func dataBuckets() []string {
	return []string{bucketWorkloads, bucketFingerprints, bucketPolicies, bucketDeviations, bucketFlags}
}

// bucket returns a bucket of the store (all exist once the store is open).
func bucket(tx *bolt.Tx, name string) *bolt.Bucket { return tx.Bucket([]byte(name)) }

// store is the collector's bbolt database.
type store struct {
	db  *bolt.DB
	log *slog.Logger
}

// openStore opens (creating if needed) the database at path; its directory
// is created 0700 when missing.
func openStore(path string, log *slog.Logger) (*store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range append(dataBuckets(), bucketByTime, bucketAgents, bucketMeta) {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return &store{db: db, log: log}, nil
}

func (s *store) close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	return nil
}

// ingestResult says what one batch did.
type ingestResult struct {
	ack        uint64
	stored     map[Kind]int
	duplicates int
	skipped    uint64
	rejected   int
}

// ingest stores a batch in one transaction, together with the agent's new
// sequence position, so a record is stored exactly once however often it
// is delivered. Records at or below the agent's position are duplicates;
// a record after a gap ends the batch (it is stored when the gap is
// filled). A record whose document cannot be decoded is counted as
// rejected and passed over, so that it cannot block the agent's stream.
func (s *store) ingest(b *Batch) (ingestResult, error) {
	res := ingestResult{stored: map[Kind]int{}}
	err := s.db.Update(func(tx *bolt.Tx) error {
		w := &writer{tx: tx}
		st, err := agentState(tx, b.Agent)
		if err != nil {
			return err
		}
		if st.Epoch != b.Epoch {
			// A new spool restarts the agent's numbering.
			st.Epoch, st.Last = b.Epoch, 0
		}
		if b.After > st.Last {
			res.skipped = b.After - st.Last
			st.Skipped += res.skipped
			st.Last = b.After
		}
		for i := range b.Records {
			r := &b.Records[i]
			if r.Seq <= st.Last {
				res.duplicates++
				continue
			}
			if r.Seq != st.Last+1 {
				break
			}
			r.Agent = b.Agent
			if r.Time.IsZero() {
				r.Time = time.Now()
			}
			if err := w.apply(r, st); err != nil {
				var bad badRecord
				if !errors.As(err, &bad) {
					return err
				}
				s.log.Warn("collector: rejected record", "agent", b.Agent, "seq", r.Seq, "kind", r.Kind, "err", err)
				st.Rejected++
				res.rejected++
			} else {
				res.stored[r.Kind]++
			}
			st.Last = r.Seq
		}
		res.ack = st.Last
		if err := w.putJSON(bucketAgents, b.Agent, st); err != nil {
			return err
		}
		return w.commitSize()
	})
	if err != nil {
		return ingestResult{}, fmt.Errorf("store batch of agent %s: %w", b.Agent, err)
	}
	return res, nil
}

// badRecord is a record that cannot be stored whatever the retry.
type badRecord struct{ err error }

func (e badRecord) Error() string { return e.err.Error() }

func agentState(tx *bolt.Tx, agent string) (*AgentState, error) {
	st := &AgentState{Agent: agent}
	if v := bucket(tx, bucketAgents).Get([]byte(agent)); v != nil {
		if err := json.Unmarshal(v, st); err != nil {
			return nil, fmt.Errorf("decode state of agent %s: %w", agent, err)
		}
	}
	return st, nil
}

// writer changes data entries inside one write transaction and keeps the
// time index and the size total in step.
type writer struct {
	tx    *bolt.Tx
	delta int64
}

// seen is the part of every data entry retention needs.
type seen struct {
	LastSeen time.Time `json:"lastSeen"`
}

// indexKey is the byTime key of an entry: its last-seen time (big-endian
// nanoseconds, so keys sort by time), the bucket name's length and name,
// and the entry's key.
func indexKey(t time.Time, name string, key []byte) []byte {
	k := make([]byte, 0, 9+len(name)+len(key))
	k = binary.BigEndian.AppendUint64(k, uint64(max(t.UnixNano(), 0)))
	k = append(k, byte(len(name)))
	k = append(k, name...)
	return append(k, key...)
}

// splitIndexKey undoes indexKey.
func splitIndexKey(k []byte) (t time.Time, name string, key []byte, ok bool) {
	if len(k) < 9 || len(k) < 9+int(k[8]) {
		return time.Time{}, "", nil, false
	}
	n := int(k[8])
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))), string(k[9 : 9+n]), k[9+n:], true
}

// get decodes the entry at key into v and reports whether it exists.
func (w *writer) get(name string, key []byte, v any) (bool, error) {
	data := bucket(w.tx, name).Get(key)
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decode %s entry %q: %w", name, key, err)
	}
	return true, nil
}

// put stores a data entry (v has a "lastSeen" field) and indexes it.
func (w *writer) put(name string, key []byte, v any, lastSeen time.Time) error {
	if err := w.del(name, key); err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s entry: %w", name, err)
	}
	if err := bucket(w.tx, name).Put(key, data); err != nil {
		return fmt.Errorf("put %s entry: %w", name, err)
	}
	size := int64(len(key) + len(data))
	if err := bucket(w.tx, bucketByTime).Put(indexKey(lastSeen, name, key), binary.BigEndian.AppendUint64(nil, uint64(size))); err != nil {
		return fmt.Errorf("index %s entry: %w", name, err)
	}
	w.delta += size
	return nil
}

// del removes a data entry and its index entry, if present.
func (w *writer) del(name string, key []byte) error {
	b := bucket(w.tx, name)
	old := b.Get(key)
	if old == nil {
		return nil
	}
	var s seen
	if err := json.Unmarshal(old, &s); err != nil {
		return fmt.Errorf("decode %s entry %q: %w", name, key, err)
	}
	if err := bucket(w.tx, bucketByTime).Delete(indexKey(s.LastSeen, name, key)); err != nil {
		return fmt.Errorf("unindex %s entry: %w", name, err)
	}
	w.delta -= int64(len(key) + len(old))
	if err := b.Delete(key); err != nil {
		return fmt.Errorf("delete %s entry: %w", name, err)
	}
	return nil
}

// putJSON stores a value outside the data buckets (not indexed, not
// counted in the size).
func (w *writer) putJSON(name, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s entry: %w", name, err)
	}
	if err := bucket(w.tx, name).Put([]byte(key), data); err != nil {
		return fmt.Errorf("put %s entry: %w", name, err)
	}
	return nil
}

// commitSize adds the transaction's size change to the stored total.
func (w *writer) commitSize() error {
	if w.delta == 0 {
		return nil
	}
	total := max(sizeOf(w.tx)+w.delta, 0)
	if err := bucket(w.tx, bucketMeta).Put([]byte(keySize), binary.BigEndian.AppendUint64(nil, uint64(total))); err != nil {
		return fmt.Errorf("store size: %w", err)
	}
	w.delta = 0
	return nil
}

// sizeOf returns the total size (keys plus values) of the data entries.
func sizeOf(tx *bolt.Tx) int64 {
	v := bucket(tx, bucketMeta).Get([]byte(keySize))
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

// apply stores one record according to its kind.
func (w *writer) apply(r *Record, st *AgentState) error {
	switch r.Kind {
	case KindFingerprint:
		var fp policy.Fingerprint
		if err := json.Unmarshal(r.Doc, &fp); err != nil {
			return badRecord{fmt.Errorf("decode fingerprint: %w", err)}
		}
		return w.putFingerprint(r, &fp)
	case KindDeviation:
		var d policy.Deviation
		if err := json.Unmarshal(r.Doc, &d); err != nil {
			return badRecord{fmt.Errorf("decode deviation: %w", err)}
		}
		return w.putDeviation(r, &d)
	case KindFlag:
		var f policy.Flag
		if err := json.Unmarshal(r.Doc, &f); err != nil {
			return badRecord{fmt.Errorf("decode flag: %w", err)}
		}
		key := f.Metadata.UID
		if key == "" {
			key = fmt.Sprintf("%s/%d", r.Agent, r.Seq)
		}
		return w.put(bucketFlags, []byte(key), StoredFlag{Agent: r.Agent, LastSeen: r.Time, Flag: f}, r.Time)
	case KindWorkload:
		var ev WorkloadEvent
		if err := json.Unmarshal(r.Doc, &ev); err != nil {
			return badRecord{fmt.Errorf("decode workload event: %w", err)}
		}
		return w.putWorkload(r, &ev)
	case KindPolicy:
		var p policy.WorkloadPolicy
		if err := json.Unmarshal(r.Doc, &p); err != nil {
			return badRecord{fmt.Errorf("decode policy: %w", err)}
		}
		key := []byte(r.Agent + "/" + p.Metadata.Name)
		sp := StoredPolicy{Agent: r.Agent, FirstSeen: r.Time, LastSeen: r.Time, Policy: p}
		var old StoredPolicy
		if ok, err := w.get(bucketPolicies, key, &old); err != nil {
			return err
		} else if ok {
			sp.FirstSeen = old.FirstSeen
		}
		return w.put(bucketPolicies, key, sp, r.Time)
	case KindStats:
		var s Stats
		if err := json.Unmarshal(r.Doc, &s); err != nil {
			return badRecord{fmt.Errorf("decode stats: %w", err)}
		}
		if dt := r.Time.Sub(st.StatsTime).Seconds(); !st.StatsTime.IsZero() && dt > 0 && s.Events >= st.Stats.Events {
			st.EventsPerSecond = float64(s.Events-st.Stats.Events) / dt
		} else {
			st.EventsPerSecond = 0
		}
		st.Stats, st.StatsTime = s, r.Time
		if s.Policies != nil {
			return w.policiesInForce(r, s.Policies)
		}
		return nil
	}
	return badRecord{fmt.Errorf("unknown record kind %q", r.Kind)}
}

// policyRefresh is how stale a policy's last-seen time may get before a
// stats report naming it in force refreshes it.
const policyRefresh = time.Minute

// policiesInForce applies an agent's list of the policies it has in force:
// its stored policies not in the list are removed, those in it are marked
// seen (at most once per policyRefresh, to spare writes).
func (w *writer) policiesInForce(r *Record, names []string) error {
	prefix := []byte(r.Agent + "/")
	type entry struct {
		key []byte
		sp  StoredPolicy
	}
	var stale []entry
	var gone [][]byte
	c := bucket(w.tx, bucketPolicies).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if !slices.Contains(names, string(k[len(prefix):])) {
			gone = append(gone, slices.Clone(k))
			continue
		}
		var sp StoredPolicy
		if err := json.Unmarshal(v, &sp); err != nil {
			return fmt.Errorf("decode policy %q: %w", k, err)
		}
		if r.Time.Sub(sp.LastSeen) >= policyRefresh {
			stale = append(stale, entry{slices.Clone(k), sp})
		}
	}
	for _, k := range gone {
		if err := w.del(bucketPolicies, k); err != nil {
			return err
		}
	}
	for _, e := range stale {
		e.sp.LastSeen = r.Time
		if err := w.put(bucketPolicies, e.key, e.sp, r.Time); err != nil {
			return err
		}
	}
	return nil
}

// fingerprintGroup returns the group key of a fingerprint: its image
// (normalised), else its service cgroup, else its name.
func fingerprintGroup(fp *policy.Fingerprint) string {
	if img := fingerprintImage(fp); img != "" {
		if norm, err := policy.NormalizeImage(img); err == nil {
			img = norm
		}
		return "image:" + img
	}
	if cg := fingerprintCgroup(fp); cg != "" {
		return "service:" + cg
	}
	return "name:" + fp.Metadata.Name
}

func fingerprintImage(fp *policy.Fingerprint) string {
	if fp.Metadata.Image != "" {
		return fp.Metadata.Image
	}
	if cs := fp.Spec.ContainerSelector; cs != nil {
		return cs.Image
	}
	return ""
}

func fingerprintCgroup(fp *policy.Fingerprint) string {
	if ss := fp.Spec.ServiceSelector; ss != nil && ss.Cgroup != "" {
		return ss.Cgroup
	}
	if fp.Metadata.Type == policy.TypeLinuxService {
		return fp.Metadata.Cgroup
	}
	return ""
}

// fingerprintInstance names the workload instance a fingerprint describes.
func fingerprintInstance(fp *policy.Fingerprint) string {
	md := &fp.Metadata
	for _, s := range []string{md.ContainerID, md.Cgroup, fingerprintCgroup(fp), md.UID, md.Name} {
		if s != "" {
			return s
		}
	}
	return ""
}

// putFingerprint stores a fingerprint as the current one of its instance,
// unless the stored one is newer (a higher version, or the same version
// seen later).
func (w *writer) putFingerprint(r *Record, fp *policy.Fingerprint) error {
	inst := fingerprintInstance(fp)
	if inst == "" {
		return badRecord{fmt.Errorf("fingerprint names no instance (container ID, cgroup, uid or name)")}
	}
	group := fingerprintGroup(fp)
	key := []byte(group + "\x00" + r.Agent + "/" + inst)
	fi := FingerprintInstance{Agent: r.Agent, Group: group, FirstSeen: r.Time, LastSeen: r.Time, Fingerprint: *fp}
	var old FingerprintInstance
	ok, err := w.get(bucketFingerprints, key, &old)
	if err != nil {
		return err
	}
	if ok {
		fi.FirstSeen = old.FirstSeen
		om, nm := &old.Fingerprint.Metadata, &fp.Metadata
		switch {
		case om.FirstTimestamp != nm.FirstTimestamp:
			// Another run of the agent's builder: keep what both saw.
			union, err := unionFingerprints(&old.Fingerprint, fp)
			if err != nil {
				return badRecord{err}
			}
			fi.Fingerprint = union
		case om.Version > nm.Version:
			// A late delivery of an older version: it holds nothing new.
			return nil
		}
	}
	return w.put(bucketFingerprints, key, fi, r.Time)
}

// unionFingerprints combines the stored fingerprint of an instance with one
// from another run of the agent's builder. One builder's fingerprints only
// grow (a newer version holds the older), but an agent that restarted
// builds a new one from what it sees after the restart (the kernel does not
// report again what it reported before). The union keeps everything either
// holds, with the newer one's metadata, the earliest first and the latest
// latest timestamp.
func unionFingerprints(old, fp *policy.Fingerprint) (policy.Fingerprint, error) {
	om, nm := &old.Metadata, &fp.Metadata
	newer, older := fp, old
	if om.LatestTimestamp > nm.LatestTimestamp {
		newer, older = old, fp
	}
	base := &policy.WorkloadPolicy{APIVersion: older.APIVersion, Kind: policy.KindWorkloadPolicy, Metadata: older.Metadata, Spec: older.Spec}
	merged, err := policy.Merge(base, policy.Document{APIVersion: newer.APIVersion, Kind: newer.Kind, Fingerprint: newer})
	if err != nil {
		return policy.Fingerprint{}, fmt.Errorf("merge the fingerprint of another agent run: %w", err)
	}
	out := *newer
	out.Spec = merged.Spec
	out.Metadata.FirstTimestamp = minTimestamp(om.FirstTimestamp, nm.FirstTimestamp)
	out.Metadata.LatestTimestamp = max(om.LatestTimestamp, nm.LatestTimestamp)
	out.Metadata.Version = max(om.Version, nm.Version)
	return out, nil
}

// minTimestamp is the earlier of two timestamps, zero meaning unknown.
func minTimestamp(a, b float64) float64 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// deviationKey is a deviation's checksum (a hash of its spec when it has
// none) and the policy it was raised against.
func deviationKey(d *policy.Deviation) []byte {
	sum := d.Metadata.Checksum
	if sum == "" {
		sum = d.Spec.Checksum()
	}
	pol := d.Metadata.PolicyUID
	if pol == "" {
		pol = d.Metadata.PolicyName
	}
	return []byte(sum + "\x00" + pol)
}

// putDeviation stores a deviation, or counts more occurrences of a stored
// one with the same checksum and policy (as many as the record stands for:
// the agent sends the kernel's counts of repeats as records too).
func (w *writer) putDeviation(r *Record, d *policy.Deviation) error {
	key := deviationKey(d)
	n := d.Occurrences()
	sd := StoredDeviation{Count: n, Agents: []string{r.Agent}, FirstSeen: r.Time, LastSeen: r.Time, Deviation: *d}
	var old StoredDeviation
	ok, err := w.get(bucketDeviations, key, &old)
	if err != nil {
		return err
	}
	if ok {
		sd.Count = old.Count + n
		sd.FirstSeen = old.FirstSeen
		if r.Time.Before(old.LastSeen) {
			sd.LastSeen = old.LastSeen
		}
		sd.Agents = old.Agents
		if !slices.Contains(sd.Agents, r.Agent) {
			sd.Agents = append(sd.Agents, r.Agent)
			sort.Strings(sd.Agents)
		}
	}
	return w.put(bucketDeviations, key, sd, sd.LastSeen)
}

// putWorkload applies a lifecycle event to the workload's entry.
func (w *writer) putWorkload(r *Record, ev *WorkloadEvent) error {
	if ev.instance() == "" {
		return badRecord{fmt.Errorf("workload event names no instance (container ID or cgroup)")}
	}
	key := []byte(r.Agent + "/" + ev.instance())
	wl := Workload{Agent: r.Agent, WorkloadEvent: *ev, LastSeen: r.Time}
	var old Workload
	ok, err := w.get(bucketWorkloads, key, &old)
	if err != nil {
		return err
	}
	if ok {
		wl.Started, wl.Stopped = old.Started, old.Stopped
	}
	switch ev.Event {
	case WorkloadStarted:
		wl.State, wl.Started, wl.Stopped = StateRunning, r.Time, time.Time{}
	case WorkloadStopped:
		wl.State, wl.Stopped = StateStopped, r.Time
		if ok {
			// A stop event may carry less identity than the start.
			wl.WorkloadEvent = old.WorkloadEvent
			wl.Event = WorkloadStopped
		}
	default:
		return badRecord{fmt.Errorf("workload event %q: want %s or %s", ev.Event, WorkloadStarted, WorkloadStopped)}
	}
	return w.put(bucketWorkloads, key, wl, r.Time)
}

// prune removes the entries last seen before now-maxAge (running
// workloads excepted) and then, while the stored size exceeds maxSize,
// the oldest entries. A zero maxAge or maxSize disables that limit. It
// returns how many entries it removed.
func (s *store) prune(now time.Time, maxAge time.Duration, maxSize int64) (int, error) {
	removed := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		w := &writer{tx: tx}
		size := sizeOf(tx)
		type victim struct {
			name string
			key  []byte
		}
		var victims []victim
		c := bucket(tx, bucketByTime).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			t, name, key, ok := splitIndexKey(k)
			if !ok || len(v) != 8 {
				return fmt.Errorf("corrupt time index entry %x", k)
			}
			expired := maxAge > 0 && t.Before(now.Add(-maxAge))
			oversize := maxSize > 0 && size > maxSize
			if !expired && !oversize {
				break // later entries are newer and the size is within bounds
			}
			if expired && !oversize && name == bucketWorkloads {
				var wl Workload
				if _, err := w.get(bucketWorkloads, key, &wl); err != nil {
					return err
				}
				if wl.State == StateRunning {
					continue
				}
			}
			victims = append(victims, victim{name, slices.Clone(key)})
			size -= int64(binary.BigEndian.Uint64(v))
		}
		for _, v := range victims {
			if err := w.del(v.name, v.key); err != nil {
				return err
			}
		}
		removed = len(victims)
		return w.commitSize()
	})
	if err != nil {
		return 0, fmt.Errorf("prune database: %w", err)
	}
	return removed, nil
}

// size returns the total size of the stored entries.
func (s *store) size() int64 {
	var n int64
	_ = s.db.View(func(tx *bolt.Tx) error {
		n = sizeOf(tx)
		return nil
	})
	return n
}

// scanJSON decodes each value of bucket name, in key order, as a T (what
// names one in errors) and returns those keep accepts.
func scanJSON[T any](s *store, name, what string, keep func(*T) bool) ([]T, error) {
	out := []T{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return bucket(tx, name).ForEach(func(_, v []byte) error {
			var x T
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("decode %s: %w", what, err)
			}
			if keep(&x) {
				out = append(out, x)
			}
			return nil
		})
	})
	if err != nil {
		return out, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// counts returns the number of entries of each data bucket.
func (s *store) counts() (map[string]int, error) {
	out := map[string]int{}
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, b := range dataBuckets() {
			out[b] = bucket(tx, b).Stats().KeyN
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count entries: %w", err)
	}
	return out, nil
}

// agents returns the state of every agent, by name.
func (s *store) agents() ([]AgentState, error) {
	return scanJSON(s, bucketAgents, "agent state", func(*AgentState) bool { return true })
}
