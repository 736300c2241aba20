//! `ks_producer`: sends messages and reports each one exactly once through a C callback.

use std::collections::VecDeque;
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use core::{DeliveryReport, Header, Outcome, Producer, Record};

use crate::boundary::{
    arg_bytes, arg_ref, arg_str, boundary, c_bytes, c_text, free_handle, registry,
    write_optional_out, write_out, Failure,
};
use crate::config::ks_config;
use crate::ks_status;
use crate::rows::RowQueue;

/// A producer. Opaque. Safe to use from many threads at once.
pub struct ks_producer {
    producer: Producer,
    /// In poll mode, reports wait here until ks_producer_poll() runs their callbacks.
    polled: Option<Arc<PollQueue>>,
    /// Reports of ks_producer_send_tokened(), waiting for ks_producer_take_reports().
    pub(crate) rows: Arc<RowQueue>,
}

/// Reports waiting for ks_producer_poll(), with their callbacks.
#[derive(Default)]
struct PollQueue {
    ready: Mutex<VecDeque<(UserCallback, DeliveryReport)>>,
    arrived: Condvar,
}

impl PollQueue {
    fn push(&self, callback: UserCallback, report: DeliveryReport) {
        self.ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back((callback, report));
        self.arrived.notify_one();
    }

    /// Runs the callbacks of every waiting report, waiting up to `timeout` for the first.
    fn serve(&self, timeout: Duration) -> usize {
        let ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut ready, _) = self
            .arrived
            .wait_timeout_while(ready, timeout, |ready| ready.is_empty())
            .unwrap_or_else(PoisonError::into_inner);
        let batch = std::mem::take(&mut *ready);
        drop(ready); // callbacks may send, which may push: never hold the lock while they run
        let served = batch.len();
        for (callback, report) in batch {
            callback.call(&report);
        }
        served
    }
}

impl ks_producer {
    pub(crate) fn inner(&self) -> &Producer {
        &self.producer
    }

    /// Sends `record`; its report goes to `user`'s callback (through the poll queue in poll mode).
    pub(crate) fn send_to(
        &self,
        record: &Record<'_>,
        user: Option<UserCallback>,
    ) -> Result<(), Failure> {
        // One closure per case, each capturing only what it uses, so the ticket stays small
        // enough for glibc to free it cheaply on the delivery thread (see the core's `Pending`).
        match (user, &self.polled) {
            (None, _) => self.producer.send(record, |_: DeliveryReport| {})?,
            (Some(user), None) => self
                .producer
                .send(record, move |report: DeliveryReport| user.call(&report))?,
            (Some(user), Some(queue)) => {
                let queue = queue.clone();
                self.producer
                    .send(record, move |report| queue.push(user, report))?
            }
        }
        Ok(())
    }
}

impl Drop for ks_producer {
    fn drop(&mut self) {
        // Close first, so every report is in; then run the callbacks nobody polled for.
        self.producer.close(self.producer.settings().close_timeout);
        if let Some(queue) = &self.polled {
            queue.serve(Duration::ZERO);
        }
    }
}

/// One header of a message.
#[repr(C)]
pub struct ks_header {
    /// Header name: NUL-terminated UTF-8. Must not be NULL.
    pub key: *const c_char,
    /// Header value bytes; NULL for a null value.
    pub value: *const u8,
    /// Length of `value` in bytes.
    pub value_len: usize,
}

/// A message to send. Everything it points to is copied by ks_producer_send() before it returns.
#[repr(C)]
pub struct ks_message {
    /// Topic: NUL-terminated UTF-8. Must not be NULL.
    pub topic: *const c_char,
    /// Key bytes (may contain NUL); NULL for no key. A non-NULL key of length 0 is an empty key.
    pub key: *const u8,
    /// Length of `key` in bytes.
    pub key_len: usize,
    /// Value bytes (may contain NUL); NULL for a tombstone (null value).
    pub value: *const u8,
    /// Length of `value` in bytes.
    pub value_len: usize,
    /// Headers, in order; may be NULL when `headers_len` is 0.
    pub headers: *const ks_header,
    /// Number of headers.
    pub headers_len: usize,
    /// Whether `partition` is set. False, as in a zeroed message, lets the partitioner choose by
    /// key (like the Java client). So that a partition set without this flag is never ignored
    /// silently, such a message is refused (KS_STATUS_INVALID_RECORD) unless `partition` is 0
    /// or -1 (what "let the partitioner choose" used to be).
    pub has_partition: bool,
    /// The partition, when `has_partition` is true.
    pub partition: i32,
    /// Timestamp in milliseconds since the epoch, or 0 for now.
    pub timestamp_ms: i64,
}

/// How a message ended.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum ks_outcome {
    /// Acknowledged by the brokers; `partition` and `offset` are set.
    Delivered = 0,
    /// Not delivered and not kept; `status` and `error` say why.
    Failed = 1,
    /// Written to the dead-letter topic (`destination`) instead; `partition` and `offset` are
    /// there; `status` and `error` say why it could not go to its own topic.
    DeadLettered = 2,
    /// Kept in the local spool file `destination`, to be re-sent by a replay; `status` and
    /// `error` say why it could not be delivered now.
    Spooled = 3,
}

/// What happened to one message. Valid only during the callback that receives it: copy what you
/// need to keep. All pointers in it are owned by kafkasender.
#[repr(C)]
pub struct ks_delivery_report {
    /// Topic, NUL-terminated.
    pub topic: *const c_char,
    /// Partition, or -1 if none was assigned.
    pub partition: i32,
    /// Offset; -1 unless delivered, or when the acknowledgement carried none.
    pub offset: i64,
    /// Timestamp in milliseconds since the epoch, or -1 if unknown.
    pub timestamp_ms: i64,
    /// Key bytes, or NULL if the message had no key.
    pub key: *const u8,
    /// Length of `key`.
    pub key_len: usize,
    /// How many times kafkasender handed the message to librdkafka.
    pub attempts: u32,
    /// Microseconds from send to this report.
    pub latency_us: u64,
    /// How it ended.
    pub outcome: ks_outcome,
    /// KS_STATUS_OK when delivered, otherwise the kind of error that kept it from its topic.
    pub status: ks_status,
    /// Error message, NUL-terminated, or NULL when delivered.
    pub error: *const c_char,
    /// Where a dead-lettered (the topic) or spooled (the file path) message went,
    /// NUL-terminated; NULL otherwise.
    pub destination: *const c_char,
    /// Whether sending the message again may succeed (a failure only; false when delivered).
    pub retriable: bool,
    /// Whether it was sent again through a new client after the first failed fatally
    /// (at-least-once: the first may have written it too).
    pub recovered: bool,
}

/// Receives one delivery report, exactly once per accepted send. Runs on the producer's delivery
/// thread (never on the thread that called ks_producer_send()); keep it short and do not call
/// ks_producer_flush(), ks_producer_close() or ks_producer_free() from inside it.
pub type ks_delivery_cb =
    Option<unsafe extern "C" fn(report: *const ks_delivery_report, user_data: *mut c_void)>;

/// Releases a send's `user_data` once kafkasender is done with it: exactly once per call of
/// ks_producer_send(), accepted or not, after the callback has run (or, when it never will, on
/// the thread that learns so). NULL when there is nothing to release.
pub type ks_finalizer = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Makes a producer from a configuration, which is validated first: on KS_STATUS_CONFIG,
/// ks_last_error() lists every problem. Starts the producer's delivery thread; connects lazily.
/// Delivery callbacks run on that thread. The first producer of a process installs kafkasender's
/// stderr logger (`log.level`, `log.format`).
///
/// Ownership: `config` stays the caller's (it may be freed right after). On success
/// `*producer_out` is the caller's, to free with ks_producer_free(). Does not block.
#[no_mangle]
pub extern "C" fn ks_producer_new(
    config: *const ks_config,
    producer_out: *mut *mut ks_producer,
) -> ks_status {
    new_producer(config, producer_out, false)
}

/// Like ks_producer_new(), but delivery callbacks run only inside ks_producer_poll(), on the
/// thread that calls it. Call it regularly: reports wait (holding their messages' memory) until
/// polled. ks_producer_free() runs the callbacks of reports still waiting.
#[no_mangle]
pub extern "C" fn ks_producer_new_polled(
    config: *const ks_config,
    producer_out: *mut *mut ks_producer,
) -> ks_status {
    new_producer(config, producer_out, true)
}

fn new_producer(
    config: *const ks_config,
    producer_out: *mut *mut ks_producer,
    polled: bool,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live config or NULL, and a writable pointer or NULL.
        let config = unsafe { arg_ref(config, "config") }?.build()?;
        if producer_out.is_null() {
            return Err(Failure::new(
                ks_status::NullArgument,
                "producer_out is NULL",
            ));
        }
        // C has no logger of its own to hand us: log to stderr at `log.level`, as librdkafka would.
        core::logging::init_from(config.settings());
        let producer = Producer::new(config)?;
        let polled = polled.then(Arc::default);
        let rows: Arc<RowQueue> = Arc::default();
        let sink = rows.clone();
        producer.set_report_sink(Box::new(move |token, report| sink.push(token, report)))?;
        let handle = registry::add(Box::into_raw(Box::new(ks_producer {
            producer,
            polled,
            rows,
        })));
        // SAFETY: checked non-NULL above.
        unsafe { write_out(producer_out, handle, "producer_out") }?;
        Ok(ks_status::Ok)
    })
}

/// For a producer made by ks_producer_new_polled(): runs the callbacks of every report that has
/// arrived, on the calling thread, waiting up to `timeout_ms` for the first. `*served_out` (may be
/// NULL) receives how many ran. KS_STATUS_INVALID_ARGUMENT for a producer not in poll mode.
///
/// Blocking: up to `timeout_ms`. Thread safety: any thread; callbacks run on whichever polls.
#[no_mangle]
pub extern "C" fn ks_producer_poll(
    producer: *const ks_producer,
    timeout_ms: u32,
    served_out: *mut u64,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live producer or NULL.
        let producer = unsafe { arg_ref(producer, "producer") }?;
        let queue = producer.polled.as_ref().ok_or_else(|| {
            Failure::new(
                ks_status::InvalidArgument,
                "this producer delivers on its own thread; make it with ks_producer_new_polled",
            )
        })?;
        let served = queue.serve(Duration::from_millis(u64::from(timeout_ms)));
        // SAFETY: C passes a writable pointer or NULL.
        unsafe { write_optional_out(served_out, || served as u64) };
        Ok(ks_status::Ok)
    })
}

/// A user callback and its data, sent to the delivery thread; dropping it runs the finalizer.
pub(crate) struct UserCallback {
    callback: ks_delivery_cb,
    user_data: *mut c_void,
    finalizer: ks_finalizer,
}

impl Drop for UserCallback {
    fn drop(&mut self) {
        if let Some(finalizer) = self.finalizer {
            // SAFETY: the C caller gave the finalizer for this user_data; it runs once, here.
            unsafe { finalizer(self.user_data) };
        }
    }
}

// SAFETY: the C contract of ks_producer_send(): the callback runs on another thread, so the
// caller promises that `user_data` may be used there.
unsafe impl Send for UserCallback {}

thread_local! {
    /// The topic of the report being delivered, NUL-terminated: one buffer per delivering
    /// thread, so a report costs no allocation for its topic.
    static TOPIC: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl UserCallback {
    /// What a send was given to report to and release, if anything.
    pub(crate) fn given(
        callback: ks_delivery_cb,
        user_data: *mut c_void,
        finalizer: ks_finalizer,
    ) -> Option<UserCallback> {
        (callback.is_some() || finalizer.is_some()).then_some(UserCallback {
            callback,
            user_data,
            finalizer,
        })
    }

    fn call(self, report: &DeliveryReport) {
        if self.callback.is_none() {
            return; // only a finalizer, which dropping `self` runs
        }
        TOPIC.with_borrow_mut(|topic| {
            // Topics are validated (no NUL) before sending.
            topic.clear();
            topic.extend_from_slice(report.topic.as_bytes());
            topic.push(0);
            self.call_with_topic(report, topic.as_ptr().cast());
        });
    }

    fn call_with_topic(self, report: &DeliveryReport, topic: *const c_char) {
        let CEnding {
            outcome,
            status,
            error,
            destination,
        } = CEnding::of(report);
        let (key, key_len) = c_bytes(report.key.as_deref());
        let c_report = ks_delivery_report {
            topic,
            partition: report.partition,
            offset: report.offset,
            timestamp_ms: report.timestamp.unwrap_or(-1),
            key,
            key_len,
            attempts: report.attempts,
            latency_us: u64::try_from(report.latency.as_micros()).unwrap_or(u64::MAX),
            outcome,
            status,
            error: error.as_ref().map_or(std::ptr::null(), |e| e.as_ptr()),
            destination: destination
                .as_ref()
                .map_or(std::ptr::null(), |d| d.as_ptr()),
            retriable: report.error().is_some_and(|e| e.is_retriable()),
            recovered: report.recovered,
        };
        if let Some(callback) = self.callback {
            // SAFETY: the function pointer and user_data come from the C caller, who vouches for
            // them; the report and everything it points to live until the call returns.
            unsafe { callback(&c_report, self.user_data) };
        }
    }
}

/// How a report ended, in C terms.
pub(crate) struct CEnding {
    pub(crate) outcome: ks_outcome,
    pub(crate) status: ks_status,
    /// The error's text (escaped), when it failed to reach its topic.
    pub(crate) error: Option<CString>,
    /// The dead-letter topic or the spool file.
    pub(crate) destination: Option<CString>,
}

impl CEnding {
    pub(crate) fn of(report: &DeliveryReport) -> CEnding {
        let (status, error) = match report.outcome.error() {
            None => (ks_status::Ok, None),
            Some(error) => (
                ks_status::from(error.kind()),
                Some(c_text(&error.to_string())),
            ),
        };
        let (outcome, destination) = match &report.outcome {
            Outcome::Delivered => (ks_outcome::Delivered, None),
            Outcome::Failed(_) => (ks_outcome::Failed, None),
            Outcome::DeadLettered { topic, .. } => (ks_outcome::DeadLettered, Some(c_text(topic))),
            Outcome::Spooled { path, .. } => {
                (ks_outcome::Spooled, Some(c_text(&path.to_string_lossy())))
            }
        };
        CEnding {
            outcome,
            status,
            error,
            destination,
        }
    }
}

/// Converts a C message into a core record borrowing its bytes.
///
/// # Safety
/// Every pointer in `message` must be valid as its field documentation says.
pub(crate) unsafe fn record_of(message: &ks_message) -> Result<Record<'_>, Failure> {
    // SAFETY: per this function's contract.
    let topic = unsafe { arg_str(message.topic, "message.topic") }?;
    let partition = match (message.has_partition, message.partition) {
        (true, p) if p >= 0 => Some(p),
        (true, p) => {
            return Err(Failure::new(
                ks_status::InvalidRecord,
                format!("partition {p} is negative"),
            ))
        }
        (false, 0 | -1) => None,
        (false, p) => {
            return Err(Failure::new(
                ks_status::InvalidRecord,
                format!("partition is {p} but has_partition is false: set has_partition to send to partition {p}, or leave partition 0 to let the partitioner choose"),
            ))
        }
    };
    let headers = if message.headers_len == 0 {
        Vec::new()
    } else {
        if message.headers.is_null() {
            return Err(Failure::new(
                ks_status::NullArgument,
                "message.headers is NULL but headers_len is not 0",
            ));
        }
        // SAFETY: non-NULL, with headers_len elements per the contract.
        let c_headers = unsafe { std::slice::from_raw_parts(message.headers, message.headers_len) };
        c_headers
            .iter()
            .map(|h| {
                // SAFETY: per the contract of ks_header.
                Ok(Header {
                    key: unsafe { arg_str(h.key, "header key") }?,
                    value: unsafe { arg_bytes(h.value, h.value_len) },
                })
            })
            .collect::<Result<Vec<_>, Failure>>()?
    };
    Ok(Record {
        topic,
        // SAFETY: per the contract of ks_message.
        key: unsafe { arg_bytes(message.key, message.key_len) },
        value: unsafe { arg_bytes(message.value, message.value_len) },
        headers,
        partition,
        timestamp: (message.timestamp_ms != 0).then_some(message.timestamp_ms),
    })
}

/// Sends a message. On KS_STATUS_OK, `callback` (if not NULL) later runs exactly once with the
/// message's report, on the delivery thread, also when the producer is closed before delivery.
/// On any other status the message was not enqueued and `callback` never runs.
///
/// Ownership: everything `message` points to is copied before this returns. `user_data` passes
/// to kafkasender, whatever the status: `finalizer` (if not NULL) releases it exactly once, after
/// `callback` has run (on the same thread), or before this returns when the message was not
/// enqueued.
/// Blocking: only while the local queue is full, at most `enqueue.timeout.ms` (default 5 s).
/// Thread safety: any thread, concurrently with other sends.
#[no_mangle]
pub extern "C" fn ks_producer_send(
    producer: *const ks_producer,
    message: *const ks_message,
    callback: ks_delivery_cb,
    user_data: *mut c_void,
    finalizer: ks_finalizer,
) -> ks_status {
    // Made first, so that every way out (a NULL argument, a refusal, a panic) drops it once.
    let user = UserCallback::given(callback, user_data, finalizer);
    boundary(move || {
        // SAFETY: C passes live pointers or NULL, and a message valid as documented.
        let (producer, message) =
            unsafe { (arg_ref(producer, "producer")?, arg_ref(message, "message")?) };
        let record = unsafe { record_of(message) }?;
        producer.send_to(&record, user)?;
        Ok(ks_status::Ok)
    })
}

/// Sends a message and waits for its report, at most `timeout_ms`. KS_STATUS_OK means the message
/// is not lost: delivered, or kept in the dead-letter topic or the spool when those are configured
/// (use ks_producer_send with a callback to tell which); `*partition_out` and `*offset_out` are
/// then set (each may be NULL if not wanted; the dead-letter topic's place, -1 when spooled). Any
/// other status is the error; on KS_STATUS_TIMEOUT the message may still be delivered later.
///
/// Blocking: yes, up to `timeout_ms` (plus up to `enqueue.timeout.ms` on a full queue).
/// Thread safety: any thread. Never call it from a delivery callback.
#[no_mangle]
pub extern "C" fn ks_producer_send_sync(
    producer: *const ks_producer,
    message: *const ks_message,
    timeout_ms: u32,
    partition_out: *mut i32,
    offset_out: *mut i64,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes live pointers or NULL, and a message valid as documented.
        let (producer, message) =
            unsafe { (arg_ref(producer, "producer")?, arg_ref(message, "message")?) };
        let record = unsafe { record_of(message) }?;
        let report = producer
            .producer
            .send_and_wait(&record, Duration::from_millis(u64::from(timeout_ms)))?;
        // SAFETY: each out pointer is either NULL (not wanted) or writable.
        unsafe {
            write_optional_out(partition_out, || report.partition);
            write_optional_out(offset_out, || report.offset);
        }
        Ok(ks_status::Ok)
    })
}

/// Re-sends every record of the producer's spool (`spool.dir`) and returns once all are enqueued;
/// their reports go to the metrics only (their senders were told `KS_OUTCOME_SPOOLED`). A spool
/// file is deleted once every record in it has been reported again. `*records_out` and
/// `*torn_out` (each may be NULL) receive how many records were re-sent and how many torn or
/// corrupt records were skipped. Replays also happen by themselves when the circuit breaker
/// closes and when a producer starts on a spool. KS_STATUS_CONFIG without a `spool.dir`,
/// KS_STATUS_CIRCUIT_OPEN while the breaker is open.
///
/// Blocking: while records wait for queue room. Thread safety: any thread except the delivery thread.
#[no_mangle]
pub extern "C" fn ks_producer_replay_spool(
    producer: *const ks_producer,
    records_out: *mut u64,
    torn_out: *mut u64,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live producer or NULL.
        let producer = unsafe { arg_ref(producer, "producer") }?;
        let replayed = producer.producer.replay_spool()?;
        // SAFETY: C passes writable pointers or NULL.
        unsafe {
            write_optional_out(records_out, || replayed.records);
            write_optional_out(torn_out, || replayed.torn.len() as u64);
        }
        Ok(ks_status::Ok)
    })
}

/// Waits until every message sent so far has been reported, at most `timeout_ms`.
/// KS_STATUS_TIMEOUT if some are still in flight.
///
/// Blocking: yes. Thread safety: any thread except the delivery thread (inside a callback it
/// fails with KS_STATUS_INTERNAL rather than deadlock).
#[no_mangle]
pub extern "C" fn ks_producer_flush(producer: *const ks_producer, timeout_ms: u32) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live producer or NULL.
        let producer = unsafe { arg_ref(producer, "producer") }?;
        producer
            .producer
            .flush(Duration::from_millis(u64::from(timeout_ms)))?;
        Ok(ks_status::Ok)
    })
}

/// Opens a transaction on a producer made with `transactional.id`: every send until the commit
/// or abort belongs to it, and a send outside one fails with KS_STATUS_TRANSACTION. Also
/// KS_STATUS_TRANSACTION on a producer without `transactional.id` or with a transaction open.
///
/// Blocking: briefly. Thread safety: any thread; one transaction at a time per producer.
#[no_mangle]
pub extern "C" fn ks_producer_begin_transaction(producer: *const ks_producer) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live producer or NULL.
        let producer = unsafe { arg_ref(producer, "producer") }?;
        producer.producer.begin_transaction()?;
        Ok(ks_status::Ok)
    })
}

/// Commits the open transaction, waiting up to `timeout_ms`. KS_STATUS_OK: every message of it is
/// committed and its callback has run (`KS_OUTCOME_DELIVERED`); a message's callback runs only
/// when its transaction ends. When it cannot commit, the transaction is aborted, every callback
/// runs with KS_STATUS_TRANSACTION (retriable: send them again in a new transaction) and this
/// returns KS_STATUS_TRANSACTION, ks_last_error() naming the transaction. A retriable status
/// without that (KS_STATUS_TIMEOUT) leaves the transaction ending: commit or abort it again.
///
/// Blocking: yes, up to `timeout_ms`. Thread safety: any thread except the delivery thread.
#[no_mangle]
pub extern "C" fn ks_producer_commit_transaction(
    producer: *const ks_producer,
    timeout_ms: u32,
) -> ks_status {
    end_transaction(producer, timeout_ms, Producer::commit_transaction)
}

/// Aborts the open transaction, waiting up to `timeout_ms`: every message of it is reported with
/// KS_STATUS_TRANSACTION (retriable) and none becomes visible to `read_committed` consumers.
/// KS_STATUS_TRANSACTION when no transaction is open.
///
/// Blocking: yes, up to `timeout_ms`. Thread safety: any thread except the delivery thread.
#[no_mangle]
pub extern "C" fn ks_producer_abort_transaction(
    producer: *const ks_producer,
    timeout_ms: u32,
) -> ks_status {
    end_transaction(producer, timeout_ms, Producer::abort_transaction)
}

fn end_transaction(
    producer: *const ks_producer,
    timeout_ms: u32,
    end: fn(&Producer, Duration) -> core::Result<()>,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live producer or NULL.
        let producer = unsafe { arg_ref(producer, "producer") }?;
        end(
            &producer.producer,
            Duration::from_millis(u64::from(timeout_ms)),
        )?;
        Ok(ks_status::Ok)
    })
}

/// Stops accepting messages, waits up to `timeout_ms` for those in flight, then fails the rest
/// (each reported with KS_STATUS_CLOSED). Every callback has run when this returns.
/// `*purged_out` (may be NULL) receives how many were failed that way. Later sends return
/// KS_STATUS_CLOSED; closing again does nothing. The producer must still be freed.
///
/// Blocking: yes, up to `timeout_ms` plus a few seconds for purged reports.
/// Thread safety: any thread except the delivery thread.
#[no_mangle]
pub extern "C" fn ks_producer_close(
    producer: *const ks_producer,
    timeout_ms: u32,
    purged_out: *mut u64,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live producer or NULL.
        let producer = unsafe { arg_ref(producer, "producer") }?;
        let report = producer
            .producer
            .close(Duration::from_millis(u64::from(timeout_ms)));
        // SAFETY: C passes a writable pointer or NULL.
        unsafe { write_optional_out(purged_out, || report.purged) };
        Ok(ks_status::Ok)
    })
}

/// The producer's `close.timeout.ms` in milliseconds (what ks_producer_free() waits at most), for
/// a host that closes with ks_producer_close() first. 0 for NULL. Does not block.
#[no_mangle]
pub extern "C" fn ks_producer_close_timeout_ms(producer: *const ks_producer) -> u32 {
    boundary(|| {
        // SAFETY: C passes a live producer or NULL.
        let timeout = unsafe { producer.as_ref() }
            .map_or(Duration::ZERO, |p| p.producer.settings().close_timeout);
        Ok(u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX))
    })
}

/// Number of messages sent and not yet reported. 0 for NULL. Does not block.
#[no_mangle]
pub extern "C" fn ks_producer_in_flight(producer: *const ks_producer) -> u64 {
    boundary(|| {
        // SAFETY: C passes a live producer or NULL.
        Ok(unsafe { producer.as_ref() }.map_or(0, |p| p.producer.in_flight() as u64))
    })
}

/// Frees a producer, closing it first if needed (waiting up to `close.timeout.ms`, default 10 s,
/// for messages in flight; the rest are reported failed). NULL does nothing; a second free is
/// detected and reported in ks_last_error().
///
/// Blocking: while closing. Thread safety: no other thread may use the producer during or after
/// this call. Never call it from a delivery callback.
#[no_mangle]
pub extern "C" fn ks_producer_free(producer: *mut ks_producer) {
    free_handle(producer, "ks_producer");
}

/// What a partitioner function is asked (see ks_producer_set_partitioner()). Valid during the call.
#[repr(C)]
pub struct ks_partition_request {
    /// The record's topic. NUL-terminated.
    pub topic: *const c_char,
    /// The record's key; NULL when it has none.
    pub key: *const u8,
    /// Length of `key` in bytes.
    pub key_len: usize,
    /// How many partitions the topic has (at least 1).
    pub partition_count: i32,
}

/// A partitioner function: a partition in `0..partition_count`, or a negative number to refuse.
pub type ks_partitioner_cb = Option<
    unsafe extern "C" fn(request: *const ks_partition_request, user_data: *mut c_void) -> i32,
>;

struct Partitioner {
    callback: unsafe extern "C" fn(*const ks_partition_request, *mut c_void) -> i32,
    user_data: *mut c_void,
}

// SAFETY: the contract of ks_producer_set_partitioner(): `user_data` may be used from every
// thread that sends.
unsafe impl Send for Partitioner {}
unsafe impl Sync for Partitioner {}

impl Partitioner {
    fn call(&self, request: &core::PartitionRequest<'_>) -> Result<i32, String> {
        let topic = c_text(request.topic);
        let (key, key_len) = c_bytes(request.key);
        let c_request = ks_partition_request {
            topic: topic.as_ptr(),
            key,
            key_len,
            partition_count: request.partition_count,
        };
        // SAFETY: the C caller gave a function that takes this request and its user_data.
        let partition = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
            (self.callback)(&c_request, self.user_data)
        }))
        .map_err(|_| "the partitioner panicked".to_string())?;
        if partition < 0 {
            return Err(format!("the partitioner refused the record ({partition})"));
        }
        Ok(partition)
    }
}

/// Gives every record without an explicit partition (`has_partition` false) the one `callback`
/// returns; a partition out of range, or a negative one, fails that send with
/// KS_STATUS_INVALID_RECORD. The partition count comes from the brokers on a topic's first send
/// (which waits for it, at most `enqueue.timeout.ms`), then from a cache. Set once, before
/// sending: KS_STATUS_CONFIG when one is set already.
///
/// Threading: `callback` runs on the thread that sends, inside ks_producer_send() and the other
/// send functions; it must not call back into this producer. Ownership: `user_data` stays the
/// caller's and must stay valid as long as the producer. Does not block.
#[no_mangle]
pub extern "C" fn ks_producer_set_partitioner(
    producer: *const ks_producer,
    callback: ks_partitioner_cb,
    user_data: *mut c_void,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live producer or NULL.
        let producer = unsafe { arg_ref(producer, "producer") }?;
        let Some(callback) = callback else {
            return Err(Failure::new(ks_status::NullArgument, "callback is NULL"));
        };
        let partitioner = Partitioner {
            callback,
            user_data,
        };
        producer
            .producer
            .set_partitioner(Box::new(move |request| partitioner.call(request)))?;
        Ok(ks_status::Ok)
    })
}
