//! The summary tables of `demo` and `produce`. Counts and latencies come from the producer's own
//! metrics; all the CLI adds is the first error message of each kind, kept by a delivery callback.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::ProgressBar;
use kafkasender::{DeliveryReport, ErrorKind, MetricsSnapshot};

/// The first error message of each kind, filled in by delivery callbacks.
#[derive(Default)]
pub struct FirstErrors {
    first: Mutex<BTreeMap<&'static str, String>>,
}

impl FirstErrors {
    pub fn new() -> Arc<FirstErrors> {
        Arc::default()
    }

    /// A delivery callback that keeps the first error of each kind and advances `progress`.
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
            progress.inc(1);
        }
    }

    /// One line per error kind: its count from the metrics and its first message.
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

/// The rows every summary starts with. `rejected` counts sends refused at once (never reported).
pub fn delivery_rows(
    metrics: &MetricsSnapshot,
    rejected: u64,
    elapsed: Duration,
) -> Vec<(&'static str, String)> {
    let rate = (metrics.delivered as f64 / elapsed.as_secs_f64()) as u64;
    vec![
        ("sent", thousands(metrics.sent)),
        ("delivered", thousands(metrics.delivered)),
        ("dead-lettered", thousands(metrics.dead_lettered)),
        ("spooled", thousands(metrics.spooled)),
        ("failed", thousands(metrics.failed + rejected)),
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
