//! Stage 4: librdkafka. Enqueues records with their [`Ticket`] as the per-message opaque, waits
//! for queue room when the queue is full (backpressure: never spin, never drop), and runs the
//! delivery loop that polls librdkafka on the producer's delivery thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::bindings as rdsys;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer as _, PurgeConfig};
use rdkafka::util::IntoOpaque;

use super::context::{Context, NativeClient};
use super::message::Ticket;
use super::poll::{self, Retired};
use super::produce::{CTopicName, Prepared, PARTITION_UNASSIGNED};
use super::round_robin::RoundRobin;
use super::tracker::Tracker;
use super::watchdog::{Verdict, Watchdog};
use crate::config::Config;
use crate::error::{ConfigProblem, Error, ErrorKind, Result};
use crate::record::{Header, Record};

/// How long one poll of librdkafka's queue waits (rust-rdkafka's poll returns only then); also
/// the longest a report handed off by another thread waits, and a close for the delivery thread
/// to notice it should stop.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Records per `rd_kafka_produce_batch` call of a run: between calls, the sender destroys the
/// reports that came in meanwhile (see [`Retired`]), a few at a time rather than a whole run's
/// worth at once, so their memory goes straight back to the next messages. A batch send also
/// looks at how far ahead of the brokers it runs before each as many records
/// ([`Engine::wait_while_far_ahead`]).
pub(crate) const RUN_CHUNK: usize = 1024;
/// How long the queue may stay as long before a batch send stops waiting for it to shrink.
const STALL: Duration = Duration::from_millis(100);
/// How long a sender blocked on a full queue sleeps before trying again.
const QUEUE_FULL_RECHECK: Duration = Duration::from_millis(1);

pub(crate) struct Engine {
    /// Sends hold it for reading until their message is enqueued; close and a recovery take it
    /// for writing, so no send slips in between close's last check and its purge, nor into a
    /// client being replaced.
    current: RwLock<Current>,
    pub(crate) tracker: Arc<Tracker>,
    /// What a replacement client is made from (see `recovery`).
    config: Config,
    stop: AtomicBool,
    enqueue_timeout: Duration,
    ids: Option<MessageIds>,
    /// Handled delivery reports, for the next send to destroy (see [`Retired`]).
    pub(crate) retired: Retired,
    /// `batch.run.ahead.messages` (see [`Engine::wait_while_far_ahead`]).
    batch_run_ahead: u64,
    /// When a batch send last found the brokers taking nothing.
    stalled: StallMemo,
}

/// The queue's length when a batch send last found the brokers taking nothing (0: none since
/// the queue was shorter).
#[derive(Default)]
struct StallMemo(AtomicU64);

impl StallMemo {
    fn remember(&self, depth: u64) {
        self.0.store(depth, Ordering::Relaxed);
    }

    /// Whether the brokers are still taking nothing, as far as a queue of `depth` tells: it is
    /// no shorter than when they were found so. A shorter queue forgets them.
    fn still(&self, depth: u64) -> bool {
        let at = self.0.load(Ordering::Relaxed);
        if at > 0 && depth < at {
            self.0.store(0, Ordering::Relaxed);
        }
        at > 0 && depth >= at
    }
}

/// The client sends go to now, and whether the producer is open.
pub(crate) struct Current {
    pub(crate) client: Arc<Client>,
    open: bool,
}

pub(crate) type Client = BaseProducer<Context, RoundRobin>;

/// Each message's id (`message.id.header`): this producer's random prefix and a sequence number,
/// unique across producers and restarts without coordination.
struct MessageIds {
    header: String,
    prefix: u64,
    next: AtomicU64,
}

impl MessageIds {
    /// The next id, written into `buffer`: 16 hex digits, `-`, the sequence number in hex.
    fn next<'b>(&self, buffer: &'b mut [u8; 33]) -> &'b [u8] {
        let sequence = self.next.fetch_add(1, Ordering::Relaxed);
        hex_into(self.prefix, 16, &mut buffer[..16]);
        buffer[16] = b'-';
        let digits = (64 - sequence.leading_zeros()).div_ceil(4).max(1) as usize;
        hex_into(sequence, digits, &mut buffer[17..17 + digits]);
        &buffer[..17 + digits]
    }
}

fn hex_into(mut value: u64, digits: usize, out: &mut [u8]) {
    for slot in out[..digits].iter_mut().rev() {
        *slot = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
    }
}

impl Engine {
    pub(crate) fn new(config: &Config, context: Context) -> Result<Engine> {
        let tracker = context.tracker.clone();
        let client = new_client(config, context)?;
        Ok(Engine {
            current: RwLock::new(Current {
                client: Arc::new(client),
                open: true,
            }),
            tracker,
            config: config.clone(),
            stop: AtomicBool::new(false),
            enqueue_timeout: config.settings().enqueue_timeout,
            ids: config
                .settings()
                .message_id_header()
                .map(|header| MessageIds {
                    header: header.to_string(),
                    prefix: fastrand::u64(..),
                    next: AtomicU64::new(0),
                }),
            retired: Retired::default(),
            batch_run_ahead: config.settings().batch_run_ahead,
            stalled: StallMemo::default(),
        })
    }

    /// Holds the producer open for one send; `closed` or the fatal error when it is not. While
    /// a fatal error is being recovered from, waits (up to `enqueue.timeout.ms`) for the new client.
    pub(crate) fn hold_open(&self) -> Result<RwLockReadGuard<'_, Current>> {
        let mut deadline = None;
        loop {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            if !current.open {
                return Err(closed_error());
            }
            if let Some(fatal) = self.fatal_error_of(&current.client) {
                let recovery = &self.tracker.recovery;
                let deadline =
                    *deadline.get_or_insert_with(|| Instant::now() + self.enqueue_timeout);
                if !recovery.expected() || Instant::now() >= deadline {
                    return Err(fatal);
                }
                drop(current);
                self.tracker.wait_until(deadline, || {
                    !self.tracker.fatal.load(Ordering::Acquire) || !recovery.expected()
                });
                continue;
            }
            if let Some(refusal) = self.tracker.refusal() {
                return Err(refusal);
            }
            return Ok(current);
        }
    }

    /// Stops accepting sends; `false` if it already had.
    pub(crate) fn shut(&self) -> bool {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut current.open, false)
    }

    pub(crate) fn is_closed(&self) -> bool {
        !self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .open
    }

    /// The client sends go to now.
    pub(crate) fn client(&self) -> Arc<Client> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .client
            .clone()
    }

    /// For a recovery: holds every send back until the guard goes, and lets the client be replaced.
    pub(crate) fn hold_back_sends(&self) -> RwLockWriteGuard<'_, Current> {
        self.current.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new client from the producer's configuration, its context sharing `old`'s state.
    pub(crate) fn new_client(&self, old: &Client) -> Result<Client> {
        new_client(&self.config, old.context().renewed())
    }

    pub(crate) fn fatal_error(&self) -> Option<Error> {
        self.fatal_error_of(&self.client())
    }

    fn fatal_error_of(&self, client: &Client) -> Option<Error> {
        if !self.tracker.fatal.load(Ordering::Acquire) {
            return None;
        }
        let (code, reason) = client.client().fatal_error()?;
        let message = format!("the producer failed fatally ({code}): {reason}");
        Some(Error::fatal(code, message))
    }

    /// A new id for a record without one (`message.id.header`), written into `buffer`: the
    /// header's name and value; `None` with ids off or when the record has its id already.
    pub(crate) fn message_id<'b>(
        &self,
        record: &Record<'_>,
        buffer: &'b mut [u8; 33],
    ) -> Option<(&str, &'b [u8])> {
        let ids = self.ids.as_ref()?;
        if record.headers.iter().any(|h| h.key == ids.header) {
            return None;
        }
        Some((ids.header.as_str(), ids.next(buffer)))
    }

    /// `record` with its id header (see [`Engine::message_id`]): what the spool keeps, so that
    /// every copy sent from there later carries the id of the first.
    pub(crate) fn with_message_id<'r>(
        &'r self,
        record: &Record<'r>,
        buffer: &'r mut [u8; 33],
    ) -> Record<'r> {
        let mut with_id = record.clone();
        if let Some((key, value)) = self.message_id(record, buffer) {
            with_id.headers.push(Header {
                key,
                value: Some(value),
            });
        }
        with_id
    }

    /// A `give_up` for [`Engine::enqueue`]: true once the queue has stayed full for
    /// `enqueue.timeout.ms`. The clock is read only once the queue is full, not per message.
    pub(crate) fn after_enqueue_timeout(&self) -> impl FnMut() -> bool {
        let timeout = self.enqueue_timeout;
        let mut deadline = None;
        move || {
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + timeout);
            Instant::now() >= deadline
        }
    }

    /// Hands a record to librdkafka, waiting for queue room until `give_up()`. On failure the
    /// error comes back with the ticket. A record without an id header gets one; a re-sent or
    /// replayed record keeps the one it has.
    pub(crate) fn enqueue(
        &self,
        client: &Client,
        record: &Record<'_>,
        ticket: Ticket,
        give_up: impl FnMut() -> bool,
    ) -> std::result::Result<(), (Error, Ticket)> {
        let mut id = [0; 33];
        let id = self.message_id(record, &mut id);
        self.enqueue_with_id(client, record, id, ticket, give_up)
    }

    /// [`Engine::enqueue`] with the id header given (from [`Engine::message_id`]): the journal
    /// has kept the record with it.
    pub(crate) fn enqueue_with_id(
        &self,
        client: &Client,
        record: &Record<'_>,
        id: Option<(&str, &[u8])>,
        mut ticket: Ticket,
        mut give_up: impl FnMut() -> bool,
    ) -> std::result::Result<(), (Error, Ticket)> {
        self.retired.destroy_on_sender();
        let Some(mut prepared) = Prepared::new(record, id, &self.retired.header_lists) else {
            return Err((nul_in_topic_error(), ticket));
        };
        loop {
            match prepared.produce(client, ticket) {
                Ok(()) => return Ok(()),
                Err((RDKafkaErrorCode::QueueFull, returned)) => {
                    if give_up() {
                        return Err((self.queue_full_error(), returned));
                    }
                    ticket = returned;
                    self.wait_for_room();
                }
                Err((code, returned)) => {
                    return Err((Error::from_code(code, "cannot enqueue"), returned))
                }
            }
        }
    }

    /// Hands a run of plain records of one `topic` (no headers, no timestamp, no id to add) to
    /// librdkafka with one `rd_kafka_produce_batch` call per stretch of queue room: none of the
    /// topic lookup and name copy that `enqueue` pays per record. Waits for room as `enqueue` does,
    /// until `give_up()`. Returns the records librdkafka refused, by position in `records`, in
    /// order, each with its error and ticket; a queue that stayed full refuses the rest from there.
    pub(crate) fn enqueue_run(
        &self,
        client: &Client,
        topic: &str,
        records: &[&Record<'_>],
        tickets: Vec<Ticket>,
        mut give_up: impl FnMut() -> bool,
    ) -> Vec<(usize, Error, Ticket)> {
        debug_assert!(self.ids.is_none(), "a plain run gets no id header");
        let refuse_all = |error: Error, tickets: Vec<Ticket>| {
            tickets
                .into_iter()
                .enumerate()
                .map(|(index, ticket)| (index, error.clone(), ticket))
                .collect()
        };
        let Some(name) = CTopicName::new(topic) else {
            return refuse_all(nul_in_topic_error(), tickets);
        };
        // SAFETY: a live client and a NUL-terminated name; the handle is destroyed below.
        let rkt = unsafe {
            rdsys::rd_kafka_topic_new(
                client.client().native_ptr(),
                name.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        if rkt.is_null() {
            // SAFETY: reads this thread's last error, set by the call above.
            let code = RDKafkaErrorCode::from(unsafe { rdsys::rd_kafka_last_error() });
            return refuse_all(Error::from_code(code, "cannot enqueue"), tickets);
        }
        let bytes = |field: Option<&[u8]>| {
            field.map_or((std::ptr::null_mut(), 0), |b| {
                (b.as_ptr().cast_mut().cast(), b.len())
            })
        };
        let mut messages: Vec<rdsys::rd_kafka_message_t> = records
            .iter()
            .zip(tickets)
            .map(|(record, ticket)| {
                // SAFETY: a plain C struct, all zeros is a valid value.
                let mut message: rdsys::rd_kafka_message_t = unsafe { std::mem::zeroed() };
                (message.payload, message.len) = bytes(record.value);
                (message.key, message.key_len) = bytes(record.key);
                message.partition = record.partition.unwrap_or(PARTITION_UNASSIGNED);
                message._private = ticket.into_ptr();
                message
            })
            .collect();
        let flags = rdsys::RD_KAFKA_MSG_F_COPY | rdsys::RD_KAFKA_MSG_F_PARTITION;
        let mut refused = Vec::new();
        let mut at = 0;
        while at < messages.len() {
            self.retired.destroy_on_sender();
            let count = (messages.len() - at).min(RUN_CHUNK);
            let chunk = &mut messages[at..at + count];
            // SAFETY: `chunk` is `count` initialised messages whose payloads and keys outlive the
            // call (librdkafka copies them: F_COPY).
            unsafe {
                rdsys::rd_kafka_produce_batch(
                    rkt,
                    PARTITION_UNASSIGNED,
                    flags,
                    chunk.as_mut_ptr(),
                    count as i32,
                );
            }
            // librdkafka refuses everything after the first record that found the queue full.
            let mut full_from = None;
            for (offset, message) in chunk.iter().enumerate() {
                match RDKafkaErrorCode::from(message.err) {
                    RDKafkaErrorCode::NoError => {}
                    RDKafkaErrorCode::QueueFull => {
                        full_from = Some(at + offset);
                        break;
                    }
                    // SAFETY: not enqueued, so the ticket `into_ptr` gave is still ours.
                    code => refused.push((
                        at + offset,
                        Error::from_code(code, "cannot enqueue"),
                        unsafe { Ticket::from_ptr(message._private) },
                    )),
                }
            }
            let Some(first_refused) = full_from else {
                at += count;
                continue;
            };
            if give_up() {
                for (index, message) in messages.iter().enumerate().skip(first_refused) {
                    // SAFETY: as above.
                    let ticket = unsafe { Ticket::from_ptr(message._private) };
                    refused.push((index, self.queue_full_error(), ticket));
                }
                break;
            }
            at = first_refused;
            self.wait_for_room();
        }
        // SAFETY: the handle from `rd_kafka_topic_new`, used no more.
        unsafe { rdsys::rd_kafka_topic_destroy(rkt) };
        refused
    }

    fn queue_full_error(&self) -> Error {
        Error::new(
            ErrorKind::QueueFull,
            format!(
                "the local queue stayed full for enqueue.timeout.ms ({:?})",
                self.enqueue_timeout
            ),
        )
    }

    /// Between tries on a full queue: the room reports free once they are destroyed, which this
    /// sender does if they wait for it; otherwise a short nap. Room comes a whole delivered batch
    /// at a time, so the nap costs nothing in throughput and keeps the delivery thread from
    /// waking senders per message.
    fn wait_for_room(&self) {
        if !self.retired.destroy_on_sender() {
            thread::sleep(QUEUE_FULL_RECHECK);
        }
    }

    /// For a batch send, before more of it goes in: waits while `batch.run.ahead.messages` or
    /// more messages wait in librdkafka and the brokers keep taking them (the queue shrank
    /// within `STALL`). A batch is queued far faster than it is sent, and each message queued
    /// ahead holds its librdkafka copy and its report's place until the brokers catch up
    /// (measured: `send_batch` at 0.43x the peak RSS and 1.13x the rate with 20,000 rather than
    /// librdkafka's 100,000-message queue to fill). Brokers found taking nothing are not waited
    /// for again until the queue is shorter than it was then: a batch sent into an outage waits
    /// `STALL` once, then goes in up to librdkafka's queue, as any send does.
    pub(crate) fn wait_while_far_ahead(&self) {
        let limit = self.batch_run_ahead;
        let mut depth = self.queue_depth();
        // Before the limit is looked at: a queue that drained below it must clear the memo too.
        if self.stalled.still(depth) || limit == 0 || depth < limit {
            return;
        }
        let mut shrank_at = Instant::now();
        while depth >= limit {
            self.wait_for_room();
            let now = self.queue_depth();
            if now < depth {
                shrank_at = Instant::now();
            } else if shrank_at.elapsed() >= STALL {
                self.stalled.remember(now);
                return;
            }
            depth = now;
        }
    }

    /// Whether records get an id header (`message.id.header`).
    pub(crate) fn adds_ids(&self) -> bool {
        self.ids.is_some()
    }

    /// Runs one of librdkafka's transaction calls (blocking up to its timeout). Called directly,
    /// not through rust-rdkafka's wrappers: those poll the delivery queue on the caller's thread,
    /// and reports belong to the delivery thread.
    pub(crate) fn transaction_call(
        &self,
        call: TransactionCall,
    ) -> std::result::Result<(), CallFailure> {
        // Committing or aborting waits in librdkafka until every message is freed.
        self.retired
            .while_urgent(|| transaction_call(&self.client(), call))
    }

    /// Fails what librdkafka has not sent yet; each message is then reported `closed`.
    pub(crate) fn purge_unsent(&self) {
        self.client().purge(PurgeConfig::default().queue());
    }

    /// Fails everything librdkafka still holds, requests in flight too.
    pub(crate) fn purge(&self) {
        self.client()
            .purge(PurgeConfig::default().queue().inflight());
    }

    /// Messages in librdkafka's queue now, not yet reported (librdkafka also counts those
    /// reported but not yet freed, see [`Retired`]).
    pub(crate) fn queue_depth(&self) -> u64 {
        let held = u64::try_from(self.client().in_flight_count()).unwrap_or(0);
        held.saturating_sub(self.retired.messages())
    }

    /// Polls librdkafka (which runs [`Context`]'s callbacks) until [`Engine::stop_delivery`],
    /// and between polls lets the watchdog look for stalls and failing authentication.
    /// After a fatal error, `recover` replaces the client (see `recovery`).
    pub(crate) fn run_delivery_loop(&self, mut watchdog: Watchdog, recover: impl Fn()) {
        while !self.stop.load(Ordering::Acquire) {
            let client = self.client();
            poll::serve(&client, POLL_INTERVAL, &self.retired);
            client.context().deliver_handoffs();
            if watchdog.check(client.context(), Instant::now()) == Verdict::Refuse {
                self.purge(); // what waits is reported with the authentication error
            }
            // librdkafka raises a fatal error as an error event with the underlying code (and a
            // flag rust-rdkafka does not pass on), so the client itself is asked.
            if self.tracker.fatal.load(Ordering::Acquire) || self.notice_fatal(&client) {
                recover();
            }
        }
        // Reports made ready by a last purge or a last hand-off.
        let client = self.client();
        poll::serve(&client, Duration::ZERO, &self.retired);
        client.context().deliver_handoffs();
        self.retired.destroy_all();
    }

    /// Whether `client` failed fatally; if so, sends wait for a recovery or fail from now on.
    pub(crate) fn notice_fatal(&self, client: &Client) -> bool {
        let fatal = client.client().fatal_error().is_some();
        if fatal {
            self.tracker.fatal.store(true, Ordering::Release);
        }
        fatal
    }

    pub(crate) fn stop_delivery(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// [`Engine::transaction_call`] on a given client.
pub(crate) fn transaction_call(
    client: &Client,
    call: TransactionCall,
) -> std::result::Result<(), CallFailure> {
    use rdkafka::bindings as rd;
    let client = client.client().native_ptr();
    let millis = |t: Duration| i32::try_from(t.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the client is alive for the call; a returned error is ours to read and destroy.
    unsafe {
        let error = match call {
            TransactionCall::Init(timeout) => {
                rd::rd_kafka_init_transactions(client, millis(timeout))
            }
            TransactionCall::Begin => rd::rd_kafka_begin_transaction(client),
            TransactionCall::Commit(timeout) => {
                rd::rd_kafka_commit_transaction(client, millis(timeout))
            }
            TransactionCall::Abort(timeout) => {
                rd::rd_kafka_abort_transaction(client, millis(timeout))
            }
        };
        if error.is_null() {
            return Ok(());
        }
        let code = RDKafkaErrorCode::from(rd::rd_kafka_error_code(error));
        let text = std::ffi::CStr::from_ptr(rd::rd_kafka_error_string(error)).to_string_lossy();
        let failure = CallFailure {
            error: Error::from_code(code, &text),
            retriable: rd::rd_kafka_error_is_retriable(error) != 0,
            requires_abort: rd::rd_kafka_error_txn_requires_abort(error) != 0,
            fatal: rd::rd_kafka_error_is_fatal(error) != 0,
        };
        rd::rd_kafka_error_destroy(error);
        Err(failure)
    }
}

/// One of librdkafka's transaction calls.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TransactionCall {
    Init(Duration),
    Begin,
    Commit(Duration),
    Abort(Duration),
}

/// A failed transaction call, with what librdkafka says may follow it.
pub(crate) struct CallFailure {
    pub(crate) error: Error,
    /// The same call may succeed if made again.
    pub(crate) retriable: bool,
    /// The transaction cannot commit: abort it.
    pub(crate) requires_abort: bool,
    /// The client is unusable.
    pub(crate) fatal: bool,
}

fn new_client(config: &Config, context: Context) -> Result<Client> {
    let client: Client = config
        .client_config()
        .create_with_context(context)
        .map_err(|error| match error {
            KafkaError::ClientCreation(message) => Error::config(vec![ConfigProblem {
                key: "librdkafka".into(),
                message,
            }]),
            other => other.into(),
        })?;
    let native = NativeClient(client.client().native_ptr());
    let _ = client.context().native.set(native);
    Ok(client)
}

fn nul_in_topic_error() -> Error {
    Error::new(ErrorKind::InvalidRecord, "the topic name holds a NUL byte")
}

pub(crate) fn closed_error() -> Error {
    Error::new(ErrorKind::Closed, "the producer is closed")
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::delivery::{DeliveryReport, Outcome};
    use crate::producer::context::{Failure, Failures, Finished};

    /// The stages after librdkafka, reduced to "report the failure as it is".
    struct ReportAsIs;

    impl Failures for ReportAsIs {
        fn after_failure(&self, failure: Failure) -> Option<Finished> {
            let Failure {
                record,
                ticket,
                error,
                ..
            } = failure;
            let report = DeliveryReport::of_record(
                &record,
                ticket.attempts,
                ticket.sent_at,
                Outcome::Failed(error),
            );
            Some((ticket, report))
        }
        fn breaker_closed(&self) {}
        fn take_handoffs(&self) -> Vec<Finished> {
            Vec::new()
        }
    }

    /// An engine whose queue holds one message, with no broker to send it to.
    fn engine_without_brokers() -> Arc<Engine> {
        let config = Config::builder()
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("queue.buffering.max.messages", "1")
            .set("enqueue.timeout.ms", "20")
            .build()
            .unwrap();
        let context = Context {
            tracker: Arc::new(Tracker::default()),
            breaker: None,
            failures: Arc::new(ReportAsIs),
            on_statistics: None,
            credentials: Default::default(),
            native: Default::default(),
            round_robin: None,
        };
        Arc::new(Engine::new(&config, context).unwrap())
    }

    #[test]
    fn brokers_found_taking_nothing_are_forgotten_once_the_queue_is_shorter() {
        let stalled = StallMemo::default();
        assert!(!stalled.still(30_000), "nothing remembered");
        stalled.remember(25_000);
        assert!(
            stalled.still(25_000) && stalled.still(30_000),
            "no shorter yet"
        );
        assert!(!stalled.still(10), "drained: the brokers took messages");
        assert!(
            !stalled.still(30_000),
            "forgotten, so a long queue is paced again"
        );
    }

    #[test]
    fn message_ids_are_a_producer_prefix_and_a_hex_sequence() {
        let ids = MessageIds {
            header: "x-ks-id".into(),
            prefix: 0x00ab_cdef_0123_4567,
            next: AtomicU64::new(0),
        };
        let mut buffer = [0; 33];
        assert_eq!(ids.next(&mut buffer), b"00abcdef01234567-0");
        assert_eq!(ids.next(&mut buffer), b"00abcdef01234567-1");
        ids.next.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(ids.next(&mut buffer), b"00abcdef01234567-ffffffffffffffff");
    }

    #[test]
    fn a_full_queue_waits_until_give_up_then_hands_the_ticket_back_with_queue_full() {
        let engine = engine_without_brokers();
        let record = Record::new("orders").value("v");
        let (sender, reports) = mpsc::channel();
        let client = engine.client();
        let first = engine.enqueue(
            &client,
            &record,
            Ticket::new(move |r| sender.send(r).unwrap()),
            || true,
        );
        assert!(first.is_ok());
        let mut tries = 0;
        let Err((error, ticket)) = engine.enqueue(
            &client,
            &record,
            Ticket::new(|_| panic!("never enqueued")),
            || {
                tries += 1;
                tries == 3
            },
        ) else {
            panic!("the queue holds one message")
        };
        assert_eq!(error.kind(), ErrorKind::QueueFull);
        assert_eq!((tries, ticket.attempts), (3, 1));
        drop(ticket); // its callback goes unrun
                      // The lazy deadline reads the clock only once the queue is full, then holds for the timeout.
        let mut give_up = engine.after_enqueue_timeout();
        assert!(!give_up());
        thread::sleep(Duration::from_millis(30));
        assert!(give_up());
        // Purged on close: the queued message is reported `closed` by the delivery loop.
        assert!(engine.shut());
        assert!(!engine.shut(), "only once");
        assert_eq!(
            engine.hold_open().err().map(|e| e.kind()),
            Some(ErrorKind::Closed)
        );
        let delivery = {
            let engine = engine.clone();
            let watchdog = Watchdog::new(&Config::builder().brokers("x:1").build().unwrap());
            thread::spawn(move || engine.run_delivery_loop(watchdog, || {}))
        };
        engine.tracker.accept();
        engine.purge();
        let report = reports.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(report.error().map(Error::kind), Some(ErrorKind::Closed));
        engine.stop_delivery();
        delivery.join().unwrap();
        assert_eq!(engine.queue_depth(), 0);
    }

    #[test]
    fn a_reported_message_frees_its_room_for_the_next_send_or_idle_for_the_delivery_thread() {
        let engine = engine_without_brokers(); // room for one message
        let delivery = {
            let engine = engine.clone();
            let watchdog = Watchdog::new(&Config::builder().brokers("x:1").build().unwrap());
            thread::spawn(move || engine.run_delivery_loop(watchdog, || {}))
        };
        let client = engine.client();
        let record = Record::new("orders").value("v");
        let (sender, reports) = mpsc::channel();
        let send_and_purge = |tries: u32| {
            let sender = sender.clone();
            let mut tried = 0;
            let sent = engine.enqueue(
                &client,
                &record,
                Ticket::new(move |r| sender.send(r).unwrap()),
                || {
                    tried += 1;
                    tried >= tries
                },
            );
            assert!(sent.is_ok(), "room after {tried} tries");
            engine.tracker.accept();
            engine.purge();
            let report = reports.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(report.error().map(Error::kind), Some(ErrorKind::Closed));
        };
        send_and_purge(1);
        // The report is out, but its message holds the one place until its event is destroyed:
        // the next send does that at once (the delivery thread would wait two polls, 10 ms each).
        send_and_purge(3);
        // No send comes: the delivery thread destroys it. The queue depth leaves out what was
        // reported as soon as its event is kept, librdkafka's count once it is freed.
        let idle = Instant::now();
        while engine.queue_depth() > 0 || client.in_flight_count() > 0 {
            assert!(idle.elapsed() < Duration::from_secs(1), "freed while idle");
            thread::sleep(Duration::from_millis(5));
        }
        engine.stop_delivery();
        delivery.join().unwrap();
    }

    #[test]
    fn while_a_call_waits_for_every_message_to_be_freed_reports_are_freed_at_once() {
        let engine = engine_without_brokers();
        let delivery = {
            let engine = engine.clone();
            let watchdog = Watchdog::new(&Config::builder().brokers("x:1").build().unwrap());
            thread::spawn(move || engine.run_delivery_loop(watchdog, || {}))
        };
        let client = engine.client();
        let (sender, reports) = mpsc::channel();
        engine.retired.while_urgent(|| {
            let ticket = Ticket::new(move |r| sender.send(r).unwrap());
            let record = Record::new("orders").value("v");
            assert!(engine.enqueue(&client, &record, ticket, || true).is_ok());
            engine.tracker.accept();
            engine.purge();
            reports.recv_timeout(Duration::from_secs(10)).unwrap();
            // No send comes to free it, and the delivery thread does not keep it for one (it
            // would hold it two polls, 20 ms, counted as waiting meanwhile).
            while client.in_flight_count() > 0 {
                assert_eq!(engine.retired.messages(), 0, "kept for a send");
                thread::yield_now();
            }
        });
        engine.stop_delivery();
        delivery.join().unwrap();
    }
}
