package bpf

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
)

// Each workload's DNS grants live in a table of their own, an inner map
// of dns_grants. Inserting into (or deleting from) a map of maps makes
// the kernel wait for an RCU grace period, 5–10 ms, too long to spend on
// every container's start under the engine's lock. So the engine keeps
// spareGrantTables empty tables inserted ahead under keys no workload
// names; arming takes one and writes its number into the workload's entry
// (workload.grants). A keeper goroutine inserts new spares and deletes
// the tables of removed workloads, off the arming path. A table serves one
// workload only: the tables of removed workloads are deleted, never handed
// out again, and every spare is a map made empty for that purpose.

// spareGrantTables is how many empty tables wait for workloads to arm.
const spareGrantTables = 2

// grantsKeyBit is set in the dns_grants key of a numbered table
// (GRANTS_KEY in include/dns.h); keys without it are cgroup ids, the
// tables of workloads armed by an engine that keyed them so.
const grantsKeyBit = 1 << 63

// grantsKey is the dns_grants key of table n.
func grantsKey(n uint32) uint64 { return grantsKeyBit | uint64(n) }

// grantTables is the engine's account of the tables of dns_grants.
type grantTables struct {
	mu     sync.Mutex
	spares []uint32 // inserted, empty, named by no workload
	doomed []uint64 // keys of tables to delete (their workloads are gone)
	last   uint32   // the last table number handed out
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

// startGrantKeeper accounts for the tables already in dns_grants (pinned
// by an earlier engine): those no workload names are deleted, as they may
// hold the grants of a workload removed since. Then it starts the keeper,
// which inserts the first spares.
func (e *Engine) startGrantKeeper() error {
	named := map[uint64]bool{}
	var id uint64
	var w networkWorkload
	it := e.net.Workloads.Iterate()
	for it.Next(&id, &w) {
		if w.Grants != 0 {
			named[grantsKey(w.Grants)] = true
		}
		e.grants.last = max(e.grants.last, w.Grants)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("list workloads: %w", err)
	}
	var key uint64
	var inner ebpf.MapID
	ot := e.net.DnsGrants.Iterate()
	for ot.Next(&key, &inner) {
		if key&grantsKeyBit == 0 || named[key] {
			continue
		}
		e.grants.doomed = append(e.grants.doomed, key)
		e.grants.last = max(e.grants.last, uint32(key))
	}
	if err := ot.Err(); err != nil {
		return fmt.Errorf("list DNS grant tables: %w", err)
	}
	e.grants.wake = make(chan struct{}, 1)
	e.grants.stop = make(chan struct{})
	e.grants.done = make(chan struct{})
	go e.keepGrantTables()
	e.wakeGrantKeeper()
	return nil
}

// stopGrantKeeper stops the keeper. Its spares stay in the pinned map;
// the next engine deletes them.
func (e *Engine) stopGrantKeeper() {
	if e.grants.stop == nil {
		return
	}
	close(e.grants.stop)
	<-e.grants.done
	e.grants.stop = nil
}

func (e *Engine) wakeGrantKeeper() {
	select {
	case e.grants.wake <- struct{}{}:
	default:
	}
}

// keepGrantTables is the keeper: each time it is woken it tops the spares
// up, then deletes the doomed tables.
func (e *Engine) keepGrantTables() {
	defer close(e.grants.done)
	for {
		select {
		case <-e.grants.stop:
			return
		case <-e.grants.wake:
		}
		g := &e.grants
		// Spares first: arms wait for them, deletes only cost memory.
		for {
			g.mu.Lock()
			enough := len(g.spares) >= spareGrantTables
			g.mu.Unlock()
			if enough {
				break
			}
			n, err := e.insertGrantTable()
			if err != nil {
				e.log.Warn("insert a spare DNS grant table", "err", err)
				break
			}
			g.mu.Lock()
			g.spares = append(g.spares, n)
			g.mu.Unlock()
		}
		g.mu.Lock()
		doomed := g.doomed
		g.doomed = nil
		g.mu.Unlock()
		for _, key := range doomed {
			var inner ebpf.MapID
			if key&grantsKeyBit == 0 && e.net.DnsGrants.Lookup(key, &inner) != nil {
				continue // no table by cgroup id: a delete would wait for nothing
			}
			if err := e.net.DnsGrants.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				e.log.Warn("DNS grant table of a removed workload left", "key", key, "err", err)
			}
		}
	}
}

// insertGrantTable makes an empty table and inserts it into dns_grants
// under a number no table has, and returns the number.
func (e *Engine) insertGrantTable() (uint32, error) {
	m, err := ebpf.NewMap(e.grantSpec)
	if err != nil {
		return 0, fmt.Errorf("create DNS grant table: %w", err)
	}
	defer m.Close()
	for {
		e.grants.mu.Lock()
		e.grants.last++
		if e.grants.last == 0 { // 0 names no table
			e.grants.last++
		}
		n := e.grants.last
		e.grants.mu.Unlock()
		// NoExist: after the numbers wrap, one still in use is skipped.
		err := e.net.DnsGrants.Update(grantsKey(n), m, ebpf.UpdateNoExist)
		if errors.Is(err, ebpf.ErrKeyExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("insert DNS grant table: %w", err)
		}
		return n, nil
	}
}

// takeGrantTable returns the number of an empty table for a workload to
// arm with: a spare, or, when none is left (arms faster than the keeper),
// one inserted now.
func (e *Engine) takeGrantTable() (uint32, error) {
	g := &e.grants
	g.mu.Lock()
	var n uint32
	if k := len(g.spares); k > 0 {
		n, g.spares = g.spares[k-1], g.spares[:k-1]
	}
	g.mu.Unlock()
	e.wakeGrantKeeper()
	if n != 0 {
		return n, nil
	}
	return e.insertGrantTable()
}

// giveBackGrantTable returns table n, which no workload was armed with
// (it is still empty), to the spares.
func (e *Engine) giveBackGrantTable(n uint32) {
	e.grants.mu.Lock()
	e.grants.spares = append(e.grants.spares, n)
	e.grants.mu.Unlock()
}

// dropGrantTables has the keeper delete the tables of removed workload w
// (cgroup id): its numbered table, and the one keyed by its cgroup id if
// an earlier engine made one.
func (e *Engine) dropGrantTables(id uint64, w *networkWorkload) {
	e.grants.mu.Lock()
	if w.Grants != 0 {
		e.grants.doomed = append(e.grants.doomed, grantsKey(w.Grants))
	}
	e.grants.doomed = append(e.grants.doomed, id)
	e.grants.mu.Unlock()
	e.wakeGrantKeeper()
}
