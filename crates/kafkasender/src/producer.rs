//! The producer: validates and enqueues records into librdkafka, and reports every accepted send
//! exactly once, on one producer-owned delivery thread.
//!
//! The send path has one place per stage, in this order (DESIGN.md): validate → (rate limit) →
//! (circuit breaker) → librdkafka → (retry, dead-letter, spool). The bracketed stages belong to the
//! resilience layer and plug in at the marked points of [`Producer::enqueue`] and [`Context::delivery`].

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, PoisonError, RwLock};
use std::task::{Context as TaskContext, Poll};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use futures_channel::oneshot;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as RdHeader, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext, PurgeConfig,
};
use rdkafka::statistics::Statistics;
use sync_wrapper::SyncWrapper;

use crate::config::{Config, Settings};
use crate::delivery::{BatchCallback, DeliveryCallback, DeliveryReport, Outcome};
use crate::error::{ConfigProblem, Error, ErrorKind, Result};
use crate::health::{BrokerView, Health, HealthStatus};
use crate::lock;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::ratelimit::RateLimit;
use crate::record::Record;

/// How long one poll of librdkafka's queue waits; also the longest a close waits for the
/// delivery thread to notice it should stop.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Longest single sleep of a waiter, so a missed wake-up costs at most this much.
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// How long a sender blocked on a full queue sleeps before trying again.
const QUEUE_FULL_RECHECK: Duration = Duration::from_millis(1);
/// How long close waits for librdkafka to report the messages it purged.
const PURGE_GRACE: Duration = Duration::from_secs(5);

/// A Kafka producer. Share it between threads (it is `Send + Sync`); [`Producer::close`] it when
/// done, or let `Drop` close it with `close.timeout.ms`.
pub struct Producer {
    shared: Arc<Shared>,
    delivery_thread: Mutex<Option<JoinHandle<()>>>,
    delivery_thread_id: ThreadId,
}

/// State shared by the sending threads and the delivery thread.
struct Shared {
    client: BaseProducer<Context>,
    tracker: Arc<Tracker>,
    /// `true` while open. Sends hold it for reading, close takes it for writing, so no send can
    /// slip in between close's last check and its purge.
    open: RwLock<bool>,
    stop: AtomicBool,
    settings: Settings,
    max_message_bytes: usize,
    client_id: String,
    rate_limit: Option<RateLimit>,
}

/// What a closed producer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReport {
    /// Messages still unacknowledged when close began.
    pub in_flight_at_close: usize,
    /// Messages that were not delivered in time and were purged; each was reported
    /// `Failed` with [`ErrorKind::Closed`].
    pub purged: u64,
    /// How long close took.
    pub elapsed: Duration,
    /// Whether the producer had already been closed (this call did nothing).
    pub already_closed: bool,
}

impl CloseReport {
    /// Whether every message in flight was delivered or failed on its own before the timeout.
    pub fn is_clean(&self) -> bool {
        self.purged == 0
    }
}

impl Producer {
    /// Creates a producer and its delivery thread. Nothing connects until the first send.
    pub fn new(config: Config) -> Result<Producer> {
        let pending_features = config.settings().resilience.inactive_keys_set();
        if !pending_features.is_empty() {
            return Err(Error::config(
                pending_features
                    .into_iter()
                    .map(|key| ConfigProblem {
                        key: key.to_string(),
                        message: "recognised, but the resilience layer that applies it is not in this version yet".into(),
                    })
                    .collect(),
            ));
        }
        let tracker = Arc::new(Tracker::default());
        let client: BaseProducer<Context> = config
            .client_config()
            .create_with_context(Context {
                tracker: tracker.clone(),
            })
            .map_err(|error| match error {
                KafkaError::ClientCreation(message) => Error::config(vec![ConfigProblem {
                    key: "librdkafka".into(),
                    message,
                }]),
                other => other.into(),
            })?;
        let shared = Arc::new(Shared {
            client,
            tracker,
            open: RwLock::new(true),
            stop: AtomicBool::new(false),
            settings: config.settings().clone(),
            max_message_bytes: config.max_message_bytes(),
            client_id: config.get("client.id").unwrap_or_default().to_string(),
            rate_limit: RateLimit::from_settings(config.settings()),
        });
        let thread_shared = shared.clone();
        let delivery_thread = thread::Builder::new()
            .name("kafkasender-delivery".into())
            .spawn(move || run_delivery_loop(&thread_shared))
            .map_err(|e| {
                Error::new(
                    ErrorKind::Internal,
                    format!("cannot start the delivery thread: {e}"),
                )
            })?;
        Ok(Producer {
            delivery_thread_id: delivery_thread.thread().id(),
            delivery_thread: Mutex::new(Some(delivery_thread)),
            shared,
        })
    }

    /// Creates a producer from `KAFKA_*` environment variables.
    pub fn from_env() -> Result<Producer> {
        Producer::new(Config::from_env()?)
    }

    /// Validates and enqueues a record; `on_delivery` later runs exactly once with its report, on
    /// the delivery thread. Returns an error (and never runs `on_delivery`) only for what is known
    /// at once: an invalid or oversized record, a closed or fatally failed producer, or a queue that
    /// stayed full for `enqueue.timeout.ms`. Blocks only while the queue is full.
    pub fn send(&self, record: &Record<'_>, on_delivery: DeliveryCallback) -> Result<()> {
        self.enqueue(record, Box::new(Pending::new(on_delivery)))
    }

    /// Enqueues like [`Producer::send`] and returns a future of the outcome: the report when
    /// delivered, the error otherwise. Needs no particular async runtime.
    pub fn send_async(&self, record: &Record<'_>) -> DeliveryFuture {
        let (sender, receiver) = oneshot::channel();
        let on_delivery: DeliveryCallback = Box::new(move |report| {
            // The receiver may be gone (the future was dropped); the report then has nobody to tell.
            let _ = sender.send(report);
        });
        match self.send(record, on_delivery) {
            Ok(()) => DeliveryFuture {
                state: FutureState::Waiting(receiver),
            },
            Err(error) => DeliveryFuture {
                state: FutureState::Failed(Some(error)),
            },
        }
    }

    /// Enqueues and blocks until the report arrives or `timeout` passes. A timeout here does not
    /// cancel the message: it may still be delivered later.
    pub fn send_and_wait(&self, record: &Record<'_>, timeout: Duration) -> Result<DeliveryReport> {
        let (sender, receiver) = mpsc::sync_channel(1);
        self.send(record, Box::new(move |report| drop(sender.send(report))))?;
        match receiver.recv_timeout(timeout) {
            Ok(report) => report.into_result(),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("no delivery report within {timeout:?}; the message is still in flight and may be delivered"),
            )),
        }
    }

    /// Sends every record; `on_delivery` runs once with one report per record, in the given order.
    /// A record that cannot be enqueued gets a `Failed` report right away instead of an error, so a
    /// batch never half-fails silently. Errs only when the producer is closed.
    pub fn send_batch(&self, records: &[Record<'_>], on_delivery: BatchCallback) -> Result<()> {
        self.check_open()?;
        let batch = Arc::new(Batch::new(records.len(), on_delivery));
        if records.is_empty() {
            batch.finish_empty();
            return Ok(());
        }
        for (index, record) in records.iter().enumerate() {
            let slot = batch.clone();
            if let Err(error) =
                self.send(record, Box::new(move |report| slot.complete(index, report)))
            {
                batch.complete(index, DeliveryReport::not_enqueued(record, error));
            }
        }
        Ok(())
    }

    /// Waits until every message sent so far has been reported, or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        let tracker = &self.shared.tracker;
        if self.on_delivery_thread() {
            return Err(Error::new(
                ErrorKind::Internal,
                "flush cannot wait inside a delivery callback",
            ));
        }
        if tracker.wait_until(Instant::now() + timeout, || tracker.in_flight() == 0) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{} messages still in flight after {timeout:?}",
                    tracker.in_flight()
                ),
            ))
        }
    }

    /// Stops accepting sends, waits up to `timeout` for messages in flight, then purges the rest:
    /// each purged message is reported `Failed` with [`ErrorKind::Closed`]. Every callback has run
    /// when this returns. Sends blocked on a full queue finish first (within `enqueue.timeout.ms`).
    /// Calling it again does nothing.
    pub fn close(&self, timeout: Duration) -> CloseReport {
        let started = Instant::now();
        {
            let mut open = self
                .shared
                .open
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if !*open {
                return CloseReport {
                    in_flight_at_close: 0,
                    purged: 0,
                    elapsed: started.elapsed(),
                    already_closed: true,
                };
            }
            *open = false;
        }
        let tracker = &self.shared.tracker;
        let in_flight_at_close = tracker.in_flight();
        // Inside a delivery callback nothing else can be delivered while we wait, so don't.
        let waiting_allowed = !self.on_delivery_thread();
        let drained =
            waiting_allowed && tracker.wait_until(started + timeout, || tracker.in_flight() == 0);
        if !drained {
            self.shared
                .client
                .purge(PurgeConfig::default().queue().inflight());
            if waiting_allowed
                && !tracker.wait_until(Instant::now() + PURGE_GRACE, || tracker.in_flight() == 0)
            {
                tracing::error!(
                    in_flight = tracker.in_flight(),
                    "messages were not reported after purge; they will be reported when the producer is dropped"
                );
            }
        }
        self.shared.stop.store(true, Ordering::Release);
        if waiting_allowed {
            let handle = lock(&self.delivery_thread).take();
            if let Some(handle) = handle {
                let _ = handle.join();
            }
        }
        CloseReport {
            in_flight_at_close,
            purged: tracker.metrics.purged.load(Ordering::Acquire),
            elapsed: started.elapsed(),
            already_closed: false,
        }
    }

    /// Whether [`Producer::close`] has been called.
    pub fn is_closed(&self) -> bool {
        !*self
            .shared
            .open
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The producer's counters, gauges and delivery-latency summary now.
    pub fn metrics(&self) -> MetricsSnapshot {
        let tracker = &self.shared.tracker;
        tracker.metrics.snapshot(
            tracker.accepted.load(Ordering::SeqCst),
            tracker.in_flight() as u64,
        )
    }

    /// [`Producer::metrics`] in Prometheus text exposition format, names prefixed `kafkasender_`.
    pub fn metrics_prometheus(&self) -> String {
        self.metrics().to_prometheus(&self.shared.client_id)
    }

    /// Healthy, degraded or unhealthy, with the reasons. Broker states and the recent error
    /// ratio come from librdkafka's statistics, refreshed every `statistics.interval.ms`.
    pub fn health(&self) -> Health {
        let mut health = Health::new();
        if self.is_closed() {
            health.flag(HealthStatus::Unhealthy, "the producer is closed");
        }
        if let Some(fatal) = self.shared.fatal_error() {
            health.flag(HealthStatus::Unhealthy, fatal.message());
        }
        let metrics = &self.shared.tracker.metrics;
        lock(&self.shared.tracker.brokers).assess(
            &mut health,
            metrics.delivered(),
            metrics.failed(),
        );
        health
    }

    /// kafkasender's own settings this producer runs with.
    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// Messages sent but not yet reported.
    pub fn in_flight(&self) -> usize {
        self.shared.tracker.in_flight()
    }

    fn on_delivery_thread(&self) -> bool {
        thread::current().id() == self.delivery_thread_id
    }

    fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            Err(closed_error())
        } else {
            Ok(())
        }
    }

    /// The send path. Resilience stages go between validation and librdkafka.
    fn enqueue(&self, record: &Record<'_>, pending: Box<Pending>) -> Result<()> {
        record.validate(self.shared.max_message_bytes)?;
        if let Some(rate_limit) = &self.shared.rate_limit {
            self.check_open()?; // a closed producer fails at once rather than wait for a token
            rate_limit.acquire(record.size())?;
        }
        // (circuit breaker: fail fast or spool here)
        let open = self
            .shared
            .open
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if !*open {
            return Err(closed_error());
        }
        if let Some(fatal) = self.shared.fatal_error() {
            return Err(fatal);
        }

        let mut base: BaseRecord<'_, [u8], [u8], Box<Pending>> =
            BaseRecord::with_opaque_to(record.topic, pending);
        base.key = record.key;
        base.payload = record.value;
        base.partition = record.partition;
        base.timestamp = record.timestamp;
        if !record.headers.is_empty() {
            let headers = record.headers.iter().fold(
                OwnedHeaders::new_with_capacity(record.headers.len()),
                |h, header| {
                    h.insert(RdHeader {
                        key: header.key,
                        value: header.value,
                    })
                },
            );
            base.headers = Some(headers);
        }

        let tracker = &self.shared.tracker;
        tracker.accepted.fetch_add(1, Ordering::SeqCst);
        let mut deadline = None;
        loop {
            match self.shared.client.send(base) {
                Ok(()) => {
                    tracker.metrics.record_sent(record.size());
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // Backpressure: wait for room, never spin, never drop.
                    base = returned;
                    let now = Instant::now();
                    let deadline =
                        *deadline.get_or_insert_with(|| now + self.shared.settings.enqueue_timeout);
                    if now >= deadline {
                        tracker.finish_one();
                        return Err(Error::new(
                            ErrorKind::QueueFull,
                            format!(
                                "the local queue stayed full for enqueue.timeout.ms ({:?})",
                                self.shared.settings.enqueue_timeout
                            ),
                        ));
                    }
                    // Room comes a whole delivered batch at a time, so a short nap between tries
                    // costs nothing in throughput and keeps the delivery thread from waking us per message.
                    thread::sleep(QUEUE_FULL_RECHECK.min(deadline - now));
                }
                Err((error, _returned)) => {
                    tracker.finish_one();
                    return Err(match error.rdkafka_error_code() {
                        Some(code) => Error::from_code(code, "cannot enqueue"),
                        None => error.into(),
                    });
                }
            }
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let report = self.close(self.shared.settings.close_timeout);
        if !report.already_closed && !report.is_clean() {
            tracing::warn!(
                purged = report.purged,
                "producer dropped without close; undelivered messages were reported as failed"
            );
        }
    }
}

impl Shared {
    fn fatal_error(&self) -> Option<Error> {
        if !self.tracker.fatal.load(Ordering::Acquire) {
            return None;
        }
        let (code, reason) = self.client.client().fatal_error()?;
        Some(Error::new(
            ErrorKind::Fatal,
            format!("the producer failed fatally ({code}): {reason}; create a new producer"),
        ))
    }
}

fn closed_error() -> Error {
    Error::new(ErrorKind::Closed, "the producer is closed")
}

fn run_delivery_loop(shared: &Shared) {
    while !shared.stop.load(Ordering::Acquire) {
        shared.client.poll(POLL_INTERVAL);
    }
    // Reports made ready by a last purge.
    shared.client.poll(Duration::ZERO);
}

/// Counters and the wake-up signal shared by senders, flush/close and the delivery thread.
#[derive(Default)]
struct Tracker {
    // Senders write `accepted` and the delivery thread writes `completed`, once per message each:
    // on separate cache lines they do not bounce between the cores.
    /// Messages handed to librdkafka (or about to be).
    accepted: CachePadded<AtomicU64>,
    /// Messages done: reported, or never enqueued after all.
    completed: CachePadded<AtomicU64>,
    metrics: Metrics,
    /// Broker states and recent outcomes from librdkafka's statistics, for health.
    brokers: Mutex<BrokerView>,
    fatal: AtomicBool,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    wakeup: Condvar,
}

impl Tracker {
    fn in_flight(&self) -> usize {
        // `completed` first: it never passes `accepted`, which only grows.
        let completed = self.completed.load(Ordering::SeqCst);
        (self.accepted.load(Ordering::SeqCst) - completed) as usize
    }

    /// One message is done (reported, or never enqueued after all). Wakes flush and close, which
    /// wait for nothing to be in flight, when that happens.
    fn finish_one(&self) {
        self.completed.fetch_add(1, Ordering::SeqCst);
        // Waiters register before checking their condition, so this SeqCst pair never misses one.
        if self.waiters.load(Ordering::SeqCst) > 0 && self.in_flight() == 0 {
            let _guard = lock(&self.lock);
            self.wakeup.notify_all();
        }
    }

    /// Sleeps until `done()` holds or `deadline` passes; returns whether it holds.
    fn wait_until(&self, deadline: Instant, done: impl Fn() -> bool) -> bool {
        let mut guard = lock(&self.lock);
        loop {
            self.waiters.fetch_add(1, Ordering::SeqCst);
            if done() {
                self.waiters.fetch_sub(1, Ordering::SeqCst);
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                self.waiters.fetch_sub(1, Ordering::SeqCst);
                return false;
            }
            let slice = (deadline - now).min(WAIT_SLICE);
            guard = self
                .wakeup
                .wait_timeout(guard, slice)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// What travels through librdkafka with each message (its opaque pointer): no lookup per message.
struct Pending {
    // librdkafka's opaque must be Sync; the callback is only ever taken out by value, never shared.
    on_delivery: SyncWrapper<DeliveryCallback>,
    sent_at: Instant,
    attempts: u32,
}

impl Pending {
    fn new(on_delivery: DeliveryCallback) -> Pending {
        Pending {
            on_delivery: SyncWrapper::new(on_delivery),
            sent_at: Instant::now(),
            attempts: 1,
        }
    }
}

/// librdkafka's callbacks for our producer.
struct Context {
    tracker: Arc<Tracker>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn stats(&self, statistics: Statistics) {
        let retries = statistics
            .brokers
            .values()
            .map(|broker| broker.txretries)
            .sum();
        let metrics = &self.tracker.metrics;
        metrics.wire_retries.store(retries, Ordering::Relaxed);
        lock(&self.tracker.brokers).update(&statistics, metrics.delivered(), metrics.failed());
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            self.tracker.fatal.store(true, Ordering::Release);
            tracing::error!(target: "kafkasender", %error, reason, "producer failed fatally");
        } else {
            tracing::warn!(target: "kafkasender", %error, reason, "client error");
        }
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        let Pending {
            on_delivery,
            sent_at,
            attempts,
        } = *pending;
        let on_delivery = on_delivery.into_inner();
        let (message, outcome) = match result {
            Ok(message) => (message, Outcome::Delivered),
            Err((error, message)) => {
                let error = match error.rdkafka_error_code() {
                    Some(
                        code @ (RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight),
                    ) => {
                        self.tracker.metrics.purged.fetch_add(1, Ordering::AcqRel);
                        Error::from_code(
                            code,
                            "the producer closed before the message was acknowledged",
                        )
                    }
                    Some(code) => Error::from_code(code, "delivery failed"),
                    None => Error::from(error.clone()),
                };
                // (retry with backoff, dead-letter topic and spool take over failed messages here)
                (message, Outcome::Failed(error))
            }
        };
        let report = DeliveryReport {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: if matches!(outcome, Outcome::Delivered) {
                message.offset()
            } else {
                -1
            },
            timestamp: message.timestamp().to_millis(),
            key: message.key().map(<[u8]>::to_vec),
            attempts,
            latency: sent_at.elapsed(),
            outcome,
        };
        match &report.outcome {
            Outcome::Delivered => self.tracker.metrics.record_delivered(report.latency),
            Outcome::Failed(error) => self.tracker.metrics.record_failed(error.kind()),
        }
        // A panicking callback must not take the delivery thread (and every later report) with it.
        if panic::catch_unwind(AssertUnwindSafe(|| on_delivery(report))).is_err() {
            self.tracker
                .metrics
                .callback_panics
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(target: "kafkasender", "a delivery callback panicked; the panic was caught");
        }
        self.tracker.finish_one();
    }
}

impl DeliveryReport {
    /// The report of a record that never reached librdkafka.
    fn not_enqueued(record: &Record<'_>, error: Error) -> DeliveryReport {
        DeliveryReport {
            topic: record.topic.to_string(),
            partition: record.partition.unwrap_or(-1),
            offset: -1,
            timestamp: record.timestamp,
            key: record.key.map(<[u8]>::to_vec),
            attempts: 0,
            latency: Duration::ZERO,
            outcome: Outcome::Failed(error),
        }
    }
}

/// Collects a batch's reports and hands them over once the last one is in.
struct Batch {
    reports: Mutex<Vec<Option<DeliveryReport>>>,
    remaining: AtomicUsize,
    on_delivery: Mutex<Option<BatchCallback>>,
}

impl Batch {
    fn new(len: usize, on_delivery: BatchCallback) -> Batch {
        Batch {
            reports: Mutex::new(vec![None; len]),
            remaining: AtomicUsize::new(len),
            on_delivery: Mutex::new(Some(on_delivery)),
        }
    }

    fn complete(&self, index: usize, report: DeliveryReport) {
        lock(&self.reports)[index] = Some(report);
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let reports = std::mem::take(&mut *lock(&self.reports));
            self.finish(
                reports
                    .into_iter()
                    .map(|r| r.expect("every slot is filled once"))
                    .collect(),
            );
        }
    }

    fn finish_empty(&self) {
        self.finish(Vec::new());
    }

    fn finish(&self, reports: Vec<DeliveryReport>) {
        if let Some(on_delivery) = lock(&self.on_delivery).take() {
            on_delivery(reports);
        }
    }
}

/// The future returned by [`Producer::send_async`]: the report when delivered, the error otherwise.
#[must_use = "the outcome of a send is only known by awaiting its future"]
pub struct DeliveryFuture {
    state: FutureState,
}

enum FutureState {
    Waiting(oneshot::Receiver<DeliveryReport>),
    Failed(Option<Error>),
}

impl Future for DeliveryFuture {
    type Output = Result<DeliveryReport>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            FutureState::Failed(error) => Poll::Ready(Err(error
                .take()
                .expect("DeliveryFuture polled after it completed"))),
            FutureState::Waiting(receiver) => match Pin::new(receiver).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(report)) => Poll::Ready(report.into_result()),
                Poll::Ready(Err(oneshot::Canceled)) => Poll::Ready(Err(Error::new(
                    ErrorKind::Internal,
                    "the delivery report was lost",
                ))),
            },
        }
    }
}
