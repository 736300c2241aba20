//! One record into librdkafka: a single `rd_kafka_producev` call, with none of the per-message
//! allocations rust-rdkafka's `BaseProducer::send` adds on top (it copies the topic name into a
//! `CString` for every message). The name is NUL-terminated on the stack instead; headers go
//! straight into librdkafka's own list, which the message then owns.

use std::ffi::{c_char, c_void, CString};
use std::ptr;

use rdkafka::bindings as rdsys;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::Producer as _;
use rdkafka::util::IntoOpaque;

use super::engine::Client;
use super::message::Ticket;
use crate::record::Record;

/// librdkafka's `RD_KAFKA_PARTITION_UA`: the partitioner picks (a macro, not in the bindings).
pub(crate) const PARTITION_UNASSIGNED: i32 = -1;

/// A record ready for librdkafka: its topic name NUL-terminated and its headers (the caller's,
/// then the id if one is given) in librdkafka's list. Produced as often as the queue is full.
pub(crate) struct Prepared<'r> {
    record: &'r Record<'r>,
    name: TopicName,
    /// Ours until a produce succeeds; destroyed on drop otherwise.
    headers: *mut rdsys::rd_kafka_headers_t,
}

impl<'r> Prepared<'r> {
    /// `None` when the topic name holds a NUL byte (validation refuses such a name earlier).
    pub(crate) fn new(record: &'r Record<'r>, id: Option<(&str, &[u8])>) -> Option<Prepared<'r>> {
        let name = TopicName::new(record.topic)?;
        let (count, all) = record.headers_then(id);
        let headers = if count == 0 {
            ptr::null_mut()
        } else {
            // SAFETY: creates a list that this struct owns until librdkafka takes it.
            let headers = unsafe { rdsys::rd_kafka_headers_new(count) };
            for (key, value) in all {
                let (value, size) = value.map_or((ptr::null(), 0), |v| (v.as_ptr(), v.len()));
                // SAFETY: a live list; name and value are given with their lengths and copied.
                unsafe {
                    rdsys::rd_kafka_header_add(
                        headers,
                        key.as_ptr().cast(),
                        key.len() as isize,
                        value.cast(),
                        size as isize,
                    );
                }
            }
            headers
        };
        Some(Prepared {
            record,
            name,
            headers,
        })
    }

    /// Hands the record to librdkafka with `ticket` as its opaque; on refusal (a full queue, say)
    /// the ticket comes back and the record can be produced again.
    pub(crate) fn produce(
        &mut self,
        client: &Client,
        ticket: Ticket,
    ) -> std::result::Result<(), (RDKafkaErrorCode, Ticket)> {
        let record = self.record;
        let bytes = |field: Option<&[u8]>| {
            field.map_or((ptr::null_mut(), 0), |b| {
                (b.as_ptr().cast_mut().cast::<c_void>(), b.len())
            })
        };
        let (value, value_len) = bytes(record.value);
        let (key, key_len) = bytes(record.key);
        let opaque = ticket.into_ptr();
        use rdsys::rd_kafka_vtype_t::*;
        // SAFETY: a live client; every pointer is valid for the call (librdkafka copies the key
        // and value: F_COPY) and each argument has the type its tag announces.
        let code = unsafe {
            rdsys::rd_kafka_producev(
                client.client().native_ptr(),
                RD_KAFKA_VTYPE_TOPIC,
                self.name.as_ptr(),
                RD_KAFKA_VTYPE_PARTITION,
                record.partition.unwrap_or(PARTITION_UNASSIGNED),
                RD_KAFKA_VTYPE_MSGFLAGS,
                rdsys::RD_KAFKA_MSG_F_COPY,
                RD_KAFKA_VTYPE_VALUE,
                value,
                value_len,
                RD_KAFKA_VTYPE_KEY,
                key,
                key_len,
                RD_KAFKA_VTYPE_OPAQUE,
                opaque,
                RD_KAFKA_VTYPE_TIMESTAMP,
                record.timestamp.unwrap_or(0),
                RD_KAFKA_VTYPE_HEADERS,
                self.headers,
                RD_KAFKA_VTYPE_END,
            )
        };
        match RDKafkaErrorCode::from(code) {
            RDKafkaErrorCode::NoError => {
                self.headers = ptr::null_mut(); // the message owns them now
                Ok(())
            }
            // SAFETY: not enqueued, so the ticket `into_ptr` gave is still ours.
            code => Err((code, unsafe { Ticket::from_ptr(opaque) })),
        }
    }
}

impl Drop for Prepared<'_> {
    fn drop(&mut self) {
        if !self.headers.is_null() {
            // SAFETY: a list no message took.
            unsafe { rdsys::rd_kafka_headers_destroy(self.headers) };
        }
    }
}

/// A topic name with its NUL, on the stack when it fits (every name Kafka accepts does).
#[allow(clippy::large_enum_variant)] // the point: no allocation per message
pub(crate) enum TopicName {
    Inline([u8; 256]),
    Heap(CString),
}

impl TopicName {
    /// `None` when the name holds a NUL byte.
    pub(crate) fn new(topic: &str) -> Option<TopicName> {
        let bytes = topic.as_bytes();
        if bytes.contains(&0) {
            return None;
        }
        let mut inline = [0; 256];
        if bytes.len() < inline.len() {
            inline[..bytes.len()].copy_from_slice(bytes);
            return Some(TopicName::Inline(inline));
        }
        CString::new(bytes).ok().map(TopicName::Heap)
    }

    pub(crate) fn as_ptr(&self) -> *const c_char {
        match self {
            TopicName::Inline(bytes) => bytes.as_ptr().cast(),
            TopicName::Heap(name) => name.as_ptr(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_name_is_nul_terminated_inline_or_on_the_heap_and_refused_with_a_nul() {
        for topic in ["orders", &"t".repeat(255), &"t".repeat(300)] {
            let name = TopicName::new(topic).expect("no NUL");
            // SAFETY: `as_ptr` points at a NUL-terminated name that `name` keeps alive.
            let read = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
            assert_eq!(read.to_bytes(), topic.as_bytes());
            assert_eq!(matches!(name, TopicName::Inline(_)), topic.len() < 256);
        }
        assert!(TopicName::new("a\0b").is_none());
    }
}
