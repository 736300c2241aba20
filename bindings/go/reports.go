package kafkasender

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Reports reach Go in batches: a send carries a token instead of a callback, its report waits as
// a row in the C library, and one goroutine per producer takes up to drainBatch rows per cgo call
// and runs the callbacks. No cgo call, handle or allocation per report; one cgo call per send.

const drainBatch = 1024

// pending is what a token stands for until its report arrives.
type pending struct {
	onDelivery func(DeliveryReport)
	topic      string
	key        []byte
	// seq is the send's number (1, 2, …; see Producer.lastSend), for Flush; 0 in a free slot.
	seq uint64
}

// batchToken marks the tokens of SendBatch, which must be consecutive and so cannot be slots.
const batchToken = uint64(1) << 63

// A ring slot's state besides the seq of the send it holds.
const (
	slotFree = 0
	// slotFilling: a sender has claimed the slot and is writing it (under mu.RLock, so never seen
	// by grow).
	slotFilling = ^uint64(0)
)

// Largest ring (64 B a slot); sends that find their slot taken beyond it wait in overflow.
const maxRingSlots = 1 << 20

// slot is one ring entry: state publishes p (atomically, so the sender and the report goroutine
// need no lock between them).
type slot struct {
	state atomic.Uint64
	p     pending
}

// publish fills the slot with p, then shows it under p.seq: whoever loads that state sees p.
func (s *slot) publish(p pending) {
	s.p = p
	s.state.Store(p.seq)
}

// release lets the callback and key go, then frees the slot: whoever claims it sees it empty.
func (s *slot) release() {
	s.p = pending{}
	s.state.Store(slotFree)
}

// pendingTable holds what each token in flight stands for. A single send's token is its seq, and
// it waits in ring[seq % len(ring)]: a send claims that slot with one compare-and-swap, and the
// report goroutine empties it, so neither waits on the other. A send whose slot still holds an
// older send (one not yet reported) goes to overflow; when overflow fills, the ring doubles.
// A batch's tokens (batchToken set) are keys of batches.
type pendingTable struct {
	// mu is read-locked by every use of ring and write-locked to replace ring or to change
	// overflow or batches.
	mu       sync.RWMutex
	ring     []slot
	overflow map[uint64]pending
	batches  map[uint64]pending
	count    atomic.Int64
	// changed is closed and replaced whenever entries are settled, for waiters.
	changedMu sync.Mutex
	changed   chan struct{}
}

func newPendingTable() *pendingTable {
	return &pendingTable{ring: make([]slot, 1024), overflow: map[uint64]pending{}, batches: map[uint64]pending{},
		changed: make(chan struct{})}
}

// put records a single send (p.seq set) and returns its token.
func (t *pendingTable) put(p pending) uint64 {
	t.count.Add(1)
	t.mu.RLock()
	s := &t.ring[p.seq&uint64(len(t.ring)-1)]
	claimed := s.state.CompareAndSwap(slotFree, slotFilling)
	if claimed {
		s.publish(p)
	}
	t.mu.RUnlock()
	if !claimed {
		t.mu.Lock()
		t.putLocked(p)
		t.mu.Unlock()
	}
	return p.seq
}

// putLocked records p in its ring slot, in overflow, or in a bigger ring; the caller holds mu.
func (t *pendingTable) putLocked(p pending) {
	for {
		s := &t.ring[p.seq&uint64(len(t.ring)-1)]
		if s.state.Load() == slotFree {
			s.publish(p)
			return
		}
		if len(t.overflow) < len(t.ring)/8 || len(t.ring) >= maxRingSlots {
			t.overflow[p.seq] = p
			return
		}
		t.grow()
	}
}

// grow doubles the ring, moving in what overflow holds where its new slot is free; the caller
// holds mu. Two sends in different old slots cannot share a new one.
func (t *pendingTable) grow() {
	ring := make([]slot, 2*len(t.ring))
	mask := uint64(len(ring) - 1)
	for i := range t.ring {
		if seq := t.ring[i].state.Load(); seq != slotFree {
			ring[seq&mask].publish(t.ring[i].p)
		}
	}
	for seq, p := range t.overflow {
		if s := &ring[seq&mask]; s.state.Load() == slotFree {
			s.publish(p)
			delete(t.overflow, seq)
		}
	}
	t.ring = ring
}

// putBatch records a batch's sends, numbered first, first+1, …; returns the first token (the
// others follow it).
func (t *pendingTable) putBatch(first uint64, msgs []Message, onDelivery func(DeliveryReport)) uint64 {
	t.mu.Lock()
	for i := range msgs {
		seq := first + uint64(i)
		t.batches[batchToken|seq] = pending{onDelivery: onDelivery, topic: msgs[i].Topic, key: msgs[i].Key, seq: seq}
	}
	t.mu.Unlock()
	t.count.Add(int64(len(msgs)))
	return batchToken | first
}

// find returns where a single send's token waits in the ring, or nil; the caller holds mu
// (either way).
func (t *pendingTable) find(token uint64) *slot {
	if s := &t.ring[token&uint64(len(t.ring)-1)]; s.state.Load() == token {
		return s
	}
	return nil
}

// dropLocked removes a token's entry wherever it is; the caller holds mu for writing.
func (t *pendingTable) dropLocked(token uint64) {
	if s := t.find(token); s != nil {
		s.release()
		t.count.Add(-1)
		return
	}
	where := t.overflow
	if token&batchToken != 0 {
		where = t.batches
	}
	if _, ok := where[token]; ok {
		delete(where, token)
		t.count.Add(-1)
	}
}

// forget drops a token whose send was refused.
func (t *pendingTable) forget(token uint64) {
	t.mu.Lock()
	t.dropLocked(token)
	t.mu.Unlock()
}

// lookup returns what the tokens of rows stand for, in row order.
func (t *pendingTable) lookup(rows []C.ks_report_row, into []pending) []pending {
	into = into[:0]
	t.mu.RLock()
	for i := range rows {
		into = append(into, t.entry(uint64(rows[i].token)))
	}
	t.mu.RUnlock()
	return into
}

// entry is what token stands for (the zero pending, with nothing to call, if not ours); the caller
// holds mu (either way).
func (t *pendingTable) entry(token uint64) pending {
	if s := t.find(token); s != nil {
		return s.p
	}
	if token&batchToken != 0 {
		return t.batches[token]
	}
	return t.overflow[token]
}

// settled drops the tokens of rows whose callbacks ran, and wakes waiters.
func (t *pendingTable) settled(rows []C.ks_report_row) {
	t.settle(len(rows), func(i int) uint64 { return uint64(rows[i].token) })
}

// settle drops tokens 0 … n-1 and wakes waiters. Ring slots are emptied under the read lock;
// batches and overflow, rarer, under the write lock.
func (t *pendingTable) settle(n int, token func(i int) uint64) {
	elsewhere := false
	emptied := int64(0)
	t.mu.RLock()
	for i := 0; i < n; i++ {
		if s := t.find(token(i)); s != nil {
			s.release()
			emptied++
		} else {
			elsewhere = true
		}
	}
	t.mu.RUnlock()
	t.count.Add(-emptied)
	if elsewhere {
		t.mu.Lock()
		for i := 0; i < n; i++ {
			t.dropLocked(token(i))
		}
		t.mu.Unlock()
	}
	t.changedMu.Lock()
	close(t.changed)
	t.changed = make(chan struct{})
	t.changedMu.Unlock()
}

func (t *pendingTable) len() int {
	return int(t.count.Load())
}

// waitSettled waits until no send numbered up to upTo is pending, or done is closed; reports
// whether none is.
func (t *pendingTable) waitSettled(upTo uint64, done <-chan struct{}) bool {
	for {
		t.changedMu.Lock()
		changed := t.changed
		t.changedMu.Unlock()
		if !t.pendingUpTo(upTo) {
			return true
		}
		select {
		case <-changed:
		case <-done:
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pendingUpTo reports whether a send numbered up to upTo is pending.
func (t *pendingTable) pendingUpTo(upTo uint64) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for i := range t.ring {
		// A slot still being filled is a send racing this wait, which need not wait for it.
		if seq := t.ring[i].state.Load(); seq != slotFree && seq != slotFilling && seq <= upTo {
			return true
		}
	}
	for _, where := range []map[uint64]pending{t.overflow, t.batches} {
		for _, p := range where {
			if p.seq <= upTo {
				return true
			}
		}
	}
	return false
}

// drain takes report rows until the producer is closed and every report is taken, running each
// callback on this goroutine. Close waits for it before freeing the C producer.
func (p *Producer) drain(c *C.ks_producer) {
	defer close(p.drained)
	rows := unsafe.Slice((*C.ks_report_row)(C.malloc(drainBatch*C.sizeof_ks_report_row)), drainBatch)
	defer C.free(unsafe.Pointer(&rows[0]))
	entries := make([]pending, 0, drainBatch)
	timeout, closing := C.uint32_t(100), false
	var count C.size_t
	for {
		C.ks_producer_take_reports(c, &rows[0], drainBatch, timeout, &count)
		if count == 0 {
			if closing {
				return // closed, and nothing left: every report was taken
			}
			// Once Close has closed the C producer every report is waiting: take them without waiting.
			if closing = p.closing.Load(); closing {
				timeout = 0
			}
			continue
		}
		entries = p.pending.lookup(rows[:count], entries)
		for i := range entries {
			deliver(&rows[i], &entries[i])
		}
		clear(entries) // let the callbacks and keys go
		p.pending.settled(rows[:count])
	}
}

// deliver runs one callback with the report a row describes.
func deliver(r *C.ks_report_row, p *pending) {
	if p.onDelivery == nil {
		return
	}
	defer func() {
		// A panicking callback must not stop the reports after it; it is dropped like the core does.
		_ = recover()
	}()
	report := DeliveryReport{
		Topic:     p.topic,
		Key:       p.key,
		Partition: int32(r.partition),
		Offset:    int64(r.offset),
		Attempts:  uint32(r.attempts),
		Latency:   time.Duration(r.latency_us) * time.Microsecond,
		Outcome:   Outcome(r.outcome),
		Recovered: bool(r.recovered),
	}
	if r.timestamp_ms >= 0 {
		report.Timestamp = time.UnixMilli(int64(r.timestamp_ms))
	}
	if r.destination != nil {
		report.Destination = C.GoString(r.destination)
	}
	if r.outcome != C.KS_OUTCOME_DELIVERED {
		report.Err = &Error{kind: Kind(r.status), message: C.GoString(r.error), retriable: bool(r.retriable)}
	}
	p.onDelivery(report)
}
