//! Counters, gauges and the delivery-latency histogram of one producer, as a snapshot or as
//! Prometheus text. Recording costs a few uncontended atomics per message, the histogram's
//! included.

mod histogram;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::breaker::BreakerState;
use crate::error::ErrorKind;
use histogram::LatencyHistogram;

/// Live counters, shared by the sending threads and the delivery thread.
#[derive(Default)]
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
    latency_us: LatencyHistogram,
}

impl Metrics {
    pub(crate) fn record_sent(&self, bytes: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn record_delivered(&self, latency: Duration) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.record(micros);
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
            let h = self.latency_us.counts();
            let at = |q| Duration::from_micros(h.value_at_quantile(q));
            LatencySummary {
                count: h.count,
                sum: Duration::from_micros(h.sum_us),
                p50: at(0.50),
                p90: at(0.90),
                p99: at(0.99),
                p999: at(0.999),
                max: Duration::from_micros(h.max_us),
                buckets: LATENCY_BUCKETS.map(|le| h.count_at_most((le * 1e6) as u64)),
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
            already_written: gauges.already_written,
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
    pub(crate) already_written: u64,
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
    /// How many took at most each of [`LATENCY_BUCKETS`] (cumulative, as Prometheus buckets).
    pub buckets: [u64; LATENCY_BUCKETS.len()],
}

/// The upper bounds, in seconds, of the delivery-latency histogram's buckets in the Prometheus
/// exposition: fixed, so that histograms of many producers and instances add up.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

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
    /// Spooled records that may have been written, found in their topic by a replay: not sent again.
    pub already_written: u64,
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

/// Whether a metric only grows (a counter) or goes up and down (a gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only grows while the producer lives.
    Counter,
    /// A value now.
    Gauge,
}

/// A metric's value: a count, or seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricValue {
    /// Messages, bytes, trips, or a state's number.
    Count(u64),
    /// A duration in seconds.
    Seconds(f64),
}

impl MetricValue {
    /// The value as a float (counts above 2^53 round).
    pub fn as_f64(self) -> f64 {
        match self {
            MetricValue::Count(n) => n as f64,
            MetricValue::Seconds(s) => s,
        }
    }
}

/// One figure of a snapshot, as data. [`MetricsSnapshot::list`] is the one list that every face
/// (C, Go, Python, Node) and the Prometheus text take their metrics from, so a metric added
/// there reaches all of them without editing any.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Stable snake_case name (`sent`, `failed_queue_full`, `latency_p99_seconds`); a face may
    /// change only its case (camelCase in Node).
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// One sentence for people.
    pub help: &'static str,
    /// Its value in this snapshot.
    pub value: MetricValue,
    /// Its sample in the Prometheus text, if it has one.
    prometheus: Option<Sample>,
}

/// Where a metric goes in the Prometheus text: `kafkasender_{family}{suffix}{client_id, label}`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    family: &'static str,
    /// The family's TYPE and HELP (a histogram's buckets, sum and count share one).
    family_type: &'static str,
    family_help: &'static str,
    suffix: &'static str,
    label: Option<(&'static str, &'static str)>,
}

/// `failed_{kind}` for every kind, made once (metric names are `&'static str`).
fn failed_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        ErrorKind::ALL
            .iter()
            .map(|kind| format!("failed_{kind}"))
            .collect()
    })
}

impl MetricsSnapshot {
    /// Every metric, in a stable order: the one source of the faces' metrics.
    pub fn list(&self) -> Vec<Metric> {
        use MetricKind::{Counter, Gauge};
        use MetricValue::{Count, Seconds};
        let metric = |name, kind, help, value, prometheus| Metric {
            name,
            kind,
            help,
            value,
            prometheus,
        };
        // A family of its own, its name and help those of the metric.
        let own = |family, kind: MetricKind, help| {
            Some(Sample {
                family,
                family_type: if kind == Counter { "counter" } else { "gauge" },
                family_help: help,
                suffix: "",
                label: None,
            })
        };
        let mut list = Vec::with_capacity(32);
        let mut counter = |name, help, value: u64, family| {
            list.push(metric(
                name,
                Counter,
                help,
                Count(value),
                own(family, Counter, help),
            ))
        };
        counter(
            "sent",
            "Sends accepted; each is reported exactly once.",
            self.sent,
            "messages_sent_total",
        );
        counter(
            "delivered",
            "Messages acknowledged by the brokers.",
            self.delivered,
            "messages_delivered_total",
        );
        counter(
            "dead_lettered",
            "Messages written to the dead-letter topic instead of their own.",
            self.dead_lettered,
            "messages_dead_lettered_total",
        );
        counter(
            "spooled",
            "Messages kept in the local spool.",
            self.spooled,
            "messages_spooled_total",
        );
        counter(
            "bytes_sent",
            "Key, value and header bytes of accepted sends.",
            self.bytes_sent,
            "bytes_sent_total",
        );
        counter(
            "purged",
            "Messages failed because the producer closed first.",
            self.purged,
            "messages_purged_total",
        );
        counter(
            "callback_panics",
            "Delivery callbacks that panicked.",
            self.callback_panics,
            "callback_panics_total",
        );
        counter(
            "wire_retries",
            "Message transmissions librdkafka repeated on the wire (idempotent).",
            self.wire_retries,
            "wire_retries_total",
        );
        counter(
            "retried",
            "Client re-sends after librdkafka gave up on a message.",
            self.retried,
            "messages_retried_total",
        );
        counter(
            "replayed",
            "Records re-sent from the spool.",
            self.replayed,
            "messages_replayed_total",
        );
        counter(
            "already_written",
            "Spooled records a replay found in their topic already: not sent again.",
            self.already_written,
            "messages_already_written_total",
        );
        counter(
            "spool_torn_records",
            "Torn or corrupt spool records skipped.",
            self.spool_torn_records,
            "spool_torn_records_total",
        );
        counter(
            "breaker_trips",
            "How often the circuit breaker opened.",
            self.breaker_trips,
            "breaker_trips_total",
        );
        counter(
            "recoveries",
            "How often a client that failed fatally was replaced.",
            self.recoveries,
            "recoveries_total",
        );
        let mut gauge = |name, help, value: u64, family| {
            list.push(metric(
                name,
                Gauge,
                help,
                Count(value),
                own(family, Gauge, help),
            ))
        };
        gauge(
            "in_flight",
            "Messages sent and not yet reported.",
            self.in_flight,
            "messages_in_flight",
        );
        gauge(
            "queue_depth",
            "Messages in librdkafka's queue.",
            self.queue_depth,
            "queue_depth",
        );
        gauge(
            "spool_bytes",
            "Bytes in the spool's files.",
            self.spool_bytes,
            "spool_bytes",
        );
        gauge(
            "breaker_state",
            "Circuit breaker state: 0 closed, 1 open, 2 half-open (in Prometheus, one sample per state).",
            self.breaker_state as u64,
            "breaker_state",
        );
        list.push(metric(
            "failed",
            Counter,
            "Messages reported failed (the sum of the failed_* counts).",
            Count(self.failed),
            None,
        ));
        for (kind, name) in ErrorKind::ALL.iter().zip(failed_names()) {
            let n = self
                .failed_by_kind
                .iter()
                .find(|(k, _)| k == kind)
                .map_or(0, |(_, n)| *n);
            let help = "Messages reported failed with this error kind.";
            list.push(metric(
                name.as_str(),
                Counter,
                help,
                Count(n),
                Some(Sample {
                    family: "messages_failed_total",
                    family_type: "counter",
                    family_help: "Messages reported failed, by error kind.",
                    suffix: "",
                    label: Some(("kind", kind.as_str())),
                }),
            ));
        }
        let l = &self.latency;
        // In Prometheus a histogram (its buckets come from `buckets`, see `to_prometheus`), which
        // adds up across producers as quantiles cannot; the quantiles are for the faces.
        let latency = |suffix| {
            Some(Sample {
                family: "delivery_latency_seconds",
                family_type: "histogram",
                family_help: "Time from send to delivery report, of delivered messages.",
                suffix,
                label: None,
            })
        };
        for (name, help, value) in [
            ("latency_p50_seconds", "Median delivery latency.", l.p50),
            (
                "latency_p90_seconds",
                "90th percentile of delivery latency.",
                l.p90,
            ),
            (
                "latency_p99_seconds",
                "99th percentile of delivery latency.",
                l.p99,
            ),
            (
                "latency_p999_seconds",
                "99.9th percentile of delivery latency.",
                l.p999,
            ),
        ] {
            list.push(metric(
                name,
                Gauge,
                help,
                Seconds(value.as_secs_f64()),
                None,
            ));
        }
        list.push(metric(
            "latency_max_seconds",
            Gauge,
            "Largest delivery latency.",
            Seconds(l.max.as_secs_f64()),
            None,
        ));
        list.push(metric(
            "latency_sum_seconds",
            Counter,
            "Total delivery latency of delivered messages.",
            Seconds(l.sum.as_secs_f64()),
            latency("_sum"),
        ));
        list.push(metric(
            "latency_count",
            Counter,
            "Delivered messages whose latency was measured.",
            Count(l.count),
            latency("_count"),
        ));
        list
    }

    /// The metrics in Prometheus text exposition format (version 0.0.4), every name prefixed
    /// `kafkasender_`, every sample labelled with `client_id`. Taken from [`MetricsSnapshot::list`].
    pub fn to_prometheus(&self, client_id: &str) -> String {
        let id = escape_label(client_id);
        let mut out = String::new();
        let mut written: Vec<&str> = Vec::new();
        let list = self.list();
        // A family's samples go together, after its HELP and TYPE, in the order of the list.
        for first in list.iter().filter_map(|m| m.prometheus) {
            if written.contains(&first.family) {
                continue;
            }
            written.push(first.family);
            let family = first.family;
            let _ = writeln!(out, "# HELP kafkasender_{family} {}", first.family_help);
            let _ = writeln!(out, "# TYPE kafkasender_{family} {}", first.family_type);
            if family == "delivery_latency_seconds" {
                for (le, count) in LATENCY_BUCKETS.iter().zip(self.latency.buckets) {
                    let _ = writeln!(
                        out,
                        "kafkasender_{family}_bucket{{client_id=\"{id}\",le=\"{le}\"}} {count}"
                    );
                }
                let _ = writeln!(
                    out,
                    "kafkasender_{family}_bucket{{client_id=\"{id}\",le=\"+Inf\"}} {}",
                    self.latency.count
                );
            }
            if family == "breaker_state" {
                // A state set: one sample per state, 1 for the current one.
                for (code, state) in ["closed", "open", "half_open"].iter().enumerate() {
                    let value = u8::from(self.breaker_state as usize == code);
                    let _ = writeln!(
                        out,
                        "kafkasender_{family}{{client_id=\"{id}\",state=\"{state}\"}} {value}"
                    );
                }
                continue;
            }
            for (metric, sample) in list
                .iter()
                .filter_map(|m| Some((m, m.prometheus?)))
                .filter(|(_, s)| s.family == family)
            {
                let label = sample
                    .label
                    .map(|(name, value)| format!(",{name}=\"{value}\""))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "kafkasender_{family}{}{{client_id=\"{id}\"{label}}} {}",
                    sample.suffix,
                    metric.value.as_f64()
                );
            }
        }
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
        let text = metrics.snapshot(gauges()).to_prometheus("a\"b");
        assert!(text.contains("# TYPE kafkasender_messages_sent_total counter"));
        assert!(text.contains("kafkasender_messages_sent_total{client_id=\"a\\\"b\"} 2"));
        assert!(text.contains(
            "kafkasender_messages_failed_total{client_id=\"a\\\"b\",kind=\"timeout\"} 1"
        ));
        assert!(text.contains("kafkasender_delivery_latency_seconds_count{client_id=\"a\\\"b\"} 1"));
        assert!(text.contains("kafkasender_breaker_state{client_id=\"a\\\"b\",state=\"open\"} 1"));
        assert!(text.contains("kafkasender_breaker_state{client_id=\"a\\\"b\",state=\"closed\"} 0"));
        assert!(text.contains("# TYPE kafkasender_delivery_latency_seconds histogram"));
        assert!(text.contains(
            "kafkasender_delivery_latency_seconds_bucket{client_id=\"a\\\"b\",le=\"0.001\"} 0"
        ));
        assert!(text.contains(
            "kafkasender_delivery_latency_seconds_bucket{client_id=\"a\\\"b\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "kafkasender_delivery_latency_seconds_bucket{client_id=\"a\\\"b\",le=\"+Inf\"} 1"
        ));
        assert!(text.ends_with('\n'));
    }

    fn gauges() -> Gauges {
        Gauges {
            sent: 2,
            in_flight: 0,
            queue_depth: 0,
            retried: 0,
            replayed: 0,
            already_written: 0,
            spool_torn_records: 0,
            spool_bytes: 0,
            breaker_state: BreakerState::Open,
            breaker_trips: 1,
            recoveries: 0,
        }
    }

    /// tests/parity/metrics.txt is the list every face's tests check theirs against; this keeps
    /// it the core's (`KS_BLESS=1 cargo test` rewrites it after a metric is added).
    #[test]
    fn tests_parity_metrics_txt_is_the_core_list() {
        let names: Vec<&str> = Metrics::default()
            .snapshot(gauges())
            .list()
            .iter()
            .map(|m| m.name)
            .collect();
        crate::testing::check_parity_list("metrics.txt", &names.join("\n"));
    }

    #[test]
    fn the_list_names_each_figure_once_and_prometheus_shows_each_sample() {
        let snapshot = Metrics::default().snapshot(gauges());
        let list = snapshot.list();
        let names: std::collections::HashSet<&str> = list.iter().map(|m| m.name).collect();
        assert_eq!(names.len(), list.len(), "a name twice");
        for kind in ErrorKind::ALL {
            assert!(names.contains(format!("failed_{kind}").as_str()), "{kind}");
        }
        assert!(list.iter().all(|m| m
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')));
        let text = snapshot.to_prometheus("p");
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        // Besides the list's: the latency buckets (and +Inf), and the breaker's other two states.
        let extra = LATENCY_BUCKETS.len() + 1 + 2;
        assert_eq!(
            samples,
            list.iter().filter(|m| m.prometheus.is_some()).count() + extra
        );
        for sample in list.iter().filter_map(|m| m.prometheus) {
            let head = format!(
                "kafkasender_{}{}{{client_id=\"p\"",
                sample.family, sample.suffix
            );
            assert!(text.contains(&head), "{head}");
        }
    }
}
