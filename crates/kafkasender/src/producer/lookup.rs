//! Before a replay sends a record that the brokers may have written already (its request went out
//! and no answer came, or the producer stopped while it was journaled), it looks for the record's
//! id (`message.id.header`) in its topic: a consumer of its own reads each partition from just
//! before the record's first attempt to the partition's current end. A record found there is not
//! sent again, so a replay makes no copy of what landed.
//!
//! What cannot be looked up (ids off, a topic the credentials may not read, a read cut short) is
//! sent as before: at least once, each copy with its original's id.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::record::OwnedRecord;

/// How long one lookup may read before the records it has not found are sent anyway.
const READ_LIMIT: Duration = Duration::from_secs(60);
/// How long the brokers may take to answer where to read before the replay waits for a later try.
const REACH_LIMIT: Duration = Duration::from_secs(10);
/// Reading starts this long before the earliest first attempt: librdkafka stamps a message after
/// that (same clock), but a topic with `LogAppendTime` takes the broker's clock.
const CLOCK_MARGIN_MS: i64 = 1_000;
/// The producer's properties a lookup's consumer takes: how to reach and authenticate to the
/// brokers, nothing about producing (librdkafka would warn about each producer property).
const CONNECTION_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "security.protocol",
    "sasl.",
    "ssl.",
    "ssl_",
    "enable.ssl.",
    "enable.sasl.",
    "socket.",
    "broker.",
    "api.version.",
    "reconnect.",
    "client.dns.lookup",
];

/// How a replay finds out which of its records are in their topics already.
pub(crate) trait FindWritten: Sync {
    /// The header that holds a record's id.
    fn header(&self) -> &str;
    /// The ids of `wanted` that their topics hold; an error when the brokers cannot be reached
    /// now (the replay waits and tries again: what it would send could not go out either). A
    /// lookup cut short otherwise (a topic it may not read, a read too long) keeps what it found:
    /// the rest is sent. It stops with a `closed` error once `stop` says so (the producer closes).
    fn find(&self, wanted: &Wanted, stop: Stop<'_>) -> Result<HashSet<Vec<u8>>>;
}

/// Says when a lookup should stop at once.
pub(crate) type Stop<'a> = &'a dyn Fn() -> bool;

fn check(stop: Stop<'_>) -> Result<()> {
    if stop() {
        return Err(Error::new(
            ErrorKind::Closed,
            "the replay's lookup stopped: the producer closes",
        ));
    }
    Ok(())
}

/// [`FindWritten`] with a consumer of its own.
pub(crate) struct Lookup {
    consumer: ClientConfig,
    header: String,
}

/// The ids to look for, per topic, with the earliest first attempt among them.
#[derive(Default)]
pub(crate) struct Wanted {
    topics: BTreeMap<String, Sought>,
}

struct Sought {
    since_ms: i64,
    ids: HashSet<Vec<u8>>,
}

impl Wanted {
    /// Adds `record`, if it carries an id in `header`.
    pub(crate) fn add(&mut self, record: &OwnedRecord, first_attempt_ms: i64, header: &str) {
        let Some(id) = id_of(record, header) else {
            return;
        };
        let since_ms = first_attempt_ms.min(record.timestamp.unwrap_or(i64::MAX));
        let sought = self
            .topics
            .entry(record.topic.clone())
            .or_insert_with(|| Sought {
                since_ms,
                ids: HashSet::new(),
            });
        sought.since_ms = sought.since_ms.min(since_ms);
        sought.ids.insert(id.to_vec());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, topic: &str, id: &[u8]) -> bool {
        self.topics.get(topic).is_some_and(|s| s.ids.contains(id))
    }

    pub(crate) fn len(&self) -> usize {
        self.topics.values().map(|s| s.ids.len()).sum()
    }
}

/// The record's id: the value of its last `header` (as a consumer's `lastHeader` reads it).
pub(crate) fn id_of<'r>(record: &'r OwnedRecord, header: &str) -> Option<&'r [u8]> {
    record
        .headers
        .iter()
        .rev()
        .find(|(key, _)| key == header)
        .and_then(|(_, value)| value.as_deref())
}

impl Lookup {
    /// `None` with message ids off: there is nothing to look for.
    pub(crate) fn new(config: &Config) -> Option<Lookup> {
        let header = config.settings().message_id_header()?.to_string();
        let mut consumer = ClientConfig::new();
        for (key, value) in config.librdkafka_properties() {
            if CONNECTION_PROPERTIES.iter().any(|p| key.starts_with(p)) {
                consumer.set(key, value);
            }
        }
        consumer
            .set("group.id", "kafkasender-replay-lookup") // assigned partitions only: no group joined
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_uncommitted");
        Some(Lookup { consumer, header })
    }

    fn read(&self, wanted: &Wanted, found: &mut HashSet<Vec<u8>>, stop: Stop<'_>) -> Result<()> {
        let consumer: BaseConsumer<LookupContext> = self
            .consumer
            .create_with_context(LookupContext)
            .map_err(Error::from)?;
        let deadline = Instant::now() + READ_LIMIT;
        for (topic, sought) in &wanted.topics {
            let Some((assignment, ends)) = where_to_read(&consumer, topic, sought.since_ms, stop)?
            else {
                continue;
            };
            consumer.assign(&assignment)?;
            let read = read_topic(
                &consumer,
                (topic, ends),
                sought,
                &self.header,
                found,
                (deadline, stop),
            );
            consumer.unassign()?;
            read?;
        }
        Ok(())
    }
}

impl FindWritten for Lookup {
    fn header(&self) -> &str {
        &self.header
    }

    fn find(&self, wanted: &Wanted, stop: Stop<'_>) -> Result<HashSet<Vec<u8>>> {
        let started = Instant::now();
        let mut found = HashSet::new();
        match self.read(wanted, &mut found, stop) {
            // Tried again by a later replay.
            Err(error)
                if matches!(error.kind(), ErrorKind::BrokerTransport | ErrorKind::Closed) =>
            {
                return Err(error);
            }
            Err(error) => {
                tracing::warn!(target: "kafkasender", %error, found = found.len(), wanted = wanted.len(),
                    "could not look up every replayed record that may have been written: those not found are sent, each with its id");
            }
            Ok(()) => {}
        }
        tracing::info!(target: "kafkasender", wanted = wanted.len(), found = found.len(),
            elapsed = ?started.elapsed(), "looked up replayed records that may have been written");
        Ok(found)
    }
}

/// Each partition of `topic` that holds messages from `since_ms` on: where they start, and the
/// end it has now. `BrokerTransport` when the brokers do not answer within [`REACH_LIMIT`].
fn where_to_read(
    consumer: &BaseConsumer<LookupContext>,
    topic: &str,
    since_ms: i64,
    stop: Stop<'_>,
) -> Result<Option<(TopicPartitionList, BTreeMap<i32, i64>)>> {
    let deadline = (Instant::now() + REACH_LIMIT, stop);
    let metadata = retrying(deadline, |left| consumer.fetch_metadata(Some(topic), left))?;
    let mut starts = TopicPartitionList::new();
    let since = Offset::Offset(since_ms.saturating_sub(CLOCK_MARGIN_MS));
    let topics = metadata.topics().iter().filter(|t| t.name() == topic);
    for partition in topics.flat_map(|t| t.partitions()) {
        starts.add_partition_offset(topic, partition.id(), since)?;
    }
    let starts = retrying(deadline, |left| {
        consumer.offsets_for_times(starts.clone(), left)
    })?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for element in starts.elements() {
        // No offset: nothing in the partition is that recent.
        let Offset::Offset(start) = element.offset() else {
            continue;
        };
        let partition = element.partition();
        let (_, end) = retrying(deadline, |left| {
            consumer.fetch_watermarks(topic, partition, left)
        })?;
        if start < end {
            assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
            ends.insert(partition, end);
        }
    }
    Ok((!ends.is_empty()).then_some((assignment, ends)))
}

/// `call` (given the time left) again until it succeeds or `deadline` passes; then its error,
/// as `BrokerTransport` unless it says the request itself is wrong (a topic it may not describe).
fn retrying<T>(
    (deadline, stop): (Instant, Stop<'_>),
    mut call: impl FnMut(Duration) -> std::result::Result<T, KafkaError>,
) -> Result<T> {
    loop {
        check(stop)?;
        let error = match call(remaining(deadline)) {
            Ok(value) => return Ok(value),
            Err(error) => Error::from(error),
        };
        if !error.is_retriable() {
            return Err(error);
        }
        if Instant::now() >= deadline {
            return Err(Error::new(
                ErrorKind::BrokerTransport,
                format!("the brokers did not answer a lookup: {error}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads the assigned partitions of `topic` to their `ends`, or until every id sought is found.
/// Errors a consumer recovers from by itself (a broker connection lost) are waited out.
fn read_topic(
    consumer: &BaseConsumer<LookupContext>,
    (topic, mut ends): (&str, BTreeMap<i32, i64>),
    sought: &Sought,
    header: &str,
    found: &mut HashSet<Vec<u8>>,
    (deadline, stop): (Instant, Stop<'_>),
) -> Result<()> {
    let mut left = sought.ids.len();
    while !ends.is_empty() && left > 0 {
        check(stop)?;
        if Instant::now() >= deadline {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{topic}: partitions {:?} not read to their end in time",
                    ends.keys()
                ),
            ));
        }
        let message = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Ok(message)) => message,
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                ends.remove(&partition);
                continue;
            }
            Some(Err(error)) => {
                let error = Error::from(error);
                if !error.is_retriable() {
                    return Err(error);
                }
                tracing::debug!(target: "kafkasender", %error, "replay lookup: waiting it out");
                continue;
            }
        };
        let id = message
            .headers()
            .and_then(|headers| headers.iter().filter(|h| h.key == header).last())
            .and_then(|h| h.value);
        if let Some(id) = id.filter(|id| sought.ids.contains(*id)) {
            if found.insert(id.to_vec()) {
                left -= 1;
            }
        }
        if ends
            .get(&message.partition())
            .is_some_and(|&end| message.offset() + 1 >= end)
        {
            ends.remove(&message.partition());
        }
    }
    Ok(())
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// End of partition is what a lookup waits for, not an error to log.
struct LookupContext;

impl ClientContext for LookupContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "kafkasender", %error, reason, "replay lookup consumer");
    }
}

impl ConsumerContext for LookupContext {}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        topic: &str,
        headers: &[(&str, Option<&str>)],
        timestamp: Option<i64>,
    ) -> OwnedRecord {
        OwnedRecord {
            topic: topic.into(),
            key: None,
            value: Some(b"v".to_vec()),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(|v| v.as_bytes().to_vec())))
                .collect(),
            partition: None,
            timestamp,
        }
    }

    #[test]
    fn wanted_keeps_ids_per_topic_from_the_earliest_attempt_or_timestamp() {
        let mut wanted = Wanted::default();
        wanted.add(
            &record("a", &[("x-ks-id", Some("1"))], None),
            500,
            "x-ks-id",
        );
        wanted.add(
            &record("a", &[("x-ks-id", Some("2"))], Some(300)),
            900,
            "x-ks-id",
        );
        wanted.add(
            &record("b", &[("x-ks-id", Some("3"))], None),
            700,
            "x-ks-id",
        );
        wanted.add(&record("b", &[("other", Some("4"))], None), 100, "x-ks-id"); // no id
        wanted.add(&record("b", &[("x-ks-id", None)], None), 100, "x-ks-id"); // a null id
        assert_eq!(wanted.len(), 3);
        assert_eq!(wanted.topics["a"].since_ms, 300);
        assert_eq!(wanted.topics["b"].since_ms, 700);
        assert!(wanted.topics["b"].ids.contains(b"3".as_slice()));
    }

    #[test]
    fn the_id_is_the_last_header_of_its_name() {
        let twice = record(
            "a",
            &[("x-ks-id", Some("old")), ("x-ks-id", Some("new"))],
            None,
        );
        assert_eq!(id_of(&twice, "x-ks-id"), Some(b"new".as_slice()));
        assert_eq!(id_of(&twice, "other"), None);
    }

    #[test]
    fn the_consumer_takes_connection_properties_only() {
        let config = Config::builder()
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("security.protocol", "sasl_plaintext")
            .set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", "u")
            .set("sasl.password", "p")
            .set("message.id.header", "x-ks-id")
            .build()
            .unwrap();
        let lookup = Lookup::new(&config).expect("ids on");
        assert_eq!(lookup.header(), "x-ks-id");
        let properties = lookup.consumer.config_map();
        for key in [
            "bootstrap.servers",
            "security.protocol",
            "sasl.mechanism",
            "sasl.password",
        ] {
            assert!(properties.contains_key(key), "{key} missing");
        }
        for key in [
            "enable.idempotence",
            "linger.ms",
            "acks",
            "message.timeout.ms",
        ] {
            assert!(
                !properties.contains_key(key),
                "{key} is a producer property"
            );
        }
        let without_ids = Config::builder()
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("message.id.header", "off")
            .build()
            .unwrap();
        assert!(Lookup::new(&without_ids).is_none());
    }
}
