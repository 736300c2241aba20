// Package kafkasender is the Go face of kafkasender, one resilient Kafka producer shared by Rust,
// C, Go, Python and Node. It is a thin cgo layer over the C API (include/kafkasender.h): every
// behaviour lives in the Rust core.
//
// Every accepted send ends in exactly one DeliveryReport. The library is linked statically from
// libkafkasender_vendor/ (see link_static.go; in this repository `make go` writes it), or with
// -tags dynamic from the libkafkasender.so that pkg-config finds.
package kafkasender

/*
#include <stdlib.h>
#include <string.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Header is one message header; a nil Value is a null header.
type Header struct {
	Key   string
	Value []byte
}

// Message is what Send produces. Key and Value may be nil (no key; tombstone) or empty.
type Message struct {
	Topic   string
	Key     []byte
	Value   []byte
	Headers []Header
	// Partition picks a partition; nil lets the partitioner choose by key (as the Java client does).
	Partition *int32
	// Timestamp of the message; the zero time means now.
	Timestamp time.Time
}

// Partition returns a pointer to p, for Message.Partition.
func Partition(p int32) *int32 { return &p }

// DeliveryReport says what happened to one message.
type DeliveryReport struct {
	Topic     string
	Partition int32 // -1 if none was assigned; the dead-letter topic's when dead-lettered
	Offset    int64 // -1 unless delivered or dead-lettered
	Timestamp time.Time
	Key       []byte
	Attempts  uint32
	Latency   time.Duration
	Outcome   Outcome
	// Destination is the dead-letter topic (OutcomeDeadLettered) or the spool file
	// (OutcomeSpooled); empty otherwise.
	Destination string
	// Err is nil when the message was delivered, otherwise the *Error that kept it from its topic.
	Err error
	// Recovered says it was sent again through a new client after the first failed fatally
	// (at-least-once: the first may have written it too).
	Recovered bool
}

// Outcome says how a message ended.
type Outcome int

// Outcomes. Only OutcomeFailed loses the message.
const (
	OutcomeDelivered    Outcome = C.KS_OUTCOME_DELIVERED
	OutcomeFailed       Outcome = C.KS_OUTCOME_FAILED
	OutcomeDeadLettered Outcome = C.KS_OUTCOME_DEAD_LETTERED
	OutcomeSpooled      Outcome = C.KS_OUTCOME_SPOOLED
)

// String is the outcome's snake_case name.
func (o Outcome) String() string {
	return [...]string{"delivered", "failed", "dead_lettered", "spooled"}[o]
}

// Producer sends messages. It is safe for concurrent use. Close it when done.
type Producer struct {
	mu sync.RWMutex // held for reading by calls, for writing by Close
	p  *C.ks_producer

	pending *pendingTable
	// lastSend numbers every send (1, 2, …), so that Flush can wait for the sends made before it.
	lastSend atomic.Uint64
	// topics holds each topic's NUL-terminated C copy (string -> *C.char), freed by Close.
	topics  sync.Map
	closing atomic.Bool   // set by Close once the C producer is closed
	drained chan struct{} // closed when the report goroutine has run every callback
}

// NewProducer makes a producer from configuration keys: kafkasender settings and librdkafka
// properties ("bootstrap.servers" is required). Invalid configuration is an error of KindConfig
// that lists every problem.
func NewProducer(config map[string]string) (*Producer, error) {
	return newProducer(C.ks_config_new(), config)
}

// FromEnv makes a producer from KAFKA_* environment variables (KAFKA_BROKERS, …), overridden
// by any keys given.
func FromEnv(overrides ...map[string]string) (*Producer, error) {
	merged := map[string]string{}
	for _, o := range overrides {
		for k, v := range o {
			merged[k] = v
		}
	}
	return newProducer(C.ks_config_from_env(), merged)
}

func newProducer(config *C.ks_config, keys map[string]string) (*Producer, error) {
	defer C.ks_config_free(config)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names) // deterministic order, so errors list keys the same way every time
	for _, k := range names {
		ck, cv := C.CString(k), C.CString(keys[k])
		status := C.ks_config_set(config, ck, cv)
		C.free(unsafe.Pointer(ck))
		C.free(unsafe.Pointer(cv))
		if err := lastError(status); err != nil {
			return nil, err
		}
	}
	var p *C.ks_producer
	if err := lastError(C.ks_producer_new(config, &p)); err != nil {
		return nil, err
	}
	producer := &Producer{p: p, pending: newPendingTable(), drained: make(chan struct{})}
	go producer.drain(p)
	// A producer dropped without Close still reports and frees everything; off the runtime's one
	// finalizer goroutine, since closing may wait for close.timeout.ms.
	runtime.SetFinalizer(producer, func(p *Producer) { go func() { _ = p.Close() }() })
	return producer, nil
}

// cMessages copies messages into one C allocation: the ks_message array, `extra` zeroed bytes
// (for the caller's use, aligned like the array), then every header array (aligned), topic, key
// and value. C never sees a Go pointer
// that points to Go pointers, which cgo forbids (a ks_header array would be one). The caller frees
// it with C.free after the call, since the C API copies what it needs before returning.
func cMessages(msgs []Message, extra int) (*C.ks_message, unsafe.Pointer) {
	const align = 8 // of ks_message and ks_header
	size := len(msgs)*int(C.sizeof_ks_message) + (extra+align-1)/align*align
	for i := range msgs {
		m := &msgs[i]
		size += len(m.Topic) + 1 + len(m.Key) + len(m.Value)
		if len(m.Headers) > 0 {
			size += align - 1 + len(m.Headers)*int(C.sizeof_ks_header)
		}
		for _, h := range m.Headers {
			size += len(h.Key) + 1 + len(h.Value)
		}
	}
	base := C.malloc(C.size_t(size))
	buf := unsafe.Slice((*byte)(base), size)
	structs := unsafe.Slice((*C.ks_message)(base), len(msgs))
	extraAt := len(msgs) * int(C.sizeof_ks_message)
	rest := extraAt + (extra+align-1)/align*align
	clear(buf[:rest]) // the structs and the extra bytes; the data is all written below
	// put copies b into the buffer and returns its C address; with NUL appends a terminator.
	put := func(b []byte, nul bool) unsafe.Pointer {
		p := unsafe.Pointer(&buf[rest])
		rest += copy(buf[rest:], b)
		if nul {
			buf[rest] = 0
			rest++
		}
		return p
	}
	for i := range msgs {
		m, msg := &msgs[i], &structs[i]
		if len(m.Headers) > 0 {
			rest = (rest + align - 1) / align * align
			headers := unsafe.Slice((*C.ks_header)(unsafe.Pointer(&buf[rest])), len(m.Headers))
			rest += len(m.Headers) * int(C.sizeof_ks_header)
			for j, h := range m.Headers {
				headers[j] = C.ks_header{key: (*C.char)(put([]byte(h.Key), true))}
				if h.Value != nil {
					headers[j].value, headers[j].value_len = (*C.uint8_t)(put(h.Value, false)), C.size_t(len(h.Value))
				}
			}
			msg.headers, msg.headers_len = &headers[0], C.size_t(len(m.Headers))
		}
		msg.topic = (*C.char)(put([]byte(m.Topic), true))
		if m.Key != nil {
			msg.key, msg.key_len = (*C.uint8_t)(put(m.Key, false)), C.size_t(len(m.Key))
		}
		if m.Value != nil {
			msg.value, msg.value_len = (*C.uint8_t)(put(m.Value, false)), C.size_t(len(m.Value))
		}
		msg.has_partition, msg.partition, msg.timestamp_ms = cPlacement(m)
	}
	return &structs[0], unsafe.Add(base, extraAt)
}

// SendAsync sends a message; onDelivery runs exactly once with its report, on the producer's
// report goroutine (keep it short: reports come in batches, one after another). It returns an
// error, and never calls onDelivery, only for what is known at once: an invalid message, a closed
// producer, or a full queue after enqueue.timeout.ms. It blocks only while the queue is full.
func (p *Producer) SendAsync(m Message, onDelivery func(DeliveryReport)) error {
	return p.sendTokened(pending{onDelivery: onDelivery, topic: m.Topic, key: m.Key},
		func(c *C.ks_producer, token C.uint64_t) C.ks_go_result {
			if len(m.Headers) == 0 {
				hasPartition, partition, timestamp := cPlacement(&m)
				return C.ks_go_send_flat(c, p.cTopic(m.Topic),
					(*C.uint8_t)(unsafe.SliceData(m.Key)), C.size_t(len(m.Key)), cBool(m.Key == nil),
					(*C.uint8_t)(unsafe.SliceData(m.Value)), C.size_t(len(m.Value)), cBool(m.Value == nil),
					hasPartition, partition, timestamp, token)
			}
			msg, _ := cMessages([]Message{m}, 0)
			defer C.free(unsafe.Pointer(msg))
			return C.ks_go_send_message(c, msg, token)
		})
}

// sendTokened registers `waiting` under a new token and sends with it; a refused send forgets it.
func (p *Producer) sendTokened(waiting pending, send func(*C.ks_producer, C.uint64_t) C.ks_go_result) error {
	waiting.seq = p.lastSend.Add(1)
	token := p.pending.put(waiting)
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.p == nil {
		p.pending.forget(token)
		return statusError(C.KS_STATUS_CLOSED, "the producer is closed")
	}
	result := send(p.p, C.uint64_t(token))
	if result.status == C.KS_STATUS_OK {
		return nil
	}
	p.pending.forget(token) // not accepted: no report will come for it
	message := C.GoString(result.error)
	C.free(unsafe.Pointer(result.error))
	return statusError(result.status, message)
}

// SendBatch sends every message with one call into C; onDelivery runs once per message, on the
// producer's report goroutine. A message that cannot be sent (invalid, or a queue that stayed
// full) gets its failed report right away, on this goroutine, instead of failing the batch; the
// error is only for a closed producer, when nothing was sent. So a nil error does not mean
// delivered: each lost message's report carries its error in Err, which onDelivery must check.
func (p *Producer) SendBatch(msgs []Message, onDelivery func(DeliveryReport)) error {
	if len(msgs) == 0 {
		return nil
	}
	n := uint64(len(msgs))
	first := p.pending.putBatch(p.lastSend.Add(n)-n+1, msgs, onDelivery)
	structs, statusesAt := cMessages(msgs, len(msgs)*int(C.sizeof_int32_t))
	defer C.free(unsafe.Pointer(structs))
	statuses := unsafe.Slice((*C.enum_ks_status)(statusesAt), len(msgs))
	var lastError string
	err := p.call(func(c *C.ks_producer) uint32 {
		status := C.ks_producer_send_batch_tokened(c, structs, C.size_t(len(msgs)), C.uint64_t(first), &statuses[0])
		lastError = C.GoString(C.ks_last_error())
		return status
	})
	if err != nil {
		for i := range msgs {
			p.pending.forget(first + uint64(i))
		}
		return err
	}
	for i, status := range statuses {
		if status == C.KS_STATUS_OK {
			continue
		}
		p.pending.forget(first + uint64(i))
		if onDelivery != nil {
			onDelivery(DeliveryReport{Topic: msgs[i].Topic, Key: msgs[i].Key, Partition: -1, Offset: -1,
				Outcome: OutcomeFailed, Err: statusError(status, lastError)})
		}
	}
	return nil
}

// cTopic is the topic's NUL-terminated C copy, made once per topic.
func (p *Producer) cTopic(topic string) *C.char {
	if c, ok := p.topics.Load(topic); ok {
		return c.(*C.char)
	}
	fresh := C.CString(topic)
	c, loaded := p.topics.LoadOrStore(topic, fresh)
	if loaded {
		C.free(unsafe.Pointer(fresh)) // another goroutine stored it first
	}
	return c.(*C.char)
}

// cPlacement gives ks_message's has_partition, partition and timestamp_ms for m.
func cPlacement(m *Message) (C.bool, C.int32_t, C.int64_t) {
	partition, timestamp := C.int32_t(0), C.int64_t(0)
	if m.Partition != nil {
		partition = C.int32_t(*m.Partition)
	}
	if !m.Timestamp.IsZero() {
		timestamp = C.int64_t(m.Timestamp.UnixMilli())
	}
	return C.bool(m.Partition != nil), partition, timestamp
}

func cBool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Send sends a message and waits for its report or for ctx. A lost message (OutcomeFailed) is
// returned as the error (an *Error) together with the report; a dead-lettered or spooled one is
// kept, so its error is nil and its report says where. When ctx ends first, ctx.Err() is returned
// and the message may still be delivered later. The send is traced under ctx (see tracing.go).
func (p *Producer) Send(ctx context.Context, m Message) (DeliveryReport, error) {
	return waitForReport(ctx, func(onDelivery func(DeliveryReport)) error { return p.sendTraced(ctx, m, onDelivery) })
}

// waitForReport starts a send with a callback and waits for its report or the end of ctx.
func waitForReport(ctx context.Context, send func(func(DeliveryReport)) error) (DeliveryReport, error) {
	if err := ctx.Err(); err != nil {
		return DeliveryReport{}, err
	}
	done := make(chan DeliveryReport, 1) // buffered: a late report never blocks the delivery thread
	if err := send(func(r DeliveryReport) { done <- r }); err != nil {
		return DeliveryReport{}, err
	}
	select {
	case r := <-done:
		if r.Outcome != OutcomeFailed {
			return r, nil
		}
		return r, r.Err
	case <-ctx.Done():
		return DeliveryReport{}, ctx.Err()
	}
}

// Flush waits until every message sent so far has been reported (its callback has run), or ctx
// ends.
func (p *Producer) Flush(ctx context.Context) error {
	upTo := p.lastSend.Load()
	for {
		// Short slices, so that a cancelled ctx is noticed promptly and Close is never held up.
		err := p.call(func(c *C.ks_producer) uint32 { return C.ks_producer_flush(c, 50) })
		var kerr *Error
		if err == nil {
			break
		}
		if !errors.As(err, &kerr) || kerr.Kind() != KindTimeout {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	p.mu.RLock()
	unanswered := C.ks_producer_in_flight(p.p) // 0 once closed
	p.mu.RUnlock()
	if unanswered > 0 {
		return nil // in an open transaction: its reports come with the commit
	}
	return p.settled(ctx, upTo)
}

// settled waits until the callbacks of every send numbered up to upTo have run, or ctx ends.
func (p *Producer) settled(ctx context.Context, upTo uint64) error {
	if !p.pending.waitSettled(upTo, ctx.Done()) {
		return ctx.Err()
	}
	return nil
}

// BeginTransaction opens a transaction on a producer made with "transactional.id": every send
// until the commit or abort belongs to it; a send outside one fails with KindTransaction.
func (p *Producer) BeginTransaction() error {
	return p.call(func(c *C.ks_producer) uint32 { return C.ks_producer_begin_transaction(c) })
}

// CommitTransaction commits the open transaction, waiting until ctx's deadline (without one, as
// long as it takes). On nil, every message of it is committed and its report delivered (a
// message's report comes only when its transaction ends). When it cannot commit, it is aborted:
// every report carries a retriable KindTransaction error and so does the returned one, naming the
// transaction. A KindTimeout error leaves the transaction ending: commit or abort it again.
func (p *Producer) CommitTransaction(ctx context.Context) error {
	timeout, upTo := timeoutMs(ctx), p.lastSend.Load()
	err := p.call(func(c *C.ks_producer) uint32 { return C.ks_producer_commit_transaction(c, timeout) })
	return errors.Join(err, p.settled(ctx, upTo))
}

// AbortTransaction aborts the open transaction, waiting until ctx's deadline: every message of
// it is reported with a retriable KindTransaction error and none is visible to read_committed
// consumers.
func (p *Producer) AbortTransaction(ctx context.Context) error {
	timeout, upTo := timeoutMs(ctx), p.lastSend.Load()
	err := p.call(func(c *C.ks_producer) uint32 { return C.ks_producer_abort_transaction(c, timeout) })
	return errors.Join(err, p.settled(ctx, upTo))
}

// timeoutMs is what is left of ctx's deadline, in milliseconds; the longest wait without one.
// (A blocking C call cannot notice a cancellation, only a deadline.)
func timeoutMs(ctx context.Context) C.uint32_t {
	deadline, ok := ctx.Deadline()
	if !ok {
		return C.uint32_t(math.MaxUint32)
	}
	ms := time.Until(deadline).Milliseconds()
	if ms < 0 {
		ms = 0
	}
	return C.uint32_t(min(ms, math.MaxUint32))
}

// InFlight is the number of messages sent and not yet reported.
func (p *Producer) InFlight() int {
	return p.pending.len()
}

// Close stops the producer: it waits up to close.timeout.ms (default 10s) for messages in flight,
// reports the rest as failed (KindClosed), and frees it. Every callback has run when Close
// returns. Safe to call more than once and from any goroutine; later calls do nothing.
func (p *Producer) Close() error {
	return p.closeWithin(func(c *C.ks_producer) C.uint32_t { return C.ks_producer_close_timeout_ms(c) })
}

// Shutdown is Close waiting for messages in flight until ctx's deadline instead of
// close.timeout.ms (without a deadline, until all are reported).
func (p *Producer) Shutdown(ctx context.Context) error {
	return p.closeWithin(func(*C.ks_producer) C.uint32_t { return timeoutMs(ctx) })
}

func (p *Producer) closeWithin(timeout func(*C.ks_producer) C.uint32_t) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p == nil {
		return nil
	}
	// Closed first, so that every report is waiting as a row; freed once the report goroutine
	// has taken them all and run their callbacks.
	C.ks_producer_close(p.p, timeout(p.p), nil)
	p.closing.Store(true)
	<-p.drained
	C.ks_producer_free(p.p)
	p.p = nil
	p.topics.Range(func(_, c any) bool {
		C.free(unsafe.Pointer(c.(*C.char)))
		return true
	})
	runtime.SetFinalizer(p, nil)
	return nil
}

// Metrics are a producer's metrics at one moment, by the core's names (the list every face shares,
// tests/parity/metrics.txt): "sent", "delivered", "failed_queue_full", "latency_p99_seconds", ….
// Values are counts, or seconds for names ending in _seconds.
type Metrics map[string]float64

// BreakerState is the circuit breaker's state now.
func (m Metrics) BreakerState() BreakerState { return BreakerState(m["breaker_state"]) }

// BreakerState is the circuit breaker's state.
type BreakerState int

// Breaker states; a producer without a breaker is always BreakerClosed.
const (
	BreakerClosed   BreakerState = 0
	BreakerOpen     BreakerState = 1
	BreakerHalfOpen BreakerState = 2
)

// ReplaySpool re-sends every record of the producer's spool (spool.dir) and returns once all are
// enqueued: how many were, and how many torn records were skipped. Replays also happen by
// themselves when the circuit breaker closes and when a producer starts on a spool.
func (p *Producer) ReplaySpool() (records, torn uint64, err error) {
	var r, t C.uint64_t
	err = p.call(func(c *C.ks_producer) uint32 { return C.ks_producer_replay_spool(c, &r, &t) })
	return uint64(r), uint64(t), err
}

// Metrics returns the producer's metrics.
func (p *Producer) Metrics() (Metrics, error) {
	var list [128]C.ks_metric
	var n C.size_t
	err := p.call(func(c *C.ks_producer) uint32 {
		return C.ks_producer_metrics(c, &list[0], C.size_t(len(list)), &n)
	})
	if err != nil {
		return nil, err
	}
	m := make(Metrics, n)
	for _, metric := range list[:min(int(n), len(list))] {
		m[C.GoString(metric.name)] = float64(metric.value)
	}
	return m, nil
}

// MetricsPrometheus returns the metrics in Prometheus text format (names prefixed kafkasender_).
func (p *Producer) MetricsPrometheus() (string, error) {
	var text *C.char
	err := p.call(func(c *C.ks_producer) uint32 {
		if text = C.ks_producer_metrics_prometheus(c); text == nil {
			return uint32(C.KS_STATUS_INTERNAL)
		}
		return uint32(C.KS_STATUS_OK)
	})
	if err != nil {
		return "", err
	}
	defer C.ks_string_free(text)
	return C.GoString(text), nil
}

// HealthStatus says how healthy a producer is.
type HealthStatus int

// Health statuses, from best to worst.
const (
	Healthy   HealthStatus = C.KS_HEALTH_HEALTHY
	Degraded  HealthStatus = C.KS_HEALTH_DEGRADED
	Unhealthy HealthStatus = C.KS_HEALTH_UNHEALTHY
)

// String is "healthy", "degraded" or "unhealthy".
func (s HealthStatus) String() string {
	return [...]string{"healthy", "degraded", "unhealthy"}[s]
}

// Health is a producer's health and the reasons when it is not healthy.
type Health struct {
	Status  HealthStatus
	Reasons []string
}

// Health returns the producer's health: broker states (from librdkafka's statistics), queue
// fill, the recent error ratio, and whether it is closed.
func (p *Producer) Health() (Health, error) {
	var status uint32 // cgo maps enum ks_health to uint32
	var reasons *C.char
	if err := p.call(func(c *C.ks_producer) uint32 { return C.ks_producer_health(c, &status, &reasons) }); err != nil {
		return Health{}, err
	}
	defer C.ks_string_free(reasons)
	health := Health{Status: HealthStatus(status)}
	if text := C.GoString(reasons); text != "" {
		health.Reasons = strings.Split(text, "; ")
	}
	return health, nil
}

// call runs one C call on the open producer (see callOn).
func (p *Producer) call(f func(*C.ks_producer) uint32) error {
	return callOn(&p.mu, &p.p, "the producer is closed", f)
}

// callOn runs one C call on a live handle, read under mu, with the goroutine locked to its OS
// thread so that the thread-local last error read after the call belongs to it.
// (Generic over the pointer: cgo's opaque C types cannot be type arguments themselves.)
func callOn[P comparable](mu *sync.RWMutex, handle *P, closed string, f func(P) uint32) error {
	mu.RLock()
	defer mu.RUnlock()
	var null P
	if *handle == null {
		return statusError(C.KS_STATUS_CLOSED, closed)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return lastError(f(*handle))
}
