//! What happens to a message after librdkafka reports that it failed: the resilience stages after
//! librdkafka, in order (DESIGN.md): client re-send with backoff → dead-letter topic → spool.
//!
//! Nothing here blocks the delivery thread: re-sends and dead-letter sends wait on the rescue
//! worker thread, which may sleep through backoffs and a full queue. Final reports go back to the
//! delivery thread (the `handoff`), so every user callback still runs there.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::context::{Failure, Failures, Finished, Written};
use super::engine::Engine;
use super::message::{DeadLetter, Pending, Ticket};
use crate::breaker::{Admission, Breaker, BreakerState};
use crate::config::ResilienceSettings;
use crate::delivery::{DeliveryReport, Outcome};
use crate::dlq;
use crate::error::{Error, ErrorKind, Result};
use crate::lock;
use crate::record::OwnedRecord;
use crate::spool::{now_ms, Spool, SpooledMessage};

/// Longest the worker sleeps without looking at its queue.
const IDLE_WAKEUP: Duration = Duration::from_millis(100);

enum Job {
    Resend(Failure),
    DeadLetter(Failure),
}

struct Scheduled {
    due: Instant,
    sequence: u64,
    job: Job,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.sequence) == (other.due, other.sequence)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.sequence).cmp(&(other.due, other.sequence))
    }
}

#[derive(Default)]
struct Queue {
    scheduled: BinaryHeap<Reverse<Scheduled>>,
    sequence: u64,
    /// The latest re-send due per (topic, partition): a later failure of the same partition is
    /// never due before an earlier one, so jitter does not reorder a key's messages.
    lanes: HashMap<(String, i32), Instant>,
    replay_requested: bool,
    stop: bool,
}

/// The resilience stages after librdkafka, shared by the delivery thread, the rescue worker and
/// the sending threads.
pub(crate) struct Rescue {
    retry: crate::retry::RetryPolicy,
    pub(crate) breaker: Option<Arc<Breaker>>,
    dlq_topic: Option<String>,
    pub(crate) spool: Option<Arc<Spool>>,
    /// Set when close stops waiting: from then on failures skip re-sends and the dead-letter topic.
    abandoned: AtomicBool,
    queue: Mutex<Queue>,
    wakeup: Condvar,
    handoff: Mutex<Vec<Finished>>,
    /// One replay at a time, and where an interrupted one stopped.
    pub(crate) replaying: Mutex<Option<super::replay::Interrupted>>,
    pub(crate) retried: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) already_written: AtomicU64,
    pub(crate) torn_records: AtomicU64,
}

impl Rescue {
    pub(crate) fn new(
        settings: &ResilienceSettings,
        breaker: Option<Arc<Breaker>>,
    ) -> Result<Rescue> {
        Ok(Rescue {
            retry: crate::retry::RetryPolicy::new(settings.retry.clone()),
            breaker,
            dlq_topic: settings.dlq_topic.clone(),
            spool: Spool::open(&settings.spool)?.map(Arc::new),
            abandoned: AtomicBool::new(false),
            queue: Mutex::default(),
            wakeup: Condvar::new(),
            handoff: Mutex::default(),
            replaying: Mutex::new(None),
            retried: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            already_written: AtomicU64::new(0),
            torn_records: AtomicU64::new(0),
        })
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker
            .as_ref()
            .map_or(BreakerState::Closed, |b| b.state())
    }

    /// The last stage: the spool if there is one, else the failure report.
    pub(crate) fn keep_or_fail(
        &self,
        record: OwnedRecord,
        ticket: Ticket,
        reason: Error,
        written: Written,
    ) -> Finished {
        let outcome = match self.spool(&record, &ticket, &reason, written) {
            Some(Ok(path)) => Outcome::Spooled { path, reason },
            Some(Err(spool_error)) => Outcome::Failed(Error::new(
                ErrorKind::Spool,
                format!("{} (after: {reason})", spool_error.message()),
            )),
            None => Outcome::Failed(reason),
        };
        let report = DeliveryReport::of_record(&record, ticket.attempts, ticket.sent_at, outcome);
        (ticket, report)
    }

    /// Appends to the spool, if there is one.
    pub(crate) fn spool(
        &self,
        record: &OwnedRecord,
        pending: &Pending,
        reason: &Error,
        written: Written,
    ) -> Option<Result<PathBuf>> {
        let spool = self.spool.as_ref()?;
        Some(spool.append(&SpooledMessage {
            record: record.clone(),
            reason: reason.clone(),
            attempts: pending.attempts,
            first_attempt_ms: pending.first_attempt_ms(),
            spooled_at_ms: now_ms(),
            may_be_written: written != Written::No,
        }))
    }

    /// Hands a final report to the delivery thread.
    pub(crate) fn hand_off(&self, finished: Finished) {
        lock(&self.handoff).push(finished);
    }

    /// Whether the spool holds messages and a replay could send some now: the worker then
    /// replays without being asked (its first record may be the half-open breaker's probe).
    fn replay_due(&self, now: Instant) -> bool {
        self.spool.as_deref().is_some_and(Spool::holds_messages)
            && self.breaker.as_ref().is_none_or(|b| b.would_admit(now))
    }

    /// Asks the worker to replay the spool (the breaker closed, or the producer started on one).
    pub(crate) fn request_replay(&self) {
        if self.spool.as_deref().is_some_and(Spool::has_waiting) {
            lock(&self.queue).replay_requested = true;
            self.wakeup.notify_one();
        }
    }

    /// Close stops waiting: every scheduled message goes to the spool or fails now.
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
        let scheduled = std::mem::take(&mut lock(&self.queue).scheduled);
        for Reverse(Scheduled { job, .. }) in scheduled {
            let (Job::Resend(failure) | Job::DeadLetter(failure)) = job;
            let closing = Error::new(
                ErrorKind::Closed,
                format!(
                    "the producer closed before the message could be re-sent (after: {})",
                    failure.error
                ),
            );
            let reason = if self.spool.is_some() {
                failure.error
            } else {
                closing
            };
            let finished =
                self.keep_or_fail(failure.record, failure.ticket, reason, failure.written);
            self.hand_off(finished);
        }
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// Whether close has asked the worker to stop (a replay's lookup then stops too).
    pub(crate) fn is_stopping(&self) -> bool {
        lock(&self.queue).stop
    }

    pub(crate) fn stop_worker(&self) {
        lock(&self.queue).stop = true;
        self.wakeup.notify_all();
    }

    /// Schedules a re-send no earlier than the one scheduled last for the same partition.
    fn schedule_in_lane(&self, lane: (String, i32), due: Instant, job: Job) {
        self.schedule_with(Some(lane), due, job);
    }

    fn schedule(&self, due: Instant, job: Job) {
        self.schedule_with(None, due, job);
    }

    fn schedule_with(&self, lane: Option<(String, i32)>, due: Instant, job: Job) {
        let mut queue = lock(&self.queue);
        let mut due = due;
        if let Some(lane) = lane {
            let now = Instant::now();
            queue.lanes.retain(|_, last| *last > now);
            let last = queue.lanes.entry(lane).or_insert(due);
            *last = (*last).max(due);
            due = *last;
        }
        queue.sequence += 1;
        let sequence = queue.sequence;
        queue
            .scheduled
            .push(Reverse(Scheduled { due, sequence, job }));
        drop(queue);
        self.wakeup.notify_one();
    }
}

impl Failures for Rescue {
    fn after_failure(&self, failure: Failure) -> Option<Finished> {
        let abandoned = self.abandoned.load(Ordering::Acquire);
        let Failure {
            record,
            mut ticket,
            error,
            written,
        } = failure;
        if let Some(letter) = ticket.dead_letter.take() {
            // The dead-letter topic failed too: keep the original message, for the original reason.
            tracing::warn!(target: "kafkasender", %error, "the dead-letter topic failed too");
            let DeadLetter { original, reason } = *letter;
            // The original was refused (only those are dead-lettered): never written.
            return Some(self.keep_or_fail(original, ticket, reason, Written::No));
        }
        if written != Written::No {
            // Re-sent, dead-lettered or failed as retriable, it could land twice: it is spooled
            // (a replay sends it only if its topic does not hold its id) or fails.
            return Some(self.keep_or_fail(record, ticket, error.possibly_written(), written));
        }
        if !abandoned && self.retry.should_retry(&error, ticket.attempts) {
            let wait = self.retry.backoff(ticket.attempts);
            tracing::debug!(target: "kafkasender", %error, attempts = ticket.attempts, ?wait, "re-sending");
            let lane = (record.topic.clone(), ticket.assigned_partition);
            let job = Job::Resend(Failure {
                record,
                ticket,
                error,
                written,
            });
            self.schedule_in_lane(lane, Instant::now() + wait, job);
            return None;
        }
        if !abandoned && self.dlq_topic.is_some() && dlq::accepts(&error) {
            let job = Job::DeadLetter(Failure {
                record,
                ticket,
                error,
                written,
            });
            self.schedule(Instant::now(), job);
            return None;
        }
        Some(self.keep_or_fail(record, ticket, error, written))
    }

    fn breaker_closed(&self) {
        self.request_replay();
    }

    fn take_handoffs(&self) -> Vec<Finished> {
        std::mem::take(&mut *lock(&self.handoff))
    }
}

enum Work {
    Job(Box<Job>),
    Replay,
}

/// The rescue worker: runs re-sends when they are due, dead-letter sends, and spool replays
/// (`replay`, given by the producer, which owns the whole send path a replay goes through; it
/// says whether the spool was drained).
pub(crate) fn run_worker(engine: &Engine, rescue: &Rescue, replay: impl Fn() -> bool) {
    // An interrupted replay is tried again on its own, but not sooner than this.
    let mut next_replay = Instant::now();
    loop {
        let work = {
            let mut queue = lock(&rescue.queue);
            loop {
                if queue.stop {
                    return;
                }
                if queue.replay_requested {
                    queue.replay_requested = false;
                    break Work::Replay;
                }
                let now = Instant::now();
                let next_due = queue.scheduled.peek().map(|Reverse(s)| s.due);
                if next_due.is_some_and(|due| due <= now) {
                    let Reverse(scheduled) = queue.scheduled.pop().expect("peeked");
                    break Work::Job(Box::new(scheduled.job));
                }
                if now >= next_replay && rescue.replay_due(now) {
                    break Work::Replay;
                }
                let wait = next_due.map_or(IDLE_WAKEUP, |due| (due - now).min(IDLE_WAKEUP));
                queue = rescue
                    .wakeup
                    .wait_timeout(queue, wait)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
        };
        match work {
            Work::Replay => {
                if !replay() {
                    next_replay = Instant::now() + IDLE_WAKEUP;
                }
            }
            Work::Job(job) => match *job {
                Job::Resend(failure) => resend(engine, rescue, failure),
                Job::DeadLetter(failure) => dead_letter(engine, rescue, failure),
            },
        }
    }
}

fn resend(engine: &Engine, rescue: &Rescue, mut failure: Failure) {
    if let Some(breaker) = &rescue.breaker {
        match breaker.admit(Instant::now()) {
            Admission::Reject => {
                failure.error = circuit_open_error();
                return finish_elsewhere(rescue, failure);
            }
            admission => failure.ticket.probe = admission == Admission::Probe,
        }
    }
    failure.ticket.attempts += 1;
    failure.ticket.attempted_now();
    rescue.retried.fetch_add(1, Ordering::Relaxed);
    hand_to_librdkafka(engine, rescue, failure);
}

fn dead_letter(engine: &Engine, rescue: &Rescue, failure: Failure) {
    let topic = rescue
        .dlq_topic
        .as_deref()
        .expect("scheduled only with a dlq.topic");
    let Failure {
        record,
        mut ticket,
        error,
        written,
    } = failure;
    let attempts = dlq::Attempts {
        count: ticket.attempts,
        first_ms: ticket.first_attempt_ms(),
        last_ms: ticket.last_attempt_ms(),
    };
    let letter = dlq::dead_letter(&record, topic, &error, &attempts);
    tracing::info!(target: "kafkasender", %error, original_topic = %record.topic, dlq = topic, "dead-lettering");
    ticket.dead_letter = Some(Box::new(DeadLetter {
        original: record,
        reason: error.clone(),
    }));
    hand_to_librdkafka(
        engine,
        rescue,
        Failure {
            record: letter,
            ticket,
            error,
            written,
        },
    );
}

/// Enqueues a failed message's record again; one that cannot be enqueued goes on to the next stage.
fn hand_to_librdkafka(engine: &Engine, rescue: &Rescue, failure: Failure) {
    let Failure { record, ticket, .. } = failure;
    let mut timed_out = engine.after_enqueue_timeout();
    let give_up = || rescue.is_abandoned() || timed_out();
    // Held like a send's: not into a closed producer, nor into a client being replaced.
    let enqueued = match engine.hold_open() {
        Ok(current) => engine.enqueue(&current.client, &record.as_record(), ticket, give_up),
        Err(error) => Err((error, ticket)),
    };
    if let Err((error, mut ticket)) = enqueued {
        if let (true, Some(breaker)) = (ticket.probe, &rescue.breaker) {
            breaker.release_probe(); // it never went out
            ticket.probe = false;
        }
        finish_elsewhere(
            rescue,
            Failure {
                record,
                ticket,
                error,
                written: Written::No, // never enqueued
            },
        );
    }
}

fn finish_elsewhere(rescue: &Rescue, failure: Failure) {
    if let Some(finished) = rescue.after_failure(failure) {
        rescue.hand_off(finished);
    }
}

pub(crate) fn circuit_open_error() -> Error {
    Error::new(
        ErrorKind::CircuitOpen,
        "the circuit breaker is open: the brokers keep failing",
    )
}
