//! One record into librdkafka: a single `rd_kafka_producev` call, with none of the per-message
//! allocations rust-rdkafka's `BaseProducer::send` adds on top (it copies the topic name into a
//! `CString` for every message). The name is NUL-terminated on the stack instead; headers go
//! straight into librdkafka's own list, which the message then owns. A list of one header (a
//! message's id) is reused from a delivered message ([`HeaderLists`]).

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::{self, NonNull};
use std::sync::Mutex;

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
    name: CTopicName,
    /// Ours until a produce succeeds; destroyed on drop otherwise.
    headers: *mut rdsys::rd_kafka_headers_t,
}

impl<'r> Prepared<'r> {
    /// `None` when the topic name holds a NUL byte (validation refuses such a name earlier). A
    /// single header goes into a list from `reusable` when one fits it.
    pub(crate) fn new(
        record: &'r Record<'r>,
        id: Option<(&str, &[u8])>,
        reusable: &HeaderLists,
    ) -> Option<Prepared<'r>> {
        let name = CTopicName::new(record.topic)?;
        let (count, mut all) = record.headers_then(id);
        let headers = match count {
            0 => ptr::null_mut(),
            1 => {
                let (key, value) = all.next().expect("one header");
                match value.and_then(|value| reusable.take_for(key, value)) {
                    Some(list) => list.into_raw(),
                    None => new_list(1, [(key, value)]),
                }
            }
            _ => new_list(count, all),
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

/// A new list of `count` headers, owned by the caller.
fn new_list<'h>(
    count: usize,
    headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
) -> *mut rdsys::rd_kafka_headers_t {
    // SAFETY: creates a list that the caller owns.
    let list = unsafe { rdsys::rd_kafka_headers_new(count) };
    for (key, value) in headers {
        let (value, size) = value.map_or((ptr::null(), 0), |v| (v.as_ptr(), v.len()));
        // SAFETY: a live list; name and value are given with their lengths and copied.
        unsafe {
            rdsys::rd_kafka_header_add(
                list,
                key.as_ptr().cast(),
                key.len() as isize,
                value.cast(),
                size as isize,
            );
        }
    }
    list
}

impl Drop for Prepared<'_> {
    fn drop(&mut self) {
        if !self.headers.is_null() {
            // SAFETY: a list no message took.
            unsafe { rdsys::rd_kafka_headers_destroy(self.headers) };
        }
    }
}

/// Lists of one header that delivered messages gave back, for the next sends' headers: a message
/// whose id is its only header costs librdkafka three allocations (the list, its array, the
/// header) made on the sending thread, and three frees of cold memory when the message goes.
/// Raw librdkafka with one such header ran at 0.45x its rate without (`make bench-all`); reused,
/// a list costs a lock and a copy of the id.
///
/// The delivery thread takes back the list of a message it has reported; a send that finds one
/// with the same header name and value length writes its value over the old one, in place.
/// librdkafka keeps a header's value in the header's own allocation, and a value of the same
/// length leaves the sizes it computed on `add` right.
#[derive(Default)]
pub(crate) struct HeaderLists {
    free: Mutex<Vec<HeaderList>>,
}

/// Lists kept at most: more than a burst's worth waits for reuse only as memory.
const HEADER_LISTS_KEPT: usize = 8192;

/// A header list no message holds.
pub(crate) struct HeaderList(NonNull<rdsys::rd_kafka_headers_t>);

// SAFETY: a list no message holds is plain memory, owned by this value alone.
unsafe impl Send for HeaderList {}

impl HeaderList {
    /// The list, now the caller's to hand to a message or destroy.
    fn into_raw(self) -> *mut rdsys::rd_kafka_headers_t {
        std::mem::ManuallyDrop::new(self).0.as_ptr()
    }
}

impl Drop for HeaderList {
    fn drop(&mut self) {
        // SAFETY: a list no message holds, destroyed once.
        unsafe { rdsys::rd_kafka_headers_destroy(self.0.as_ptr()) };
    }
}

impl HeaderLists {
    /// On the delivery thread, once `message` is reported: takes its headers into `into` if they
    /// are a list of one, for reuse. `message` must be a reported message, never read again for
    /// its headers; `into` gets room for the `expected` lists of its event at the first one.
    pub(crate) fn take_back(
        &self,
        message: &rdsys::rd_kafka_message_t,
        into: &mut Vec<HeaderList>,
        expected: usize,
    ) {
        let message = ptr::from_ref(message).cast_mut();
        let mut list = ptr::null_mut();
        // SAFETY: a live message; its headers are only counted here, then detached (the message
        // then frees none) and owned by the `HeaderList`.
        unsafe {
            if rdsys::rd_kafka_message_headers(message, &mut list)
                != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                || rdsys::rd_kafka_header_cnt(list) != 1
            {
                return;
            }
            rdsys::rd_kafka_message_detach_headers(message, &mut list);
        }
        if into.capacity() == 0 {
            into.reserve(expected);
        }
        into.extend(NonNull::new(list).map(HeaderList));
    }

    /// Keeps `lists` (taken back from one event's messages) for reuse, up to a limit.
    pub(crate) fn give_back(&self, lists: &mut Vec<HeaderList>) {
        if lists.is_empty() {
            return;
        }
        let mut free = crate::lock(&self.free);
        let room = HEADER_LISTS_KEPT.saturating_sub(free.len());
        let kept = lists.len().min(room);
        free.extend(lists.drain(..kept));
        drop(free);
        lists.clear(); // destroys what found no room, with the lock let go
    }

    /// A list holding the one header `key` = `value`, reused; `None` when none waits (or another
    /// thread holds the lock), or the one waiting is for another header name or value length.
    fn take_for(&self, key: &str, value: &[u8]) -> Option<HeaderList> {
        let list = self.free.try_lock().ok()?.pop()?;
        let (mut name, mut old, mut size) = (ptr::null(), ptr::null(), 0);
        // SAFETY: a list of one header that no message holds; its value is `size` bytes inside
        // the header's allocation, owned by `list`, overwritten with as many.
        unsafe {
            let found =
                rdsys::rd_kafka_header_get_all(list.0.as_ptr(), 0, &mut name, &mut old, &mut size);
            if found != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                || old.is_null()
                || size != value.len()
                || CStr::from_ptr(name).to_bytes() != key.as_bytes()
            {
                return None; // `list` is destroyed: the next send of this kind takes a fitting one
            }
            ptr::copy_nonoverlapping(value.as_ptr(), old.cast_mut().cast::<u8>(), size);
        }
        Some(list)
    }
}

/// A topic name as librdkafka takes it, with its NUL (not the reports' [`crate::TopicName`]),
/// on the stack when it fits (every name Kafka accepts does).
#[allow(clippy::large_enum_variant)] // the point: no allocation per message
pub(crate) enum CTopicName {
    Inline([u8; 256]),
    Heap(CString),
}

impl CTopicName {
    /// `None` when the name holds a NUL byte.
    pub(crate) fn new(topic: &str) -> Option<CTopicName> {
        let bytes = topic.as_bytes();
        if bytes.contains(&0) {
            return None;
        }
        let mut inline = [0; 256];
        if bytes.len() < inline.len() {
            inline[..bytes.len()].copy_from_slice(bytes);
            return Some(CTopicName::Inline(inline));
        }
        CString::new(bytes).ok().map(CTopicName::Heap)
    }

    pub(crate) fn as_ptr(&self) -> *const c_char {
        match self {
            CTopicName::Inline(bytes) => bytes.as_ptr().cast(),
            CTopicName::Heap(name) => name.as_ptr(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one header of `list`: its name and value.
    fn only_header(list: &HeaderList) -> (String, Vec<u8>) {
        // SAFETY: a live list of one header, read while it lives.
        unsafe {
            assert_eq!(rdsys::rd_kafka_header_cnt(list.0.as_ptr()), 1);
            let (mut name, mut value, mut size) = (ptr::null(), ptr::null(), 0);
            rdsys::rd_kafka_header_get_all(list.0.as_ptr(), 0, &mut name, &mut value, &mut size);
            let name = CStr::from_ptr(name).to_str().unwrap().to_string();
            (
                name,
                std::slice::from_raw_parts(value.cast::<u8>(), size).to_vec(),
            )
        }
    }

    fn list_of(key: &str, value: &[u8]) -> HeaderList {
        HeaderList(NonNull::new(new_list(1, [(key, Some(value))])).unwrap())
    }

    #[test]
    fn a_list_given_back_is_reused_for_the_same_header_name_and_value_length_only() {
        let lists = HeaderLists::default();
        assert!(
            lists.take_for("x-ks-id", b"0001").is_none(),
            "none given back yet"
        );

        lists.give_back(&mut vec![list_of("x-ks-id", b"0001")]);
        let reused = lists
            .take_for("x-ks-id", b"0002")
            .expect("the same name and length");
        assert_eq!(
            only_header(&reused),
            ("x-ks-id".to_string(), b"0002".to_vec())
        );

        lists.give_back(&mut vec![reused, list_of("x-ks-id", b"0003")]);
        assert!(
            lists.take_for("x-ks-id", b"00004").is_none(),
            "another length"
        );
        assert!(lists.take_for("trace", b"0005").is_none(), "another name");
        assert!(
            lists.take_for("x-ks-id", b"0006").is_none(),
            "the misfits were dropped"
        );
    }

    #[test]
    fn lists_past_the_limit_are_destroyed_rather_than_kept() {
        let lists = HeaderLists::default();
        let mut many: Vec<_> = (0..HEADER_LISTS_KEPT + 10)
            .map(|_| list_of("h", b"v"))
            .collect();
        lists.give_back(&mut many);
        assert!(many.is_empty());
        assert_eq!(crate::lock(&lists.free).len(), HEADER_LISTS_KEPT);
    }

    #[test]
    fn a_topic_name_is_nul_terminated_inline_or_on_the_heap_and_refused_with_a_nul() {
        for topic in ["orders", &"t".repeat(255), &"t".repeat(300)] {
            let name = CTopicName::new(topic).expect("no NUL");
            // SAFETY: `as_ptr` points at a NUL-terminated name that `name` keeps alive.
            let read = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
            assert_eq!(read.to_bytes(), topic.as_bytes());
            assert_eq!(matches!(name, CTopicName::Inline(_)), topic.len() < 256);
        }
        assert!(CTopicName::new("a\0b").is_none());
    }
}
