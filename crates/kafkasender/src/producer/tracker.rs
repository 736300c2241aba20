//! Counts what is in flight, reports each message exactly once, and wakes flush and close when
//! nothing is left.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use super::context::Finished;
use super::message::Ticket;
use super::recovery::Recovery;
use crate::delivery::{DeliveryReport, Outcome, ReportSink, TopicName};
use crate::error::{Error, ErrorKind};
use crate::health::BrokerView;
use crate::lock;
use crate::metrics::Metrics;
use crate::spool::Spool;

/// Longest single sleep of a waiter, so a missed wake-up costs at most this much.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Counters and the wake-up signal shared by senders, flush/close and the delivery thread.
#[derive(Default)]
pub(crate) struct Tracker {
    // Senders write `accepted` and the delivery thread writes `completed`, once per message each:
    // on separate cache lines they do not bounce between the cores.
    /// Messages handed to librdkafka (or about to be).
    pub(crate) accepted: CachePadded<AtomicU64>,
    /// Messages done: reported, or never enqueued after all.
    completed: CachePadded<AtomicU64>,
    pub(crate) metrics: Metrics,
    /// Broker states and recent outcomes from librdkafka's statistics, for health.
    pub(crate) brokers: Mutex<BrokerView>,
    pub(crate) fatal: AtomicBool,
    /// Set while authentication keeps failing (see `watchdog`): sends fail with this error.
    refusing: AtomicBool,
    refusal: Mutex<Option<Error>>,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    wakeup: Condvar,
    /// With `spool.mode=journal`, where a reported message is crossed off.
    pub(crate) journal: Option<Arc<Spool>>,
    /// Reports of the open transaction's messages, kept until it ends (see `transaction`).
    held: Mutex<Vec<Finished>>,
    held_count: AtomicUsize,
    /// Replacing the client after a fatal error (see `recovery`).
    pub(crate) recovery: Recovery,
    /// Where token sends are reported (see `Producer::set_report_sink`).
    pub(crate) sink: OnceLock<ReportSink>,
}

impl Tracker {
    /// A tracker that crosses reported messages off `journal` (`spool.mode=journal`).
    pub(crate) fn new(journal: Option<Arc<Spool>>, recovery: Recovery) -> Tracker {
        Tracker {
            journal,
            recovery,
            ..Tracker::default()
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        // `completed` first: it never passes `accepted`, which only grows.
        let completed = self.completed.load(Ordering::SeqCst);
        (self.accepted.load(Ordering::SeqCst) - completed) as usize
    }

    /// Messages done so far.
    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Ordering::Acquire)
    }

    /// Why sends are refused now (failing authentication), if they are.
    pub(crate) fn refusal(&self) -> Option<Error> {
        if !self.refusing.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.refusal).clone()
    }

    /// Refuses every send with `error` from now on, or (with `None`) accepts them again.
    pub(crate) fn refuse(&self, error: Option<Error>) {
        let mut refusal = lock(&self.refusal);
        self.refusing.store(error.is_some(), Ordering::Release);
        *refusal = error;
    }

    /// A send is accepted: it will be reported exactly once (or, if librdkafka refuses it after
    /// all, handed back with [`Tracker::finish_one`]).
    pub(crate) fn accept(&self) {
        self.accepted.fetch_add(1, Ordering::SeqCst);
    }

    /// One message is done (reported, or never enqueued after all). Wakes flush and close, which
    /// wait for nothing to be in flight, when that happens.
    pub(crate) fn finish_one(&self) {
        self.completed.fetch_add(1, Ordering::SeqCst);
        // Waiters register before checking their condition, so this SeqCst pair never misses one.
        if self.waiters.load(Ordering::SeqCst) > 0 && self.in_flight() == 0 {
            let _guard = lock(&self.lock);
            self.wakeup.notify_all();
        }
    }

    /// Reports one message: counts its outcome, runs its callback (catching a panic), and marks
    /// it done.
    pub(crate) fn finish(&self, ticket: Ticket, mut report: DeliveryReport) {
        report.recovered = ticket.recovered;
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
        if let (Some(journal), Some(place)) = (&self.journal, ticket.journaled_at) {
            journal.journal_reported(place);
        }
        // A panicking callback must not take the delivery thread (and every later report) with it.
        let delivered = match ticket.token() {
            Some(token) => {
                // As a sink's reports promise, whichever path built this one.
                (report.topic, report.key) = (TopicName::default(), None);
                drop(ticket); // freed before the sink runs, as `deliver` frees before the callback
                let sink = self.sink.get().expect("token sends need the sink");
                panic::catch_unwind(AssertUnwindSafe(|| sink(token, report)))
            }
            None => panic::catch_unwind(AssertUnwindSafe(|| ticket.deliver(report))),
        };
        if delivered.is_err() {
            self.metrics.callback_panics.fetch_add(1, Ordering::Relaxed);
            tracing::error!(target: "kafkasender", "a delivery callback panicked; the panic was caught");
        }
        self.finish_one();
    }

    /// Wakes everything waiting on this tracker (a recovery ended).
    pub(crate) fn wake_waiters(&self) {
        let _guard = lock(&self.lock);
        self.wakeup.notify_all();
    }

    /// Keeps the report of a transaction's message until the transaction ends.
    pub(crate) fn hold(&self, ticket: Ticket, report: DeliveryReport) {
        lock(&self.held).push((ticket, report));
        self.held_count.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = lock(&self.lock);
            self.wakeup.notify_all();
        }
    }

    /// The reports held so far, to be delivered now.
    pub(crate) fn take_held(&self) -> Vec<Finished> {
        let mut held = lock(&self.held);
        self.held_count.store(0, Ordering::SeqCst);
        std::mem::take(&mut *held)
    }

    /// Messages librdkafka has not answered yet: in flight and not held.
    pub(crate) fn unanswered(&self) -> usize {
        // In flight first: a held report leaves the count only after it left `held`.
        let in_flight = self.in_flight();
        in_flight.saturating_sub(self.held_count.load(Ordering::SeqCst))
    }

    /// Waits until librdkafka has answered every message (reported, or held for its transaction)
    /// or `deadline` passes; returns whether it has.
    pub(crate) fn all_answered_by(&self, deadline: Instant) -> bool {
        self.wait_until(deadline, || self.unanswered() == 0)
    }

    /// Sleeps until `done()` holds or `deadline` passes; returns whether it holds.
    pub(crate) fn wait_until(&self, deadline: Instant, done: impl Fn() -> bool) -> bool {
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

    /// Waits until nothing is in flight or `deadline` passes; returns whether nothing is.
    pub(crate) fn drained_by(&self, deadline: Instant) -> bool {
        self.wait_until(deadline, || self.in_flight() == 0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::thread;

    use super::*;

    fn report(outcome: Outcome) -> DeliveryReport {
        DeliveryReport {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            timestamp: None,
            key: None,
            attempts: 1,
            latency: Duration::from_micros(250),
            recovered: false,
            outcome,
        }
    }

    #[test]
    fn each_outcome_is_counted_and_its_callback_runs_once() {
        let tracker = Tracker::default();
        let ran = Arc::new(AtomicUsize::new(0));
        let outcomes = [
            Outcome::Delivered,
            Outcome::Failed(Error::new(ErrorKind::Closed, "closed")),
            Outcome::Failed(Error::new(ErrorKind::MessageTooLarge, "too large")),
        ];
        for outcome in outcomes {
            tracker.accept();
            let ran = ran.clone();
            let ticket = Ticket::new(move |_| {
                ran.fetch_add(1, Ordering::SeqCst);
            });
            tracker.finish(ticket, report(outcome));
        }
        assert_eq!(ran.load(Ordering::SeqCst), 3);
        assert_eq!(tracker.in_flight(), 0);
        assert_eq!(tracker.metrics.delivered(), 1);
        assert_eq!(tracker.metrics.failed(), 2);
        assert_eq!(tracker.metrics.purged.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_panicking_callback_is_caught_counted_and_the_message_still_finishes() {
        let tracker = Tracker::default();
        tracker.accept();
        tracker.finish(
            Ticket::new(|_| panic!("a user's bug")),
            report(Outcome::Delivered),
        );
        assert_eq!(tracker.metrics.callback_panics.load(Ordering::SeqCst), 1);
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn drained_by_wakes_when_the_last_message_finishes_and_times_out_otherwise() {
        let tracker = Arc::new(Tracker::default());
        tracker.accept();
        assert!(!tracker.drained_by(Instant::now() + Duration::from_millis(20)));
        let finisher = {
            let tracker = tracker.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(20));
                tracker.finish_one();
            })
        };
        assert!(tracker.drained_by(Instant::now() + Duration::from_secs(10)));
        finisher.join().unwrap();
        assert_eq!(tracker.in_flight(), 0);
    }
}
