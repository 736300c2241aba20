//! A partitioner function of the user's ([`super::Producer::set_partitioner`]): called on the
//! sending thread, before anything is enqueued, with the record's topic and key and the topic's
//! partition count; what it returns becomes the record's explicit partition (so a re-send, the
//! spool or a recovery keeps it). Records given an explicit partition skip it. The partition
//! count comes from a metadata request the first time a topic is seen, then from a cache renewed
//! every minute, so only a topic's first send waits for the brokers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::producer::Producer as _;

use super::engine::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::lock;

/// What a partitioner function is asked.
#[derive(Debug, Clone, Copy)]
pub struct PartitionRequest<'a> {
    /// The record's topic.
    pub topic: &'a str,
    /// The record's key, if any.
    pub key: Option<&'a [u8]>,
    /// How many partitions the topic has (at least 1).
    pub partition_count: i32,
}

/// A partitioner function: a partition in `0..partition_count`, or why there is none (the send
/// then fails with [`ErrorKind::InvalidRecord`] saying so).
pub type PartitionerFn =
    Box<dyn Fn(&PartitionRequest<'_>) -> std::result::Result<i32, String> + Send + Sync>;

/// How long a topic's partition count is trusted.
const COUNT_TTL: Duration = Duration::from_secs(60);

pub(crate) struct CustomPartitioner {
    function: PartitionerFn,
    counts: Mutex<HashMap<String, (i32, Instant)>>,
    /// How long the first send to a topic waits for its partition count.
    metadata_timeout: Duration,
}

impl CustomPartitioner {
    pub(crate) fn new(function: PartitionerFn, metadata_timeout: Duration) -> CustomPartitioner {
        CustomPartitioner {
            function,
            counts: Mutex::default(),
            metadata_timeout,
        }
    }

    /// The partition for a record of `topic` with `key`.
    pub(crate) fn partition(
        &self,
        client: &Client,
        topic: &str,
        key: Option<&[u8]>,
    ) -> Result<i32> {
        let partition_count = self.partition_count(client, topic)?;
        let request = PartitionRequest {
            topic,
            key,
            partition_count,
        };
        let invalid = |why: String| Error::new(ErrorKind::InvalidRecord, why);
        match (self.function)(&request) {
            Ok(partition) if (0..partition_count).contains(&partition) => Ok(partition),
            Ok(partition) => Err(invalid(format!(
                "the partitioner returned {partition} for topic {topic:?}, which has partitions 0 to {}",
                partition_count - 1
            ))),
            Err(why) => Err(invalid(format!("the partitioner failed: {why}"))),
        }
    }

    fn partition_count(&self, client: &Client, topic: &str) -> Result<i32> {
        if let Some(&(count, at)) = lock(&self.counts).get(topic) {
            if at.elapsed() < COUNT_TTL {
                return Ok(count);
            }
        }
        let metadata = client
            .client()
            .fetch_metadata(Some(topic), self.metadata_timeout)
            .map_err(Error::from)?;
        let count = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len() as i32);
        if count == 0 {
            return Err(Error::new(
                ErrorKind::UnknownTopicOrPartition,
                format!("topic {topic:?} has no partitions the partitioner could choose from"),
            ));
        }
        lock(&self.counts).insert(topic.to_string(), (count, Instant::now()));
        Ok(count)
    }
}
