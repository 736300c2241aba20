//! Metrics and health of a producer, and the strings kafkasender hands to C.

use std::ffi::{c_char, CString};

use core::HealthStatus;

use crate::boundary::{
    arg_ref, boundary, c_text, free_registered, registry, write_optional_out, write_out,
};
use crate::ks_status;
use crate::producer::ks_producer;

/// A producer's counters and delivery-latency percentiles at one moment.
#[repr(C)]
#[derive(Debug, Default)]
pub struct ks_metrics {
    /// Sends accepted (each is reported exactly once).
    pub sent: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages reported failed.
    pub failed: u64,
    /// Key, value and header bytes of accepted sends.
    pub bytes_sent: u64,
    /// Messages sent and not yet reported.
    pub in_flight: u64,
    /// Messages failed because the producer closed before they were acknowledged.
    pub purged: u64,
    /// Delivery callbacks that panicked (Rust callbacks only; C cannot panic).
    pub callback_panics: u64,
    /// Message transmissions librdkafka repeated on the wire (idempotent).
    pub wire_retries: u64,
    /// Delivery latency percentiles of delivered messages, in microseconds.
    pub latency_p50_us: u64,
    /// 90th percentile.
    pub latency_p90_us: u64,
    /// 99th percentile.
    pub latency_p99_us: u64,
    /// 99.9th percentile.
    pub latency_p999_us: u64,
    /// Largest.
    pub latency_max_us: u64,
    /// Messages written to the dead-letter topic instead of their own.
    pub dead_lettered: u64,
    /// Messages kept in the local spool.
    pub spooled: u64,
    /// Client re-sends after librdkafka gave up on a message (at-least-once).
    pub retried: u64,
    /// Records re-sent from the spool.
    pub replayed: u64,
    /// Torn or corrupt spool records skipped by replays.
    pub spool_torn_records: u64,
    /// Bytes in the spool's files now.
    pub spool_bytes: u64,
    /// Messages in librdkafka's queue now.
    pub queue_depth: u64,
    /// The circuit breaker's state now: 0 closed (or no breaker), 1 open, 2 half-open.
    pub breaker_state: u32,
    /// How often the circuit breaker opened.
    pub breaker_trips: u64,
    /// How often a client that failed fatally was replaced (`recovery.max`).
    pub recoveries: u64,
}

/// How healthy a producer is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum ks_health {
    /// Everything works.
    Healthy = 0,
    /// Messages still flow, but something is wrong.
    Degraded = 1,
    /// Messages cannot be delivered now.
    Unhealthy = 2,
}

/// Writes the producer's metrics to `*metrics_out`. Does not block.
#[no_mangle]
pub extern "C" fn ks_producer_metrics(
    producer: *const ks_producer,
    metrics_out: *mut ks_metrics,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live producer or NULL.
        let m = unsafe { arg_ref(producer, "producer") }?.inner().metrics();
        let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let metrics = ks_metrics {
            sent: m.sent,
            delivered: m.delivered,
            failed: m.failed,
            bytes_sent: m.bytes_sent,
            in_flight: m.in_flight,
            purged: m.purged,
            callback_panics: m.callback_panics,
            wire_retries: m.wire_retries,
            latency_p50_us: micros(m.latency.p50),
            latency_p90_us: micros(m.latency.p90),
            latency_p99_us: micros(m.latency.p99),
            latency_p999_us: micros(m.latency.p999),
            latency_max_us: micros(m.latency.max),
            dead_lettered: m.dead_lettered,
            spooled: m.spooled,
            retried: m.retried,
            replayed: m.replayed,
            spool_torn_records: m.spool_torn_records,
            spool_bytes: m.spool_bytes,
            queue_depth: m.queue_depth,
            breaker_state: m.breaker_state as u32,
            breaker_trips: m.breaker_trips,
            recoveries: m.recoveries,
        };
        // SAFETY: C passes a writable pointer or NULL.
        unsafe { write_out(metrics_out, metrics, "metrics_out") }?;
        Ok(ks_status::Ok)
    })
}

/// The producer's metrics in Prometheus text format (names prefixed `kafkasender_`), or NULL on
/// error (see ks_last_error()).
///
/// Ownership: the caller owns the string and frees it with ks_string_free(). Does not block.
#[no_mangle]
pub extern "C" fn ks_producer_metrics_prometheus(producer: *const ks_producer) -> *mut c_char {
    boundary(|| {
        // SAFETY: C passes a live producer or NULL.
        let text = unsafe { arg_ref(producer, "producer") }?
            .inner()
            .metrics_prometheus();
        Ok(owned_string(text))
    })
}

/// Writes the producer's health to `*status_out` and, if `reasons_out` is not NULL, a string of
/// the reasons ("; "-separated, empty when healthy) to `*reasons_out`, which the caller frees
/// with ks_string_free(). Does not block.
#[no_mangle]
pub extern "C" fn ks_producer_health(
    producer: *const ks_producer,
    status_out: *mut ks_health,
    reasons_out: *mut *mut c_char,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live producer or NULL.
        let health = unsafe { arg_ref(producer, "producer") }?.inner().health();
        let status = match health.status {
            HealthStatus::Healthy => ks_health::Healthy,
            HealthStatus::Degraded => ks_health::Degraded,
            HealthStatus::Unhealthy => ks_health::Unhealthy,
        };
        // SAFETY: C passes writable pointers or NULL.
        unsafe {
            write_out(status_out, status, "status_out")?;
            write_optional_out(reasons_out, || owned_string(health.reasons.join("; ")));
        }
        Ok(ks_status::Ok)
    })
}

/// A string for C to own, registered so that ks_string_free() can tell a double free.
fn owned_string(text: String) -> *mut c_char {
    let c = c_text(&text);
    registry::add(c.into_raw())
}

/// Frees a string returned by kafkasender. NULL does nothing; a second free is detected and
/// reported in ks_last_error().
#[no_mangle]
pub extern "C" fn ks_string_free(string: *mut c_char) {
    // SAFETY: registered strings all come from CString::into_raw (owned_string).
    free_registered(string, "string", |s| drop(unsafe { CString::from_raw(s) }));
}
