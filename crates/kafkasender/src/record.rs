//! The record to send. It borrows its bytes: librdkafka copies them while `send` runs, so a caller
//! (or a binding holding a Python `bytes` or a Node `Buffer`) never copies a payload twice.

use crate::error::{Error, ErrorKind, Result};
use crate::reported::Reported;

/// One message header. Kafka allows repeated keys and null values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The header name.
    pub key: &'a str,
    /// The header value; `None` is a null header.
    pub value: Option<&'a [u8]>,
}

/// A message to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The key; records with equal keys go to the same partition (murmur2, as in the Java client).
    pub key: Option<&'a [u8]>,
    /// The value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    /// Headers, in order.
    pub headers: Vec<Header<'a>>,
    /// An explicit partition; `None` lets the partitioner choose.
    pub partition: Option<i32>,
    /// Milliseconds since the epoch; `None` means now.
    pub timestamp: Option<i64>,
}

/// A record that owns its bytes: what the resilience layer keeps of a failed message in order to
/// re-send, dead-letter or spool it, and what a spool replay reads back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedRecord {
    /// The topic.
    pub topic: String,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Option<Vec<u8>>,
    /// Headers, in order; `None` values are null headers.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The partition the caller asked for, if any.
    pub partition: Option<i32>,
    /// Milliseconds since the epoch.
    pub timestamp: Option<i64>,
}

impl OwnedRecord {
    /// Borrows it as a [`Record`] to send.
    pub fn as_record(&self) -> Record<'_> {
        Record {
            topic: &self.topic,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: self
                .headers
                .iter()
                .map(|(key, value)| Header {
                    key,
                    value: value.as_deref(),
                })
                .collect(),
            partition: self.partition,
            timestamp: self.timestamp,
        }
    }
}

impl From<&Record<'_>> for OwnedRecord {
    fn from(record: &Record<'_>) -> OwnedRecord {
        OwnedRecord {
            topic: record.topic.to_string(),
            key: record.key.map(<[u8]>::to_vec),
            value: record.value.map(<[u8]>::to_vec),
            headers: record
                .headers
                .iter()
                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect(),
            partition: record.partition,
            timestamp: record.timestamp,
        }
    }
}

impl OwnedRecord {
    /// What librdkafka gives back of a failed message, to send again; `partition` is the one the
    /// caller asked for (librdkafka's message only knows the one it assigned).
    pub(crate) fn of_message(message: Reported<'_>, partition: Option<i32>) -> OwnedRecord {
        OwnedRecord {
            topic: message.topic().to_string(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.value().map(<[u8]>::to_vec),
            headers: message
                .headers()
                .into_iter()
                .map(|(key, value)| (key.to_string(), value.map(<[u8]>::to_vec)))
                .collect(),
            partition,
            timestamp: message.timestamp(),
        }
    }
}

/// Longest topic name Kafka accepts.
const MAX_TOPIC_LEN: usize = 249;

impl<'a> Record<'a> {
    /// How many headers the record goes out with, and which: its own, then the id header `id`
    /// if given. Every copy of a message carries them in this order (sent, journaled, replayed).
    pub(crate) fn headers_then<'s>(
        &'s self,
        id: Option<(&'s str, &'s [u8])>,
    ) -> (
        usize,
        impl Iterator<Item = (&'s str, Option<&'s [u8]>)> + 's,
    ) {
        let count = self.headers.len() + usize::from(id.is_some());
        let all = self
            .headers
            .iter()
            .map(|h| (h.key, h.value))
            .chain(id.map(|(key, value)| (key, Some(value))));
        (count, all)
    }

    /// A record for `topic` with no key, value or headers yet.
    pub fn new(topic: &'a str) -> Record<'a> {
        Record {
            topic,
            ..Record::default()
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: &'a (impl AsRef<[u8]> + ?Sized)) -> Record<'a> {
        self.key = Some(key.as_ref());
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: &'a (impl AsRef<[u8]> + ?Sized)) -> Record<'a> {
        self.value = Some(value.as_ref());
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: &'a str, value: &'a (impl AsRef<[u8]> + ?Sized)) -> Record<'a> {
        self.headers.push(Header {
            key,
            value: Some(value.as_ref()),
        });
        self
    }

    /// Sets `headers`, in place of any the record has of the same names (trace context headers,
    /// which a record must carry once).
    pub fn replace_headers(&mut self, headers: &[Header<'a>]) {
        self.headers
            .retain(|header| !headers.iter().any(|new| new.key == header.key));
        self.headers.extend_from_slice(headers);
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: i32) -> Record<'a> {
        self.partition = Some(partition);
        self
    }

    /// Sets the timestamp (milliseconds since the epoch).
    pub fn timestamp(mut self, timestamp_ms: i64) -> Record<'a> {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// Bytes of key, value and headers: what counts against `message.max.bytes`.
    pub fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len))
            .sum();
        self.key.map_or(0, <[u8]>::len) + self.value.map_or(0, <[u8]>::len) + headers
    }

    /// Checks what can be checked before enqueueing: the topic name, the partition and the size.
    pub fn validate(&self, max_message_bytes: usize) -> Result<()> {
        validate_topic(self.topic)?;
        if let Some(partition) = self.partition.filter(|p| *p < 0) {
            return Err(Error::new(
                ErrorKind::InvalidRecord,
                format!("partition {partition} is negative"),
            ));
        }
        let size = self.size();
        if size > max_message_bytes {
            return Err(Error::new(
                ErrorKind::MessageTooLarge,
                format!("message of {size} bytes exceeds message.max.bytes ({max_message_bytes})"),
            ));
        }
        Ok(())
    }
}

/// Checks a topic name against Kafka's rules: 1 to 249 of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn validate_topic(topic: &str) -> Result<()> {
    let invalid = |why: &str| {
        Err(Error::new(
            ErrorKind::InvalidRecord,
            format!("invalid topic name {topic:?}: {why}"),
        ))
    };
    if topic.is_empty() {
        return invalid("empty");
    }
    if topic.len() > MAX_TOPIC_LEN {
        return invalid("longer than 249 characters");
    }
    if topic == "." || topic == ".." {
        return invalid("'.' and '..' are not allowed");
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for good in ["orders", "a.b_c-d", "X1", &"t".repeat(249)] {
            assert!(validate_topic(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "has space",
            "slash/topic",
            "ünï",
            &"t".repeat(250),
        ] {
            assert_eq!(
                validate_topic(bad).unwrap_err().kind(),
                ErrorKind::InvalidRecord,
                "{bad}"
            );
        }
    }

    #[test]
    fn size_counts_key_value_and_headers() {
        let record = Record::new("t").key("ab").value("cde").header("h", "xy");
        assert_eq!(record.size(), 2 + 3 + 1 + 2);
        assert_eq!(
            record.validate(7).unwrap_err().kind(),
            ErrorKind::MessageTooLarge
        );
        assert!(record.validate(8).is_ok());
    }
}
