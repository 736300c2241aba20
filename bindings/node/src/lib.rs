//! The native half of the `kafkasender` npm package: thin conversions around the core. The
//! Promise and callback forms, argument checks and the error class live in `index.js`, where
//! JavaScript does them best; this layer sends, queues reports, and wakes JavaScript once per
//! batch of reports (never once per message).

#![deny(clippy::all)]

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kafkasender::testing::{read_topic, MockApi, MockCluster as CoreMockCluster};
use kafkasender::{
    Config, Header, HealthStatus, Outcome, PartitionerFn, Producer, Producers, Record, TrySend,
};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

/// A core error as JavaScript sees it; `index.js` turns it into a `KafkaSenderError`.
#[napi(object)]
pub struct ErrorInfo {
    pub message: String,
    /// The core's error kind (`queue_full`, `timeout`, …).
    pub code: String,
    pub retriable: bool,
    /// librdkafka's error code, if any.
    pub rdkafka_code: Option<i32>,
}

impl From<&kafkasender::Error> for ErrorInfo {
    fn from(error: &kafkasender::Error) -> ErrorInfo {
        ErrorInfo {
            message: error.message().to_string(),
            code: error.kind().as_str().to_string(),
            retriable: error.is_retriable(),
            rdkafka_code: error.code(),
        }
    }
}

/// Reports as columns, one row per report: one object and a few typed arrays per batch instead
/// of an object per report, because crossing into JavaScript costs per value. `index.js` already
/// knows each send's topic and key, so they do not come back.
#[napi(object)]
pub struct ReportBatch {
    /// The id `index.js` gave each send.
    pub ids: Uint32Array,
    pub partitions: Int32Array,
    pub offsets: BigInt64Array,
    /// Milliseconds since the epoch; NaN when unknown.
    pub timestamps: Float64Array,
    pub attempts: Uint32Array,
    pub latencies_ms: Float64Array,
    /// Indices into [`OUTCOMES`]: delivered, failed, dead_lettered, spooled.
    pub outcomes: Uint8Array,
    /// 1 where the message was sent again through a new client after a fatal error.
    pub recovered: Uint8Array,
    /// What went wrong, for the rows that were not delivered.
    pub problems: Vec<ReportProblem>,
}

/// The outcome names, indexed by `ReportBatch.outcomes`.
pub const OUTCOMES: [&str; 4] = ["delivered", "failed", "dead_lettered", "spooled"];

#[napi(object)]
pub struct ReportProblem {
    /// The row.
    pub index: u32,
    pub error: ErrorInfo,
    /// The dead-letter topic or the spool file.
    pub destination: Option<String>,
}

/// Reports waiting for JavaScript, as the columns of a [`ReportBatch`]. A report's topic and key
/// are dropped as it arrives, on the delivery thread that made them (`index.js` keeps its own), so
/// a waiting report takes 38 bytes and nothing made on one thread is freed on another.
#[derive(Default)]
struct Rows {
    ids: Vec<u32>,
    partitions: Vec<i32>,
    offsets: Vec<i64>,
    timestamps: Vec<f64>,
    attempts: Vec<u32>,
    latencies_ms: Vec<f64>,
    outcomes: Vec<u8>,
    recovered: Vec<u8>,
    /// The rows that were not delivered: their index, error and destination.
    problems: Vec<(u32, kafkasender::Error, Option<String>)>,
}

impl Rows {
    fn push(&mut self, id: u32, report: kafkasender::DeliveryReport) {
        let index = self.ids.len() as u32;
        self.ids.push(id);
        self.partitions.push(report.partition);
        self.offsets.push(report.offset);
        self.timestamps
            .push(report.timestamp.map_or(f64::NAN, |t| t as f64));
        self.attempts.push(report.attempts);
        self.latencies_ms.push(report.latency.as_secs_f64() * 1e3);
        self.recovered.push(u8::from(report.recovered));
        let (outcome, destination) = match report.outcome {
            Outcome::Delivered => (0, None),
            Outcome::Failed(error) => (1, Some((error, None))),
            Outcome::DeadLettered { topic, reason, .. } => (2, Some((reason, Some(topic)))),
            Outcome::Spooled { path, reason, .. } => {
                (3, Some((reason, Some(path.display().to_string()))))
            }
        };
        self.outcomes.push(outcome);
        if let Some((error, destination)) = destination {
            self.problems.push((index, error, destination));
        }
    }

    fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl From<Rows> for ReportBatch {
    fn from(rows: Rows) -> ReportBatch {
        ReportBatch {
            ids: Uint32Array::new(rows.ids),
            partitions: Int32Array::new(rows.partitions),
            offsets: BigInt64Array::new(rows.offsets),
            timestamps: Float64Array::new(rows.timestamps),
            attempts: Uint32Array::new(rows.attempts),
            latencies_ms: Float64Array::new(rows.latencies_ms),
            outcomes: Uint8Array::new(rows.outcomes),
            recovered: Uint8Array::new(rows.recovered),
            problems: (rows.problems.into_iter())
                .map(|(index, error, destination)| ReportProblem {
                    index,
                    error: ErrorInfo::from(&error),
                    destination,
                })
                .collect(),
        }
    }
}

/// Reports waiting for JavaScript, and the function that wakes it.
struct Mailbox {
    reports: Mutex<Rows>,
    /// Weak: it never keeps the event loop alive (index.js holds a timer while sends are pending).
    wake: ThreadsafeFunction<(), (), (), Status, false, true>,
}

impl Mailbox {
    /// Runs on the producer's delivery thread: queues the report, and wakes JavaScript only when
    /// the queue was empty (one wake-up serves every report that arrives before it runs).
    fn post(&self, id: u32, report: kafkasender::DeliveryReport) {
        let mut reports = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        let was_empty = reports.is_empty();
        reports.push(id, report);
        if was_empty {
            drop(reports);
            self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    /// Queues a batch's reports, in the batch's order, all with the batch's `id`.
    fn post_batch(&self, id: u32, batch: Vec<kafkasender::DeliveryReport>) {
        let mut reports = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        let was_empty = reports.is_empty();
        batch
            .into_iter()
            .for_each(|report| reports.push(id, report));
        if was_empty {
            drop(reports);
            self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

/// The core producer, for `index.js`.
#[napi]
pub struct NativeProducer {
    producer: Arc<Producer>,
    mailbox: Arc<Mailbox>,
}

fn config_of(
    map: HashMap<String, String>,
    from_env: bool,
    named: Option<(String, String)>,
) -> std::result::Result<Config, ErrorInfo> {
    let config = match named {
        Some((file, name)) => Producers::from_file(file).and_then(|p| p.config(&name)),
        None if from_env => Config::builder().with_env().build(),
        None => map
            .into_iter()
            .fold(Config::builder(), |builder, (k, v)| builder.set(k, v))
            .build(),
    };
    config.map_err(|e| ErrorInfo::from(&e))
}

/// The producers a file of named producers (TOML) has, after checking every one of them; the
/// ErrorInfo lists every problem otherwise.
#[napi]
pub fn producer_names(file: String) -> Either<Vec<String>, ErrorInfo> {
    match Producers::from_file(file) {
        Ok(producers) => Either::A(producers.names().into_iter().map(String::from).collect()),
        Err(error) => Either::B(ErrorInfo::from(&error)),
    }
}

/// Makes a producer; returns an ErrorInfo (not a producer) when the configuration is invalid.
#[napi]
pub fn create_producer(
    config: HashMap<String, String>,
    from_env: bool,
    file: Option<String>,
    name: Option<String>,
    wake: Function<(), ()>,
) -> Result<Either<NativeProducer, ErrorInfo>> {
    let config = match config_of(config, from_env, file.zip(name)) {
        Ok(config) => config,
        Err(info) => return Ok(Either::B(info)),
    };
    kafkasender::logging::init_from(config.settings());
    let producer = match Producer::new(config) {
        Ok(producer) => producer,
        Err(error) => return Ok(Either::B(ErrorInfo::from(&error))),
    };
    let wake = wake
        .build_threadsafe_function()
        .callee_handled::<false>()
        .weak::<true>()
        .build()?;
    let mailbox = Arc::new(Mailbox {
        reports: Mutex::default(),
        wake,
    });
    let sink = mailbox.clone();
    // Ids are u32 slots (see `index.js`): a send carries its id as the token.
    let reports =
        producer.set_report_sink(Box::new(move |id, report| sink.post(id as u32, report)));
    if let Err(error) = reports {
        return Ok(Either::B(ErrorInfo::from(&error)));
    }
    Ok(Either::A(NativeProducer {
        producer: Arc::new(producer),
        mailbox,
    }))
}

#[napi]
impl NativeProducer {
    /// Enqueues one message without waiting; its report is posted with `id`. Returns what
    /// happened: accepted, refused (with the error; nothing will be posted), or "would block" (a
    /// full queue or a rate limit: nothing was sent; `send_waiting` sends it off the event loop).
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &self,
        id: u32,
        topic: String,
        value: Option<BufferSlice>,
        key: Option<BufferSlice>,
        header_keys: Vec<String>,
        header_values: Vec<Option<BufferSlice>>,
        partition: Option<i32>,
        timestamp: Option<i64>,
    ) -> SendResult {
        // Slices borrow the caller's Buffers for the call (librdkafka copies): no reference per value.
        let record = record_of(
            &topic,
            &value,
            &key,
            &header_keys,
            &header_values,
            partition,
            timestamp,
        );
        self.try_send(id, &record)
    }

    /// Sends plain messages (topic, value, key) with the given ids in one call, without waiting:
    /// one crossing of the boundary for the lot. Stops at the first message that would block;
    /// `sent` says how many were handled (accepted or refused).
    #[napi]
    pub fn send_many(
        &self,
        ids: Uint32Array,
        topics: Vec<String>,
        values: Vec<Option<BufferSlice>>,
        keys: Vec<Option<BufferSlice>>,
    ) -> SendManyResult {
        let mut refused = Vec::new();
        let messages = topics.iter().zip(&values).zip(&keys).zip(ids.iter());
        for (index, (((topic, value), key), &id)) in messages.enumerate() {
            let record = Record {
                topic,
                key: key.as_deref(),
                value: value.as_deref(),
                ..Record::default()
            };
            let result = self.try_send(id, &record);
            if result.would_block {
                return SendManyResult {
                    sent: index as u32,
                    refused,
                };
            }
            if let Some(error) = result.refused {
                refused.push(Refusal {
                    index: index as u32,
                    error,
                });
            }
        }
        SendManyResult {
            sent: topics.len().min(ids.len()) as u32,
            refused,
        }
    }

    /// Sends one message that would block, on the libuv thread pool (its bytes are copied, as
    /// they cross threads): resolves with null when accepted, or the error.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn send_waiting(
        &self,
        id: u32,
        topic: String,
        value: Option<BufferSlice>,
        key: Option<BufferSlice>,
        header_keys: Vec<String>,
        header_values: Vec<Option<BufferSlice>>,
        partition: Option<i32>,
        timestamp: Option<i64>,
    ) -> AsyncTask<WaitingSend> {
        AsyncTask::new(WaitingSend {
            producer: self.producer.clone(),
            id,
            record: Some(kafkasender::OwnedRecord::from(&record_of(
                &topic,
                &value,
                &key,
                &header_keys,
                &header_values,
                partition,
                timestamp,
            ))),
        })
    }

    /// Sends a batch through the core's `send_batch` on the libuv thread pool, where a full
    /// queue may wait without stopping the event loop. Keys, values and headers are copied into
    /// one buffer, since the caller's Buffers cannot cross threads. Headers come flattened:
    /// `header_counts[i]` of them for message i. When the batch is accepted (resolves with null),
    /// its reports are posted together, in order, each with `id`, once the last is in; otherwise
    /// it resolves with the error and nothing is posted.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn send_batch(
        &self,
        id: u32,
        topics: Vec<String>,
        values: Vec<Option<BufferSlice>>,
        keys: Vec<Option<BufferSlice>>,
        header_counts: Option<Uint32Array>,
        header_keys: Option<Vec<String>>,
        header_values: Option<Vec<Option<BufferSlice>>>,
        partitions: Option<Vec<Option<i32>>>,
        timestamps: Option<Vec<Option<i64>>>,
    ) -> AsyncTask<BatchSend> {
        let mut batch = PackedBatch::default();
        let (header_keys, header_values) = (
            header_keys.unwrap_or_default(),
            header_values.unwrap_or_default(),
        );
        let mut headers = header_keys.into_iter().zip(&header_values);
        for (i, ((topic, value), key)) in topics.into_iter().zip(&values).zip(&keys).enumerate() {
            let count = header_counts.as_ref().and_then(|c| c.get(i)).copied();
            batch.push(
                topic,
                value.as_deref(),
                key.as_deref(),
                headers
                    .by_ref()
                    .take(count.unwrap_or(0) as usize)
                    .map(|(name, value)| (name, value.as_deref())),
                partitions
                    .as_ref()
                    .and_then(|p| p.get(i).copied().flatten()),
                timestamps
                    .as_ref()
                    .and_then(|t| t.get(i).copied().flatten()),
            );
        }
        AsyncTask::new(BatchSend {
            producer: self.producer.clone(),
            mailbox: self.mailbox.clone(),
            id,
            batch,
        })
    }

    fn try_send(&self, id: u32, record: &Record<'_>) -> SendResult {
        match self.producer.try_send_token(record, u64::from(id)) {
            Ok(TrySend::Sent) => SendResult::default(),
            Ok(TrySend::WouldBlock(_)) => SendResult {
                would_block: true,
                refused: None,
            },
            Err(error) => SendResult {
                would_block: false,
                refused: Some(ErrorInfo::from(&error)),
            },
        }
    }

    /// Every report posted so far (called by `index.js` when woken).
    #[napi]
    pub fn take_reports(&self) -> ReportBatch {
        let reports = std::mem::take(
            &mut *self
                .mailbox
                .reports
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        ReportBatch::from(reports)
    }

    /// Waits off the event loop until every message sent so far is reported.
    #[napi]
    pub fn flush(&self, timeout_ms: f64) -> AsyncTask<Wait> {
        self.off_the_loop(Blocking::Flush, timeout_ms)
    }

    /// Closes off the event loop (see the core's `close`).
    #[napi]
    pub fn close(&self, timeout_ms: f64) -> AsyncTask<Wait> {
        self.off_the_loop(Blocking::Close, timeout_ms)
    }

    /// Makes the librdkafka client fail fatally, as a broker's `code` would (for tests).
    #[napi]
    pub fn inject_fatal_error(&self, code: i32) -> Option<ErrorInfo> {
        kafkasender::testing::inject_fatal_error(&self.producer, code, "injected from Node")
            .err()
            .map(|e| ErrorInfo::from(&e))
    }

    /// Opens a transaction (quick: no request to the brokers); the error when it cannot.
    #[napi]
    pub fn begin_transaction(&self) -> Option<ErrorInfo> {
        self.producer
            .begin_transaction()
            .err()
            .map(|e| ErrorInfo::from(&e))
    }

    /// Commits the open transaction off the event loop; its reports are posted before it resolves.
    #[napi]
    pub fn commit_transaction(&self, timeout_ms: f64) -> AsyncTask<Wait> {
        self.off_the_loop(Blocking::Commit, timeout_ms)
    }

    /// Aborts the open transaction off the event loop; its reports are posted before it resolves.
    #[napi]
    pub fn abort_transaction(&self, timeout_ms: f64) -> AsyncTask<Wait> {
        self.off_the_loop(Blocking::Abort, timeout_ms)
    }

    fn off_the_loop(&self, call: Blocking, timeout_ms: f64) -> AsyncTask<Wait> {
        AsyncTask::new(Wait {
            producer: self.producer.clone(),
            timeout: millis(timeout_ms),
            call,
        })
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.producer.is_closed()
    }

    #[napi(getter)]
    pub fn close_timeout_ms(&self) -> f64 {
        self.producer.settings().close_timeout.as_secs_f64() * 1e3
    }

    /// The core's metrics (tests/parity/metrics.txt), by camelCase name: counts, and seconds
    /// for names ending in `Seconds`.
    #[napi]
    pub fn metrics(&self) -> HashMap<String, f64> {
        self.producer
            .metrics()
            .list()
            .into_iter()
            .map(|m| (camel_case(m.name), m.value.as_f64()))
            .collect()
    }

    #[napi]
    pub fn metrics_prometheus(&self) -> String {
        self.producer.metrics_prometheus()
    }

    /// The record an event envelope (from `newEvent`) is published as, or why it cannot be.
    #[napi]
    pub fn event_record(&self, envelope: String) -> Either<EventRecord, ErrorInfo> {
        let record = kafkasender::events::Event::from_json(&envelope)
            .and_then(|event| self.producer.event_record(&event));
        match record {
            Ok(record) => Either::A(EventRecord {
                topic: record.topic,
                key: record.key.unwrap_or_default().into(),
                value: record.value.unwrap_or_default().into(),
                header_keys: record.headers.iter().map(|(k, _)| k.clone()).collect(),
                header_values: record
                    .headers
                    .into_iter()
                    .map(|(_, v)| v.unwrap_or_default().into())
                    .collect(),
            }),
            Err(error) => Either::B(ErrorInfo::from(&error)),
        }
    }

    /// Sends events of a type (`api.error`) or a prefix pattern (`user.*`) to `topic` from now on.
    #[napi]
    pub fn map_event_topic(&self, pattern: String, topic: String) -> Option<ErrorInfo> {
        self.producer
            .map_event_topic(&pattern, &topic)
            .err()
            .map(|e| ErrorInfo::from(&e))
    }

    /// Sets the user's partitioner function `(topic, key, partitionCount) => partition`. The core
    /// calls it on the sending thread: on the event loop it is called there and then; for a send
    /// made off the loop (a full queue, `sendBatch`) the worker waits while the loop calls it.
    #[napi]
    pub fn set_partitioner(
        &self,
        env: Env,
        partition: Function<'_, FnArgs<(String, Option<Buffer>, i32)>, i32>,
    ) -> Result<Option<ErrorInfo>> {
        let on_loop = partition.create_ref()?;
        let off_loop = partition
            .build_threadsafe_function::<FnArgs<(String, Option<Buffer>, i32)>>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        let (raw_env, loop_thread) = (env.raw() as usize, std::thread::current().id());
        let function: PartitionerFn = Box::new(move |request| {
            let args = FnArgs::from((
                request.topic.to_string(),
                request.key.map(|key| Buffer::from(key.to_vec())),
                request.partition_count,
            ));
            let answer = if std::thread::current().id() == loop_thread {
                // On the loop the core is inside one of this addon's calls, so the env is live.
                let env = Env::from_raw(raw_env as napi::sys::napi_env);
                on_loop.borrow_back(&env).and_then(|f| f.call(args))
            } else {
                let (sender, receiver) = std::sync::mpsc::sync_channel(1);
                off_loop.call_with_return_value(
                    args,
                    ThreadsafeFunctionCallMode::Blocking,
                    move |answer, _env| {
                        let _ = sender.send(answer);
                        Ok(())
                    },
                );
                receiver
                    .recv()
                    .unwrap_or_else(|_| Err(Error::from_reason("the event loop is gone")))
            };
            answer.map_err(|error| error.reason.clone())
        });
        Ok(self
            .producer
            .set_partitioner(function)
            .err()
            .map(|e| ErrorInfo::from(&e)))
    }

    #[napi]
    pub fn health(&self) -> HealthInfo {
        let health = self.producer.health();
        HealthInfo {
            status: match health.status {
                HealthStatus::Healthy => "healthy",
                HealthStatus::Degraded => "degraded",
                HealthStatus::Unhealthy => "unhealthy",
            }
            .to_string(),
            reasons: health.reasons,
        }
    }
}

/// What `send` did with one message.
#[napi(object)]
#[derive(Default)]
pub struct SendResult {
    /// Nothing was sent: the queue is full or the rate limit has no token now.
    pub would_block: bool,
    /// Not accepted, for this reason; nothing will be posted.
    pub refused: Option<ErrorInfo>,
}

#[napi(object)]
pub struct SendManyResult {
    /// How many messages were handled (accepted or refused); the rest would block.
    pub sent: u32,
    pub refused: Vec<Refusal>,
}

#[napi(object)]
pub struct Refusal {
    pub index: u32,
    pub error: ErrorInfo,
}

/// A send that waits for room, on the libuv thread pool.
pub struct WaitingSend {
    producer: Arc<Producer>,
    id: u32,
    record: Option<kafkasender::OwnedRecord>,
}

impl Task for WaitingSend {
    type Output = Option<ErrorInfo>;
    type JsValue = Option<ErrorInfo>;

    fn compute(&mut self) -> Result<Self::Output> {
        let record = self.record.take().expect("computed once");
        Ok(self
            .producer
            .send_token(&record.as_record(), u64::from(self.id))
            .err()
            .map(|e| ErrorInfo::from(&e)))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

/// A batch's records in one allocation of bytes, to cross to the thread pool.
#[derive(Default)]
pub struct PackedBatch {
    bytes: Vec<u8>,
    messages: Vec<PackedMessage>,
    header_keys: Vec<String>,
    /// Each header's value, a range of `bytes`.
    header_values: Vec<Option<Range<usize>>>,
}

struct PackedMessage {
    topic: String,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    /// Its headers, a range of `header_keys` and `header_values`.
    headers: Range<usize>,
    partition: Option<i32>,
    timestamp: Option<i64>,
}

impl PackedBatch {
    fn keep(&mut self, bytes: Option<&[u8]>) -> Option<Range<usize>> {
        bytes.map(|b| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(b);
            start..self.bytes.len()
        })
    }

    fn push<'h>(
        &mut self,
        topic: String,
        value: Option<&[u8]>,
        key: Option<&[u8]>,
        headers: impl Iterator<Item = (String, Option<&'h [u8]>)>,
        partition: Option<i32>,
        timestamp: Option<i64>,
    ) {
        let (key, value) = (self.keep(key), self.keep(value));
        let first_header = self.header_keys.len();
        for (name, header_value) in headers {
            let range = self.keep(header_value);
            self.header_keys.push(name);
            self.header_values.push(range);
        }
        self.messages.push(PackedMessage {
            topic,
            key,
            value,
            headers: first_header..self.header_keys.len(),
            partition,
            timestamp,
        });
    }

    fn records(&self) -> Vec<Record<'_>> {
        let bytes = |range: &Option<Range<usize>>| range.clone().map(|r| &self.bytes[r]);
        self.messages
            .iter()
            .map(|m| Record {
                topic: &m.topic,
                key: bytes(&m.key),
                value: bytes(&m.value),
                headers: m
                    .headers
                    .clone()
                    .map(|h| Header {
                        key: &self.header_keys[h],
                        value: bytes(&self.header_values[h]),
                    })
                    .collect(),
                partition: m.partition,
                timestamp: m.timestamp,
            })
            .collect()
    }
}

/// A batch sent through the core's `send_batch`, on the libuv thread pool.
pub struct BatchSend {
    producer: Arc<Producer>,
    mailbox: Arc<Mailbox>,
    id: u32,
    batch: PackedBatch,
}

impl Task for BatchSend {
    type Output = Option<ErrorInfo>;
    type JsValue = Option<ErrorInfo>;

    fn compute(&mut self) -> Result<Self::Output> {
        let (mailbox, id) = (self.mailbox.clone(), self.id);
        let records = self.batch.records();
        Ok(self
            .producer
            .send_batch(
                &records,
                Box::new(move |reports| mailbox.post_batch(id, reports)),
            )
            .err()
            .map(|e| ErrorInfo::from(&e)))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

/// `latency_p99_seconds` → `latencyP99Seconds`: the core's names as JavaScript spells names.
fn camel_case(snake: &str) -> String {
    let mut parts = snake.split('_');
    let mut name = parts.next().unwrap_or_default().to_string();
    for part in parts {
        let mut chars = part.chars();
        name.extend(chars.next().map(|c| c.to_ascii_uppercase()));
        name.push_str(chars.as_str());
    }
    name
}

/// The record `send` and `send_waiting` take apart as arguments, borrowing them.
fn record_of<'a>(
    topic: &'a str,
    value: &'a Option<BufferSlice>,
    key: &'a Option<BufferSlice>,
    header_keys: &'a [String],
    header_values: &'a [Option<BufferSlice>],
    partition: Option<i32>,
    timestamp: Option<i64>,
) -> Record<'a> {
    Record {
        topic,
        key: key.as_deref(),
        value: value.as_deref(),
        headers: header_keys
            .iter()
            .zip(header_values)
            .map(|(key, value)| Header {
                key,
                value: value.as_deref(),
            })
            .collect(),
        partition,
        timestamp,
    }
}

/// One log line for `setLogHandler`'s handler.
#[napi(object)]
pub struct LogLine {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// `kafkasender` or `librdkafka`.
    pub target: String,
    pub message: String,
}

/// Sends every log line to `handler` on the event loop from now on (null: to stderr again). The
/// handler does not keep the process alive.
#[napi]
pub fn set_log_handler(handler: Option<Function<LogLine, ()>>) -> Result<()> {
    let Some(handler) = handler else {
        kafkasender::logging::set_sink(None);
        return Ok(());
    };
    let handler = handler
        .build_threadsafe_function()
        .callee_handled::<false>()
        .weak::<true>()
        .build()?;
    kafkasender::logging::set_sink(Some(Box::new(move |record| {
        let line = LogLine {
            level: record.level.as_str().to_string(),
            target: record.target.to_string(),
            message: record.message.to_string(),
        };
        handler.call(line, ThreadsafeFunctionCallMode::NonBlocking);
    })));
    Ok(())
}

/// What `publishEvent` sends (see `Producer::event_record`).
#[napi(object)]
pub struct EventRecord {
    pub topic: String,
    pub key: Buffer,
    pub value: Buffer,
    pub header_keys: Vec<String>,
    pub header_values: Vec<Buffer>,
}

/// A new event's CloudEvents envelope (JSON): a new id, the current time, and a new correlation
/// id when none is given. `dataJson` is the data as JSON (`JSON.stringify` in `index.js`).
#[napi]
pub fn new_event(
    event_type: String,
    data_json: String,
    source: String,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    version: Option<String>,
) -> Result<String> {
    let data = serde_json::from_str(&data_json)
        .map_err(|e| napi::Error::new(Status::InvalidArg, format!("data is not JSON: {e}")))?;
    let mut builder = kafkasender::events::EventBuilder::new(source);
    if let Some(version) = version {
        builder = builder.version(version);
    }
    if let Some(correlation_id) = correlation_id {
        builder = builder.correlation_id(correlation_id);
    }
    let mut event = builder.event(&event_type, data);
    event.causation_id = causation_id;
    Ok(event.to_json())
}

#[napi(object)]
pub struct HealthInfo {
    pub status: String,
    pub reasons: Vec<String>,
}

fn millis(ms: f64) -> Duration {
    if ms.is_finite() && ms >= 0.0 {
        Duration::from_secs_f64(ms / 1e3).min(Duration::from_secs(365 * 24 * 3600))
    } else {
        Duration::from_secs(365 * 24 * 3600)
    }
}

/// A blocking producer call on the libuv thread pool.
pub struct Wait {
    producer: Arc<Producer>,
    timeout: Duration,
    call: Blocking,
}

/// The producer calls that may block.
#[derive(Clone, Copy)]
enum Blocking {
    Flush,
    Close,
    Commit,
    Abort,
}

impl Task for Wait {
    type Output = Option<ErrorInfo>;
    type JsValue = Option<ErrorInfo>;

    fn compute(&mut self) -> Result<Self::Output> {
        let (producer, timeout) = (&self.producer, self.timeout);
        let result = match self.call {
            Blocking::Flush => producer.flush(timeout),
            Blocking::Close => {
                producer.close(timeout);
                Ok(())
            }
            Blocking::Commit => producer.commit_transaction(timeout),
            Blocking::Abort => producer.abort_transaction(timeout),
        };
        Ok(result.err().map(|e| ErrorInfo::from(&e)))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

/// librdkafka's mock brokers in this process, for tests.
#[napi]
pub struct MockCluster {
    cluster: CoreMockCluster,
}

#[napi(object)]
pub struct ConsumedRecord {
    pub partition: i32,
    pub offset: BigInt,
    pub key: Option<Buffer>,
    pub value: Option<Buffer>,
    pub header_keys: Vec<String>,
    pub header_values: Vec<Option<Buffer>>,
}

fn mock_error(error: kafkasender::Error) -> napi::Error {
    napi::Error::from_reason(error.to_string())
}

#[napi]
impl MockCluster {
    #[napi(constructor)]
    pub fn new(brokers: Option<u32>) -> Result<MockCluster> {
        let brokers = u16::try_from(brokers.unwrap_or(3))
            .map_err(|_| napi::Error::from_reason("brokers must be at most 65535"))?;
        Ok(MockCluster {
            cluster: CoreMockCluster::new(brokers).map_err(mock_error)?,
        })
    }

    #[napi(getter)]
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers().to_string()
    }

    #[napi]
    pub fn create_topic(
        &self,
        topic: String,
        partitions: Option<i32>,
        replication_factor: Option<i32>,
    ) -> Result<()> {
        self.cluster
            .create_topic(
                &topic,
                partitions.unwrap_or(4),
                replication_factor.unwrap_or(1),
            )
            .map_err(mock_error)
    }

    #[napi]
    pub fn broker_down(&self, broker_id: i32) -> Result<()> {
        self.cluster.broker_down(broker_id).map_err(mock_error)
    }

    #[napi]
    pub fn broker_up(&self, broker_id: i32) -> Result<()> {
        self.cluster.broker_up(broker_id).map_err(mock_error)
    }

    /// Makes the next requests of `api` ("produce", "metadata", …) fail with `codes`, one each,
    /// in order (librdkafka's error codes).
    #[napi]
    pub fn push_request_errors(&self, api: String, codes: Vec<i32>) -> Result<()> {
        MockApi::from_name(&api)
            .and_then(|api| self.cluster.push_request_errors(api, &codes))
            .map_err(mock_error)
    }

    /// Every record of `topic`, read with a consumer of its own (blocks: for tests).
    #[napi]
    pub fn read_topic(
        &self,
        topic: String,
        timeout_ms: Option<f64>,
    ) -> Result<Vec<ConsumedRecord>> {
        let records = read_topic(
            self.cluster.bootstrap_servers(),
            &topic,
            millis(timeout_ms.unwrap_or(60_000.0)),
        )
        .map_err(mock_error)?;
        Ok(records
            .into_iter()
            .map(|r| ConsumedRecord {
                partition: r.partition,
                offset: BigInt::from(r.offset),
                key: r.key.map(Buffer::from),
                value: r.value.map(Buffer::from),
                header_keys: r.headers.iter().map(|(k, _)| k.clone()).collect(),
                header_values: r
                    .headers
                    .into_iter()
                    .map(|(_, v)| v.map(Buffer::from))
                    .collect(),
            })
            .collect())
    }
}
