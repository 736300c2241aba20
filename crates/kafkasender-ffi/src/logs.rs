//! Log lines to a C callback instead of stderr.

use std::ffi::{c_char, c_void, CString};

use core::config::LogLevel;
use core::logging::{set_sink, LogRecord};

use crate::boundary::c_text;

/// How serious a log line is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ks_log_level {
    /// Something failed.
    Error = 1,
    /// Something may fail.
    Warn = 2,
    /// What happened (the default `log.level`).
    Info = 3,
    /// Verbose.
    Debug = 4,
    /// Everything.
    Trace = 5,
}

/// One log line, valid during the callback only.
#[repr(C)]
pub struct ks_log_record {
    /// How serious it is.
    pub level: ks_log_level,
    /// "kafkasender" or "librdkafka". NUL-terminated.
    pub target: *const c_char,
    /// The message, then its fields as `name=value`. NUL-terminated.
    pub message: *const c_char,
}

/// Receives log lines (see ks_set_log_callback()).
pub type ks_log_cb =
    Option<unsafe extern "C" fn(record: *const ks_log_record, user_data: *mut c_void)>;

struct Callback {
    callback: unsafe extern "C" fn(*const ks_log_record, *mut c_void),
    user_data: *mut c_void,
}

// SAFETY: the contract of ks_set_log_callback(): the caller lets `user_data` be used from any thread.
unsafe impl Send for Callback {}
unsafe impl Sync for Callback {}

/// Sends every log line of kafkasender and librdkafka to `callback` from now on, instead of
/// stderr; NULL restores stderr. How much is logged follows the first producer's `log.level`.
///
/// Threading: `callback` runs on the thread that logs (the delivery thread or one of
/// librdkafka's), possibly on several at once; it must return quickly and must not call
/// ks_producer_close() or ks_producer_free(). Ownership: `user_data` stays the caller's; it must
/// stay valid until a later call replaces the callback. Does not block.
#[no_mangle]
pub extern "C" fn ks_set_log_callback(callback: ks_log_cb, user_data: *mut c_void) {
    let Some(callback) = callback else {
        set_sink(None);
        return;
    };
    let target = Callback {
        callback,
        user_data,
    };
    set_sink(Some(Box::new(move |record: &LogRecord<'_>| {
        let (source, message): (CString, CString) = (c_text(record.target), c_text(record.message));
        let level = match record.level {
            LogLevel::Off | LogLevel::Error => ks_log_level::Error,
            LogLevel::Warn => ks_log_level::Warn,
            LogLevel::Info => ks_log_level::Info,
            LogLevel::Debug => ks_log_level::Debug,
            LogLevel::Trace => ks_log_level::Trace,
        };
        let line = ks_log_record {
            level,
            target: source.as_ptr(),
            message: message.as_ptr(),
        };
        target.call(&line);
    })));
}

impl Callback {
    fn call(&self, line: &ks_log_record) {
        // A panic must not unwind into C, nor out of the logging thread.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: the C caller gave a callback that takes this record and its user_data.
            unsafe { (self.callback)(line, self.user_data) }
        }));
    }
}
