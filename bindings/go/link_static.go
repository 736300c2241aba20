//go:build !dynamic

package kafkasender

// The default link: libkafkasender (the core with librdkafka, OpenSSL and zstd inside) linked
// statically from the module's own copy in libkafkasender_vendor/, so a Go binary needs no
// libkafkasender.so at run time. `make go` writes that copy in this repository; `make dist-go`
// ships it in the module. Only linux/amd64 is vendored: elsewhere build with -tags dynamic.

/*
#cgo CFLAGS: -I${SRCDIR}/libkafkasender_vendor
#cgo linux,amd64 LDFLAGS: ${SRCDIR}/libkafkasender_vendor/libkafkasender_glibc_linux_amd64.a -lpthread -ldl -lm -lrt
*/
import "C"
