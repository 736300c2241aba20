//! A message librdkafka reported on (delivered or failed), read in place: what the delivery
//! path takes from it to build a report, or a record to send again.

use std::ffi::CStr;
use std::ptr;
use std::time::Instant;

use rdkafka::bindings as rdsys;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::BorrowedMessage;

/// One message of a delivery-report event, as librdkafka gives it back.
#[derive(Clone, Copy)]
pub(crate) struct Reported<'e>(&'e rdsys::rd_kafka_message_t, Instant);

impl<'e> Reported<'e> {
    /// A message of a delivery-report event taken from librdkafka's queue at `reported_at` (one
    /// clock read for the event's messages, not one each).
    pub(crate) fn new(
        message: &'e rdsys::rd_kafka_message_t,
        reported_at: Instant,
    ) -> Reported<'e> {
        Reported(message, reported_at)
    }

    /// A message rust-rdkafka handed to the producer context (while a client is dropped).
    pub(crate) fn of(message: &'e BorrowedMessage<'_>) -> Reported<'e> {
        // SAFETY: the message lives as long as the borrow.
        Reported(unsafe { &*message.ptr() }, Instant::now())
    }

    /// When its report came out of librdkafka.
    pub(crate) fn reported_at(&self) -> Instant {
        self.1
    }

    /// librdkafka's error for a message it gave up on.
    pub(crate) fn error(&self) -> Option<RDKafkaErrorCode> {
        (self.0.err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
            .then(|| self.0.err.into())
    }

    pub(crate) fn topic(&self) -> &'e str {
        // SAFETY: a reported message has its topic handle, and the name lives as long as it.
        let name = unsafe { CStr::from_ptr(rdsys::rd_kafka_topic_name(self.0.rkt)) };
        name.to_str().unwrap_or_default()
    }

    pub(crate) fn partition(&self) -> i32 {
        self.0.partition
    }

    pub(crate) fn offset(&self) -> i64 {
        self.0.offset
    }

    /// Milliseconds since the epoch, when librdkafka knows it.
    pub(crate) fn timestamp(&self) -> Option<i64> {
        let mut kind = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: a live message and a place for the type.
        let millis = unsafe { rdsys::rd_kafka_message_timestamp(self.0, &mut kind) };
        let known = kind != rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        (known && millis != -1).then_some(millis)
    }

    pub(crate) fn key(&self) -> Option<&'e [u8]> {
        // SAFETY: librdkafka's key and its length, alive as long as the message.
        unsafe { bytes(self.0.key.cast(), self.0.key_len) }
    }

    pub(crate) fn value(&self) -> Option<&'e [u8]> {
        // SAFETY: as for the key.
        unsafe { bytes(self.0.payload.cast(), self.0.len) }
    }

    /// The message's headers, in order (a value of `None` is a null header).
    pub(crate) fn headers(&self) -> Vec<(&'e str, Option<&'e [u8]>)> {
        let mut headers = ptr::null_mut();
        // SAFETY: the headers stay the message's; they are only read, while it lives.
        unsafe {
            let message = ptr::from_ref(self.0).cast_mut();
            if rdsys::rd_kafka_message_headers(message, &mut headers)
                != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                return Vec::new();
            }
            let mut all = Vec::new();
            let (mut name, mut value, mut size) = (ptr::null(), ptr::null(), 0);
            while rdsys::rd_kafka_header_get_all(
                headers,
                all.len(),
                &mut name,
                &mut value,
                &mut size,
            ) == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                let name = CStr::from_ptr(name).to_str().unwrap_or_default();
                all.push((name, bytes(value.cast(), size)));
            }
            all
        }
    }

    /// librdkafka's `rd_kafka_message_status`: whether the brokers may have written it.
    pub(crate) fn status(&self) -> rdsys::rd_kafka_msg_status_t {
        // SAFETY: a live message; only read.
        unsafe { rdsys::rd_kafka_message_status(self.0) }
    }
}

/// # Safety
/// `data` is NULL or points at `len` bytes that live for `'a`.
unsafe fn bytes<'a>(data: *const u8, len: usize) -> Option<&'a [u8]> {
    // SAFETY: the caller's promise.
    (!data.is_null()).then(|| unsafe { std::slice::from_raw_parts(data, len) })
}
