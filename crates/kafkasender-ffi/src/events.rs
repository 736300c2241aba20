//! Business events from C: ks_event_new() writes the core's CloudEvents envelope, and a producer
//! publishes it (ks_producer_publish_event()) or hands over the record it becomes
//! (ks_producer_event_record(), for faces that send through a path of their own, such as Go).

use std::ffi::{c_char, c_void, CString};

use core::events::{Event, EventBuilder};
use core::OwnedRecord;

use crate::boundary::{
    arg_ref, arg_str, boundary, c_text, free_handle, registry, write_out, Failure,
};
use crate::ks_status;
use crate::observe::owned_string;
use crate::producer::{
    ks_delivery_cb, ks_finalizer, ks_header, ks_message, ks_producer, UserCallback,
};

/// What ks_event_new() makes an event of. A zeroed struct is not an event: `event_type`,
/// `data_json` and `source` are required; every other field may be NULL.
#[repr(C)]
pub struct ks_event_fields {
    /// What happened, as a dotted name: "user.registered". NUL-terminated UTF-8.
    pub event_type: *const c_char,
    /// The data, as JSON text ("{\"user\": 7}"); anything that is not JSON is refused.
    pub data_json: *const c_char,
    /// Who says so: a service name or URI.
    pub source: *const c_char,
    /// The correlation id; NULL: a new one.
    pub correlation_id: *const c_char,
    /// The id of the event that caused this one; NULL: none.
    pub causation_id: *const c_char,
    /// The version of the event type's schema; NULL: none.
    pub version: *const c_char,
}

/// Makes an event (a new id, the current time) and writes its CloudEvents JSON envelope to
/// `*envelope_out`. KS_STATUS_NULL_ARGUMENT or KS_STATUS_INVALID_RECORD (data that is not JSON)
/// with the reason in ks_last_error() otherwise.
///
/// Ownership: the fields are copied; the caller owns `*envelope_out` and frees it with
/// ks_string_free(). Thread safety: any thread. Does not block.
#[no_mangle]
pub extern "C" fn ks_event_new(
    fields: *const ks_event_fields,
    envelope_out: *mut *mut c_char,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live struct of NUL-terminated strings (or NULL) as documented.
        let fields = unsafe { arg_ref(fields, "fields") }?;
        let optional = |ptr: *const c_char, name: &str| -> Result<Option<&str>, Failure> {
            // SAFETY: as above.
            (!ptr.is_null())
                .then(|| unsafe { arg_str(ptr, name) })
                .transpose()
        };
        let (event_type, data_json, source) = unsafe {
            (
                arg_str(fields.event_type, "fields.event_type")?,
                arg_str(fields.data_json, "fields.data_json")?,
                arg_str(fields.source, "fields.source")?,
            )
        };
        let data = serde_json::from_str(data_json).map_err(|e| {
            Failure::new(
                ks_status::InvalidRecord,
                format!("fields.data_json is not JSON: {e}"),
            )
        })?;
        let mut builder = EventBuilder::new(source);
        if let Some(version) = optional(fields.version, "fields.version")? {
            builder = builder.version(version);
        }
        if let Some(correlation_id) = optional(fields.correlation_id, "fields.correlation_id")? {
            builder = builder.correlation_id(correlation_id);
        }
        let mut event = builder.event(event_type, data);
        event.causation_id =
            optional(fields.causation_id, "fields.causation_id")?.map(str::to_string);
        // SAFETY: C passes a writable pointer or NULL.
        unsafe { write_out(envelope_out, owned_string(event.to_json()), "envelope_out") }?;
        Ok(ks_status::Ok)
    })
}

/// The record an event envelope is published as: its topic from the event topic map, its key
/// from `event.key.field`, the envelope as its value, `ce_*` headers. Opaque; read it with
/// ks_event_record_message().
pub struct ks_event_record {
    message: ks_message,
    // What `message` points into; boxed contents do not move when the record does.
    _topic: CString,
    _key: Vec<u8>,
    _value: Vec<u8>,
    _header_names: Vec<CString>,
    _header_values: Vec<Vec<u8>>,
    _headers: Vec<ks_header>,
}

/// Makes the record `envelope` (from ks_event_new(), or read from a topic) is published as, with
/// this producer's event topic map and key field. KS_STATUS_INVALID_RECORD when the envelope is
/// not an event or lacks the key field.
///
/// Ownership: the caller owns `*record_out` and frees it with ks_event_record_free().
/// Thread safety: any thread. Does not block.
#[no_mangle]
pub extern "C" fn ks_producer_event_record(
    producer: *const ks_producer,
    envelope: *const c_char,
    record_out: *mut *mut ks_event_record,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes live pointers or NULL.
        let (_, record) = unsafe { record_of_envelope(producer, envelope) }?;
        let topic = c_text(&record.topic);
        let key = record.key.unwrap_or_default();
        let value = record.value.unwrap_or_default();
        let header_names: Vec<CString> = record.headers.iter().map(|(k, _)| c_text(k)).collect();
        let header_values: Vec<Vec<u8>> = record
            .headers
            .into_iter()
            .map(|(_, v)| v.unwrap_or_default())
            .collect();
        let headers: Vec<ks_header> = header_names
            .iter()
            .zip(&header_values)
            .map(|(name, value)| ks_header {
                key: name.as_ptr(),
                value: value.as_ptr(),
                value_len: value.len(),
            })
            .collect();
        let message = ks_message {
            topic: topic.as_ptr(),
            key: key.as_ptr(),
            key_len: key.len(),
            value: value.as_ptr(),
            value_len: value.len(),
            headers: headers.as_ptr(),
            headers_len: headers.len(),
            has_partition: false,
            partition: 0,
            timestamp_ms: 0,
        };
        let record = Box::new(ks_event_record {
            message,
            _topic: topic,
            _key: key,
            _value: value,
            _header_names: header_names,
            _header_values: header_values,
            _headers: headers,
        });
        // SAFETY: C passes a writable pointer or NULL.
        unsafe {
            write_out(
                record_out,
                registry::add(Box::into_raw(record)),
                "record_out",
            )
        }?;
        Ok(ks_status::Ok)
    })
}

/// The message of an event record, ready for ks_producer_send() or ks_producer_send_tokened();
/// NULL when `record` is NULL.
///
/// Ownership: points into `record`, valid until ks_event_record_free(). Does not block.
#[no_mangle]
pub extern "C" fn ks_event_record_message(record: *const ks_event_record) -> *const ks_message {
    if record.is_null() {
        return std::ptr::null();
    }
    // SAFETY: C passes a live record (from ks_producer_event_record) or NULL.
    unsafe { &(*record).message }
}

/// Frees an event record. NULL does nothing; a second free is detected and reported in
/// ks_last_error().
#[no_mangle]
pub extern "C" fn ks_event_record_free(record: *mut ks_event_record) {
    free_handle(record, "ks_event_record");
}

/// Publishes an event: ks_producer_event_record() and ks_producer_send() in one call, with the
/// callback, ownership and statuses of ks_producer_send().
///
/// Blocking: only while the local queue is full, at most `enqueue.timeout.ms`.
/// Thread safety: any thread, concurrently with other sends.
#[no_mangle]
pub extern "C" fn ks_producer_publish_event(
    producer: *const ks_producer,
    envelope: *const c_char,
    callback: ks_delivery_cb,
    user_data: *mut c_void,
    finalizer: ks_finalizer,
) -> ks_status {
    // Made first, so that every way out drops it (running the finalizer) once.
    let user = UserCallback::given(callback, user_data, finalizer);
    boundary(move || {
        // SAFETY: C passes live pointers or NULL.
        let (producer, record) = unsafe { record_of_envelope(producer, envelope) }?;
        producer.send_to(&record.as_record(), user)?;
        Ok(ks_status::Ok)
    })
}

/// The producer, and the record the envelope becomes with its event routing.
///
/// # Safety
/// Each pointer is NULL or valid: a live producer, a NUL-terminated string.
unsafe fn record_of_envelope<'p>(
    producer: *const ks_producer,
    envelope: *const c_char,
) -> Result<(&'p ks_producer, OwnedRecord), Failure> {
    // SAFETY: per this function's contract.
    let (producer, envelope) = unsafe {
        (
            arg_ref(producer, "producer")?,
            arg_str(envelope, "envelope")?,
        )
    };
    let record = producer
        .inner()
        .event_record(&Event::from_json(envelope)?)?;
    Ok((producer, record))
}

/// Sends events of a type ("api.error") or a prefix pattern ("user.*") to `topic` from now on,
/// over what `event.topic.map` said. KS_STATUS_CONFIG for a malformed pattern or topic.
///
/// Ownership: both strings are copied. Thread safety: any thread. Does not block.
#[no_mangle]
pub extern "C" fn ks_producer_map_event_topic(
    producer: *const ks_producer,
    pattern: *const c_char,
    topic: *const c_char,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes live pointers or NULL.
        let (producer, pattern, topic) = unsafe {
            (
                arg_ref(producer, "producer")?,
                arg_str(pattern, "pattern")?,
                arg_str(topic, "topic")?,
            )
        };
        producer.inner().map_event_topic(pattern, topic)?;
        Ok(ks_status::Ok)
    })
}
