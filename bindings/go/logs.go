package kafkasender

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// SetLogger sends kafkasender's and librdkafka's log lines to logger (with a "target" attribute,
// kafkasender or librdkafka) instead of stderr; nil restores stderr. How much is logged follows
// the first producer's log.level. Lines come from kafkasender's and librdkafka's own threads.
func SetLogger(logger *slog.Logger) {
	currentLogger.Store(logger)
	C.ks_go_set_log_callback(cBool(logger != nil))
}

var currentLogger atomic.Pointer[slog.Logger]

// slogLevels maps ks_log_level (1 error … 5 trace) to slog's levels; trace is below debug.
var slogLevels = [...]slog.Level{slog.LevelError, slog.LevelError, slog.LevelWarn, slog.LevelInfo, slog.LevelDebug, slog.LevelDebug - 4}

//export goLog
func goLog(level C.int, target, message *C.char) {
	logger := currentLogger.Load()
	if logger == nil {
		return
	}
	at := slog.LevelInfo
	if int(level) < len(slogLevels) {
		at = slogLevels[level]
	}
	logger.Log(context.Background(), at, C.GoString(message), "target", C.GoString(target))
}
