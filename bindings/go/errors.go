package kafkasender

/*
#include "kafkasender.h"
*/
import "C"

import "fmt"

// Kind says what went wrong; it mirrors the core's ErrorKind (and the C ks_status).
type Kind int

// Error kinds. KindNullArgument and after are misuse of the C API and should not reach Go code.
const (
	KindConfig                  Kind = C.KS_STATUS_CONFIG
	KindInvalidRecord           Kind = C.KS_STATUS_INVALID_RECORD
	KindMessageTooLarge         Kind = C.KS_STATUS_MESSAGE_TOO_LARGE
	KindQueueFull               Kind = C.KS_STATUS_QUEUE_FULL
	KindTimeout                 Kind = C.KS_STATUS_TIMEOUT
	KindClosed                  Kind = C.KS_STATUS_CLOSED
	KindBrokerTransport         Kind = C.KS_STATUS_BROKER_TRANSPORT
	KindAuthentication          Kind = C.KS_STATUS_AUTHENTICATION
	KindAuthorization           Kind = C.KS_STATUS_AUTHORIZATION
	KindUnknownTopicOrPartition Kind = C.KS_STATUS_UNKNOWN_TOPIC_OR_PARTITION
	KindFatal                   Kind = C.KS_STATUS_FATAL
	KindBroker                  Kind = C.KS_STATUS_BROKER
	KindInternal                Kind = C.KS_STATUS_INTERNAL
	KindRateLimited             Kind = C.KS_STATUS_RATE_LIMITED
	KindCircuitOpen             Kind = C.KS_STATUS_CIRCUIT_OPEN
	KindSpool                   Kind = C.KS_STATUS_SPOOL
	KindTransaction             Kind = C.KS_STATUS_TRANSACTION
	KindNullArgument            Kind = C.KS_STATUS_NULL_ARGUMENT
	KindInvalidUTF8             Kind = C.KS_STATUS_INVALID_UTF8
	KindInvalidArgument         Kind = C.KS_STATUS_INVALID_ARGUMENT
	KindPanic                   Kind = C.KS_STATUS_PANIC
)

// String is the kind's stable snake_case name ("queue_full").
func (k Kind) String() string {
	return C.GoString(C.ks_status_str(C.int32_t(k)))
}

// Error is every error this package returns, except context errors from Send and Flush.
type Error struct {
	kind      Kind
	message   string
	retriable bool
}

// Kind says what went wrong.
func (e *Error) Kind() Kind { return e.kind }

// Retriable says, for a DeliveryReport's error, whether sending the message again may succeed
// (a message of an aborted transaction: send it again in a new transaction).
func (e *Error) Retriable() bool { return e.retriable }

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("kafkasender: %s", e.message) }

// Is lets errors.Is match on kind: errors.Is(err, &kafkasender.Error{...}) is rarely what you
// want; compare Kind() instead.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.kind == e.kind && t.message == ""
}

// ErrClosed matches (with errors.Is) any error of KindClosed.
var ErrClosed error = &Error{kind: KindClosed}

// lastError turns a failed status into an *Error with the thread's last error message. It must run
// on the OS thread that made the failing call: callers lock the goroutine to its thread.
func lastError[S ~uint32 | ~int32 | ~int](status S) error {
	if status == C.KS_STATUS_OK {
		return nil
	}
	return &Error{kind: Kind(status), message: C.GoString(C.ks_last_error())}
}

func statusError[S ~uint32 | ~int32 | ~int](status S, message string) error {
	return &Error{kind: Kind(status), message: message}
}
