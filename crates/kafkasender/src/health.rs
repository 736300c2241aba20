//! Whether a producer can do its job, with the reasons when it cannot. Computed on demand from
//! the producer's state, the brokers' connection states in librdkafka's statistics (every
//! `statistics.interval.ms`, 1 s by default), the queue fill and the recent error ratio.

use std::collections::VecDeque;
use std::fmt;

use rdkafka::statistics::Statistics;

/// How healthy a producer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HealthStatus {
    /// Everything works.
    Healthy,
    /// Messages still flow, but something is wrong (a broker down, a filling queue, some failures).
    Degraded,
    /// Messages cannot be delivered now (no broker reachable, most failing, closed, failed fatally).
    Unhealthy,
}

impl HealthStatus {
    /// `healthy`, `degraded` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A producer's health and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The worst status any check found.
    pub status: HealthStatus,
    /// One line per check that was not healthy; empty when healthy.
    pub reasons: Vec<String>,
}

impl Health {
    pub(crate) fn new() -> Health {
        Health {
            status: HealthStatus::Healthy,
            reasons: Vec::new(),
        }
    }

    pub(crate) fn flag(&mut self, status: HealthStatus, reason: impl Into<String>) {
        self.status = self.status.max(status);
        self.reasons.push(reason.into());
    }
}

/// Share of failed reports above which a producer is degraded, and unhealthy.
const DEGRADED_ERROR_RATIO: f64 = 0.10;
const UNHEALTHY_ERROR_RATIO: f64 = 0.50;
/// Queue fill above which a producer is degraded.
const DEGRADED_QUEUE_FILL: f64 = 0.80;
/// How many statistics intervals the error ratio looks back.
const WINDOW: usize = 10;

/// Samples in a row a broker must be neither connected nor idle to count as down, so that the
/// short connect phases of a healthy start do not.
const DOWN_AFTER_SAMPLES: u32 = 2;

/// One broker as the last statistics saw it.
struct BrokerState {
    name: String,
    /// librdkafka's state: `UP`, `INIT` (never needed: connections are sparse), `TRY_CONNECT`, …
    state: String,
    /// Consecutive samples in a state that is neither `UP` nor `INIT`.
    not_up: u32,
}

/// What health needs from librdkafka's statistics, kept between intervals.
#[derive(Default)]
pub(crate) struct BrokerView {
    /// Brokers of the cluster (bootstrap entries left out), by name.
    brokers: Vec<BrokerState>,
    /// (delivered, failed) totals at each of the last statistics intervals.
    window: VecDeque<(u64, u64)>,
    /// Messages in librdkafka's queue and its capacity.
    queue: (u64, u64),
}

impl BrokerView {
    /// Takes in one statistics event and the report totals at that moment.
    pub(crate) fn update(&mut self, statistics: &Statistics, delivered: u64, failed: u64) {
        // Bootstrap entries have node id -1; only brokers of the cluster count.
        let mut brokers: Vec<BrokerState> = statistics
            .brokers
            .values()
            .filter(|b| b.nodeid >= 0)
            .map(|b| {
                let before = self
                    .brokers
                    .iter()
                    .find(|old| old.name == b.name)
                    .map_or(0, |old| old.not_up);
                let connecting = !matches!(b.state.as_str(), "UP" | "INIT");
                BrokerState {
                    name: b.name.clone(),
                    state: b.state.clone(),
                    not_up: if connecting { before + 1 } else { 0 },
                }
            })
            .collect();
        brokers.sort_by(|a, b| a.name.cmp(&b.name));
        self.brokers = brokers;
        if self.window.len() == WINDOW {
            self.window.pop_front();
        }
        self.window.push_back((delivered, failed));
        self.queue = (statistics.msg_cnt, statistics.msg_max);
    }

    /// Every broker with its state (`b1:9092/1 UP, …`), for reasons; `None` before the first
    /// statistics named any.
    pub(crate) fn describe(&self) -> Option<String> {
        let each: Vec<String> = self
            .brokers
            .iter()
            .map(|b| format!("{} {}", b.name, b.state))
            .collect();
        (!each.is_empty()).then(|| each.join(", "))
    }

    /// Adds this view's findings to `health`, given the report totals now.
    pub(crate) fn assess(&self, health: &mut Health, delivered: u64, failed: u64) {
        let down: Vec<String> = self
            .brokers
            .iter()
            .filter(|b| b.not_up >= DOWN_AFTER_SAMPLES)
            .map(|b| format!("{} ({})", b.name, b.state))
            .collect();
        if !down.is_empty() {
            let total = self.brokers.len();
            // Idle brokers (no connection needed yet) may well answer: only all of them down
            // means none is reachable; the active check speaks for the idle ones.
            let (status, summary) = if down.len() == total {
                (HealthStatus::Unhealthy, "no broker reachable")
            } else {
                (HealthStatus::Degraded, "some brokers unreachable")
            };
            health.flag(
                status,
                format!(
                    "{summary}: {} of {total} brokers down: {}",
                    down.len(),
                    down.join(", ")
                ),
            );
        }
        let (queued, capacity) = self.queue;
        if capacity > 0 && queued as f64 >= DEGRADED_QUEUE_FILL * capacity as f64 {
            health.flag(
                HealthStatus::Degraded,
                format!("local queue {queued} of {capacity} messages full"),
            );
        }
        if let Some(&(delivered_then, failed_then)) = self.window.front() {
            let (ok, bad) = (
                delivered.saturating_sub(delivered_then),
                failed.saturating_sub(failed_then),
            );
            let ratio = if ok + bad == 0 {
                0.0
            } else {
                bad as f64 / (ok + bad) as f64
            };
            let recent = format!("{bad} of {} recent reports failed", ok + bad);
            if ratio > UNHEALTHY_ERROR_RATIO {
                health.flag(HealthStatus::Unhealthy, recent);
            } else if ratio > DEGRADED_ERROR_RATIO {
                health.flag(HealthStatus::Degraded, recent);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_finding_decides_and_every_reason_is_kept() {
        let mut health = Health::new();
        assert_eq!(health.status, HealthStatus::Healthy);
        health.flag(HealthStatus::Degraded, "one broker down");
        health.flag(HealthStatus::Unhealthy, "closed");
        health.flag(HealthStatus::Degraded, "queue filling");
        assert_eq!(health.status, HealthStatus::Unhealthy);
        assert_eq!(health.reasons.len(), 3);
    }

    #[test]
    fn error_ratio_over_the_window_degrades_then_fails_health() {
        let mut view = BrokerView::default();
        view.window.push_back((100, 0));
        let mut health = Health::new();
        view.assess(&mut health, 185, 15);
        assert_eq!(health.status, HealthStatus::Degraded, "{health:?}");
        let mut health = Health::new();
        view.assess(&mut health, 110, 60);
        assert_eq!(health.status, HealthStatus::Unhealthy, "{health:?}");
        let mut health = Health::new();
        view.assess(&mut health, 200, 1);
        assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");
    }
}
