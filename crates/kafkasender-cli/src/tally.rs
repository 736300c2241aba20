//! The summary tables of `demo` and `produce`. Counts and latencies come from the producer's own
//! metrics; all the CLI adds is the first error message of each kind, kept by a delivery callback,
//! and a progress line that counts delivered messages only, with the others beside them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::ProgressBar;
use kafkasender::{DeliveryReport, ErrorKind, MetricsSnapshot, Outcome};

/// The first error message of each kind, and what was not delivered, filled in by delivery callbacks.
#[derive(Default)]
pub struct FirstErrors {
    first: Mutex<BTreeMap<&'static str, String>>,
    failed: AtomicU64,
    spooled: AtomicU64,
    dead_lettered: AtomicU64,
}

impl FirstErrors {
    pub fn new() -> Arc<FirstErrors> {
        Arc::default()
    }

    /// A delivery callback that keeps the first error of each kind and moves `progress`: its
    /// position counts delivered messages, its message the others.
    pub fn callback(
        self: &Arc<Self>,
        progress: &ProgressBar,
    ) -> impl FnOnce(DeliveryReport) + Send + 'static {
        let errors = self.clone();
        let progress = progress.clone();
        move |report: DeliveryReport| {
            if let Some(error) = report.error() {
                let mut first = errors.first.lock().unwrap();
                first
                    .entry(error.kind().as_str())
                    .or_insert_with(|| error.to_string());
            }
            let count = match report.outcome {
                Outcome::Delivered => return progress.inc(1),
                Outcome::Failed(_) => &errors.failed,
                Outcome::Spooled { .. } => &errors.spooled,
                Outcome::DeadLettered { .. } => &errors.dead_lettered,
            };
            count.fetch_add(1, Ordering::Relaxed);
            progress.set_message(errors.not_delivered());
        }
    }

    /// "· N failed · N spooled · N dead-lettered", for the progress line.
    fn not_delivered(&self) -> String {
        [
            (&self.failed, "failed"),
            (&self.spooled, "spooled"),
            (&self.dead_lettered, "dead-lettered"),
        ]
        .iter()
        .map(|(n, what)| format!("· {} {what} ", thousands(n.load(Ordering::Relaxed))))
        .collect()
    }

    /// Whether some message failed for a reason of `kind`.
    pub fn saw(&self, kind: ErrorKind) -> bool {
        self.first.lock().unwrap().contains_key(kind.as_str())
    }

    /// Keeps a send's error that was refused at once.
    pub fn refused(&self, error: &kafkasender::Error) {
        self.first
            .lock()
            .unwrap()
            .entry(error.kind().as_str())
            .or_insert_with(|| error.to_string());
    }

    /// One line per error kind of accepted messages: its count from the metrics and its first message.
    pub fn lines(&self, metrics: &MetricsSnapshot) -> Vec<String> {
        let first = self.first.lock().unwrap();
        metrics
            .failed_by_kind
            .iter()
            .map(|(kind, n)| {
                let message = first
                    .get(ErrorKind::as_str(*kind))
                    .map_or("", String::as_str);
                format!("{n} × {kind} (first: {message})")
            })
            .collect()
    }
}

/// The progress line's template: delivered messages, then the others (`FirstErrors::callback`).
pub const PROGRESS: &str = "{spinner} {pos} delivered {msg} {per_sec}  {elapsed}";

/// The rows every summary starts with. `rejected` counts sends refused at once (never accepted,
/// never reported).
pub fn delivery_rows(
    metrics: &MetricsSnapshot,
    rejected: u64,
    elapsed: Duration,
) -> Vec<(&'static str, String)> {
    let rate = (metrics.delivered as f64 / elapsed.as_secs_f64()) as u64;
    vec![
        ("accepted", thousands(metrics.sent)),
        ("refused at once", thousands(rejected)),
        ("delivered", thousands(metrics.delivered)),
        ("dead-lettered", thousands(metrics.dead_lettered)),
        ("spooled", thousands(metrics.spooled)),
        ("failed after acceptance", thousands(metrics.failed)),
        ("elapsed", format!("{:.2} s", elapsed.as_secs_f64())),
        ("throughput", format!("{} msg/s", thousands(rate))),
        ("delivery latency p50", millis(metrics.latency.p50)),
        ("delivery latency p99", millis(metrics.latency.p99)),
        (
            "retries (librdkafka wire / kafkasender re-sends)",
            format!(
                "{} / {}",
                thousands(metrics.wire_retries),
                thousands(metrics.retried)
            ),
        ),
        (
            "circuit breaker",
            format!(
                "{} (opened {} times)",
                metrics.breaker_state.as_str(),
                metrics.breaker_trips
            ),
        ),
    ]
}

/// Formats `n` with thousands separators.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// A two-column table with a box around it.
pub fn table(title: &str, rows: &[(&str, String)]) -> String {
    let left = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        .max(title.chars().count());
    let right = rows
        .iter()
        .map(|(_, v)| v.chars().count())
        .max()
        .unwrap_or(0);
    let line = |l: char, m: char, r: char| {
        format!(
            "{l}{}{m}{}{r}\n",
            "─".repeat(left + 2),
            "─".repeat(right + 2)
        )
    };
    let mut out = line('┌', '─', '┐');
    out += &format!("│ {title:<width$} │\n", width = left + right + 3);
    out += &line('├', '┬', '┤');
    for (key, value) in rows {
        out += &format!("│ {key:<left$} │ {value:>right$} │\n");
    }
    out += &line('└', '┴', '┘');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
