package kafkasender

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"sync"
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

// pendingTable holds what each token in flight stands for. A single send's token is a slot of
// slots, reused once its report is in: a send and its report cost an index, not a map insert and
// delete. A batch's tokens (batchToken set) are keys of batches.
type pendingTable struct {
	mu      sync.Mutex
	slots   []pending
	free    []uint64
	batches map[uint64]pending
	count   int
	// changed is closed and replaced whenever entries are settled, for waiters.
	changed chan struct{}
}

func newPendingTable() *pendingTable {
	return &pendingTable{batches: map[uint64]pending{}, changed: make(chan struct{})}
}

// put records a single send and returns its token.
func (t *pendingTable) put(p pending) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count++
	if n := len(t.free); n > 0 {
		token := t.free[n-1]
		t.free = t.free[:n-1]
		t.slots[token] = p
		return token
	}
	t.slots = append(t.slots, p)
	return uint64(len(t.slots) - 1)
}

// putBatch records a batch's sends, numbered first, first+1, …; returns the first token (the
// others follow it).
func (t *pendingTable) putBatch(first uint64, msgs []Message, onDelivery func(DeliveryReport)) uint64 {
	t.mu.Lock()
	for i := range msgs {
		seq := first + uint64(i)
		t.batches[batchToken|seq] = pending{onDelivery: onDelivery, topic: msgs[i].Topic, key: msgs[i].Key, seq: seq}
	}
	t.count += len(msgs)
	t.mu.Unlock()
	return batchToken | first
}

// drop removes a token's entry; the caller holds t.mu.
func (t *pendingTable) drop(token uint64) {
	if token&batchToken != 0 {
		if _, ok := t.batches[token]; ok {
			delete(t.batches, token)
			t.count--
		}
		return
	}
	if token < uint64(len(t.slots)) && t.slots[token].seq != 0 {
		t.slots[token] = pending{} // lets the callback and key go
		t.free = append(t.free, token)
		t.count--
	}
}

// forget drops a token whose send was refused.
func (t *pendingTable) forget(token uint64) {
	t.mu.Lock()
	t.drop(token)
	t.mu.Unlock()
}

// lookup returns what the tokens of rows stand for, in row order.
func (t *pendingTable) lookup(rows []C.ks_report_row, into []pending) []pending {
	into = into[:0]
	t.mu.Lock()
	for i := range rows {
		token := uint64(rows[i].token)
		switch {
		case token&batchToken != 0:
			into = append(into, t.batches[token])
		case token < uint64(len(t.slots)):
			into = append(into, t.slots[token])
		default:
			into = append(into, pending{}) // not ours: nothing to call
		}
	}
	t.mu.Unlock()
	return into
}

// settled drops the tokens of rows whose callbacks ran, and wakes waiters.
func (t *pendingTable) settled(rows []C.ks_report_row) {
	t.mu.Lock()
	for i := range rows {
		t.drop(uint64(rows[i].token))
	}
	close(t.changed)
	t.changed = make(chan struct{})
	t.mu.Unlock()
}

func (t *pendingTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.count
}

// waitSettled waits until no send numbered up to upTo is pending, or done is closed; reports
// whether none is.
func (t *pendingTable) waitSettled(upTo uint64, done <-chan struct{}) bool {
	for {
		t.mu.Lock()
		changed, waiting := t.changed, t.pendingUpTo(upTo)
		t.mu.Unlock()
		if !waiting {
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

// pendingUpTo reports whether a send numbered up to upTo is pending; the caller holds t.mu.
func (t *pendingTable) pendingUpTo(upTo uint64) bool {
	for i := range t.slots {
		if seq := t.slots[i].seq; seq != 0 && seq <= upTo {
			return true
		}
	}
	for _, p := range t.batches {
		if p.seq <= upTo {
			return true
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
