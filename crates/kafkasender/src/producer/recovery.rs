//! Self-healing after a fatal error. An idempotent or transactional librdkafka client that goes
//! fatal (an unknown producer id, an out-of-order sequence after a long outage, a transaction
//! timed out) is unusable, and every librdkafka application must rebuild it by hand, losing what
//! it held. Here the delivery thread does it:
//! 1. from the fatal error on, each failed message of the dead client is kept here (diverted);
//! 2. sends are held back, the dead client is purged and drained, so each message it held is
//!    either delivered or kept here;
//! 3. a new client is made from the same configuration (`init_transactions` for a transactional
//!    one), and the kept messages are sent again in their per-partition order before any new
//!    send, each reported once with `recovered` set and one more attempt;
//! 4. sends go on. A transactional producer's open transaction is lost instead: its messages are
//!    reported failed (retriable) and its commit says so.
//!
//! At most `recovery.max` recoveries in `recovery.window.ms`: past that the producer stays fatal
//! and what it held is reported failed with `fatal`, rather than looping. Re-sent messages may
//! have been written by the dead client (at-least-once, with no lookup as a spool replay makes),
//! unlike librdkafka's own idempotent retries.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{Producer as _, PurgeConfig};

use super::context::{Failure, Finished};
use super::engine::{transaction_call, Engine, TransactionCall};
use super::poll;
use super::transaction::Transactions;
use crate::delivery::{DeliveryReport, Outcome};
use crate::error::{Error, ErrorKind};
use crate::lock;

/// How long the dead client may take to hand back what it holds.
const DRAIN: Duration = Duration::from_secs(10);
/// How long a re-sent message may wait for room in the new client's queue.
const REQUEUE: Duration = Duration::from_secs(5);

pub(crate) struct Recovery {
    /// `recovery.max`; 0 turns recovery off.
    max: u32,
    /// `recovery.window.ms`.
    window: Duration,
    /// When the recoveries within the window began.
    recent: Mutex<VecDeque<Instant>>,
    /// Failed messages of a dead client, to be sent again through the new one.
    diverted: Mutex<Vec<Failure>>,
    /// Set once the bound is reached: the producer stays fatal.
    gave_up: AtomicBool,
    /// Set while a recovery runs (health says `degraded`).
    pub(crate) running: AtomicBool,
    pub(crate) recoveries: AtomicU64,
}

impl Default for Recovery {
    fn default() -> Recovery {
        Recovery::new(3, Duration::from_secs(300))
    }
}

impl Recovery {
    pub(crate) fn new(max: u32, window: Duration) -> Recovery {
        Recovery {
            max,
            window,
            recent: Mutex::default(),
            diverted: Mutex::default(),
            gave_up: AtomicBool::new(max == 0),
            running: AtomicBool::new(false),
            recoveries: AtomicU64::new(0),
        }
    }

    /// Whether a fatal error will be recovered from (the bound is not reached).
    pub(crate) fn expected(&self) -> bool {
        !self.gave_up.load(Ordering::Acquire)
    }

    /// Keeps a failed message of a dead client for the new one; gives it back when the producer
    /// is not fatal or will not recover.
    pub(crate) fn divert(&self, failure: Failure, fatal: bool) -> Option<Failure> {
        if fatal && self.expected() {
            lock(&self.diverted).push(failure);
            return None;
        }
        Some(failure)
    }

    /// Counts a recovery beginning now; `false` when the window holds `max` already.
    fn admit(&self, now: Instant) -> bool {
        let mut recent = lock(&self.recent);
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            recent.pop_front();
        }
        if recent.len() >= self.max as usize {
            return false;
        }
        recent.push_back(now);
        true
    }

    fn take_diverted(&self) -> Vec<Failure> {
        std::mem::take(&mut *lock(&self.diverted))
    }
}

/// Runs on the delivery thread once the client went fatal (see the module's steps). `hand_off`
/// delivers a final report.
pub(crate) fn recover(
    engine: &Engine,
    transactions: Option<&Transactions>,
    transaction_timeout: Duration,
    hand_off: &dyn Fn(Finished),
) {
    let tracker = &engine.tracker;
    let recovery = &tracker.recovery;
    if !recovery.expected() {
        return; // gave up before: the producer stays fatal
    }
    let Some(fatal) = engine.fatal_error() else {
        return;
    };
    // A producer fenced by a newer one with the same transactional id must stay dead: healing
    // would fence that one in turn.
    let fenced = [RDKafkaErrorCode::ProducerFenced, RDKafkaErrorCode::Fenced]
        .iter()
        .any(|code| fatal.code() == Some(*code as i32));
    if fenced || !recovery.admit(Instant::now()) {
        give_up(engine, fatal, hand_off);
        return;
    }
    recovery.running.store(true, Ordering::Release);
    tracing::warn!(target: "kafkasender", error = %fatal, "the client failed fatally; replacing it");
    let mut current = engine.hold_back_sends();
    let dead = current.client.clone();
    dead.purge(PurgeConfig::default().queue().inflight());
    let deadline = Instant::now() + DRAIN;
    while dead.in_flight_count() > 0 && Instant::now() < deadline {
        poll::serve(&dead, Duration::from_millis(10), &engine.retired);
        engine.retired.destroy_all(); // their messages count as in flight until then
    }
    poll::serve(&dead, Duration::ZERO, &engine.retired);
    engine.retired.destroy_all(); // none may outlive the dead client
    let replaced = engine.new_client(&dead).and_then(|client| {
        if transactions.is_some() {
            transaction_call(&client, TransactionCall::Init(transaction_timeout))
                .map_err(|failure| failure.error)?;
        }
        Ok(client)
    });
    let client = match replaced {
        Ok(client) => client,
        Err(error) => {
            drop(current);
            recovery.running.store(false, Ordering::Release);
            tracing::error!(target: "kafkasender", %error, "cannot replace the failed client");
            give_up(engine, fatal, hand_off);
            return;
        }
    };
    current.client = Arc::new(client);
    tracker.fatal.store(false, Ordering::Release);
    recovery.recoveries.fetch_add(1, Ordering::Relaxed);
    if let Some(transactions) = transactions {
        let lost = transactions.lose_open(&fatal);
        for (mut ticket, report) in tracker.take_held() {
            ticket.in_transaction = false;
            ticket.recovered = true;
            let error = lost.clone().unwrap_or_else(|| fatal.clone());
            hand_off((ticket, report.failed_instead(error)));
        }
    }
    // Oldest first within each partition, as they were sent; before any new send.
    let mut diverted = recovery.take_diverted();
    diverted.sort_by_key(|f| (f.ticket.assigned_partition, f.ticket.sent_at));
    let resent = diverted.len();
    for Failure {
        record, mut ticket, ..
    } in diverted
    {
        ticket.attempts += 1;
        ticket.recovered = true;
        ticket.attempted_now();
        let give_up_at = Instant::now() + REQUEUE;
        if let Err((error, ticket)) =
            engine.enqueue(&current.client, &record.as_record(), ticket, || {
                Instant::now() >= give_up_at
            })
        {
            let report = DeliveryReport::of_record(
                &record,
                ticket.attempts,
                ticket.sent_at,
                Outcome::Failed(error),
            );
            hand_off((ticket, report));
        }
    }
    drop(current);
    recovery.running.store(false, Ordering::Release);
    tracker.wake_waiters();
    tracing::warn!(target: "kafkasender", resent, "the client was replaced; sends go on");
}

/// The bound is reached (or the client cannot be replaced): the producer stays fatal, and what
/// was kept for a new client is reported failed.
fn give_up(engine: &Engine, fatal: Error, hand_off: &dyn Fn(Finished)) {
    let recovery = &engine.tracker.recovery;
    recovery.gave_up.store(true, Ordering::Release);
    engine.tracker.wake_waiters();
    tracing::error!(target: "kafkasender", error = %fatal, "the client failed fatally and is not replaced again: create a new producer");
    let error = Error::new(
        ErrorKind::Fatal,
        format!(
            "{}; not recovered (recovery.max {} in recovery.window.ms {:?} reached, or fenced by a newer producer)",
            fatal.message(),
            recovery.max,
            recovery.window
        ),
    );
    for Failure { record, ticket, .. } in recovery.take_diverted() {
        let outcome = Outcome::Failed(error.clone());
        let report = DeliveryReport::of_record(&record, ticket.attempts, ticket.sent_at, outcome);
        hand_off((ticket, report));
    }
}
