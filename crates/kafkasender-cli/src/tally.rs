//! Counts delivery outcomes and latencies from callbacks, and prints the summary table.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use kafkasender::{DeliveryCallback, DeliveryReport};

/// Outcomes of many sends, filled in by delivery callbacks.
pub struct Tally {
    inner: Mutex<Counts>,
}

struct Counts {
    delivered: u64,
    failed: u64,
    /// Failures per error kind, with the first message seen.
    errors: BTreeMap<&'static str, (u64, String)>,
    latency_us: Histogram<u64>,
}

impl Tally {
    pub fn new() -> Arc<Tally> {
        Arc::new(Tally {
            inner: Mutex::new(Counts {
                delivered: 0,
                failed: 0,
                errors: BTreeMap::new(),
                latency_us: latency_histogram(),
            }),
        })
    }

    /// A delivery callback that records into this tally and advances `progress`.
    pub fn callback(self: &Arc<Self>, progress: &ProgressBar) -> DeliveryCallback {
        let tally = self.clone();
        let progress = progress.clone();
        Box::new(move |report| {
            tally.record(&report);
            progress.inc(1);
        })
    }

    pub fn record(&self, report: &DeliveryReport) {
        let mut counts = self.inner.lock().unwrap();
        match report.error() {
            None => {
                counts.delivered += 1;
                counts
                    .latency_us
                    .saturating_record(report.latency.as_micros() as u64);
            }
            Some(error) => {
                counts.failed += 1;
                counts
                    .errors
                    .entry(error.kind().as_str())
                    .or_insert((0, error.to_string()))
                    .0 += 1;
            }
        }
    }

    pub fn delivered(&self) -> u64 {
        self.inner.lock().unwrap().delivered
    }

    pub fn failed(&self) -> u64 {
        self.inner.lock().unwrap().failed
    }

    /// The latency at `quantile` (0..=1) of delivered messages.
    pub fn latency(&self, quantile: f64) -> Duration {
        Duration::from_micros(
            self.inner
                .lock()
                .unwrap()
                .latency_us
                .value_at_quantile(quantile),
        )
    }

    /// One line per error kind: count and first message.
    pub fn error_lines(&self) -> Vec<String> {
        let counts = self.inner.lock().unwrap();
        counts
            .errors
            .iter()
            .map(|(kind, (n, first))| format!("{n} × {kind} (first: {first})"))
            .collect()
    }
}

/// A histogram of microseconds from 1 µs to an hour, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Formats `n` with thousands separators.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
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

    #[test]
    fn latencies_up_to_an_hour_are_kept_not_clamped() {
        let mut histogram = latency_histogram();
        histogram.saturating_record(2_500_000);
        assert!(histogram.value_at_quantile(0.5) >= 2_490_000);
    }
}
