//! What every `extern "C"` function goes through: the panic boundary, argument checks, the
//! thread-local last error, and the one mapping from core errors to `ks_status`.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use core::{Error, ErrorKind};

/// The result of every fallible function. `KS_STATUS_OK` (0) is success; codes from 1 to 99 are
/// the core's error kinds; 100 and up are misuse of the C API itself.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum ks_status {
    /// Success.
    Ok = 0,
    /// A configuration key or value is invalid, unknown, or conflicts with another.
    Config = 1,
    /// The message is unusable (bad topic name, negative partition); nothing was enqueued.
    InvalidRecord = 2,
    /// The message exceeds `message.max.bytes`.
    MessageTooLarge = 3,
    /// The local queue stayed full for longer than `enqueue.timeout.ms`.
    QueueFull = 4,
    /// A timeout passed (delivery, flush, or a blocking send).
    Timeout = 5,
    /// The producer is closed, or closed before the message was delivered.
    Closed = 6,
    /// Brokers could not be reached.
    BrokerTransport = 7,
    /// SASL or TLS authentication failed.
    Authentication = 8,
    /// Not authorized for the topic or cluster.
    Authorization = 9,
    /// The topic or partition does not exist.
    UnknownTopicOrPartition = 10,
    /// The producer failed fatally; create a new one.
    Fatal = 11,
    /// Another broker error; see ks_last_error().
    Broker = 12,
    /// A bug or unexpected state inside kafkasender or librdkafka.
    Internal = 13,
    /// The rate limit had no token within `enqueue.timeout.ms`; nothing was enqueued.
    RateLimited = 14,
    /// The circuit breaker is open and no spool is configured; nothing was enqueued.
    CircuitOpen = 15,
    /// The spool could not take the message (full, or a disk error).
    Spool = 16,
    /// A transaction call out of turn (a send outside a transaction, a commit without a begin),
    /// or a message of an aborted transaction (retriable: send it again in a new transaction).
    Transaction = 17,
    /// A required pointer argument was NULL.
    NullArgument = 100,
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 101,
    /// An argument was out of range or otherwise invalid (including a double free).
    InvalidArgument = 102,
    /// kafkasender panicked; the call had no effect that can be relied on.
    Panic = 103,
}

impl From<ErrorKind> for ks_status {
    fn from(kind: ErrorKind) -> ks_status {
        match kind {
            ErrorKind::Config => ks_status::Config,
            ErrorKind::InvalidRecord => ks_status::InvalidRecord,
            ErrorKind::MessageTooLarge => ks_status::MessageTooLarge,
            ErrorKind::QueueFull => ks_status::QueueFull,
            ErrorKind::Timeout => ks_status::Timeout,
            ErrorKind::Closed => ks_status::Closed,
            ErrorKind::BrokerTransport => ks_status::BrokerTransport,
            ErrorKind::Authentication => ks_status::Authentication,
            ErrorKind::Authorization => ks_status::Authorization,
            ErrorKind::UnknownTopicOrPartition => ks_status::UnknownTopicOrPartition,
            ErrorKind::Fatal => ks_status::Fatal,
            ErrorKind::Broker => ks_status::Broker,
            ErrorKind::Internal => ks_status::Internal,
            ErrorKind::RateLimited => ks_status::RateLimited,
            ErrorKind::CircuitOpen => ks_status::CircuitOpen,
            ErrorKind::Spool => ks_status::Spool,
            ErrorKind::Transaction => ks_status::Transaction,
        }
    }
}

impl ks_status {
    /// The statuses that are misuse of the C API rather than core error kinds, with their names.
    const MISUSE: [(ks_status, &'static CStr); 4] = [
        (ks_status::NullArgument, c"null_argument"),
        (ks_status::InvalidUtf8, c"invalid_utf8"),
        (ks_status::InvalidArgument, c"invalid_argument"),
        (ks_status::Panic, c"panic"),
    ];

    /// The status with this number, if there is one.
    pub(crate) fn from_code(code: i32) -> Option<ks_status> {
        let kinds = ErrorKind::ALL.iter().map(|&kind| ks_status::from(kind));
        std::iter::once(ks_status::Ok)
            .chain(kinds)
            .chain(ks_status::MISUSE.iter().map(|(status, _)| *status))
            .find(|status| *status as i32 == code)
    }

    /// A static, NUL-terminated name: the core's name of the error kind, or the misuse's.
    pub(crate) fn name(self) -> &'static CStr {
        static KIND_NAMES: OnceLock<Vec<CString>> = OnceLock::new();
        let kind_names =
            KIND_NAMES.get_or_init(|| ErrorKind::ALL.iter().map(|k| c_text(k.as_str())).collect());
        if self == ks_status::Ok {
            return c"ok";
        }
        match ErrorKind::ALL
            .iter()
            .position(|&k| ks_status::from(k) == self)
        {
            Some(i) => &kind_names[i],
            None => ks_status::MISUSE
                .iter()
                .find(|(status, _)| *status == self)
                .map_or(c"unknown", |(_, name)| name),
        }
    }
}

/// A failure on its way out to C: the status, with its message kept for ks_last_error().
pub(crate) struct Failure {
    pub status: ks_status,
    pub message: String,
}

impl Failure {
    pub fn new(status: ks_status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure::new(error.kind().into(), error.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(message: &str) {
    // An interior NUL would end the C string early; show it instead of failing.
    let message = c_text(message);
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
}

pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

/// What a function returns to C when it fails or panics.
pub(crate) trait FfiResult {
    fn failed(status: ks_status) -> Self;
}

impl FfiResult for ks_status {
    fn failed(status: ks_status) -> Self {
        status
    }
}

impl<T> FfiResult for *mut T {
    fn failed(_: ks_status) -> Self {
        std::ptr::null_mut()
    }
}

impl<T> FfiResult for *const T {
    fn failed(_: ks_status) -> Self {
        std::ptr::null()
    }
}

impl FfiResult for u64 {
    fn failed(_: ks_status) -> Self {
        0
    }
}

impl FfiResult for u32 {
    fn failed(_: ks_status) -> Self {
        0
    }
}

impl FfiResult for () {
    fn failed(_: ks_status) -> Self {}
}

/// Runs `body` as the whole of an `extern "C"` function: a panic or a `Failure` becomes the
/// failure value of `R`, with ks_last_error() set. Every exported function goes through here.
pub(crate) fn boundary<R: FfiResult>(body: impl FnOnce() -> Result<R, Failure>) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            R::failed(failure.status)
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            set_last_error(&format!("kafkasender panicked: {what}"));
            R::failed(ks_status::Panic)
        }
    }
}

/// A shared reference from a C pointer, or `NullArgument` naming the argument.
///
/// # Safety
/// A non-NULL `ptr` must point to a live `T` for the duration of the call.
pub(crate) unsafe fn arg_ref<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller guarantees a non-NULL pointer is valid.
    unsafe { ptr.as_ref() }
        .ok_or_else(|| Failure::new(ks_status::NullArgument, format!("{name} is NULL")))
}

/// A string from a C pointer, checked for NULL and UTF-8.
///
/// # Safety
/// A non-NULL `ptr` must point to a NUL-terminated string that lives for the call.
pub(crate) unsafe fn arg_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::new(
            ks_status::NullArgument,
            format!("{name} is NULL"),
        ));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|e| {
        Failure::new(
            ks_status::InvalidUtf8,
            format!("{name} is not valid UTF-8: {e}"),
        )
    })
}

/// Bytes from a pointer and length. NULL means "absent" (`None`); a zero length with a non-NULL
/// pointer is an empty, present value.
///
/// # Safety
/// A non-NULL `ptr` must point to `len` readable bytes that live for the call.
pub(crate) unsafe fn arg_bytes<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    // SAFETY: per the caller's contract; from_raw_parts needs a non-NULL pointer even for len 0.
    (!ptr.is_null()).then(|| unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Text as a C string; an interior NUL (impossible in topics, rare in messages) becomes `\0`.
pub(crate) fn c_text(text: &str) -> CString {
    CString::new(text.replace('\0', "\\0")).unwrap_or_default()
}

/// Bytes as C sees them: NULL and 0 for absent, otherwise pointer and length (borrowed).
pub(crate) fn c_bytes(bytes: Option<&[u8]>) -> (*const u8, usize) {
    bytes.map_or((std::ptr::null(), 0), |b| (b.as_ptr(), b.len()))
}

/// Writes `value` through an output pointer, which must not be NULL.
///
/// # Safety
/// A non-NULL `out` must be valid for writes.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T, name: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::new(
            ks_status::NullArgument,
            format!("{name} is NULL"),
        ));
    }
    // SAFETY: non-NULL and writable per the caller's contract.
    unsafe { out.write(value) };
    Ok(())
}

/// Writes `value()` through an output pointer the caller may leave NULL; then nothing is written
/// and `value` is not even called (it may allocate).
///
/// # Safety
/// A non-NULL `out` must be valid for writes.
pub(crate) unsafe fn write_optional_out<T>(out: *mut T, value: impl FnOnce() -> T) {
    if !out.is_null() {
        // SAFETY: non-NULL and writable per the caller's contract.
        unsafe { out.write(value()) };
    }
}

/// Live handles and the type each was made as, so that a double free, or a free through the wrong
/// `_free` function, is an error instead of a crash.
pub(crate) mod registry {
    use std::any::TypeId;
    use std::collections::HashMap;
    use std::sync::{Mutex, PoisonError};

    static LIVE: Mutex<Option<HashMap<usize, TypeId>>> = Mutex::new(None);

    pub fn add<T: 'static>(ptr: *mut T) -> *mut T {
        LIVE.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(HashMap::new)
            .insert(ptr as usize, TypeId::of::<T>());
        ptr
    }

    /// Whether `ptr` was live as a `T` (and now no longer is).
    pub fn remove<T: 'static>(ptr: *mut T) -> bool {
        let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(live) = live.as_mut() else {
            return false;
        };
        if live.get(&(ptr as usize)) != Some(&TypeId::of::<T>()) {
            return false;
        }
        live.remove(&(ptr as usize));
        true
    }
}

/// Frees a handle made by `Box::into_raw` + `registry::add`, once (see `free_registered`).
pub(crate) fn free_handle<T: 'static>(ptr: *mut T, what: &str) {
    // SAFETY: registered handles all come from Box::into_raw.
    free_registered(ptr, what, |ptr| drop(unsafe { Box::from_raw(ptr) }));
}

/// Frees a registered pointer with `free`, once. NULL does nothing; a pointer that is not live
/// (freed already, or never ours) sets ks_last_error() and is left alone, so `free` only ever
/// sees a pointer made by the allocation it undoes and not freed yet.
pub(crate) fn free_registered<T: 'static>(ptr: *mut T, what: &str, free: impl FnOnce(*mut T)) {
    boundary(|| {
        if ptr.is_null() {
            return Ok(());
        }
        if !registry::remove(ptr) {
            return Err(Failure::new(
                ks_status::InvalidArgument,
                format!(
                    "{what} freed twice, not made by kafkasender, or freed with the wrong function"
                ),
            ));
        }
        free(ptr);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C enum is written out for cbindgen; this keeps its numbers the core's codes.
    #[test]
    fn each_error_kind_has_its_core_code_and_name() {
        for kind in ErrorKind::ALL {
            let status = ks_status::from(kind);
            assert_eq!(status as i32, i32::from(kind.code()), "{kind}");
            assert_eq!(status.name().to_str(), Ok(kind.as_str()));
            assert_eq!(ks_status::from_code(status as i32), Some(status));
        }
        assert_eq!(ks_status::from_code(100), Some(ks_status::NullArgument));
        assert_eq!(ks_status::from_code(99), None);
    }
}
