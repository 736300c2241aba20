//! What the delivery thread checks between polls, for failures librdkafka never reports per
//! message:
//! - a **stall**: messages in flight but none reported for `breaker.stall.ms` (a lost leader
//!   that cannot be replaced, too few in-sync replicas: librdkafka retries those without end) opens
//!   the circuit breaker, so new sends are spooled or fail fast instead of filling the queue;
//! - **failing credentials**: SASL authentication or the TLS handshake failing for
//!   `auth.failure.timeout.ms` with nothing delivered makes every pending and new send fail with
//!   `authentication`, instead of waiting for a timeout that says nothing of the cause (until a
//!   first delivery, the timeout counts from the oldest waiting send if that is earlier). Sends are
//!   accepted again once no such failure has been seen for three times that long, and for at
//!   least [`FAILURES_UNHEARD_FOR`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::context::Context;
use super::tracker::Tracker;
use crate::breaker::BreakerState;
use crate::config::Config;
use crate::error::Error;
use crate::lock;

/// How long SASL or TLS failures that go on may go unreported: librdkafka reports a broker's
/// failure that repeats unchanged at most once every 30 s, and tries a connection again at least
/// every 10 s (`reconnect.backoff.max.ms`). Sends are not accepted again sooner, or a producer
/// with a wrong password would accept sends in the silence and fail them only at the next report.
const FAILURES_UNHEARD_FOR: Duration = Duration::from_secs(45);

/// SASL and TLS failures from librdkafka's error events, cleared by any delivery.
#[derive(Default)]
pub(crate) struct CredentialFailures {
    /// Whether `seen` holds anything: the delivery path checks only this.
    failing: AtomicBool,
    seen: Mutex<Option<Seen>>,
}

#[derive(Clone)]
struct Seen {
    first: Instant,
    last: Instant,
    error: Error,
}

impl CredentialFailures {
    /// librdkafka reported an authentication or TLS failure.
    pub(crate) fn record(&self, error: Error, now: Instant) {
        let mut seen = lock(&self.seen);
        let first = seen.as_ref().map_or(now, |s| s.first);
        *seen = Some(Seen {
            first,
            last: now,
            error,
        });
        self.failing.store(true, Ordering::Release);
    }

    /// Forgets the failures: a message was delivered (the credentials work on some broker at
    /// least), or none has been seen for a while.
    pub(crate) fn clear(&self) {
        if self.failing.load(Ordering::Acquire) {
            self.failing.store(false, Ordering::Release);
            *lock(&self.seen) = None;
        }
    }

    fn seen(&self) -> Option<Seen> {
        if !self.failing.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.seen).clone()
    }
}

/// What the delivery loop should do after a check.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    CarryOn,
    /// Authentication keeps failing: fail what librdkafka holds (sends are refused already).
    Refuse,
}

pub(crate) struct Watchdog {
    /// `breaker.stall.ms`, with a breaker to open.
    stall: Option<Duration>,
    auth_timeout: Duration,
    last_completed: u64,
    /// When a message was last reported, or the stall was last acted on.
    last_progress: Instant,
    /// When the sends now in flight began to wait: the last report, or the first send after
    /// none was in flight.
    waiting_since: Instant,
    refusing: bool,
}

impl Watchdog {
    pub(crate) fn new(config: &Config) -> Watchdog {
        let settings = config.settings();
        let breaker = &settings.resilience.breaker;
        Watchdog {
            stall: breaker.enabled.then_some(breaker.stall),
            auth_timeout: settings.auth_failure_timeout,
            last_completed: 0,
            last_progress: Instant::now(),
            waiting_since: Instant::now(),
            refusing: false,
        }
    }

    pub(crate) fn check(&mut self, context: &Context, now: Instant) -> Verdict {
        let waiting = self.note_progress(&context.tracker, now);
        if waiting {
            self.check_stall(context, now);
        }
        self.check_credentials(&context.credentials, &context.tracker, now)
    }

    /// Whether messages are in flight with none reported since the previous check.
    fn note_progress(&mut self, tracker: &Tracker, now: Instant) -> bool {
        let completed = tracker.completed();
        if completed != self.last_completed || tracker.in_flight() == 0 {
            self.last_completed = completed;
            self.last_progress = now;
            self.waiting_since = now;
            return false;
        }
        true
    }

    fn check_stall(&mut self, context: &Context, now: Instant) {
        let (Some(stall), Some(breaker)) = (self.stall, &context.breaker) else {
            return;
        };
        let in_flight = context.tracker.in_flight();
        if now.duration_since(self.last_progress) >= stall
            && breaker.state() == BreakerState::Closed
        {
            let reason = format!("{in_flight} messages in flight, none reported for {stall:?}");
            breaker.trip(&reason, now);
            self.last_progress = now; // once per stall period, not at every poll
        }
    }

    fn check_credentials(
        &mut self,
        credentials: &CredentialFailures,
        tracker: &Tracker,
        now: Instant,
    ) -> Verdict {
        match credentials.seen() {
            Some(seen)
                if !self.refusing
                    && now.duration_since(self.failing_since(&seen, tracker))
                        >= self.auth_timeout =>
            {
                tracing::error!(target: "kafkasender", error = %seen.error, "authentication keeps failing: pending and new sends fail");
                tracker.refuse(Some(seen.error));
                self.refusing = true;
                Verdict::Refuse
            }
            Some(seen)
                if self.refusing
                    && now.duration_since(seen.last)
                        >= (3 * self.auth_timeout).max(FAILURES_UNHEARD_FOR) =>
            {
                tracing::info!(target: "kafkasender", "no authentication failure for a while: accepting sends again");
                credentials.clear();
                self.accept_again(tracker)
            }
            None if self.refusing => self.accept_again(tracker),
            _ => Verdict::CarryOn,
        }
    }

    /// Where the timeout counts from. A producer that never delivered anything counts from its
    /// oldest waiting send as well: its credentials are likely wrong from the start, and a broker
    /// slow to answer the handshake should not add its delay. One that has delivered counts from
    /// the first failure only: a broker that restarts may refuse a handshake for a moment while
    /// sends wait for other reasons.
    fn failing_since(&self, seen: &Seen, tracker: &Tracker) -> Instant {
        if tracker.metrics.delivered() == 0 {
            seen.first.min(self.waiting_since)
        } else {
            seen.first
        }
    }

    fn accept_again(&mut self, tracker: &Tracker) -> Verdict {
        tracker.refuse(None);
        self.refusing = false;
        Verdict::CarryOn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const SECOND: Duration = Duration::from_secs(1);

    /// A watchdog with a 5 s `auth.failure.timeout.ms`, and what it watches.
    struct Watched {
        watchdog: Watchdog,
        credentials: CredentialFailures,
        tracker: Tracker,
    }

    impl Watched {
        /// Nothing in flight at `start`.
        fn from(start: Instant) -> Watched {
            let config = Config::builder()
                .brokers("x:1")
                .set("auth.failure.timeout.ms", "5000")
                .build()
                .unwrap();
            let mut watched = Watched {
                watchdog: Watchdog::new(&config),
                credentials: CredentialFailures::default(),
                tracker: Tracker::default(),
            };
            assert!(!watched.watchdog.note_progress(&watched.tracker, start));
            watched
        }

        fn fail(&self, at: Instant) {
            let error = Error::new(ErrorKind::Authentication, "SASL authentication failed");
            self.credentials.record(error, at);
        }

        fn check(&mut self, at: Instant) -> Verdict {
            self.watchdog.note_progress(&self.tracker, at);
            self.watchdog
                .check_credentials(&self.credentials, &self.tracker, at)
        }

        /// Every send refused with `authentication` at `at`.
        fn refuses_at(&mut self, at: Instant) {
            assert_eq!(self.check(at), Verdict::Refuse);
            let refusal = self.tracker.refusal().map(|e| e.kind());
            assert_eq!(refusal, Some(ErrorKind::Authentication));
        }

        /// Nothing refused at each of `earlier` and just before `at`; refused at `at`.
        fn refuses_first_at(&mut self, earlier: &[Instant], at: Instant) {
            let just_before = at - Duration::from_millis(1);
            for &when in earlier.iter().chain([&just_before]) {
                assert_eq!(self.check(when), Verdict::CarryOn);
                assert!(self.tracker.refusal().is_none());
            }
            self.refuses_at(at);
        }
    }

    #[test]
    fn sends_that_waited_the_timeout_fail_as_soon_as_a_late_failure_is_seen() {
        let start = Instant::now();
        let mut watched = Watched::from(start);
        (0..5).for_each(|_| watched.tracker.accept());
        assert_eq!(watched.check(start + SECOND), Verdict::CarryOn);
        // The brokers answer the handshake only after 7 s: the sends have waited longer than the
        // timeout already, so they fail now rather than 5 s after the failure.
        let answered = start + 7 * SECOND;
        watched.fail(answered);
        watched.refuses_at(answered);
    }

    #[test]
    fn failures_seen_before_any_send_count_from_the_first_of_them() {
        let start = Instant::now();
        let mut watched = Watched::from(start);
        watched.fail(start);
        watched.tracker.accept();
        let sent = start + 2 * SECOND;
        watched.refuses_first_at(&[sent], start + 5 * SECOND);
    }

    #[test]
    fn a_failure_seen_soon_after_the_sends_fails_them_the_timeout_after_they_began_to_wait() {
        let start = Instant::now();
        let mut watched = Watched::from(start);
        watched.tracker.accept();
        watched.fail(start + Duration::from_millis(300));
        watched.refuses_first_at(&[start + SECOND, start + 3 * SECOND], start + 5 * SECOND);
    }

    #[test]
    fn once_a_message_was_delivered_a_late_failure_gets_the_whole_timeout() {
        let start = Instant::now();
        let mut watched = Watched::from(start);
        watched
            .tracker
            .metrics
            .record_delivered(Duration::from_millis(2));
        watched.tracker.accept();
        watched.fail(start + 7 * SECOND);
        watched.refuses_first_at(&[start + 7 * SECOND], start + 12 * SECOND);
    }

    #[test]
    fn sends_are_accepted_again_once_librdkafka_would_have_reported_a_failure_that_went_on() {
        let start = Instant::now();
        let mut watched = Watched::from(start);
        watched.fail(start);
        watched.refuses_first_at(&[], start + 5 * SECOND);
        // Three timeouts (15 s) are shorter than librdkafka's silence about a repeated failure.
        let almost = start + FAILURES_UNHEARD_FOR - Duration::from_millis(1);
        assert_eq!(watched.check(almost), Verdict::CarryOn);
        assert!(
            watched.tracker.refusal().is_some(),
            "refused until 45 s after the last failure"
        );
        assert_eq!(
            watched.check(start + FAILURES_UNHEARD_FOR),
            Verdict::CarryOn
        );
        assert!(watched.tracker.refusal().is_none());
    }
}
