//go:build dynamic

package kafkasender

// -tags dynamic: link the libkafkasender.so that pkg-config finds (a `make install`, or the C
// tarball's lib/pkgconfig on PKG_CONFIG_PATH); the binary then needs that library at run time.

/*
#cgo pkg-config: kafkasender
*/
import "C"
