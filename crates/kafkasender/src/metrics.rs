//! Counters, gauges and the delivery-latency histogram of one producer, as a snapshot or as
//! Prometheus text. Recording costs a few uncontended atomics per message and one histogram
//! update on the delivery thread.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;

use crate::breaker::BreakerState;
use crate::error::ErrorKind;
use crate::lock;

/// Live counters, shared by the sending threads and the delivery thread.
pub(crate) struct Metrics {
    /// Key + value + header bytes of accepted sends (written by senders).
    bytes_sent: CachePadded<AtomicU64>,
    delivered: AtomicU64,
    dead_lettered: AtomicU64,
    spooled: AtomicU64,
    failed_by_kind: [AtomicU64; ErrorKind::ALL.len()],
    pub(crate) purged: AtomicU64,
    pub(crate) callback_panics: AtomicU64,
    /// librdkafka's wire retries, from its statistics.
    pub(crate) wire_retries: AtomicU64,
    /// Microseconds from send to report, of delivered messages.
    latency_us: Mutex<Histogram<u64>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            bytes_sent: CachePadded::default(),
            delivered: AtomicU64::default(),
            dead_lettered: AtomicU64::default(),
            spooled: AtomicU64::default(),
            failed_by_kind: Default::default(),
            purged: AtomicU64::default(),
            callback_panics: AtomicU64::default(),
            wire_retries: AtomicU64::default(),
            // 1 µs to 1 h at 3 significant digits: about 170 KiB per producer.
            latency_us: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            ),
        }
    }
}

impl Metrics {
    pub(crate) fn record_sent(&self, bytes: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn record_delivered(&self, latency: Duration) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        lock(&self.latency_us).saturating_record(micros);
    }

    pub(crate) fn record_dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_spooled(&self) {
        self.spooled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_failed(&self, kind: ErrorKind) {
        self.failed_by_kind[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub(crate) fn failed(&self) -> u64 {
        self.failed_by_kind
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn snapshot(&self, gauges: Gauges) -> MetricsSnapshot {
        let latency = {
            let h = lock(&self.latency_us);
            let at = |q| Duration::from_micros(h.value_at_quantile(q));
            LatencySummary {
                count: h.len(),
                sum: Duration::from_micros((h.mean() * h.len() as f64) as u64),
                p50: at(0.50),
                p90: at(0.90),
                p99: at(0.99),
                p999: at(0.999),
                max: Duration::from_micros(h.max()),
            }
        };
        MetricsSnapshot {
            sent: gauges.sent,
            delivered: self.delivered(),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            spooled: self.spooled.load(Ordering::Relaxed),
            failed: self.failed(),
            failed_by_kind: ErrorKind::ALL
                .iter()
                .map(|&kind| {
                    (
                        kind,
                        self.failed_by_kind[kind as usize].load(Ordering::Relaxed),
                    )
                })
                .filter(|(_, n)| *n > 0)
                .collect(),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            in_flight: gauges.in_flight,
            queue_depth: gauges.queue_depth,
            purged: self.purged.load(Ordering::Relaxed),
            callback_panics: self.callback_panics.load(Ordering::Relaxed),
            wire_retries: self.wire_retries.load(Ordering::Relaxed),
            retried: gauges.retried,
            replayed: gauges.replayed,
            spool_torn_records: gauges.spool_torn_records,
            spool_bytes: gauges.spool_bytes,
            breaker_state: gauges.breaker_state,
            breaker_trips: gauges.breaker_trips,
            recoveries: gauges.recoveries,
            latency,
        }
    }
}

/// What a snapshot takes from outside the counters: the tracker's totals and the resilience
/// layer's own counts.
pub(crate) struct Gauges {
    pub(crate) sent: u64,
    pub(crate) in_flight: u64,
    pub(crate) queue_depth: u64,
    pub(crate) retried: u64,
    pub(crate) replayed: u64,
    pub(crate) spool_torn_records: u64,
    pub(crate) spool_bytes: u64,
    pub(crate) breaker_state: BreakerState,
    pub(crate) breaker_trips: u64,
    pub(crate) recoveries: u64,
}

/// Delivery latency of delivered messages (time from `send` to the report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencySummary {
    /// Messages measured.
    pub count: u64,
    /// Their total latency.
    pub sum: Duration,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest.
    pub max: Duration,
}

/// A producer's metrics at one moment. Every accepted send is counted once in `sent` and, when
/// reported, once in `delivered`, `dead_lettered`, `spooled` or `failed`; until then it is
/// `in_flight`. Spool replays count as sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Sends accepted (each will be reported exactly once), spool replays included.
    pub sent: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages written to the dead-letter topic instead.
    pub dead_lettered: u64,
    /// Messages kept in the local spool instead.
    pub spooled: u64,
    /// Messages reported failed.
    pub failed: u64,
    /// Failures per error kind (kinds with none are left out).
    pub failed_by_kind: Vec<(ErrorKind, u64)>,
    /// Key, value and header bytes of accepted sends.
    pub bytes_sent: u64,
    /// Messages sent and not yet reported.
    pub in_flight: u64,
    /// Messages in librdkafka's queue now (waiting to be sent or acknowledged).
    pub queue_depth: u64,
    /// Messages failed because the producer closed before they were acknowledged.
    pub purged: u64,
    /// Delivery callbacks that panicked (caught).
    pub callback_panics: u64,
    /// Message transmissions librdkafka repeated on the wire (idempotent; from its statistics).
    pub wire_retries: u64,
    /// Client re-sends after librdkafka gave up on a message (at-least-once).
    pub retried: u64,
    /// Records re-sent from the spool.
    pub replayed: u64,
    /// Torn or corrupt spool records skipped by replays.
    pub spool_torn_records: u64,
    /// Bytes in the spool's files now.
    pub spool_bytes: u64,
    /// The circuit breaker's state now.
    pub breaker_state: BreakerState,
    /// How often the circuit breaker opened.
    pub breaker_trips: u64,
    /// How often a client that failed fatally was replaced (see `recovery.max`).
    pub recoveries: u64,
    /// Delivery latency.
    pub latency: LatencySummary,
}

impl MetricsSnapshot {
    /// The metrics in Prometheus text exposition format (version 0.0.4), every name prefixed
    /// `kafkasender_`, every sample labelled with `client_id`.
    pub fn to_prometheus(&self, client_id: &str) -> String {
        let id = escape_label(client_id);
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP kafkasender_{name} {help}");
            let _ = writeln!(out, "# TYPE kafkasender_{name} {kind}");
            for (suffix_and_labels, value) in samples {
                let _ = writeln!(out, "kafkasender_{name}{suffix_and_labels} {value}");
            }
        };
        let plain = |value: u64| vec![(format!("{{client_id=\"{id}\"}}"), value as f64)];
        family(
            "messages_sent_total",
            "counter",
            "Sends accepted; each is reported exactly once.",
            &plain(self.sent),
        );
        family(
            "messages_delivered_total",
            "counter",
            "Messages acknowledged by the brokers.",
            &plain(self.delivered),
        );
        let failed: Vec<(String, f64)> = ErrorKind::ALL
            .iter()
            .map(|kind| {
                let n = self
                    .failed_by_kind
                    .iter()
                    .find(|(k, _)| k == kind)
                    .map_or(0, |(_, n)| *n);
                (format!("{{client_id=\"{id}\",kind=\"{kind}\"}}"), n as f64)
            })
            .collect();
        family(
            "messages_failed_total",
            "counter",
            "Messages reported failed, by error kind.",
            &failed,
        );
        family(
            "bytes_sent_total",
            "counter",
            "Key, value and header bytes of accepted sends.",
            &plain(self.bytes_sent),
        );
        family(
            "messages_in_flight",
            "gauge",
            "Messages sent and not yet reported.",
            &plain(self.in_flight),
        );
        family(
            "messages_purged_total",
            "counter",
            "Messages failed because the producer closed first.",
            &plain(self.purged),
        );
        family(
            "callback_panics_total",
            "counter",
            "Delivery callbacks that panicked.",
            &plain(self.callback_panics),
        );
        family(
            "wire_retries_total",
            "counter",
            "Message transmissions librdkafka repeated on the wire (idempotent).",
            &plain(self.wire_retries),
        );
        family(
            "messages_dead_lettered_total",
            "counter",
            "Messages written to the dead-letter topic instead of their own.",
            &plain(self.dead_lettered),
        );
        family(
            "messages_spooled_total",
            "counter",
            "Messages kept in the local spool.",
            &plain(self.spooled),
        );
        family(
            "messages_retried_total",
            "counter",
            "Client re-sends after librdkafka gave up on a message.",
            &plain(self.retried),
        );
        family(
            "messages_replayed_total",
            "counter",
            "Records re-sent from the spool.",
            &plain(self.replayed),
        );
        family(
            "spool_torn_records_total",
            "counter",
            "Torn or corrupt spool records skipped.",
            &plain(self.spool_torn_records),
        );
        family(
            "spool_bytes",
            "gauge",
            "Bytes in the spool's files.",
            &plain(self.spool_bytes),
        );
        family(
            "queue_depth",
            "gauge",
            "Messages in librdkafka's queue.",
            &plain(self.queue_depth),
        );
        family(
            "breaker_state",
            "gauge",
            "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
            &plain(self.breaker_state as u64),
        );
        family(
            "breaker_trips_total",
            "counter",
            "How often the circuit breaker opened.",
            &plain(self.breaker_trips),
        );
        family(
            "recoveries_total",
            "counter",
            "How often a client that failed fatally was replaced.",
            &plain(self.recoveries),
        );
        let l = &self.latency;
        let mut latency: Vec<(String, f64)> = [
            ("0.5", l.p50),
            ("0.9", l.p90),
            ("0.99", l.p99),
            ("0.999", l.p999),
        ]
        .iter()
        .map(|(q, d)| {
            (
                format!("{{client_id=\"{id}\",quantile=\"{q}\"}}"),
                d.as_secs_f64(),
            )
        })
        .collect();
        latency.push((format!("_sum{{client_id=\"{id}\"}}"), l.sum.as_secs_f64()));
        latency.push((format!("_count{{client_id=\"{id}\"}}"), l.count as f64));
        family(
            "delivery_latency_seconds",
            "summary",
            "Time from send to delivery report, of delivered messages.",
            &latency,
        );
        out
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_help_type_and_labelled_samples() {
        let metrics = Metrics::default();
        metrics.record_sent(10);
        metrics.record_delivered(Duration::from_millis(5));
        metrics.record_failed(ErrorKind::Timeout);
        let text = metrics
            .snapshot(Gauges {
                sent: 2,
                in_flight: 0,
                queue_depth: 0,
                retried: 0,
                replayed: 0,
                spool_torn_records: 0,
                spool_bytes: 0,
                breaker_state: BreakerState::Open,
                breaker_trips: 1,
                recoveries: 0,
            })
            .to_prometheus("a\"b");
        assert!(text.contains("# TYPE kafkasender_messages_sent_total counter"));
        assert!(text.contains("kafkasender_messages_sent_total{client_id=\"a\\\"b\"} 2"));
        assert!(text.contains(
            "kafkasender_messages_failed_total{client_id=\"a\\\"b\",kind=\"timeout\"} 1"
        ));
        assert!(text.contains("kafkasender_delivery_latency_seconds_count{client_id=\"a\\\"b\"} 1"));
        assert!(text.contains("kafkasender_breaker_state{client_id=\"a\\\"b\"} 1"));
        assert!(text.ends_with('\n'));
    }
}
