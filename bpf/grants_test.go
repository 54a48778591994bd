package bpf

import (
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// grantKeys lists the keys of dns_grants.
func grantKeys(t *testing.T, e *Engine) []uint64 {
	t.Helper()
	var keys []uint64
	var key uint64
	var inner ebpf.MapID
	it := e.net.DnsGrants.Iterate()
	for it.Next(&key, &inner) {
		keys = append(keys, key)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

// waitGrantKeys waits until the keys of dns_grants are what want
// accepts, and returns them.
func waitGrantKeys(t *testing.T, e *Engine, what string, want func([]uint64) bool) []uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		keys := grantKeys(t, e)
		if want(keys) {
			return keys
		}
		if time.Now().After(deadline) {
			t.Fatalf("dns_grants holds %x, want %s", keys, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// grantsOf returns the dns_grants key of workload id's table.
func grantsOf(t *testing.T, e *Engine, id uint64) uint64 {
	t.Helper()
	var w networkWorkload
	if err := e.net.Workloads.Lookup(id, &w); err != nil {
		t.Fatal(err)
	}
	if w.Grants == 0 {
		t.Fatalf("workload %d names no table of DNS grants", id)
	}
	return grantsKey(w.Grants)
}

// TestGrantTablesAhead: arming a workload names one of the empty tables
// inserted ahead in its entry and inserts nothing into dns_grants (an
// insert waits for an RCU grace period); with no spare left arming still
// gives the workload a table of its own. A removed workload's table is
// deleted, never handed out again, and a new engine deletes the tables
// no workload names (they may hold a removed workload's grants).
func TestGrantTablesAhead(t *testing.T) {
	e, pins := openTestEngine(t)
	spares := waitGrantKeys(t, e, "the spares", func(k []uint64) bool { return len(k) == spareGrantTables })
	e.stopGrantKeeper() // nothing refills the spares from here
	var ids []uint64
	var cgs []string
	named := map[uint64]uint64{}
	for i := range spareGrantTables + 1 {
		cg := testCgroup(t)
		id, err := e.Apply(cg, nil, ModeObserve)
		if err != nil {
			t.Fatal(err)
		}
		ids, cgs = append(ids, id), append(cgs, cg)
		key := grantsOf(t, e, id)
		if other, ok := named[key]; ok {
			t.Fatalf("workloads %d and %d share table %x", other, id, key)
		}
		named[key] = id
		keys := grantKeys(t, e)
		if i < spareGrantTables {
			if !slices.Equal(keys, spares) || !slices.Contains(spares, key) {
				t.Fatalf("arm %d: dns_grants %x (spares %x), workload's table %x: want a spare, nothing inserted", i, keys, spares, key)
			}
		} else if len(keys) != spareGrantTables+1 || slices.Contains(spares, key) || !slices.Contains(keys, key) {
			t.Fatalf("arm with no spare: dns_grants %x, workload's table %x: want a new table", keys, key)
		}
	}
	// Arming again keeps the table (and the grants in it).
	key0 := grantsOf(t, e, ids[0])
	if _, err := e.Apply(cgs[0], nil, ModeObserve); err != nil {
		t.Fatal(err)
	}
	if got := grantsOf(t, e, ids[0]); got != key0 {
		t.Fatalf("re-armed workload's table %x, want %x", got, key0)
	}
	if err := e.Remove(ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := e.startGrantKeeper(); err != nil {
		t.Fatal(err)
	}
	keys := waitGrantKeys(t, e, "the removed workload's table gone, spares again", func(k []uint64) bool {
		return len(k) == len(ids)-1+spareGrantTables && !slices.Contains(k, key0)
	})
	// A new engine on the same pins deletes the spares the first one left.
	left := keys
	e2 := reopenEngine(t, e, pins)
	waitGrantKeys(t, e2, "the old spares replaced", func(k []uint64) bool {
		fresh := 0
		for _, key := range k {
			if slices.Contains(left, key) {
				if _, armed := named[key]; !armed {
					return false // an old spare is still there
				}
			} else {
				fresh++
			}
		}
		return len(k) == len(ids)-1+spareGrantTables && fresh == spareGrantTables
	})
	keys = grantKeys(t, e2)
	for _, id := range ids[1:] {
		if k := grantsOf(t, e2, id); !slices.Contains(keys, k) {
			t.Errorf("new engine dropped workload %d's table %x (dns_grants %x)", id, k, keys)
		}
	}
}
