//! The producer: validates and enqueues records into librdkafka, and reports every accepted send
//! exactly once, on one producer-owned delivery thread.
//!
//! The send path, in order (DESIGN.md): validate → rate limit → circuit breaker → librdkafka
//! ([`Shared::submit`]); after a failure: re-send with backoff → dead-letter topic → spool
//! ([`crate::rescue`]).

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
use rdkafka::message::{BorrowedMessage, Header as RdHeader, Headers, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext, PurgeConfig,
};
use rdkafka::statistics::Statistics;
use sync_wrapper::SyncWrapper;

use crate::breaker::{Admission, BreakerState, Transition};
use crate::config::{Config, Settings};
use crate::delivery::{BatchCallback, DeliveryCallback, DeliveryReport, Outcome};
use crate::error::{ConfigProblem, Error, ErrorKind, Result};
use crate::health::{BrokerView, Health, HealthStatus};
use crate::lock;
use crate::metrics::{Gauges, Metrics, MetricsSnapshot};
use crate::ratelimit::RateLimit;
use crate::record::{OwnedRecord, Record};
use crate::rescue::{self, Parcel, ReplayReport, Rescue};
use crate::spool::{now_ms, SpooledMessage};

/// How long one poll of librdkafka's queue waits; also the longest a close waits for the
/// delivery thread to notice it should stop.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Longest single sleep of a waiter, so a missed wake-up costs at most this much.
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// How long a sender blocked on a full queue sleeps before trying again.
const QUEUE_FULL_RECHECK: Duration = Duration::from_millis(1);
/// What a statistics callback receives: librdkafka's statistics JSON, every `statistics.interval.ms`.
pub type StatisticsCallback = Box<dyn Fn(&str) + Send + Sync + 'static>;
/// How long close waits for librdkafka to report the messages it purged.
const PURGE_GRACE: Duration = Duration::from_secs(5);

/// A Kafka producer. Share it between threads (it is `Send + Sync`); [`Producer::close`] it when
/// done, or let `Drop` close it with `close.timeout.ms`.
pub struct Producer {
    shared: Arc<Shared>,
    delivery_thread: Mutex<Option<JoinHandle<()>>>,
    rescue_thread: Mutex<Option<JoinHandle<()>>>,
    delivery_thread_id: ThreadId,
}

/// State shared by the sending threads, the delivery thread and the rescue worker.
pub(crate) struct Shared {
    client: BaseProducer<Context>,
    tracker: Arc<Tracker>,
    pub(crate) rescue: Arc<Rescue>,
    /// `true` while open. Sends hold it for reading, close takes it for writing, so no send can
    /// slip in between close's last check and its purge.
    open: RwLock<bool>,
    stop: AtomicBool,
    pub(crate) settings: Settings,
    max_message_bytes: usize,
    client_id: String,
    rate_limit: Option<RateLimit>,
}

/// What a closed producer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReport {
    /// Messages still unacknowledged when close began.
    pub in_flight_at_close: usize,
    /// Messages that were not delivered in time and were reported `Failed` with
    /// [`ErrorKind::Closed`] (with a spool, they are spooled instead and not counted here).
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
    /// Creates a producer, its delivery thread and its rescue worker. Nothing connects until the
    /// first send; a spool left in `spool.dir` by an earlier producer is replayed right away.
    pub fn new(config: Config) -> Result<Producer> {
        Producer::with_statistics(config, None)
    }

    /// Like [`Producer::new`], and passes librdkafka's statistics JSON to `on_statistics` every
    /// `statistics.interval.ms` (on the delivery thread; keep it short).
    pub fn with_statistics(
        config: Config,
        on_statistics: Option<StatisticsCallback>,
    ) -> Result<Producer> {
        let tracker = Arc::new(Tracker::default());
        let rescue = Arc::new(Rescue::new(&config.settings().resilience)?);
        let client: BaseProducer<Context> = config
            .client_config()
            .create_with_context(Context {
                tracker: tracker.clone(),
                rescue: rescue.clone(),
                on_statistics,
                last_error: Mutex::new(None),
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
            rescue,
            open: RwLock::new(true),
            stop: AtomicBool::new(false),
            settings: config.settings().clone(),
            max_message_bytes: config.max_message_bytes(),
            client_id: config.get("client.id").unwrap_or_default().to_string(),
            rate_limit: RateLimit::from_settings(config.settings()),
        });
        let spawn = |name: &str, run: fn(&Shared)| {
            let thread_shared = shared.clone();
            thread::Builder::new()
                .name(name.into())
                .spawn(move || run(&thread_shared))
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Internal,
                        format!("cannot start the {name} thread: {e}"),
                    )
                })
        };
        let delivery_thread = spawn("kafkasender-delivery", run_delivery_loop)?;
        let rescue_thread = spawn("kafkasender-rescue", rescue::run_worker)?;
        shared.rescue.request_replay();
        Ok(Producer {
            delivery_thread_id: delivery_thread.thread().id(),
            delivery_thread: Mutex::new(Some(delivery_thread)),
            rescue_thread: Mutex::new(Some(rescue_thread)),
            shared,
        })
    }

    /// Creates a producer from `KAFKA_*` environment variables.
    pub fn from_env() -> Result<Producer> {
        Producer::new(Config::from_env()?)
    }

    /// Validates and enqueues a record; `on_delivery` later runs exactly once with its report, on
    /// the delivery thread. Returns an error (and never runs `on_delivery`) only for what is known
    /// at once: an invalid or oversized record, a closed or fatally failed producer, a queue that
    /// stayed full or a rate limit without a token for `enqueue.timeout.ms`, an open circuit
    /// breaker without a spool, or a full spool. Blocks only while waiting for queue room or a token.
    pub fn send(&self, record: &Record<'_>, on_delivery: DeliveryCallback) -> Result<()> {
        self.shared
            .submit(record, Box::new(Pending::new(on_delivery)))
    }

    /// Like [`Producer::send`], but never waits. Errors are those of `send`.
    pub fn try_send(&self, record: &Record<'_>, on_delivery: DeliveryCallback) -> Result<TrySend> {
        if self.shared.rate_limit.is_some() {
            // Any send may wait for a token.
            return Ok(TrySend::WouldBlock(on_delivery));
        }
        match self
            .shared
            .submit_until(record, Box::new(Pending::new(on_delivery)), || true)
        {
            Ok(()) => Ok(TrySend::Sent),
            Err(Refused::QueueFull(_, pending)) => {
                Ok(TrySend::WouldBlock(pending.on_delivery.into_inner()))
            }
            Err(Refused::Now(error)) => Err(error),
        }
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
            // Scheduled re-sends go to the spool or fail, then librdkafka's queue is purged.
            self.shared.rescue.abandon();
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
        // The worker first, so that whatever it still hands off is reported by the delivery thread.
        self.shared.rescue.stop_worker();
        if waiting_allowed {
            join(&self.rescue_thread);
        }
        self.shared.stop.store(true, Ordering::Release);
        if waiting_allowed {
            join(&self.delivery_thread);
        }
        if let Some(spool) = &self.shared.rescue.spool {
            spool.release();
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
        self.shared.is_closed()
    }

    /// Re-sends what the spool holds (see [`crate::spool`]); returns once every record is
    /// enqueued, and each is then reported to the metrics like any send. Happens by itself when
    /// the circuit breaker closes and when a producer starts on a spool. Fails with
    /// [`ErrorKind::Config`] without a `spool.dir` and [`ErrorKind::CircuitOpen`] while the
    /// breaker is open.
    pub fn replay_spool(&self) -> Result<ReplayReport> {
        self.check_open()?;
        rescue::replay(&self.shared)
    }

    /// The circuit breaker's state (`Closed` when there is no breaker).
    pub fn breaker_state(&self) -> BreakerState {
        self.shared.rescue.breaker_state()
    }

    /// The producer's counters, gauges and delivery-latency summary now.
    pub fn metrics(&self) -> MetricsSnapshot {
        let tracker = &self.shared.tracker;
        let rescue = &self.shared.rescue;
        tracker.metrics.snapshot(Gauges {
            sent: tracker.accepted.load(Ordering::SeqCst),
            in_flight: tracker.in_flight() as u64,
            queue_depth: u64::try_from(self.shared.client.in_flight_count()).unwrap_or(0),
            retried: rescue.retried.load(Ordering::Relaxed),
            replayed: rescue.replayed.load(Ordering::Relaxed),
            spool_torn_records: rescue.torn_records.load(Ordering::Relaxed),
            spool_bytes: rescue.spool.as_ref().map_or(0, |s| s.bytes()),
            breaker_state: rescue.breaker_state(),
            breaker_trips: rescue.breaker.as_ref().map_or(0, |b| b.trips()),
        })
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
        match self.breaker_state() {
            BreakerState::Open => health.flag(
                HealthStatus::Unhealthy,
                "the circuit breaker is open: sends fail fast or are spooled",
            ),
            BreakerState::HalfOpen => health.flag(
                HealthStatus::Degraded,
                "the circuit breaker is half-open: probing the brokers",
            ),
            BreakerState::Closed => {}
        }
        if let Some(bytes) = self
            .shared
            .rescue
            .spool
            .as_ref()
            .map(|s| s.bytes())
            .filter(|b| *b > 0)
        {
            health.flag(
                HealthStatus::Degraded,
                format!("{bytes} bytes of messages wait in the spool"),
            );
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
    /// The send path up to librdkafka: validate → rate limit → circuit breaker → enqueue, waiting
    /// for queue room up to `enqueue.timeout.ms`.
    pub(crate) fn submit(&self, record: &Record<'_>, pending: Box<Pending>) -> Result<()> {
        let deadline = Instant::now() + self.settings.enqueue_timeout;
        self.submit_until(record, pending, || Instant::now() >= deadline)
            .map_err(Refused::into_error)
    }

    /// [`Shared::submit`], giving up on a full queue when `give_up()` says so; the pending
    /// message then comes back with the `queue_full` error.
    fn submit_until(
        &self,
        record: &Record<'_>,
        mut pending: Box<Pending>,
        give_up: impl Fn() -> bool,
    ) -> std::result::Result<(), Refused> {
        record.validate(self.max_message_bytes)?;
        if let Some(rate_limit) = &self.rate_limit {
            if self.is_closed() {
                return Err(closed_error().into()); // rather than wait for a token first
            }
            rate_limit.acquire(record.size())?;
        }
        // Held until the message is enqueued, so close cannot slip in between this check and its purge.
        let open = self.open.read().unwrap_or_else(PoisonError::into_inner);
        if !*open {
            return Err(closed_error().into());
        }
        if let Some(fatal) = self.fatal_error() {
            return Err(fatal.into());
        }
        let breaker = self.rescue.breaker.as_ref();
        let admission = breaker.map_or(Admission::Pass, |b| b.admit(Instant::now()));
        let tracker = &self.tracker;
        match admission {
            Admission::Pass => {}
            Admission::Probe => pending.probe = true,
            Admission::Reject => {
                let owned = OwnedRecord::from(record);
                let reason = rescue::circuit_open_error();
                // Without a spool, or with a full one, the caller hears it now.
                let path = self
                    .rescue
                    .spool(&owned, &pending, &reason)
                    .unwrap_or(Err(reason.clone()))?;
                tracker.accepted.fetch_add(1, Ordering::SeqCst);
                tracker.metrics.record_sent(record.size());
                let report =
                    DeliveryReport::of_record(&owned, &pending, Outcome::Spooled { path, reason });
                self.rescue.hand_off((pending, report));
                return Ok(());
            }
        }
        tracker.accepted.fetch_add(1, Ordering::SeqCst);
        match self.produce(record, pending, give_up) {
            Ok(()) => {
                tracker.metrics.record_sent(record.size());
                Ok(())
            }
            Err((error, pending)) => {
                tracker.finish_one();
                if let (true, Some(breaker)) = (pending.probe, breaker) {
                    // A probe that never went out must not hold a half-open breaker's slot.
                    breaker.release_probe();
                }
                Err(if error.kind() == ErrorKind::QueueFull {
                    Refused::QueueFull(error, pending)
                } else {
                    Refused::Now(error)
                })
            }
        }
    }

    /// Hands a record to librdkafka, waiting for queue room until `give_up()` (backpressure: never
    /// spin, never drop). On failure the error comes back with the pending message.
    pub(crate) fn produce(
        &self,
        record: &Record<'_>,
        pending: Box<Pending>,
        give_up: impl Fn() -> bool,
    ) -> std::result::Result<(), (Error, Box<Pending>)> {
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
        loop {
            match self.client.send(base) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    if give_up() {
                        return Err((
                            Error::new(
                                ErrorKind::QueueFull,
                                format!(
                                    "the local queue stayed full for enqueue.timeout.ms ({:?})",
                                    self.settings.enqueue_timeout
                                ),
                            ),
                            returned.delivery_opaque,
                        ));
                    }
                    base = returned;
                    // Room comes a whole delivered batch at a time, so a short nap between tries
                    // costs nothing in throughput and keeps the delivery thread from waking us per message.
                    thread::sleep(QUEUE_FULL_RECHECK);
                }
                Err((error, returned)) => {
                    let error = match error.rdkafka_error_code() {
                        Some(code) => Error::from_code(code, "cannot enqueue"),
                        None => error.into(),
                    };
                    return Err((error, returned.delivery_opaque));
                }
            }
        }
    }

    fn is_closed(&self) -> bool {
        !*self.open.read().unwrap_or_else(PoisonError::into_inner)
    }

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

/// Whether librdkafka's "N/M brokers are down" says all of them: it also raises the event as
/// "0/1 brokers are down" while it swaps its bootstrap entry for the brokers it learned of.
fn all_counted_down(reason: &str) -> bool {
    let counts = reason
        .split_whitespace()
        .next()
        .and_then(|c| c.split_once('/'));
    matches!(counts, Some((down, all)) if down == all && all != "0")
}

/// Why a send was not accepted.
enum Refused {
    Now(Error),
    /// The queue stayed full; the message comes back (for [`Producer::try_send`]).
    QueueFull(Error, Box<Pending>),
}

impl From<Error> for Refused {
    fn from(error: Error) -> Refused {
        Refused::Now(error)
    }
}

impl Refused {
    fn into_error(self) -> Error {
        match self {
            Refused::Now(error) | Refused::QueueFull(error, _) => error,
        }
    }
}

/// What [`Producer::try_send`] did.
pub enum TrySend {
    /// Accepted: the callback runs once with the report.
    Sent,
    /// Accepting it now would mean waiting (a full queue, or a rate limit): the callback comes
    /// back unused, for a [`Producer::send`] after the caller has let go of whatever it must not
    /// hold while waiting (Python's GIL, Node's event loop).
    WouldBlock(DeliveryCallback),
}

fn closed_error() -> Error {
    Error::new(ErrorKind::Closed, "the producer is closed")
}

fn join(thread: &Mutex<Option<JoinHandle<()>>>) {
    let handle = lock(thread).take();
    if let Some(handle) = handle {
        let _ = handle.join();
    }
}

fn run_delivery_loop(shared: &Shared) {
    let report_handoffs = || {
        for (pending, report) in shared.rescue.take_handoffs() {
            shared.tracker.finish(*pending, report);
        }
    };
    while !shared.stop.load(Ordering::Acquire) {
        shared.client.poll(POLL_INTERVAL);
        report_handoffs();
    }
    // Reports made ready by a last purge or a last hand-off.
    shared.client.poll(Duration::ZERO);
    report_handoffs();
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

    /// Reports one message: counts its outcome, runs its callback (catching a panic), and marks it done.
    fn finish(&self, pending: Pending, report: DeliveryReport) {
        match &report.outcome {
            Outcome::Delivered => self.metrics.record_delivered(report.latency),
            Outcome::DeadLettered { .. } => self.metrics.record_dead_lettered(),
            Outcome::Spooled { .. } => self.metrics.record_spooled(),
            Outcome::Failed(error) => {
                if error.kind() == ErrorKind::Closed {
                    self.metrics.purged.fetch_add(1, Ordering::AcqRel);
                }
                self.metrics.record_failed(error.kind());
            }
        }
        let on_delivery = pending.on_delivery.into_inner();
        // A panicking callback must not take the delivery thread (and every later report) with it.
        if panic::catch_unwind(AssertUnwindSafe(|| on_delivery(report))).is_err() {
            self.metrics.callback_panics.fetch_add(1, Ordering::Relaxed);
            tracing::error!(target: "kafkasender", "a delivery callback panicked; the panic was caught");
        }
        self.finish_one();
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
pub(crate) struct Pending {
    // librdkafka's opaque must be Sync; the callback is only ever taken out by value, never shared.
    on_delivery: SyncWrapper<DeliveryCallback>,
    sent_at: Instant,
    pub(crate) last_attempt_at: Instant,
    pub(crate) attempts: u32,
    /// The partition the caller asked for (librdkafka's message only knows the assigned one).
    partition: Option<i32>,
    /// The partition librdkafka had assigned when it last reported the message (-1: none); re-sends
    /// keep their order within it.
    pub(crate) assigned_partition: i32,
    /// A half-open circuit breaker's probe: its result decides the breaker's state.
    pub(crate) probe: bool,
    pub(crate) stage: Stage,
}

/// Where a message is on its way.
pub(crate) enum Stage {
    /// Going to its own topic.
    Original,
    /// Going to the dead-letter topic instead.
    DeadLetter {
        original: Box<OwnedRecord>,
        reason: Error,
    },
}

impl Pending {
    fn new(on_delivery: DeliveryCallback) -> Pending {
        let now = Instant::now();
        Pending {
            on_delivery: SyncWrapper::new(on_delivery),
            sent_at: now,
            last_attempt_at: now,
            attempts: 1,
            partition: None,
            assigned_partition: -1,
            probe: false,
            stage: Stage::Original,
        }
    }

    /// A message read back from the spool.
    pub(crate) fn replayed(
        on_delivery: DeliveryCallback,
        spooled: &SpooledMessage,
    ) -> Box<Pending> {
        let mut pending = Pending::new(on_delivery);
        pending.attempts = spooled.attempts + 1;
        pending.partition = spooled.record.partition;
        Box::new(pending)
    }

    /// Wall-clock time of the first attempt, in milliseconds since the epoch (derived on the
    /// failure path only, so the send path reads no wall clock).
    pub(crate) fn first_attempt_ms(&self) -> i64 {
        wall_clock_ms(self.sent_at)
    }

    /// Wall-clock time of the latest attempt, in milliseconds since the epoch.
    pub(crate) fn last_attempt_ms(&self) -> i64 {
        wall_clock_ms(self.last_attempt_at)
    }
}

/// An instant of the monotonic clock as wall-clock milliseconds since the epoch.
fn wall_clock_ms(at: Instant) -> i64 {
    now_ms() - i64::try_from(at.elapsed().as_millis()).unwrap_or(0)
}

/// librdkafka's callbacks for our producer.
struct Context {
    tracker: Arc<Tracker>,
    rescue: Arc<Rescue>,
    on_statistics: Option<StatisticsCallback>,
    /// The last error event and when it came (see [`Context::is_second_report_of_last_error`]).
    last_error: Mutex<Option<(String, Instant)>>,
}

/// How close together two reports of one error event arrive.
const SAME_EVENT_WINDOW: Duration = Duration::from_millis(2);

impl Context {
    /// rust-rdkafka 0.39 hands each error event to `ClientContext::error` twice (`Client::poll_event`
    /// handles it and returns it, and `BaseProducer::poll` handles it again), back to back on the
    /// delivery thread. The second of two identical reports within a few milliseconds is that
    /// echo; skipping it costs nothing even if it was a real repeat, which says nothing new.
    fn is_second_report_of_last_error(&self, error: &KafkaError, reason: &str) -> bool {
        let event = format!("{error}|{reason}");
        let now = Instant::now();
        let mut last = lock(&self.last_error);
        let echo = matches!(&*last, Some((previous, at)) if *previous == event && now.duration_since(*at) < SAME_EVENT_WINDOW);
        *last = if echo { None } else { Some((event, now)) };
        echo
    }
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

    fn stats_raw(&self, statistics: &[u8]) {
        if let Some(on_statistics) = &self.on_statistics {
            if let Ok(json) = std::str::from_utf8(statistics) {
                if panic::catch_unwind(AssertUnwindSafe(|| on_statistics(json))).is_err() {
                    tracing::error!(target: "kafkasender", "the statistics callback panicked; the panic was caught");
                }
            }
        }
        match serde_json::from_slice(statistics) {
            Ok(parsed) => self.stats(parsed),
            Err(error) => {
                tracing::warn!(target: "kafkasender", %error, "unreadable librdkafka statistics")
            }
        }
    }

    fn stats(&self, statistics: Statistics) {
        // librdkafka counts every transmission of a message (`txmsgs`) and every message
        // produced (`msgs`) per partition; transmissions beyond one per message are wire retries.
        let retries = statistics
            .topics
            .values()
            .flat_map(|topic| topic.partitions.values())
            .filter(|partition| partition.partition >= 0)
            .map(|partition| partition.txmsgs.saturating_sub(partition.msgs))
            .sum();
        let metrics = &self.tracker.metrics;
        metrics.wire_retries.store(retries, Ordering::Relaxed);
        lock(&self.tracker.brokers).update(&statistics, metrics.delivered(), metrics.failed());
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if self.is_second_report_of_last_error(&error, reason) {
            return;
        }
        let code = error.rdkafka_error_code();
        if code == Some(RDKafkaErrorCode::Fatal) {
            self.tracker.fatal.store(true, Ordering::Release);
            tracing::error!(target: "kafkasender", %error, reason, "producer failed fatally");
        } else if code == Some(RDKafkaErrorCode::AllBrokersDown) && all_counted_down(reason) {
            tracing::warn!(target: "kafkasender", reason, "all brokers are down");
            if let Some(breaker) = &self.rescue.breaker {
                breaker.trip("all brokers are down", Instant::now());
            }
        } else {
            tracing::warn!(target: "kafkasender", %error, reason, "client error");
        }
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, mut pending: Box<Pending>) {
        let (message, error) = match result {
            Ok(message) => (message, None),
            Err((error, message)) => {
                let error = match error.rdkafka_error_code() {
                    Some(
                        code @ (RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight),
                    ) => Error::from_code(
                        code,
                        "the producer closed before the message was acknowledged",
                    ),
                    Some(code) => Error::from_code(code, "delivery failed"),
                    None => Error::from(error.clone()),
                };
                (message, Some(error))
            }
        };
        if let (Stage::Original, Some(breaker)) = (&pending.stage, &self.rescue.breaker) {
            // Only failures that say the brokers are in trouble count, not refusals of one message.
            let brokers_failing = error
                .as_ref()
                .is_some_and(|e| e.is_retriable() && e.kind() != ErrorKind::Closed);
            if breaker.record(brokers_failing, pending.probe, Instant::now()) == Transition::Closed
            {
                self.rescue.request_replay();
            }
        }
        pending.probe = false;
        let Some(error) = error else {
            let outcome = match std::mem::replace(&mut pending.stage, Stage::Original) {
                Stage::Original => Outcome::Delivered,
                Stage::DeadLetter { original, reason } => {
                    let report = DeliveryReport {
                        topic: original.topic,
                        ..DeliveryReport::of_message(
                            message,
                            &pending,
                            Outcome::DeadLettered {
                                topic: message.topic().to_string(),
                                reason,
                            },
                        )
                    };
                    return self.tracker.finish(*pending, report);
                }
            };
            let report = DeliveryReport::of_message(message, &pending, outcome);
            return self.tracker.finish(*pending, report);
        };
        let record = OwnedRecord::of_message(message, pending.partition);
        pending.assigned_partition = message.partition();
        if let Some((pending, report)) = self.rescue.after_failure(Parcel {
            record,
            pending,
            error,
        }) {
            self.tracker.finish(*pending, report);
        }
    }
}

impl DeliveryReport {
    /// The report of a message librdkafka reported on.
    fn of_message(
        message: &BorrowedMessage<'_>,
        pending: &Pending,
        outcome: Outcome,
    ) -> DeliveryReport {
        let placed = matches!(outcome, Outcome::Delivered | Outcome::DeadLettered { .. });
        DeliveryReport {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: if placed { message.offset() } else { -1 },
            timestamp: message.timestamp().to_millis(),
            key: message.key().map(<[u8]>::to_vec),
            attempts: pending.attempts,
            latency: pending.sent_at.elapsed(),
            outcome,
        }
    }

    /// The report of a message that librdkafka no longer holds (spooled, or failed on the way).
    pub(crate) fn of_record(
        record: &OwnedRecord,
        pending: &Pending,
        outcome: Outcome,
    ) -> DeliveryReport {
        DeliveryReport {
            topic: record.topic.clone(),
            partition: record.partition.unwrap_or(-1),
            offset: -1,
            timestamp: record.timestamp,
            key: record.key.clone(),
            attempts: pending.attempts,
            latency: pending.sent_at.elapsed(),
            outcome,
        }
    }

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
    /// What librdkafka gives back of a failed message, to send again.
    fn of_message(message: &BorrowedMessage<'_>, partition: Option<i32>) -> OwnedRecord {
        OwnedRecord {
            topic: message.topic().to_string(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers: message.headers().map_or_else(Vec::new, |headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            }),
            partition,
            timestamp: message.timestamp().to_millis(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::all_counted_down;

    #[test]
    fn only_an_all_brokers_down_event_that_counts_all_of_them_trips_the_breaker() {
        assert!(all_counted_down("1/1 brokers are down"));
        assert!(all_counted_down("3/3 brokers are down"));
        assert!(!all_counted_down("0/1 brokers are down"));
        assert!(!all_counted_down("2/3 brokers are down"));
        assert!(!all_counted_down("0/0 brokers are down"));
        assert!(!all_counted_down(""));
    }
}
