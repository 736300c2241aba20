//! Test brokers that speak the real Kafka protocol, for our tests and for yours:
//! [`MockCluster`] (librdkafka's in-process mock brokers on 127.0.0.1, with fault injection) and
//! [`read_topic`], which reads a topic back from the beginning to its end to check what landed;
//! [`inject_fatal_error`] makes a producer's client fail fatally, to see it recover.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster as RdMockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::config::{Config, ConfigBuilder};
use crate::error::{Error, ErrorKind, Result};

/// The Kafka requests whose responses can be made to fail, see [`MockCluster::push_request_errors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockApi {
    /// Produce requests.
    Produce,
    /// Metadata requests.
    Metadata,
    /// InitProducerId (idempotent and transactional producers).
    InitProducerId,
    /// FindCoordinator.
    FindCoordinator,
    /// AddPartitionsToTxn.
    AddPartitionsToTxn,
    /// EndTxn.
    EndTxn,
    /// Fetch (consumers).
    Fetch,
}

impl MockApi {
    /// Every API, for faces that name them by [`MockApi::name`].
    pub const ALL: [MockApi; 7] = [
        MockApi::Produce,
        MockApi::Metadata,
        MockApi::InitProducerId,
        MockApi::FindCoordinator,
        MockApi::AddPartitionsToTxn,
        MockApi::EndTxn,
        MockApi::Fetch,
    ];

    /// Its snake_case name ("produce", "init_producer_id", …), as every face takes it.
    pub fn name(self) -> &'static str {
        match self {
            MockApi::Produce => "produce",
            MockApi::Metadata => "metadata",
            MockApi::InitProducerId => "init_producer_id",
            MockApi::FindCoordinator => "find_coordinator",
            MockApi::AddPartitionsToTxn => "add_partitions_to_txn",
            MockApi::EndTxn => "end_txn",
            MockApi::Fetch => "fetch",
        }
    }

    /// The API of that name; an `InvalidRecord` error naming the choices otherwise.
    pub fn from_name(name: &str) -> Result<MockApi> {
        MockApi::ALL
            .into_iter()
            .find(|api| api.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = MockApi::ALL.iter().map(|a| a.name()).collect();
                Error::new(
                    ErrorKind::InvalidRecord,
                    format!("no mock API {name:?}; one of {}", names.join(", ")),
                )
            })
    }

    fn api_key(self) -> RDKafkaApiKey {
        match self {
            MockApi::Produce => RDKafkaApiKey::Produce,
            MockApi::Metadata => RDKafkaApiKey::Metadata,
            MockApi::InitProducerId => RDKafkaApiKey::InitProducerId,
            MockApi::FindCoordinator => RDKafkaApiKey::FindCoordinator,
            MockApi::AddPartitionsToTxn => RDKafkaApiKey::AddPartitionsToTxn,
            MockApi::EndTxn => RDKafkaApiKey::EndTxn,
            MockApi::Fetch => RDKafkaApiKey::Fetch,
        }
    }
}

/// An in-process Kafka cluster of mock brokers on 127.0.0.1 (librdkafka's mock cluster). Other
/// processes can connect to it too while it lives. Topics are auto-created with 4 partitions.
pub struct MockCluster {
    cluster: RdMockCluster<'static, DefaultProducerContext>,
    bootstrap_servers: String,
    brokers: i32,
}

// SAFETY: rdkafka marks its mock cluster neither Send nor Sync only because it holds a raw pointer.
// Every librdkafka mock call we make posts an operation to the cluster's own thread and waits for
// the reply (rd_kafka_mock_cluster_op), and the cluster (with the client that owns it) may be
// destroyed from any thread, so sharing and moving it between threads is sound.
unsafe impl Send for MockCluster {}
unsafe impl Sync for MockCluster {}

impl MockCluster {
    /// Starts `brokers` mock brokers (ids 1 to `brokers`).
    pub fn new(brokers: u16) -> Result<MockCluster> {
        if brokers == 0 {
            return Err(Error::new(
                ErrorKind::InvalidRecord,
                "a mock cluster needs at least one broker",
            ));
        }
        let cluster = RdMockCluster::new(i32::from(brokers)).map_err(mock_error)?;
        Ok(MockCluster {
            bootstrap_servers: cluster.bootstrap_servers(),
            cluster,
            brokers: i32::from(brokers),
        })
    }

    /// The `bootstrap.servers` string to connect to.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// The broker ids.
    pub fn broker_ids(&self) -> RangeInclusive<i32> {
        1..=self.brokers
    }

    /// A configuration builder pointed at this cluster.
    pub fn config(&self) -> ConfigBuilder {
        Config::builder().brokers(self.bootstrap_servers.clone())
    }

    /// Creates a topic (the mock has no CreateTopics API). Replication is capped at the broker count.
    pub fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        replication_factor: i32,
    ) -> Result<()> {
        crate::record::validate_topic(topic)?;
        self.cluster
            .create_topic(topic, partitions, replication_factor.min(self.brokers))
            .map_err(mock_error)
    }

    /// Makes a broker refuse connections. Leadership does not move: partitions it leads stall.
    pub fn broker_down(&self, broker_id: i32) -> Result<()> {
        self.check_broker(broker_id)?;
        self.cluster.broker_down(broker_id).map_err(mock_error)
    }

    /// Makes a broker accept connections again.
    pub fn broker_up(&self, broker_id: i32) -> Result<()> {
        self.check_broker(broker_id)?;
        self.cluster.broker_up(broker_id).map_err(mock_error)
    }

    /// Delays every response of a broker by `delay`.
    pub fn set_round_trip_time(&self, broker_id: i32, delay: Duration) -> Result<()> {
        self.check_broker(broker_id)?;
        self.cluster
            .broker_round_trip_time(broker_id, delay)
            .map_err(mock_error)
    }

    /// Makes the next requests of `api` fail, one error code each, in order. Codes are
    /// librdkafka's (`rd_kafka_resp_err_t`): Kafka protocol codes such as 6 (NOT_LEADER_FOR_PARTITION),
    /// or -195 (`_TRANSPORT`) to drop the connection.
    ///
    /// Failing produce requests while more than one may be in flight to a partition can lose
    /// messages that are reported delivered: the mock checks sequence numbers only for a
    /// producer with a `transactional.id`, so it accepts a request sent behind one it failed,
    /// which a real broker refuses as out of order, and librdkafka then (rightly, for a real
    /// broker) takes the failed request's messages as written. Keep one request in flight
    /// (`max.in.flight=1`) in such a test.
    pub fn push_request_errors(&self, api: MockApi, codes: &[i32]) -> Result<()> {
        let errors = codes
            .iter()
            .map(|&code| {
                RDKafkaRespErr::try_from(code).map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidRecord,
                        format!("{code} is not a librdkafka error code"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.cluster.request_errors(api.api_key(), &errors);
        Ok(())
    }

    /// Forgets errors pushed for `api` that have not been used yet.
    pub fn clear_request_errors(&self, api: MockApi) {
        self.cluster.clear_request_errors(api.api_key());
    }

    fn check_broker(&self, broker_id: i32) -> Result<()> {
        if self.broker_ids().contains(&broker_id) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::InvalidRecord,
                format!("no broker {broker_id}; ids are 1 to {}", self.brokers),
            ))
        }
    }
}

fn mock_error(error: KafkaError) -> Error {
    Error::new(ErrorKind::Internal, format!("mock cluster: {error}"))
}

/// Makes `producer`'s librdkafka client fail fatally, as if a broker had answered with `code`
/// (for example 59, UNKNOWN_PRODUCER_ID, or 45, OUT_OF_ORDER_SEQUENCE_NUMBER): what it holds
/// comes back, and the producer replaces the client (`recovery.max`) or stays failed.
pub fn inject_fatal_error(producer: &crate::Producer, code: i32, reason: &str) -> Result<()> {
    let code = RDKafkaRespErr::try_from(code).map_err(|_| {
        Error::new(
            ErrorKind::InvalidRecord,
            format!("{code} is not a librdkafka error code"),
        )
    })?;
    producer.inject_fatal_error(code, reason)
}

/// A record as read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Option<Vec<u8>>,
    /// The headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The timestamp in milliseconds since the epoch, if any.
    pub timestamp: Option<i64>,
}

/// Reads every record of `topic` from the beginning to the current end of each partition (with a
/// consumer of its own, not the producer), ordered by partition and offset. Fails if the end is
/// not reached within `timeout`.
pub fn read_topic(
    bootstrap_servers: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<ConsumedRecord>> {
    let deadline = Instant::now() + timeout;
    let consumer: BaseConsumer<ReadBackContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .set(
            "group.id",
            format!("kafkasender-read-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create_with_context(ReadBackContext)
        .map_err(Error::from)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), remaining(deadline))
        .map_err(Error::from)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(Error::new(
            ErrorKind::UnknownTopicOrPartition,
            format!("topic {topic} has no partitions"),
        ));
    }
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(Error::from)?;
    }
    consumer.assign(&assignment).map_err(Error::from)?;

    let mut unfinished: BTreeSet<i32> = partitions.into_iter().collect();
    let mut records = Vec::new();
    while !unfinished.is_empty() {
        if Instant::now() >= deadline {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("read {} records of {topic} but partitions {unfinished:?} did not reach their end in time", records.len()),
            ));
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                unfinished.remove(&partition);
            }
            Some(Err(error))
                if error.rdkafka_error_code()
                    == Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {}
            Some(Err(error)) => return Err(error.into()),
            Some(Ok(message)) => records.push(ConsumedRecord {
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                headers: message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
                timestamp: message.timestamp().to_millis(),
            }),
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}

/// The read-back consumer's context: end-of-partition is what it waits for, not an error to log.
struct ReadBackContext;

impl ClientContext for ReadBackContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::warn!(target: "kafkasender", %error, reason, "read-back consumer error");
        }
    }
}

impl ConsumerContext for ReadBackContext {}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Checks that `tests/parity/{file}` holds `expected` (one item per line): those files are the
/// lists every face's tests compare theirs with. `KS_BLESS=1` rewrites the file instead.
#[cfg(test)]
pub(crate) fn check_parity_list(file: &str, expected: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/parity")
        .join(file);
    let expected = format!("{expected}\n");
    if std::env::var_os("KS_BLESS").is_some() {
        std::fs::write(&path, &expected).expect("cannot write the parity list");
    }
    let found = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        found == expected,
        "{} differs from the core's list: run KS_BLESS=1 cargo test -p kafkasender, and check the faces",
        path.display()
    );
}
