//! The circuit breaker: when the brokers keep failing, new sends stop piling up in librdkafka's
//! queue behind a dead cluster and fail fast with `circuit_open` (or go to the spool) instead.
//!
//! Closed → open after `breaker.consecutive.failures` failed deliveries in a row, a failure ratio
//! of `breaker.failure.ratio` over a window (`breaker.interval.ms`), or librdkafka's "all brokers
//! down". Open → half-open after `breaker.timeout.ms`; half-open lets `breaker.max.requests`
//! probes through: that many successes close it, one failure opens it again.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::config::BreakerSettings;
use crate::lock;

/// Results a window needs before its failure ratio counts.
const MIN_RESULTS_FOR_RATIO: u32 = 20;

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Sends pass (also when no breaker is configured).
    Closed = 0,
    /// Sends fail fast or are spooled.
    Open = 1,
    /// A few probe sends pass to find out whether the brokers are back.
    HalfOpen = 2,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    fn from_u8(value: u8) -> BreakerState {
        match value {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }
}

/// Whether a send may go to librdkafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Pass,
    /// Passes as one of the half-open breaker's probes; its result decides the state.
    Probe,
    Reject,
}

/// A state change the caller may have to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    None,
    Opened,
    Closed,
}

pub(crate) struct Breaker {
    settings: BreakerSettings,
    /// The state, readable without the lock: a closed breaker costs senders one atomic load.
    state: AtomicU8,
    trips: AtomicU64,
    counts: Mutex<Counts>,
}

struct Counts {
    window_start: Instant,
    results: u32,
    failures: u32,
    consecutive_failures: u32,
    open_until: Instant,
    probes_admitted: u32,
    probe_successes: u32,
}

impl Breaker {
    pub(crate) fn new(settings: BreakerSettings) -> Breaker {
        let now = Instant::now();
        Breaker {
            settings,
            state: AtomicU8::new(BreakerState::Closed as u8),
            trips: AtomicU64::new(0),
            counts: Mutex::new(Counts {
                window_start: now,
                results: 0,
                failures: 0,
                consecutive_failures: 0,
                open_until: now,
                probes_admitted: 0,
                probe_successes: 0,
            }),
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// How often it opened.
    pub(crate) fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    /// Whether [`Breaker::admit`] would let a message through now (without counting it).
    pub(crate) fn would_admit(&self, now: Instant) -> bool {
        if self.state() == BreakerState::Closed {
            return true;
        }
        let counts = lock(&self.counts);
        match self.state() {
            BreakerState::Closed => true,
            BreakerState::Open => now >= counts.open_until,
            BreakerState::HalfOpen => counts.probes_admitted < self.settings.max_requests,
        }
    }

    pub(crate) fn admit(&self, now: Instant) -> Admission {
        if self.state() == BreakerState::Closed {
            return Admission::Pass;
        }
        let mut counts = lock(&self.counts);
        match self.state() {
            BreakerState::Closed => Admission::Pass,
            BreakerState::Open if now < counts.open_until => Admission::Reject,
            BreakerState::Open => {
                counts.probes_admitted = 1;
                counts.probe_successes = 0;
                self.set(BreakerState::HalfOpen, "the open timeout passed; probing");
                Admission::Probe
            }
            BreakerState::HalfOpen if counts.probes_admitted < self.settings.max_requests => {
                counts.probes_admitted += 1;
                Admission::Probe
            }
            BreakerState::HalfOpen => Admission::Reject,
        }
    }

    /// Counts the result of one delivery attempt. `failed` is a failure that says something about
    /// the brokers (retriable errors), not about the message.
    pub(crate) fn record(&self, failed: bool, probe: bool, now: Instant) -> Transition {
        let mut counts = lock(&self.counts);
        match self.state() {
            BreakerState::Closed => {
                if now.duration_since(counts.window_start) >= self.settings.interval {
                    counts.window_start = now;
                    counts.results = 0;
                    counts.failures = 0;
                }
                counts.results += 1;
                if !failed {
                    counts.consecutive_failures = 0;
                    return Transition::None;
                }
                counts.failures += 1;
                counts.consecutive_failures += 1;
                let ratio = f64::from(counts.failures) / f64::from(counts.results);
                if counts.consecutive_failures >= self.settings.consecutive_failures {
                    self.open(&mut counts, now, "consecutive delivery failures")
                } else if counts.results >= MIN_RESULTS_FOR_RATIO
                    && ratio >= self.settings.failure_ratio
                {
                    self.open(&mut counts, now, "failure ratio over the window")
                } else {
                    Transition::None
                }
            }
            // Only probes decide a half-open breaker; older messages still finishing say nothing new.
            BreakerState::HalfOpen if probe => {
                if failed {
                    return self.open(&mut counts, now, "a probe failed");
                }
                counts.probe_successes += 1;
                if counts.probe_successes < self.settings.max_requests {
                    return Transition::None;
                }
                counts.window_start = now;
                counts.results = 0;
                counts.failures = 0;
                counts.consecutive_failures = 0;
                self.set(BreakerState::Closed, "the probes were delivered");
                Transition::Closed
            }
            BreakerState::HalfOpen | BreakerState::Open => Transition::None,
        }
    }

    /// Gives back a probe slot whose message was never sent.
    pub(crate) fn release_probe(&self) {
        let mut counts = lock(&self.counts);
        if self.state() == BreakerState::HalfOpen {
            counts.probes_admitted = counts.probes_admitted.saturating_sub(1);
        }
    }

    /// Opens the breaker now (librdkafka reported every broker down).
    pub(crate) fn trip(&self, reason: &str, now: Instant) -> Transition {
        let mut counts = lock(&self.counts);
        if self.state() == BreakerState::Open {
            return Transition::None;
        }
        self.open(&mut counts, now, reason)
    }

    fn open(&self, counts: &mut Counts, now: Instant, reason: &str) -> Transition {
        counts.open_until = now + self.settings.timeout;
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.set(BreakerState::Open, reason);
        Transition::Opened
    }

    fn set(&self, state: BreakerState, reason: &str) {
        let before = BreakerState::from_u8(self.state.swap(state as u8, Ordering::AcqRel));
        tracing::warn!(
            target: "kafkasender",
            from = before.as_str(),
            to = state.as_str(),
            reason,
            "circuit breaker changed state"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn breaker() -> Breaker {
        Breaker::new(BreakerSettings {
            enabled: true,
            max_requests: 2,
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            consecutive_failures: 3,
            failure_ratio: 0.5,
            stall: Duration::from_secs(10),
        })
    }

    #[test]
    fn opens_after_consecutive_failures_then_probes_and_closes() {
        let b = breaker();
        let t0 = Instant::now();
        assert_eq!(b.record(true, false, t0), Transition::None);
        assert_eq!(b.record(true, false, t0), Transition::None);
        assert_eq!(
            b.record(false, false, t0),
            Transition::None,
            "a success resets the run"
        );
        assert_eq!(b.record(true, false, t0), Transition::None);
        assert_eq!(b.record(true, false, t0), Transition::None);
        assert_eq!(b.record(true, false, t0), Transition::Opened);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.trips(), 1);
        assert_eq!(b.admit(t0 + Duration::from_secs(29)), Admission::Reject);

        let later = t0 + Duration::from_secs(30);
        assert_eq!(b.admit(later), Admission::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.admit(later), Admission::Probe);
        assert_eq!(
            b.admit(later),
            Admission::Reject,
            "only max.requests probes"
        );
        assert_eq!(
            b.record(true, false, later),
            Transition::None,
            "non-probes do not count"
        );
        assert_eq!(b.record(false, true, later), Transition::None);
        assert_eq!(b.record(false, true, later), Transition::Closed);
        assert_eq!(b.admit(later), Admission::Pass);
    }

    #[test]
    fn a_failed_probe_reopens_and_a_failure_ratio_opens() {
        let b = breaker();
        let t0 = Instant::now();
        assert_eq!(b.trip("all brokers down", t0), Transition::Opened);
        assert_eq!(b.trip("all brokers down", t0), Transition::None);
        let later = t0 + Duration::from_secs(31);
        assert_eq!(b.admit(later), Admission::Probe);
        assert_eq!(b.record(true, true, later), Transition::Opened);
        assert_eq!(b.admit(later), Admission::Reject);
        assert_eq!(b.trips(), 2);

        let b = breaker();
        let mut transition = Transition::None;
        for i in 0..21 {
            // Alternating: never 3 in a row, but more than half of them failed.
            transition = b.record(i % 2 == 0, false, t0);
        }
        assert_eq!(transition, Transition::Opened);
    }

    #[test]
    fn the_window_restarts_the_counts() {
        let b = breaker();
        let t0 = Instant::now();
        for i in 0..19 {
            assert_eq!(b.record(i % 2 == 0, false, t0), Transition::None);
        }
        let next_window = t0 + Duration::from_secs(61);
        assert_eq!(b.record(false, false, next_window), Transition::None);
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
