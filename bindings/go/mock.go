package kafkasender

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"runtime"
	"runtime/cgo"
	"sync"
	"time"
	"unsafe"
)

// MockCluster is an in-process Kafka cluster of mock brokers on 127.0.0.1 (librdkafka's, real
// Kafka protocol), for tests. Topics are auto-created with 4 partitions. Close it when done.
type MockCluster struct {
	mu sync.RWMutex
	c  *C.ks_mock_cluster
}

// NewMockCluster starts brokers mock brokers (ids 1 to brokers).
func NewMockCluster(brokers uint16) (*MockCluster, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var c *C.ks_mock_cluster
	if err := lastError(C.ks_mock_cluster_new(C.uint16_t(brokers), &c)); err != nil {
		return nil, err
	}
	return &MockCluster{c: c}, nil
}

// BootstrapServers is the "bootstrap.servers" value for producers and consumers.
func (m *MockCluster) BootstrapServers() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.c == nil {
		return ""
	}
	return C.GoString(C.ks_mock_cluster_bootstrap_servers(m.c))
}

// call runs one C call on the open cluster (see callOn).
func (m *MockCluster) call(f func(*C.ks_mock_cluster) uint32) error {
	return callOn(&m.mu, &m.c, "the mock cluster is closed", f)
}

// CreateTopic creates a topic.
func (m *MockCluster) CreateTopic(topic string, partitions, replicationFactor int32) error {
	ct := C.CString(topic)
	defer C.free(unsafe.Pointer(ct))
	return m.call(func(c *C.ks_mock_cluster) uint32 {
		return C.ks_mock_cluster_create_topic(c, ct, C.int32_t(partitions), C.int32_t(replicationFactor))
	})
}

// BrokerDown makes a broker refuse connections.
func (m *MockCluster) BrokerDown(id int32) error {
	return m.call(func(c *C.ks_mock_cluster) uint32 { return C.ks_mock_cluster_broker_down(c, C.int32_t(id)) })
}

// BrokerUp makes a broker accept connections again.
func (m *MockCluster) BrokerUp(id int32) error {
	return m.call(func(c *C.ks_mock_cluster) uint32 { return C.ks_mock_cluster_broker_up(c, C.int32_t(id)) })
}

// PushRequestErrors makes the next requests of api ("produce", "metadata", …) fail with codes, one
// each, in order (librdkafka's error codes).
func (m *MockCluster) PushRequestErrors(api string, codes ...int32) error {
	cAPI := C.CString(api)
	defer C.free(unsafe.Pointer(cAPI))
	var first *C.int32_t
	if len(codes) > 0 {
		first = (*C.int32_t)(unsafe.Pointer(&codes[0]))
	}
	return m.call(func(c *C.ks_mock_cluster) uint32 {
		return C.ks_mock_cluster_push_request_errors(c, cAPI, first, C.size_t(len(codes)))
	})
}

// ConsumedRecord is a record read back from a topic.
type ConsumedRecord struct {
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
}

// ReadTopic reads every record of a topic from the beginning to its current end with an
// independent consumer, ordered by partition and offset.
func (m *MockCluster) ReadTopic(topic string, timeout time.Duration) ([]ConsumedRecord, error) {
	var records []ConsumedRecord
	handle := cgo.NewHandle(&records)
	defer handle.Delete()
	ct := C.CString(topic)
	defer C.free(unsafe.Pointer(ct))
	err := m.call(func(c *C.ks_mock_cluster) uint32 {
		return C.ks_go_read_topic(c, ct, C.uint32_t(timeout.Milliseconds()), C.uintptr_t(handle), nil)
	})
	return records, err
}

// Close stops the cluster. Safe to call more than once.
func (m *MockCluster) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.c != nil {
		C.ks_mock_cluster_free(m.c)
		m.c = nil
	}
}

//export goConsumed
func goConsumed(r *C.ks_consumed_record, handle C.uintptr_t) {
	defer func() { _ = recover() }()
	bytes := func(p *C.uint8_t, n C.size_t) []byte {
		if p == nil {
			return nil
		}
		return C.GoBytes(unsafe.Pointer(p), C.int(n))
	}
	record := ConsumedRecord{
		Partition: int32(r.partition),
		Offset:    int64(r.offset),
		Key:       bytes(r.key, r.key_len),
		Value:     bytes(r.value, r.value_len),
	}
	if r.headers_len > 0 {
		for _, h := range unsafe.Slice(r.headers, int(r.headers_len)) {
			record.Headers = append(record.Headers, Header{Key: C.GoString(h.key), Value: bytes(h.value, h.value_len)})
		}
	}
	records := cgo.Handle(handle).Value().(*[]ConsumedRecord)
	*records = append(*records, record)
}

// InjectFatalError makes p's librdkafka client fail fatally, as if a broker had answered with code
// (for example 59, UNKNOWN_PRODUCER_ID): p replaces the client and re-sends what it held (their
// reports have Recovered set), or, past recovery.max, stays failed with KindFatal. For tests.
func InjectFatalError(p *Producer, code int32) error {
	return p.call(func(c *C.ks_producer) uint32 { return C.ks_test_inject_fatal_error(c, C.int32_t(code)) })
}
