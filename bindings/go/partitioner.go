package kafkasender

/*
#include "shim.h"
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// SetPartitioner gives every message without an explicit partition the one partition returns,
// called on the goroutine that sends, with the topic, the key (nil when none) and the topic's
// partition count. A partition out of range, or a negative one, fails that send with
// KindInvalidRecord. Set once, before sending.
func (p *Producer) SetPartitioner(partition func(topic string, key []byte, partitionCount int32) int32) error {
	handle := cgo.NewHandle(partition) // lives as long as the process: the producer may call it until freed
	return p.call(func(c *C.ks_producer) uint32 { return C.ks_go_set_partitioner(c, C.uintptr_t(handle)) })
}

//export goPartition
func goPartition(topic *C.char, key *C.uint8_t, keyLen C.size_t, count C.int32_t, handle C.uintptr_t) C.int32_t {
	partition := cgo.Handle(handle).Value().(func(string, []byte, int32) int32)
	var k []byte
	if key != nil {
		k = C.GoBytes(unsafe.Pointer(key), C.int(keyLen))
	}
	return C.int32_t(partition(C.GoString(topic), k, int32(count)))
}
