package kafkasender

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"runtime"
	"sync"
	"unsafe"
)

// Producers are the named producers of one TOML file ([defaults] and [producers.NAME] tables;
// KAFKA_* variables still override what it says).
type Producers struct {
	path string
	mu   sync.Mutex
	open map[string]*Producer
}

// LoadProducers reads path and checks every producer it names: an error of KindConfig lists
// every problem of every producer otherwise.
func LoadProducers(path string) (*Producers, error) {
	cPath := C.CString(path)
	defer C.free(unsafe.Pointer(cPath))
	runtime.LockOSThread() // the last error belongs to this thread
	defer runtime.UnlockOSThread()
	if err := lastError(C.ks_config_from_file(cPath, nil, nil)); err != nil {
		return nil, err
	}
	return &Producers{path: path, open: map[string]*Producer{}}, nil
}

// Get returns the producer name, made on the first call and the same one after, until Close.
func (ps *Producers) Get(name string) (*Producer, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p, ok := ps.open[name]; ok {
		return p, nil
	}
	cPath, cName := C.CString(ps.path), C.CString(name)
	defer C.free(unsafe.Pointer(cPath))
	defer C.free(unsafe.Pointer(cName))
	var config *C.ks_config
	err := func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		return lastError(C.ks_config_from_file(cPath, cName, &config))
	}()
	if err != nil {
		return nil, err
	}
	p, err := newProducer(config, nil)
	if err != nil {
		return nil, err
	}
	ps.open[name] = p
	return p, nil
}

// Close closes every producer Get made, and returns their errors joined.
func (ps *Producers) Close() error {
	ps.mu.Lock()
	open := ps.open
	ps.open = map[string]*Producer{}
	ps.mu.Unlock()
	var errs []error
	for _, p := range open {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}
