//! What the delivery thread checks between polls, for failures librdkafka never reports per
//! message:
//! - a **stall**: messages in flight but none reported for `breaker.stall.ms` (a lost leader
//!   that cannot be replaced, too few in-sync replicas: librdkafka retries those without end) opens
//!   the circuit breaker, so new sends are spooled or fail fast instead of filling the queue;
//! - **failing credentials**: SASL authentication or the TLS handshake failing for
//!   `auth.failure.timeout.ms` with nothing delivered makes every pending and new send fail with
//!   `authentication`, instead of waiting for a timeout that says nothing of the cause. Sends are
//!   accepted again once no such failure has been seen for three times that long.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::context::Context;
use crate::breaker::BreakerState;
use crate::config::Config;
use crate::error::Error;
use crate::lock;

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
    last_progress: Instant,
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
            refusing: false,
        }
    }

    pub(crate) fn check(&mut self, context: &Context, now: Instant) -> Verdict {
        self.check_stall(context, now);
        self.check_credentials(context, now)
    }

    fn check_stall(&mut self, context: &Context, now: Instant) {
        let tracker = &context.tracker;
        let completed = tracker.completed();
        let in_flight = tracker.in_flight();
        if completed != self.last_completed || in_flight == 0 {
            self.last_completed = completed;
            self.last_progress = now;
            return;
        }
        let (Some(stall), Some(breaker)) = (self.stall, &context.breaker) else {
            return;
        };
        if now.duration_since(self.last_progress) >= stall
            && breaker.state() == BreakerState::Closed
        {
            let reason = format!("{in_flight} messages in flight, none reported for {stall:?}");
            breaker.trip(&reason, now);
            self.last_progress = now; // once per stall period, not at every poll
        }
    }

    fn check_credentials(&mut self, context: &Context, now: Instant) -> Verdict {
        let seen = context.credentials.seen();
        match seen {
            Some(seen) if !self.refusing && now.duration_since(seen.first) >= self.auth_timeout => {
                tracing::error!(target: "kafkasender", error = %seen.error, "authentication keeps failing: pending and new sends fail");
                context.tracker.refuse(Some(seen.error));
                self.refusing = true;
                Verdict::Refuse
            }
            Some(seen)
                if self.refusing && now.duration_since(seen.last) >= 3 * self.auth_timeout =>
            {
                tracing::info!(target: "kafkasender", "no authentication failure for a while: accepting sends again");
                context.credentials.clear();
                self.accept_again(context)
            }
            None if self.refusing => self.accept_again(context),
            _ => Verdict::CarryOn,
        }
    }

    fn accept_again(&mut self, context: &Context) -> Verdict {
        context.tracker.refuse(None);
        self.refusing = false;
        Verdict::CarryOn
    }
}
