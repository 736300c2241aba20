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
}

// pendingTable maps tokens to sends not yet reported.
type pendingTable struct {
	mu      sync.Mutex
	entries map[uint64]pending
	// changed is closed and replaced whenever entries shrink, for waiters.
	changed chan struct{}
}

func newPendingTable() *pendingTable {
	return &pendingTable{entries: map[uint64]pending{}, changed: make(chan struct{})}
}

func (t *pendingTable) put(token uint64, p pending) {
	t.mu.Lock()
	t.entries[token] = p
	t.mu.Unlock()
}

// putBatch records a batch's sends, tokens first, first+1, … .
func (t *pendingTable) putBatch(first uint64, msgs []Message, onDelivery func(DeliveryReport)) {
	t.mu.Lock()
	for i := range msgs {
		t.entries[first+uint64(i)] = pending{onDelivery: onDelivery, topic: msgs[i].Topic, key: msgs[i].Key}
	}
	t.mu.Unlock()
}

// forget drops a token whose send was refused.
func (t *pendingTable) forget(token uint64) {
	t.mu.Lock()
	delete(t.entries, token)
	t.mu.Unlock()
}

// lookup returns what the tokens of rows stand for, in row order.
func (t *pendingTable) lookup(rows []C.ks_report_row, into []pending) []pending {
	into = into[:0]
	t.mu.Lock()
	for i := range rows {
		into = append(into, t.entries[uint64(rows[i].token)])
	}
	t.mu.Unlock()
	return into
}

// settled drops the tokens of rows whose callbacks ran, and wakes waiters.
func (t *pendingTable) settled(rows []C.ks_report_row) {
	t.mu.Lock()
	for i := range rows {
		delete(t.entries, uint64(rows[i].token))
	}
	close(t.changed)
	t.changed = make(chan struct{})
	t.mu.Unlock()
}

func (t *pendingTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// waitSettled waits until no token up to upTo is pending, or done is closed; reports whether
// none is.
func (t *pendingTable) waitSettled(upTo uint64, done <-chan struct{}) bool {
	for {
		t.mu.Lock()
		changed, waiting := t.changed, false
		for token := range t.entries {
			if token <= upTo {
				waiting = true
				break
			}
		}
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
