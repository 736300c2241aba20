//! Reports as rows of plain data, taken in batches: for a host whose every call into C, or from
//! C into it, is expensive (Go's cgo). A send carries a `token` instead of a callback; its report
//! waits in the producer's queue until ks_producer_take_reports() copies a batch of them into the
//! caller's array, one crossing for many reports and none per report.

use std::collections::VecDeque;
use std::ffi::{c_char, CString};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use core::DeliveryReport;

use crate::boundary::{arg_ref, boundary, set_last_error, write_optional_out, Failure};
use crate::ks_status;
use crate::producer::{ks_message, ks_outcome, ks_producer, record_of, CEnding};

/// One report as plain data, for ks_producer_take_reports(). The message's topic and key are not
/// repeated: the sender has them.
#[repr(C)]
pub struct ks_report_row {
    /// The token the message was sent with.
    pub token: u64,
    /// Partition, or -1 if none was assigned.
    pub partition: i32,
    /// Offset; -1 unless delivered, or when the acknowledgement carried none.
    pub offset: i64,
    /// Timestamp in milliseconds since the epoch, or -1 if unknown.
    pub timestamp_ms: i64,
    /// How many times kafkasender handed the message to librdkafka.
    pub attempts: u32,
    /// Microseconds from send to this report.
    pub latency_us: u64,
    /// How it ended.
    pub outcome: ks_outcome,
    /// KS_STATUS_OK when delivered, otherwise the kind of error that kept it from its topic.
    pub status: ks_status,
    /// Whether sending the message again may succeed (a failure only).
    pub retriable: bool,
    /// Whether it was sent again through a new client after the first failed fatally.
    pub recovered: bool,
    /// Error message, NUL-terminated, or NULL when delivered. Valid until the next take.
    pub error: *const c_char,
    /// The dead-letter topic or the spool file, NUL-terminated, or NULL. Valid until the next take.
    pub destination: *const c_char,
}

/// Reports of tokened sends, waiting to be taken.
#[derive(Default)]
pub(crate) struct RowQueue {
    ready: Mutex<VecDeque<(u64, DeliveryReport)>>,
    arrived: Condvar,
    /// The texts the last taken rows point to.
    texts: Mutex<Vec<CString>>,
}

impl RowQueue {
    pub(crate) fn push(&self, token: u64, report: DeliveryReport) {
        let mut ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        ready.push_back((token, report));
        if ready.len() == 1 {
            self.arrived.notify_one(); // the taker sleeps only on an empty queue
        }
    }

    /// Moves up to `rows.len()` reports into `rows`, waiting up to `timeout` for the first.
    fn take(&self, rows: &mut [ks_report_row], timeout: Duration) -> usize {
        let ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut ready, _) = self
            .arrived
            .wait_timeout_while(ready, timeout, |ready| ready.is_empty())
            .unwrap_or_else(PoisonError::into_inner);
        let count = ready.len().min(rows.len());
        let batch: Vec<_> = ready.drain(..count).collect();
        drop(ready);
        let mut texts = self.texts.lock().unwrap_or_else(PoisonError::into_inner);
        texts.clear();
        let mut keep = |text: Option<CString>| match text {
            Some(text) => {
                let pointer = text.as_ptr();
                texts.push(text);
                pointer
            }
            None => std::ptr::null(),
        };
        for (row, (token, report)) in rows.iter_mut().zip(batch) {
            let CEnding {
                outcome,
                status,
                error,
                destination,
            } = CEnding::of(&report);
            *row = ks_report_row {
                token,
                partition: report.partition,
                offset: report.offset,
                timestamp_ms: report.timestamp.unwrap_or(-1),
                attempts: report.attempts,
                latency_us: u64::try_from(report.latency.as_micros()).unwrap_or(u64::MAX),
                outcome,
                status,
                retriable: report.error().is_some_and(|e| e.is_retriable()),
                recovered: report.recovered,
                error: keep(error),
                destination: keep(destination),
            };
        }
        count
    }
}

/// Sends a message like ks_producer_send(), but its report becomes a row with `token`, to be
/// taken by ks_producer_take_reports(), instead of a callback. Statuses are those of
/// ks_producer_send(); on any but KS_STATUS_OK no row will come for `token`.
///
/// Ownership: everything `message` points to is copied before this returns.
/// Blocking: only while the local queue is full, at most `enqueue.timeout.ms`.
/// Thread safety: any thread, concurrently with other sends.
#[no_mangle]
pub extern "C" fn ks_producer_send_tokened(
    producer: *const ks_producer,
    message: *const ks_message,
    token: u64,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes live pointers or NULL, and a message valid as documented.
        let (producer, message) =
            unsafe { (arg_ref(producer, "producer")?, arg_ref(message, "message")?) };
        let record = unsafe { record_of(message) }?;
        producer.inner().send_token(&record, token)?;
        Ok(ks_status::Ok)
    })
}

/// Sends `count` messages like ks_producer_send_tokened(), message `i` with token
/// `first_token + i`, in one call; `statuses_out[i]` receives each one's status (no row will come
/// for one that is not KS_STATUS_OK; ks_last_error() describes the last such). Returns KS_STATUS_OK
/// once every message was tried, whatever their statuses.
///
/// Ownership: everything the messages point to is copied before this returns.
/// Blocking: only while the local queue is full, at most `enqueue.timeout.ms` per message.
/// Thread safety: any thread, concurrently with other sends.
#[no_mangle]
pub extern "C" fn ks_producer_send_batch_tokened(
    producer: *const ks_producer,
    messages: *const ks_message,
    count: usize,
    first_token: u64,
    statuses_out: *mut ks_status,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live producer or NULL.
        let producer = unsafe { arg_ref(producer, "producer") }?;
        if count == 0 {
            return Ok(ks_status::Ok);
        }
        if messages.is_null() || statuses_out.is_null() {
            return Err(Failure::new(
                ks_status::NullArgument,
                "messages or statuses_out is NULL",
            ));
        }
        // SAFETY: C passes `count` messages and `count` writable statuses.
        let (messages, statuses) = unsafe {
            (
                std::slice::from_raw_parts(messages, count),
                std::slice::from_raw_parts_mut(statuses_out, count),
            )
        };
        let mut last_failure: Option<Failure> = None;
        for ((message, status), token) in messages.iter().zip(statuses).zip(first_token..) {
            // SAFETY: each message is valid as documented.
            let sent = unsafe { record_of(message) }.and_then(|record| {
                producer
                    .inner()
                    .send_token(&record, token)
                    .map_err(Failure::from)
            });
            *status = match sent {
                Ok(()) => ks_status::Ok,
                Err(failure) => {
                    let status = failure.status;
                    last_failure = Some(failure);
                    status
                }
            };
        }
        if let Some(failure) = last_failure {
            set_last_error(&failure.message);
        }
        Ok(ks_status::Ok)
    })
}

/// Copies up to `capacity` reports of tokened sends into `rows`, oldest first, waiting up to
/// `timeout_ms` for the first; `*count_out` (may be NULL) receives how many. The texts the rows
/// point to stay valid until the next call. After ks_producer_close() every report is waiting
/// here; take them all before ks_producer_free(), which drops the rest.
///
/// Blocking: up to `timeout_ms`. Thread safety: one thread takes at a time.
#[no_mangle]
pub extern "C" fn ks_producer_take_reports(
    producer: *const ks_producer,
    rows: *mut ks_report_row,
    capacity: usize,
    timeout_ms: u32,
    count_out: *mut usize,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live producer or NULL.
        let producer = unsafe { arg_ref(producer, "producer") }?;
        if rows.is_null() && capacity > 0 {
            return Err(Failure::new(ks_status::NullArgument, "rows is NULL"));
        }
        let rows = if capacity == 0 {
            &mut [][..]
        } else {
            // SAFETY: C passes `capacity` writable rows.
            unsafe { std::slice::from_raw_parts_mut(rows, capacity) }
        };
        let taken = producer
            .rows
            .take(rows, Duration::from_millis(u64::from(timeout_ms)));
        // SAFETY: C passes a writable pointer or NULL.
        unsafe { write_optional_out(count_out, || taken) };
        Ok(ks_status::Ok)
    })
}
