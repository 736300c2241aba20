//! Metrics and health of a producer, and the strings kafkasender hands to C.

use std::ffi::{c_char, CStr, CString};

use core::{HealthStatus, MetricKind};

use crate::boundary::{
    arg_ref, arg_str, boundary, c_text, free_registered, registry, write_optional_out, write_out,
    Failure,
};
use crate::ks_status;
use crate::producer::ks_producer;

/// Whether a metric only grows or goes up and down.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum ks_metric_kind {
    /// Only grows while the producer lives.
    Counter = 0,
    /// A value now.
    Gauge = 1,
}

/// One of a producer's metrics, as the core lists them (the list every face shares).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ks_metric {
    /// Stable snake_case name: "sent", "delivered", "failed_queue_full", "latency_p99_seconds", ….
    /// Static: valid for the life of the program. Do not free.
    pub name: *const c_char,
    /// One sentence describing it. Static, like `name`.
    pub help: *const c_char,
    pub kind: ks_metric_kind,
    /// A count, or seconds for a name ending in `_seconds`.
    pub value: f64,
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

/// Writes the producer's metrics, in the core's order, to `metrics_out` (an array of `capacity`;
/// may be NULL when `capacity` is 0) and how many there are to `*count_out`. When that is more
/// than `capacity`, only the first `capacity` were written: call again with a larger array (64 is
/// enough today). Does not block.
#[no_mangle]
pub extern "C" fn ks_producer_metrics(
    producer: *const ks_producer,
    metrics_out: *mut ks_metric,
    capacity: usize,
    count_out: *mut usize,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live producer or NULL.
        let list = unsafe { arg_ref(producer, "producer") }?
            .inner()
            .metrics()
            .list();
        if capacity > 0 && metrics_out.is_null() {
            return Err(Failure::new(
                ks_status::NullArgument,
                "metrics_out is NULL but capacity is not 0",
            ));
        }
        for (i, metric) in list.iter().take(capacity).enumerate() {
            let c_metric = ks_metric {
                name: static_c_str(metric.name),
                help: static_c_str(metric.help),
                kind: match metric.kind {
                    MetricKind::Counter => ks_metric_kind::Counter,
                    MetricKind::Gauge => ks_metric_kind::Gauge,
                },
                value: metric.value.as_f64(),
            };
            // SAFETY: non-NULL (checked), with `capacity` elements per the contract.
            unsafe { metrics_out.add(i).write(c_metric) };
        }
        // SAFETY: C passes a writable pointer or NULL.
        unsafe { write_out(count_out, list.len(), "count_out") }?;
        Ok(ks_status::Ok)
    })
}

/// Writes the value of the metric `name` (see ks_metric) to `*value_out`;
/// KS_STATUS_INVALID_ARGUMENT when there is no such metric. Does not block.
#[no_mangle]
pub extern "C" fn ks_producer_metric(
    producer: *const ks_producer,
    name: *const c_char,
    value_out: *mut f64,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live producer and a NUL-terminated string, or NULL.
        let (producer, name) = unsafe { (arg_ref(producer, "producer")?, arg_str(name, "name")?) };
        let value = producer
            .inner()
            .metrics()
            .list()
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value.as_f64())
            .ok_or_else(|| {
                Failure::new(
                    ks_status::InvalidArgument,
                    format!("no metric is named {name:?}"),
                )
            })?;
        // SAFETY: C passes a writable pointer or NULL.
        unsafe { write_out(value_out, value, "value_out") }?;
        Ok(ks_status::Ok)
    })
}

/// A NUL-terminated copy of a static string, made once per string and kept for the life of the
/// program (metric names and help texts: a fixed set).
fn static_c_str(text: &'static str) -> *const c_char {
    static MADE: std::sync::Mutex<Vec<(&'static str, &'static CStr)>> =
        std::sync::Mutex::new(Vec::new());
    let mut made = MADE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, c)) = made.iter().find(|(t, _)| *t == text) {
        return c.as_ptr();
    }
    let c: &'static CStr = Box::leak(c_text(text).into_boxed_c_str());
    made.push((text, c));
    c.as_ptr()
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
pub(crate) fn owned_string(text: String) -> *mut c_char {
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
