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

use crate::breaker::{Breaker, BreakerState};
use crate::config::ResilienceSettings;
use crate::delivery::{DeliveryReport, Outcome};
use crate::dlq;
use crate::error::{Error, ErrorKind, Result};
use crate::lock;
use crate::producer::{Pending, Shared, Stage};
use crate::record::OwnedRecord;
use crate::spool::{now_ms, Spool, SpoolReader, SpooledMessage, TornRecord};

/// Longest the worker sleeps without looking at its queue.
const IDLE_WAKEUP: Duration = Duration::from_millis(100);

/// A failed message on its way through the stages.
pub(crate) struct Parcel {
    pub(crate) record: OwnedRecord,
    pub(crate) pending: Box<Pending>,
    pub(crate) error: Error,
}

/// A report ready for the delivery thread.
pub(crate) type Finished = (Box<Pending>, DeliveryReport);

enum Job {
    Resend(Parcel),
    DeadLetter(Parcel),
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

/// What a spool replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Spool files read.
    pub files: usize,
    /// Records handed to librdkafka again; each is reported (to metrics) like any send, and its
    /// file is deleted once all of them are.
    pub records: u64,
    /// Torn or corrupt records that were skipped, never sent.
    pub torn: Vec<TornRecord>,
}

/// The resilience stages after librdkafka, shared by the delivery thread, the rescue worker and
/// the sending threads.
pub(crate) struct Rescue {
    retry: crate::retry::RetryPolicy,
    pub(crate) breaker: Option<Breaker>,
    dlq_topic: Option<String>,
    pub(crate) spool: Option<Spool>,
    /// Set when close stops waiting: from then on failures skip re-sends and the dead-letter topic.
    abandoned: AtomicBool,
    queue: Mutex<Queue>,
    wakeup: Condvar,
    handoff: Mutex<Vec<Finished>>,
    /// One replay at a time.
    replaying: Mutex<()>,
    pub(crate) retried: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) torn_records: AtomicU64,
}

impl Rescue {
    pub(crate) fn new(settings: &ResilienceSettings) -> Result<Rescue> {
        Ok(Rescue {
            retry: crate::retry::RetryPolicy::new(settings.retry.clone()),
            breaker: settings
                .breaker
                .enabled
                .then(|| Breaker::new(settings.breaker.clone())),
            dlq_topic: settings.dlq_topic.clone(),
            spool: Spool::open(&settings.spool)?,
            abandoned: AtomicBool::new(false),
            queue: Mutex::default(),
            wakeup: Condvar::new(),
            handoff: Mutex::default(),
            replaying: Mutex::new(()),
            retried: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            torn_records: AtomicU64::new(0),
        })
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker
            .as_ref()
            .map_or(BreakerState::Closed, Breaker::state)
    }

    /// Takes a failed message one stage further. Returns its final report, or `None` when it was
    /// scheduled for a re-send or the dead-letter topic.
    pub(crate) fn after_failure(&self, parcel: Parcel) -> Option<Finished> {
        let abandoned = self.abandoned.load(Ordering::Acquire);
        let Parcel {
            record,
            mut pending,
            error,
        } = parcel;
        match std::mem::replace(&mut pending.stage, Stage::Original) {
            // The dead-letter topic failed too: keep the original message, for the original reason.
            Stage::DeadLetter { original, reason } => {
                tracing::warn!(target: "kafkasender", %error, "the dead-letter topic failed too");
                return Some(self.keep_or_fail(*original, pending, reason));
            }
            Stage::Original => {}
        }
        if !abandoned && self.retry.should_retry(&error, pending.attempts) {
            let wait = self.retry.backoff(pending.attempts);
            tracing::debug!(target: "kafkasender", %error, attempts = pending.attempts, ?wait, "re-sending");
            let lane = (record.topic.clone(), pending.assigned_partition);
            self.schedule_in_lane(
                lane,
                Instant::now() + wait,
                Job::Resend(Parcel {
                    record,
                    pending,
                    error,
                }),
            );
            return None;
        }
        if !abandoned && self.dlq_topic.is_some() && dlq::accepts(&error) {
            self.schedule(
                Instant::now(),
                Job::DeadLetter(Parcel {
                    record,
                    pending,
                    error,
                }),
            );
            return None;
        }
        Some(self.keep_or_fail(record, pending, error))
    }

    /// The last stage: the spool if there is one, else the failure report.
    pub(crate) fn keep_or_fail(
        &self,
        record: OwnedRecord,
        pending: Box<Pending>,
        reason: Error,
    ) -> Finished {
        let outcome = match self.spool(&record, &pending, &reason) {
            Some(Ok(path)) => Outcome::Spooled { path, reason },
            Some(Err(spool_error)) => Outcome::Failed(Error::new(
                ErrorKind::Spool,
                format!("{} (after: {reason})", spool_error.message()),
            )),
            None => Outcome::Failed(reason),
        };
        let report = DeliveryReport::of_record(&record, &pending, outcome);
        (pending, report)
    }

    /// Appends to the spool, if there is one.
    pub(crate) fn spool(
        &self,
        record: &OwnedRecord,
        pending: &Pending,
        reason: &Error,
    ) -> Option<Result<PathBuf>> {
        let spool = self.spool.as_ref()?;
        Some(spool.append(&SpooledMessage {
            record: record.clone(),
            reason: reason.clone(),
            attempts: pending.attempts,
            first_attempt_ms: pending.first_attempt_ms(),
            spooled_at_ms: now_ms(),
        }))
    }

    /// Hands a final report to the delivery thread.
    pub(crate) fn hand_off(&self, finished: Finished) {
        lock(&self.handoff).push(finished);
    }

    pub(crate) fn take_handoffs(&self) -> Vec<Finished> {
        std::mem::take(&mut *lock(&self.handoff))
    }

    /// Asks the worker to replay the spool (the breaker closed, or the producer started on one).
    pub(crate) fn request_replay(&self) {
        if self.spool.as_ref().is_some_and(Spool::has_waiting) {
            lock(&self.queue).replay_requested = true;
            self.wakeup.notify_one();
        }
    }

    /// Close stops waiting: every scheduled message goes to the spool or fails now.
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
        let scheduled = std::mem::take(&mut lock(&self.queue).scheduled);
        for Reverse(Scheduled { job, .. }) in scheduled {
            let (Job::Resend(parcel) | Job::DeadLetter(parcel)) = job;
            let closing = Error::new(
                ErrorKind::Closed,
                format!(
                    "the producer closed before the message could be re-sent (after: {})",
                    parcel.error
                ),
            );
            let reason = if self.spool.is_some() {
                parcel.error
            } else {
                closing
            };
            let finished = self.keep_or_fail(parcel.record, parcel.pending, reason);
            self.hand_off(finished);
        }
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
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

enum Work {
    Job(Job),
    Replay,
}

/// The rescue worker: runs re-sends when they are due, dead-letter sends, and spool replays.
pub(crate) fn run_worker(shared: &Shared) {
    let rescue = &shared.rescue;
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
                    break Work::Job(scheduled.job);
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
                if let Err(error) = replay(shared) {
                    tracing::warn!(target: "kafkasender", %error, "automatic spool replay stopped");
                }
            }
            Work::Job(Job::Resend(parcel)) => resend(shared, parcel),
            Work::Job(Job::DeadLetter(parcel)) => dead_letter(shared, parcel),
        }
    }
}

fn resend(shared: &Shared, mut parcel: Parcel) {
    let rescue = &shared.rescue;
    if let Some(breaker) = &rescue.breaker {
        match breaker.admit(Instant::now()) {
            crate::breaker::Admission::Reject => {
                parcel.error = circuit_open_error();
                return finish_elsewhere(rescue, parcel);
            }
            admission => parcel.pending.probe = admission == crate::breaker::Admission::Probe,
        }
    }
    parcel.pending.attempts += 1;
    parcel.pending.last_attempt_at = Instant::now();
    rescue.retried.fetch_add(1, Ordering::Relaxed);
    hand_to_librdkafka(shared, parcel);
}

fn dead_letter(shared: &Shared, parcel: Parcel) {
    let rescue = &shared.rescue;
    let topic = rescue
        .dlq_topic
        .as_deref()
        .expect("scheduled only with a dlq.topic");
    let Parcel {
        record,
        mut pending,
        error,
    } = parcel;
    let attempts = dlq::Attempts {
        count: pending.attempts,
        first_ms: pending.first_attempt_ms(),
        last_ms: pending.last_attempt_ms(),
    };
    let letter = dlq::dead_letter(&record, topic, &error, &attempts);
    tracing::info!(target: "kafkasender", %error, original_topic = %record.topic, dlq = topic, "dead-lettering");
    pending.stage = Stage::DeadLetter {
        original: Box::new(record),
        reason: error.clone(),
    };
    hand_to_librdkafka(
        shared,
        Parcel {
            record: letter,
            pending,
            error,
        },
    );
}

/// Enqueues a parcel's record; a message that cannot be enqueued goes on to the next stage.
fn hand_to_librdkafka(shared: &Shared, parcel: Parcel) {
    let Parcel {
        record, pending, ..
    } = parcel;
    let deadline = Instant::now() + shared.settings.enqueue_timeout;
    let give_up = || shared.rescue.is_abandoned() || Instant::now() >= deadline;
    if let Err((error, mut pending)) = shared.produce(&record.as_record(), pending, give_up) {
        if let (true, Some(breaker)) = (pending.probe, &shared.rescue.breaker) {
            breaker.release_probe(); // it never went out
            pending.probe = false;
        }
        finish_elsewhere(
            &shared.rescue,
            Parcel {
                record,
                pending,
                error,
            },
        );
    }
}

fn finish_elsewhere(rescue: &Rescue, parcel: Parcel) {
    if let Some(finished) = rescue.after_failure(parcel) {
        rescue.hand_off(finished);
    }
}

pub(crate) fn circuit_open_error() -> Error {
    Error::new(
        ErrorKind::CircuitOpen,
        "the circuit breaker is open: the brokers keep failing",
    )
}

/// Re-sends every record of the spool files waiting for a replay, oldest first. A file is deleted
/// when every record in it has been reported again (delivered, dead-lettered, failed, or spooled
/// anew); a torn record ends its file's replay and is counted, never sent.
pub(crate) fn replay(shared: &Shared) -> Result<ReplayReport> {
    let rescue = &shared.rescue;
    let Some(spool) = &rescue.spool else {
        return Err(Error::new(ErrorKind::Config, "no spool.dir is configured"));
    };
    if rescue.breaker_state() == BreakerState::Open {
        return Err(circuit_open_error());
    }
    let _one_at_a_time = lock(&rescue.replaying);
    let mut report = ReplayReport::default();
    for path in spool.take_for_replay() {
        report.files += 1;
        let file = Arc::new(ReplayedFile {
            path: path.clone(),
            // One for the reader itself, so the file cannot go before it is read to the end.
            unreported: AtomicU64::new(1),
            rescue: shared.rescue.clone(),
        });
        for item in SpoolReader::open(&path)? {
            let spooled = match item {
                Ok(spooled) => spooled,
                Err(torn) => {
                    tracing::warn!(
                        target: "kafkasender",
                        path = %torn.path.display(),
                        offset = torn.offset,
                        reason = %torn.reason,
                        "skipping a torn spool record"
                    );
                    rescue.torn_records.fetch_add(1, Ordering::Relaxed);
                    report.torn.push(torn);
                    continue;
                }
            };
            file.unreported.fetch_add(1, Ordering::AcqRel);
            let reporter = file.clone();
            let pending =
                Pending::replayed(Box::new(move |_report| reporter.reported_one()), &spooled);
            if let Err(error) = shared.submit(&spooled.record.as_record(), pending) {
                // Not enqueued (closing, or the spool is full): leave the file for the next replay.
                tracing::warn!(target: "kafkasender", %error, path = %path.display(), "spool replay interrupted");
                return Err(error);
            }
            rescue.replayed.fetch_add(1, Ordering::Relaxed);
            report.records += 1;
        }
        file.reported_one();
    }
    if report.files > 0 {
        tracing::info!(target: "kafkasender", files = report.files, records = report.records, torn = report.torn.len(), "spool replayed");
    }
    Ok(report)
}

/// A spool file being replayed: deleted when its last record has been reported.
struct ReplayedFile {
    path: PathBuf,
    unreported: AtomicU64,
    rescue: Arc<Rescue>,
}

impl ReplayedFile {
    fn reported_one(&self) {
        if self.unreported.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(spool) = &self.rescue.spool {
                spool.remove_replayed(&self.path);
            }
        }
    }
}
