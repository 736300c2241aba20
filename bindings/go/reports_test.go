package kafkasender

import (
	"fmt"
	"sync"
	"testing"
)

// entryOf is what token stands for, read as the report goroutine reads it.
func entryOf(table *pendingTable, token uint64) pending {
	table.mu.RLock()
	defer table.mu.RUnlock()
	return table.entry(token)
}

func sendOf(seq uint64) pending {
	return pending{topic: "t", key: []byte(fmt.Sprint(seq)), seq: seq}
}

// A send whose ring slot still holds an older unreported send waits in overflow, the ring doubles
// as overflow fills, and every token keeps standing for its own send throughout.
func TestThePendingTableKeepsEverySendThroughCollisionsAndGrowth(t *testing.T) {
	table := newPendingTable()
	const sends = 5000
	for seq := uint64(1); seq <= sends; seq++ {
		if token := table.put(sendOf(seq)); token != seq {
			t.Fatalf("send %d got token %d", seq, token)
		}
	}
	if len(table.ring) <= 1024 || table.len() != sends {
		t.Fatalf("ring of %d slots, %d pending", len(table.ring), table.len())
	}
	for seq := uint64(1); seq <= sends; seq++ {
		if got := entryOf(table, seq); string(got.key) != fmt.Sprint(seq) || got.seq != seq {
			t.Fatalf("token %d stands for %+v", seq, got)
		}
	}
	table.settle(sends-1, func(i int) uint64 { return uint64(i) + 2 }) // all but send 1
	// The next send in send 1's slot collides with it and waits in overflow.
	late := uint64(1 + len(table.ring))
	table.put(sendOf(late))
	if len(table.overflow) != 1 || string(entryOf(table, late).key) != fmt.Sprint(late) {
		t.Fatalf("overflow %v", table.overflow)
	}
	if !table.pendingUpTo(1) || table.pendingUpTo(0) || table.len() != 2 {
		t.Fatalf("pending up to 1: %v, %d pending", table.pendingUpTo(1), table.len())
	}
	table.settle(2, func(i int) uint64 { return []uint64{late, 1}[i] })
	if table.len() != 0 || table.pendingUpTo(late) || len(table.overflow) != 0 {
		t.Fatalf("%d pending after every report", table.len())
	}
	if got := entryOf(table, late); got.onDelivery != nil || got.key != nil {
		t.Fatalf("a settled token still stands for %+v", got)
	}
}

// Senders on many goroutines and a settling goroutine share the table without a lock between
// them (run with -race).
func TestThePendingTableTakesConcurrentSendsAndReports(t *testing.T) {
	table := newPendingTable()
	const senders, each = 8, 20000
	var next sync.Mutex
	seq := uint64(0)
	tokens := make(chan uint64, 1024)
	var sending sync.WaitGroup
	for g := 0; g < senders; g++ {
		sending.Add(1)
		go func() {
			defer sending.Done()
			for i := 0; i < each; i++ {
				next.Lock()
				seq++
				s := seq
				next.Unlock()
				tokens <- table.put(sendOf(s))
			}
		}()
	}
	go func() { sending.Wait(); close(tokens) }()
	batch := make([]uint64, 0, 64)
	settleBatch := func() {
		for _, token := range batch {
			if got := entryOf(table, token); got.seq != token {
				t.Errorf("token %d stands for %+v", token, got)
			}
		}
		table.settle(len(batch), func(i int) uint64 { return batch[i] })
		batch = batch[:0]
	}
	for token := range tokens {
		if batch = append(batch, token); len(batch) == cap(batch) {
			settleBatch()
		}
	}
	settleBatch()
	if table.len() != 0 || table.pendingUpTo(seq) {
		t.Fatalf("%d pending after every report", table.len())
	}
}
