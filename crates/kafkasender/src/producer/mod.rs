//! The producer: validates and enqueues records into librdkafka, and reports every accepted send
//! exactly once, on one producer-owned delivery thread.
//!
//! The send path reads from the file list, each module one stage, dependencies pointing one way:
//! - [`Producer`] (this file): the API, its threads, and the path from the gate to the engine;
//! - `gate`: 1. validate, 2. rate limit, 3. circuit breaker, before anything is enqueued;
//! - `engine`: 4. librdkafka, with backpressure on a full queue, and the delivery loop (a batch's
//!   runs of plain records go in together, without the per-record topic lookup);
//! - `poll`: librdkafka's event queue, served on the delivery thread; each report goes to
//! - `context`: librdkafka's callbacks: a delivered message is reported, a failed one goes to
//! - `rescue`: 5. client re-send with backoff, then the dead-letter topic, then the spool;
//! - `replay`: what the spool kept goes through the path again, but what `lookup` finds in its
//!   topic already;
//! - `transaction`: with `transactional.id`, reports wait for their transaction's end;
//! - `recovery`: a client that failed fatally is replaced, what it held sent again.
//!
//! Each message carries its bookkeeping and callback as librdkafka's opaque (`message`), so no
//! report needs a lookup; `tracker` counts what is in flight and runs each callback exactly once.

mod batch;
mod context;
mod engine;
mod future;
mod gate;
mod health_check;
mod lookup;
mod message;
mod partitioner;
mod poll;
mod produce;
mod publish;
mod recovery;
mod replay;
mod rescue;
mod round_robin;
mod send_span;
mod tracker;
mod transaction;
mod watchdog;

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex, OnceLock, RwLock};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use futures_channel::oneshot;

use self::batch::Batch;
pub use self::context::StatisticsCallback;
use self::context::{Context, Finished, Written};
use self::engine::{Engine, TransactionCall};
pub use self::future::DeliveryFuture;
use self::gate::Gate;
use self::health_check::HealthCheck;
use self::lookup::{FindWritten, Lookup};
use self::message::Ticket;
use self::partitioner::CustomPartitioner;
pub use self::partitioner::{PartitionRequest, PartitionerFn};
use self::publish::EventRouting;
use self::recovery::Recovery;
pub use self::replay::ReplayReport;
use self::rescue::Rescue;
use self::send_span::SendSpan;
use self::tracker::Tracker;
use self::transaction::Transactions;
use self::watchdog::Watchdog;
use crate::breaker::{Admission, BreakerState};
use crate::config::{Config, PartitionStrategy, Settings};
use crate::delivery::{BatchCallback, DeliveryReport, Outcome, ReportSink};
use crate::error::{Error, ErrorKind, Result};
use crate::events::TopicMap;
use crate::health::{Health, HealthStatus};
use crate::lock;
use crate::metrics::{Gauges, MetricsSnapshot};
use crate::record::{OwnedRecord, Record};

/// How long close waits for librdkafka to report the messages it purged.
const PURGE_GRACE: Duration = Duration::from_secs(5);
/// librdkafka's `transaction.timeout.ms`, which also bounds `init_transactions` at start.
const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long close waits for the answers to requests in flight once the rest is purged.
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(1);

/// A Kafka producer. Share it between threads (it is `Send + Sync`); [`Producer::close`] it when
/// done, or let `Drop` close it with `close.timeout.ms`.
pub struct Producer {
    shared: Arc<Shared>,
    delivery_thread: Mutex<Option<JoinHandle<()>>>,
    rescue_thread: Mutex<Option<JoinHandle<()>>>,
    delivery_thread_id: ThreadId,
}

/// What the sending threads, the delivery thread and the rescue worker share.
struct Shared {
    gate: Gate,
    engine: Engine,
    rescue: Arc<Rescue>,
    /// With message ids and a spool: what replays look their records up with.
    lookup: Option<Lookup>,
    settings: Settings,
    client_id: String,
    /// `bootstrap.servers`, for health's reasons before any broker is known.
    bootstrap_servers: String,
    /// With `transactional.id`.
    transactions: Option<Transactions>,
    /// `transaction.timeout.ms`, which also bounds `init_transactions`.
    transaction_timeout: Duration,
    /// Asks the cluster when health's evidence is stale; started by the first `health()`.
    health_check: Arc<HealthCheck>,
    /// Where `publish_event` sends each event type, and its key.
    events: EventRouting,
    /// A partitioner function of the user's, once set (see `Producer::set_partitioner`).
    partitioner: OnceLock<CustomPartitioner>,
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
        if config.idempotent_messages_time_out() {
            tracing::warn!(target: "kafkasender", "message.timeout.ms is set on an idempotent producer: after a timeout librdkafka starts a new producer epoch and sends the messages then waiting for a retry again, which can write them twice (each copy with the same x-ks-id, if ids are on); leave it unset for no copies");
        }
        let gate = Gate::new(&config);
        let rescue = Arc::new(Rescue::new(
            &config.settings().resilience,
            gate.breaker.clone(),
        )?);
        let journal = rescue.spool.clone().filter(|spool| spool.journals());
        let settings = config.settings();
        let recovery = Recovery::new(settings.recovery_max, settings.recovery_window);
        let context = Context {
            tracker: Arc::new(Tracker::new(journal, recovery)),
            breaker: gate.breaker.clone(),
            failures: rescue.clone(),
            on_statistics: on_statistics.map(Arc::new),
            credentials: Default::default(),
            native: Default::default(),
            round_robin: (settings.partition_strategy == PartitionStrategy::RoundRobin)
                .then(Default::default),
        };
        let shared = Arc::new(Shared {
            engine: Engine::new(&config, context)?,
            gate,
            lookup: rescue.spool.as_ref().and_then(|_| Lookup::new(&config)),
            rescue,
            settings: config.settings().clone(),
            client_id: config.get("client.id").unwrap_or_default().to_string(),
            bootstrap_servers: config
                .get("bootstrap.servers")
                .unwrap_or_default()
                .to_string(),
            transactions: config.get("transactional.id").map(|_| Transactions::new()),
            transaction_timeout: config
                .get("transaction.timeout.ms")
                .and_then(|ms| ms.parse().ok())
                .map_or(DEFAULT_TRANSACTION_TIMEOUT, Duration::from_millis),
            health_check: Arc::new(HealthCheck::new(settings.health_check_interval)),
            events: EventRouting {
                topics: RwLock::new(TopicMap::parse(
                    &settings.events.topic_map,
                    &settings.events.default_topic,
                )?),
                key_field: settings.events.key_field.clone(),
            },
            partitioner: OnceLock::new(),
        });
        type Run = Box<dyn FnOnce(&Arc<Shared>) + Send>;
        let spawn = |name: &str, run: Run| {
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
        let watchdog = Watchdog::new(&config);
        let delivery_thread = spawn(
            "kafkasender-delivery",
            Box::new(|shared| {
                shared.engine.run_delivery_loop(watchdog, || {
                    recovery::recover(
                        &shared.engine,
                        shared.transactions.as_ref(),
                        shared.transaction_timeout,
                        &|finished| shared.rescue.hand_off(finished),
                    )
                })
            }),
        )?;
        let rescue_thread = spawn(
            "kafkasender-rescue",
            Box::new(|shared| {
                rescue::run_worker(&shared.engine, &shared.rescue, || {
                    let replayed = shared.replay();
                    if let Err(error) = &replayed {
                        tracing::debug!(target: "kafkasender", %error, "automatic spool replay stopped; it resumes later");
                    }
                    replayed.is_ok()
                })
            }),
        )?;
        shared.rescue.request_replay();
        let producer = Producer {
            delivery_thread_id: delivery_thread.thread().id(),
            delivery_thread: Mutex::new(Some(delivery_thread)),
            rescue_thread: Mutex::new(Some(rescue_thread)),
            shared,
        };
        if producer.is_transactional() {
            // Registers the transactional id with its coordinator, fencing an older producer
            // with the same id; a failure drops (and so closes) the producer.
            let timeout = producer.shared.transaction_timeout;
            producer
                .shared
                .engine
                .transaction_call(TransactionCall::Init(timeout))
                .map_err(|failure| failure.error)?;
        }
        Ok(producer)
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
    ///
    /// `on_delivery` is stored with the message in one allocation: pass a closure, not a `Box`.
    pub fn send<F>(&self, record: &Record<'_>, on_delivery: F) -> Result<()>
    where
        F: FnOnce(DeliveryReport) + Send + 'static,
    {
        match SendSpan::start(std::slice::from_ref(record)) {
            None => self.shared.submit(record, Ticket::new(on_delivery)),
            Some((span, headers)) => {
                let traced = headers.traced(std::slice::from_ref(record));
                let if_refused = span.handle();
                let sent = self.shared.submit(
                    &traced[0],
                    Ticket::new(move |report: DeliveryReport| {
                        span.end(&report);
                        on_delivery(report)
                    }),
                );
                if let Err(error) = &sent {
                    if_refused.fail(error);
                }
                sent
            }
        }
    }

    /// Like [`Producer::send`], but never waits: where `send` would wait for queue room or a
    /// rate-limit token, the callback comes back unused. Errors are those of `send`.
    pub fn try_send<F>(&self, record: &Record<'_>, on_delivery: F) -> Result<TrySend<F>>
    where
        F: FnOnce(DeliveryReport) + Send + 'static,
    {
        if self.shared.gate.may_wait() {
            return Ok(TrySend::WouldBlock(on_delivery));
        }
        match self.shared.try_submit(record, Ticket::new(on_delivery))? {
            None => Ok(TrySend::Sent),
            // SAFETY: the ticket was made just above from an `F`.
            Some(ticket) => Ok(TrySend::WouldBlock(unsafe { ticket.into_callback::<F>() })),
        }
    }

    /// Sets where the reports of [`Producer::send_token`] go: `sink(token, report)`, once per
    /// message, on the thread that reports it. Set once, before the first token send;
    /// [`ErrorKind::Config`] when one is set already.
    pub fn set_report_sink(&self, sink: ReportSink) -> Result<()> {
        self.shared
            .engine
            .tracker
            .sink
            .set(sink)
            .map_err(|_| Error::new(ErrorKind::Config, "a report sink is set already"))
    }

    /// Like [`Producer::send`], but the report goes to the report sink with `token` instead of
    /// to a callback: what a binding that queues reports for its host sends with (nothing per
    /// message but the number). No send span is made (bindings trace in their host).
    /// [`ErrorKind::Config`] without a sink.
    pub fn send_token(&self, record: &Record<'_>, token: u64) -> Result<()> {
        self.check_sink()?;
        self.shared.submit(record, Ticket::for_token(token))
    }

    /// Like [`Producer::try_send`], with a token as [`Producer::send_token`].
    pub fn try_send_token(&self, record: &Record<'_>, token: u64) -> Result<TrySend<u64>> {
        self.check_sink()?;
        if self.shared.gate.may_wait() {
            return Ok(TrySend::WouldBlock(token));
        }
        match self.shared.try_submit(record, Ticket::for_token(token))? {
            None => Ok(TrySend::Sent),
            Some(_) => Ok(TrySend::WouldBlock(token)),
        }
    }

    fn check_sink(&self) -> Result<()> {
        match self.shared.engine.tracker.sink.get() {
            Some(_) => Ok(()),
            None => Err(Error::new(
                ErrorKind::Config,
                "token sends need a report sink (Producer::set_report_sink)",
            )),
        }
    }

    /// Enqueues like [`Producer::send`] and returns a future of the outcome: the report when
    /// delivered, the error otherwise. Needs no particular async runtime.
    pub fn send_async(&self, record: &Record<'_>) -> DeliveryFuture {
        let (sender, receiver) = oneshot::channel();
        // The receiver may be gone (the future was dropped); the report then has nobody to tell.
        match self.send(record, move |report| drop(sender.send(report))) {
            Ok(()) => DeliveryFuture::waiting(receiver),
            Err(error) => DeliveryFuture::failed(error),
        }
    }

    /// Enqueues and blocks until the report arrives or `timeout` passes. A timeout here does not
    /// cancel the message: it may still be delivered later.
    pub fn send_and_wait(&self, record: &Record<'_>, timeout: Duration) -> Result<DeliveryReport> {
        let (sender, receiver) = mpsc::sync_channel(1);
        self.send(record, move |report| drop(sender.send(report)))?;
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
        match SendSpan::start(records) {
            None => self.send_batch_untraced(records, on_delivery),
            Some((span, headers)) => {
                let traced = headers.traced(records);
                self.send_batch_untraced(
                    &traced,
                    Box::new(move |reports: Vec<DeliveryReport>| {
                        span.end_with(&reports);
                        on_delivery(reports)
                    }),
                )
            }
        }
    }

    fn send_batch_untraced(
        &self,
        records: &[Record<'_>],
        on_delivery: BatchCallback,
    ) -> Result<()> {
        let slots = Batch::start(records, on_delivery)?;
        // A batch sent from a callback is not paced: the queue shrinks as the delivery thread
        // handles reports, which it cannot do while it waits here.
        let paced = !self.on_delivery_thread();
        let (mut index, mut paced_at) = (0, 0);
        while index < records.len() {
            if index >= paced_at {
                if paced {
                    self.shared.engine.wait_while_far_ahead();
                }
                paced_at = index + engine::RUN_CHUNK;
            }
            let run = self
                .shared
                .plain_run(&records[index..paced_at.min(records.len())]);
            if run > 1 {
                self.shared
                    .submit_run(&records[index..index + run], index, &slots);
                index += run;
                continue;
            }
            // SAFETY: `index` is in the batch and gets this one ticket; a refused send drops it
            // undelivered, and the record is then reported here, once.
            let ticket = unsafe { slots.ticket(index) };
            if let Err(error) = self.shared.submit(&records[index], ticket) {
                let report = DeliveryReport::not_enqueued(&records[index], error);
                unsafe { slots.fail(index, report) };
            }
            index += 1;
        }
        Ok(())
    }

    /// Waits until every message sent so far has been reported, or `timeout` passes. In an open
    /// transaction, until librdkafka has acknowledged each (their reports wait for the commit).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        let tracker = &self.shared.engine.tracker;
        if self.on_delivery_thread() {
            return Err(Error::new(
                ErrorKind::Internal,
                "flush cannot wait inside a delivery callback",
            ));
        }
        if tracker.all_answered_by(Instant::now() + timeout) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{} messages still in flight after {timeout:?}",
                    tracker.unanswered()
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
        if !self.shared.engine.shut() {
            return CloseReport {
                in_flight_at_close: 0,
                purged: 0,
                elapsed: started.elapsed(),
                already_closed: true,
            };
        }
        let tracker = &self.shared.engine.tracker;
        let in_flight_at_close = tracker.in_flight();
        // Inside a delivery callback nothing else can be delivered while we wait, so don't.
        let waiting_allowed = !self.on_delivery_thread();
        if let Some(transactions) = &self.shared.transactions {
            if transactions.is_open() && waiting_allowed {
                let why = "the producer closed before the transaction was committed";
                let end = |finished| self.shared.end_transaction(finished);
                if let Err(error) = transactions.abort(&self.shared.engine, &end, timeout, why) {
                    tracing::warn!(target: "kafkasender", %error, "the open transaction could not be aborted at close; the broker aborts it after transaction.timeout.ms");
                }
            }
        }
        let drained = waiting_allowed && tracker.drained_by(started + timeout);
        if !drained {
            // Scheduled re-sends go to the spool or fail, then librdkafka's queue is purged: first
            // what was never sent (it can be spooled and sent again without a duplicate), and
            // after a moment for their answers, the requests in flight.
            self.shared.rescue.abandon();
            self.shared.engine.purge_unsent();
            if !(waiting_allowed && tracker.drained_by(Instant::now() + IN_FLIGHT_GRACE)) {
                self.shared.engine.purge();
            }
            if waiting_allowed && !tracker.drained_by(Instant::now() + PURGE_GRACE) {
                tracing::error!(
                    in_flight = tracker.in_flight(),
                    "messages were not reported after purge; they will be reported when the producer is dropped"
                );
            }
        }
        self.shared.health_check.stop();
        // The worker first, so that whatever it still hands off is reported by the delivery thread.
        self.shared.rescue.stop_worker();
        if waiting_allowed {
            join(&self.rescue_thread);
        }
        self.shared.engine.stop_delivery();
        if waiting_allowed {
            join(&self.delivery_thread);
        } else {
            // Inside a delivery callback: an open transaction's reports cannot wait for its end.
            for (ticket, report) in tracker.take_held() {
                let error = Error::new(
                    ErrorKind::Closed,
                    "the producer closed inside a delivery callback, before the transaction ended",
                );
                tracker.finish(ticket, report.failed_instead(error));
            }
        }
        replay::keep_progress(&self.shared.rescue);
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
        self.shared.engine.is_closed()
    }

    /// Re-sends what the spool holds (see [`crate::spool`]); returns once every record is
    /// enqueued, and each is then reported to the metrics like any send. Happens by itself when
    /// the circuit breaker closes and when a producer starts on a spool. Fails with
    /// [`ErrorKind::Config`] without a `spool.dir` and [`ErrorKind::CircuitOpen`] while the
    /// breaker is open.
    pub fn replay_spool(&self) -> Result<ReplayReport> {
        self.check_open()?;
        self.shared.replay()
    }

    /// Whether the producer was configured with `transactional.id`.
    pub fn is_transactional(&self) -> bool {
        self.shared.transactions.is_some()
    }

    /// Opens a transaction: every send until the commit or abort belongs to it. Fails with
    /// [`ErrorKind::Transaction`] on a producer without `transactional.id`, or when one is open.
    pub fn begin_transaction(&self) -> Result<()> {
        self.check_open()?;
        self.transactions()?.begin(&self.shared.engine)
    }

    /// Commits the open transaction, waiting up to `timeout`. When it returns `Ok`, every message
    /// of the transaction is committed and its report delivered (`delivered`). When it cannot
    /// commit, it is aborted: every message is reported failed with [`ErrorKind::Transaction`]
    /// (retriable) and the error names the transaction. A retriable error without that (a
    /// timeout) leaves the transaction ending: call commit (or abort) again.
    pub fn commit_transaction(&self, timeout: Duration) -> Result<()> {
        self.end_transaction(timeout, |transactions, end| {
            transactions.commit(&self.shared.engine, end, timeout)
        })
    }

    /// Aborts the open transaction, waiting up to `timeout`: every message of it is reported
    /// failed with [`ErrorKind::Transaction`] (retriable), none is visible to `read_committed`
    /// consumers.
    pub fn abort_transaction(&self, timeout: Duration) -> Result<()> {
        self.end_transaction(timeout, |transactions, end| {
            transactions.abort(
                &self.shared.engine,
                end,
                timeout,
                "abort_transaction was called",
            )
        })
    }

    /// Ends the open transaction with `end` and waits until its reports have been delivered.
    fn end_transaction(
        &self,
        timeout: Duration,
        end: impl FnOnce(&Transactions, &dyn Fn(Vec<Finished>)) -> Result<()>,
    ) -> Result<()> {
        self.check_open()?;
        let transactions = self.transactions()?;
        if self.on_delivery_thread() {
            return Err(Error::new(
                ErrorKind::Transaction,
                "a transaction cannot end inside a delivery callback: its reports are delivered there",
            ));
        }
        let tracker = &self.shared.engine.tracker;
        let goal = std::cell::Cell::new(None);
        let result = end(transactions, &|finished: Vec<Finished>| {
            goal.set(Some(tracker.completed() + finished.len() as u64));
            self.shared.end_transaction(finished);
        });
        if let Some(goal) = goal.get() {
            // The reports were handed to the delivery thread; they go within a poll interval.
            tracker.wait_until(Instant::now() + timeout.max(PURGE_GRACE), || {
                tracker.completed() >= goal
            });
        }
        result
    }

    fn transactions(&self) -> Result<&Transactions> {
        self.shared.transactions.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Transaction,
                "this producer is not transactional: set transactional.id",
            )
        })
    }

    /// The circuit breaker's state (`Closed` when there is no breaker).
    pub fn breaker_state(&self) -> BreakerState {
        self.shared.gate.breaker_state()
    }

    /// The producer's counters, gauges and delivery-latency summary now.
    pub fn metrics(&self) -> MetricsSnapshot {
        let tracker = &self.shared.engine.tracker;
        let rescue = &self.shared.rescue;
        tracker.metrics.snapshot(Gauges {
            sent: tracker.accepted.load(Ordering::SeqCst),
            in_flight: tracker.in_flight() as u64,
            queue_depth: self.shared.engine.queue_depth(),
            retried: rescue.retried.load(Ordering::Relaxed),
            replayed: rescue.replayed.load(Ordering::Relaxed),
            already_written: rescue.already_written.load(Ordering::Relaxed),
            spool_torn_records: rescue.torn_records.load(Ordering::Relaxed),
            spool_bytes: rescue.spool.as_ref().map_or(0, |s| s.bytes()),
            breaker_state: rescue.breaker_state(),
            breaker_trips: rescue.breaker.as_ref().map_or(0, |b| b.trips()),
            recoveries: tracker.recovery.recoveries.load(Ordering::Relaxed),
        })
    }

    /// [`Producer::metrics`] in Prometheus text exposition format, names prefixed `kafkasender_`.
    pub fn metrics_prometheus(&self) -> String {
        self.metrics().to_prometheus(&self.shared.client_id)
    }

    /// Healthy, degraded or unhealthy, with the reasons; answers at once. Broker states and the
    /// recent error ratio come from librdkafka's statistics (every `statistics.interval.ms`). The
    /// first call also starts the active check: whenever `health.check.interval.ms` passes with
    /// nothing delivered, a metadata request asks the cluster, on a thread of its own, so that an
    /// idle producer whose brokers are all gone turns unhealthy within about two intervals.
    pub fn health(&self) -> Health {
        self.shared.health_check.start(|| {
            let weak = Arc::downgrade(&self.shared);
            Box::new(move || {
                let shared = weak.upgrade()?;
                let delivered = shared.engine.tracker.metrics.delivered();
                (!shared.engine.is_closed()).then(|| (shared.engine.client(), delivered))
            })
        });
        self.assess_health()
    }

    /// Gives every record without an explicit partition the one `partitioner` returns, called
    /// on the sending thread with the topic, the key and the topic's partition count (which the
    /// first send to a topic asks the brokers for, waiting at most `enqueue.timeout.ms`). A
    /// partition out of range, or an error, fails that send with [`ErrorKind::InvalidRecord`].
    /// Set once, before sending; [`ErrorKind::Config`] when one is set already.
    pub fn set_partitioner(&self, partitioner: PartitionerFn) -> Result<()> {
        let timeout = self.shared.settings.enqueue_timeout;
        self.shared
            .partitioner
            .set(CustomPartitioner::new(partitioner, timeout))
            .map_err(|_| Error::new(ErrorKind::Config, "a partitioner is set already"))
    }

    /// Asks the cluster now (a metadata request, on the calling thread, waiting at most
    /// `timeout`), then answers like [`Producer::health`]: for probes that must not rely on
    /// earlier evidence, such as `kafkasender health`.
    pub fn check_health(&self, timeout: Duration) -> Health {
        if !self.is_closed() {
            let delivered = self.shared.engine.tracker.metrics.delivered();
            let client = self.shared.engine.client();
            self.shared
                .health_check
                .ask_now(&client, delivered, timeout);
        }
        self.assess_health()
    }

    fn assess_health(&self) -> Health {
        let mut health = Health::new();
        if self.is_closed() {
            health.flag(HealthStatus::Unhealthy, "the producer is closed");
        }
        let recovery = &self.shared.engine.tracker.recovery;
        if recovery.running.load(Ordering::Acquire) {
            health.flag(
                HealthStatus::Degraded,
                "recovering from a fatal error: the client is being replaced",
            );
        } else if let Some(fatal) = self.shared.engine.fatal_error() {
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
        let metrics = &self.shared.engine.tracker.metrics;
        let delivered = metrics.delivered();
        let brokers = lock(&self.shared.engine.tracker.brokers);
        if let Some(answer) = self.shared.health_check.failure(delivered) {
            let error = answer.result.err().unwrap_or_default();
            let asked = match brokers.describe() {
                Some(brokers) => format!("Brokers: {brokers}"),
                None => format!("Bootstrap servers: {}", self.shared.bootstrap_servers),
            };
            // No "; " inside a reason: the C face joins reasons with it.
            health.flag(
                HealthStatus::Unhealthy,
                format!(
                    "no broker reachable: a metadata request failed after {:.1?}, {:.1?} ago ({error}). {asked}",
                    answer.took,
                    answer.at.elapsed(),
                ),
            );
        }
        brokers.assess(&mut health, delivered, metrics.failed());
        health
    }

    /// kafkasender's own settings this producer runs with.
    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// Messages sent but not yet reported.
    pub fn in_flight(&self) -> usize {
        self.shared.engine.tracker.in_flight()
    }

    /// librdkafka's `rd_kafka_test_fatal_error`: the client fails fatally as if a broker had
    /// said so (for [`crate::testing::inject_fatal_error`]).
    pub(crate) fn inject_fatal_error(
        &self,
        code: rdkafka::types::RDKafkaRespErr,
        reason: &str,
    ) -> Result<()> {
        let reason = std::ffi::CString::new(reason)
            .map_err(|_| Error::new(ErrorKind::InvalidRecord, "the reason holds a NUL byte"))?;
        let client = self.shared.engine.client();
        // SAFETY: the client is alive for the call; librdkafka copies the reason.
        let result = unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                rdkafka::producer::Producer::client(&*client).native_ptr(),
                code,
                reason.as_ptr(),
            )
        };
        match rdkafka::error::RDKafkaErrorCode::from(result) {
            rdkafka::error::RDKafkaErrorCode::NoError => Ok(()),
            other => Err(Error::from_code(other, "cannot inject a fatal error")),
        }
    }

    fn on_delivery_thread(&self) -> bool {
        thread::current().id() == self.delivery_thread_id
    }

    fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            Err(engine::closed_error())
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
    /// The send path from the gate on: validate → rate limit → circuit breaker → librdkafka,
    /// waiting for queue room up to `enqueue.timeout.ms`. With a spool, a message refused for a
    /// full queue is spooled rather than refused.
    fn submit(&self, record: &Record<'_>, ticket: Ticket) -> Result<()> {
        let give_up = self.engine.after_enqueue_timeout();
        match self.submit_until(record, ticket, Origin::Caller, give_up) {
            Ok(()) => Ok(()),
            Err(Refused::QueueFull(reason, ticket)) if self.rescue.spool.is_some() => {
                self.spool_instead(record, ticket, reason)
            }
            Err(refused) => Err(refused.into_error()),
        }
    }

    /// How many records from the first on can take the plain path of [`Shared::submit_run`]: of
    /// one topic, with no header, timestamp or id to send, on a producer with no stage that
    /// decides per record (rate limit, breaker, spool, transaction, partitioner function).
    fn plain_run(&self, records: &[Record<'_>]) -> usize {
        let staged = self.gate.may_wait()
            || self.gate.breaker.is_some()
            || self.rescue.spool.is_some()
            || self.transactions.is_some()
            || self.partitioner.get().is_some()
            || self.engine.adds_ids();
        let Some(first) = records.first().filter(|_| !staged) else {
            return 0;
        };
        let plain = |r: &&Record<'_>| {
            r.topic == first.topic && r.headers.is_empty() && r.timestamp.is_none()
        };
        records.iter().take_while(plain).count()
    }

    /// [`Shared::submit`] for a run of plain records (see [`Shared::plain_run`]), batch records
    /// `first..`: validated one by one, then handed to librdkafka together. A record the failed
    /// client refused goes the whole path (which waits for its replacement).
    fn submit_run(&self, records: &[Record<'_>], first: usize, slots: &batch::Slots) {
        let fail = |index: usize, error: Error| {
            let report = DeliveryReport::not_enqueued(&records[index], error);
            // SAFETY: record `index` has no report and no live ticket.
            unsafe { slots.fail(first + index, report) };
        };
        let mut valid = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            match self.gate.validate(record) {
                Ok(()) => valid.push(index),
                Err(error) => fail(index, error),
            }
        }
        let current = match self.engine.hold_open() {
            Ok(current) => current,
            Err(error) => return valid.into_iter().for_each(|i| fail(i, error.clone())),
        };
        let tracker = &self.engine.tracker;
        let tickets = valid
            .iter()
            .map(|&index| {
                // SAFETY: each record of the run gets this one ticket, or a `fail` once refused.
                let mut ticket = unsafe { slots.ticket(first + index) };
                ticket.partition = records[index].partition;
                tracker.accept();
                ticket
            })
            .collect();
        let plain: Vec<&Record<'_>> = valid.iter().map(|&index| &records[index]).collect();
        let give_up = self.engine.after_enqueue_timeout();
        let topic = records[0].topic;
        let refused = self
            .engine
            .enqueue_run(&current.client, topic, &plain, tickets, give_up);
        drop(current);
        let mut refused = refused.into_iter().peekable();
        for (position, &index) in valid.iter().enumerate() {
            let Some((_, error, ticket)) = refused.next_if(|(p, ..)| *p == position) else {
                tracker.metrics.record_sent(records[index].size());
                continue;
            };
            tracker.finish_one();
            let outcome = match error.kind() {
                ErrorKind::Fatal => self.submit(&records[index], ticket),
                _ => Err(error),
            };
            if let Err(error) = outcome {
                fail(index, error);
            }
        }
    }

    /// Submits without waiting for queue room; a full queue gives the ticket back.
    fn try_submit(&self, record: &Record<'_>, ticket: Ticket) -> Result<Option<Ticket>> {
        match self.submit_until(record, ticket, Origin::Caller, || true) {
            Ok(()) => Ok(None),
            Err(Refused::QueueFull(_, ticket)) => Ok(Some(ticket)),
            Err(Refused::Now(error)) => Err(error),
        }
    }

    /// What a spool replay sends: like [`Shared::submit`], but refused rather than spooled again
    /// (which would only move it to another file); the replay stops there and resumes later.
    fn resubmit(&self, record: &Record<'_>, ticket: Ticket) -> Result<()> {
        let give_up = self.engine.after_enqueue_timeout();
        self.submit_until(record, ticket, Origin::Spool, give_up)
            .map_err(Refused::into_error)
    }

    /// Spools a message instead of enqueueing it, and reports it `Spooled`; without a spool, or
    /// with a full one, the caller hears `reason` now.
    fn spool_instead(&self, record: &Record<'_>, ticket: Ticket, reason: Error) -> Result<()> {
        let mut id = [0; 33];
        let owned = OwnedRecord::from(&self.engine.with_message_id(record, &mut id));
        let path = self
            .rescue
            .spool(&owned, &ticket, &reason, Written::No)
            .unwrap_or(Err(reason.clone()))?;
        let tracker = &self.engine.tracker;
        tracker.accept();
        tracker.metrics.record_sent(record.size());
        let outcome = Outcome::Spooled { path, reason };
        let report = DeliveryReport::of_record(&owned, ticket.attempts, ticket.sent_at, outcome);
        self.rescue.hand_off((ticket, report));
        Ok(())
    }

    /// [`Shared::submit`], giving up on a full queue when `give_up()` says so; the ticket then
    /// comes back with the `queue_full` error.
    fn submit_until(
        &self,
        record: &Record<'_>,
        mut ticket: Ticket,
        origin: Origin,
        give_up: impl FnMut() -> bool,
    ) -> std::result::Result<(), Refused> {
        self.gate.validate(record)?;
        let partitioned;
        let record = match self.partitioner.get() {
            Some(partitioner) if record.partition.is_none() && origin == Origin::Caller => {
                let client = self.engine.client();
                let partition = partitioner.partition(&client, record.topic, record.key)?;
                partitioned = Record {
                    partition: Some(partition),
                    ..record.clone()
                };
                &partitioned
            }
            _ => record,
        };
        // Kept for a re-send, the spool or a recovery: librdkafka's message only knows the
        // partition it was assigned, and a re-send must not move it to another.
        ticket.partition = record.partition;
        if self.gate.may_wait() {
            if self.engine.is_closed() {
                return Err(engine::closed_error().into()); // rather than wait for a token first
            }
            self.gate.take_token(record)?;
        }
        // Held until the message is enqueued, so close cannot slip in between this check and its
        // purge, nor a commit between this check and the message joining the transaction.
        let mut current = self.engine.hold_open()?;
        let _transaction = match &self.transactions {
            Some(transactions) => {
                let open = transactions.hold_open()?;
                ticket.in_transaction = true;
                Some(open)
            }
            None => None,
        };
        let tracker = &self.engine.tracker;
        let spool_holds = || {
            self.rescue
                .spool
                .as_ref()
                .is_some_and(|s| s.holds_messages())
        };
        if origin == Origin::Caller && spool_holds() {
            // Behind what the spool holds, or it could overtake an earlier message of its key.
            return Ok(self.spool_instead(record, ticket, behind_the_spool_error())?);
        }
        match self.gate.admit() {
            Admission::Pass => {}
            Admission::Probe => ticket.probe = true,
            Admission::Reject if origin == Origin::Spool => {
                return Err(rescue::circuit_open_error().into());
            }
            Admission::Reject => {
                return Ok(self.spool_instead(record, ticket, rescue::circuit_open_error())?);
            }
        }
        // The id is chosen once: a journal keeps the record with it, and a send again through a
        // replaced client carries the same.
        let mut id = [0; 33];
        let id = self.engine.message_id(record, &mut id);
        // With a journal, the message is on disk (with its id) before librdkafka has it.
        match self.rescue.spool.as_deref() {
            Some(journal) if journal.journals() && origin == Origin::Caller => {
                match journal.journal(record, id, ticket.attempts) {
                    Ok(place) => ticket.journaled_at = Some(place),
                    Err(error) => {
                        if ticket.probe {
                            self.gate.release_probe();
                        }
                        return Err(error.into());
                    }
                }
            }
            _ => {}
        }
        tracker.accept();
        let mut give_up = give_up;
        let enqueued = loop {
            match self
                .engine
                .enqueue_with_id(&current.client, record, id, ticket, &mut give_up)
            {
                // The client went fatal since the check: wait for its replacement (see `recovery`).
                Err((error, returned))
                    if error.kind() == ErrorKind::Fatal
                        && tracker.recovery.expected()
                        && self.engine.notice_fatal(&current.client) =>
                {
                    drop(current);
                    match self.engine.hold_open() {
                        Ok(replaced) => (current, ticket) = (replaced, returned),
                        Err(error) => break Err((error, returned)),
                    }
                }
                other => break other,
            }
        };
        match enqueued {
            Ok(()) => {
                // Bytes count once librdkafka has the message, not for a refused one.
                tracker.metrics.record_sent(record.size());
                Ok(())
            }
            Err((error, mut ticket)) => {
                if let (Some(file), Some(journal)) =
                    (ticket.journaled_at.take(), &self.rescue.spool)
                {
                    journal.journal_reported(file); // not accepted after all
                }
                tracker.finish_one();
                if ticket.probe {
                    self.gate.release_probe();
                }
                Err(if error.kind() == ErrorKind::QueueFull {
                    Refused::QueueFull(error, ticket)
                } else {
                    Refused::Now(error)
                })
            }
        }
    }

    /// Hands an ended transaction's reports to the delivery thread.
    fn end_transaction(&self, finished: Vec<Finished>) {
        for one in finished {
            self.rescue.hand_off(one);
        }
    }

    fn replay(&self) -> Result<ReplayReport> {
        let lookup = self.lookup.as_ref().map(|l| l as &dyn FindWritten);
        replay::replay(&self.rescue, lookup, |record, ticket| {
            self.resubmit(record, ticket)
        })
    }
}

/// Where a message comes from, which decides what happens while the spool holds messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A caller's send: spooled behind what the spool holds, spooled when the breaker rejects it.
    Caller,
    /// A spool replay: refused when the breaker rejects it (the replay resumes later).
    Spool,
}

fn behind_the_spool_error() -> Error {
    Error::new(
        ErrorKind::CircuitOpen,
        "spooled behind earlier spooled messages, to keep each key's order; a replay sends them all",
    )
}

/// Why a send was not accepted.
enum Refused {
    Now(Error),
    /// The queue stayed full; the ticket comes back (for [`Producer::try_send`]).
    QueueFull(Error, Ticket),
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
pub enum TrySend<F> {
    /// Accepted: the callback runs once with the report.
    Sent,
    /// Accepting it now would mean waiting (a full queue, or a rate limit): the callback comes
    /// back unused, for a [`Producer::send`] after the caller has let go of whatever it must not
    /// hold while waiting (Python's GIL, Node's event loop).
    WouldBlock(F),
}

fn join(thread: &Mutex<Option<JoinHandle<()>>>) {
    let handle = lock(thread).take();
    if let Some(handle) = handle {
        let _ = handle.join();
    }
}
