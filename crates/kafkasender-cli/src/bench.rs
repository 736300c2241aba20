//! `kafkasender bench`: kafkasender's `send` against raw librdkafka (rdkafka's BaseProducer with
//! a poll thread, the ceiling) on the same cluster, with the same properties, alternating runs.
//! A third contender runs `send` with every resilience stage configured but idle (re-sends, circuit
//! breaker, dead-letter topic, spool, a rate limit that never binds), to show what they cost.
//! Reports medians and ratios, because this machine is shared and noisy.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kafkasender::testing::MockCluster;
use kafkasender::{Config, Producer, Record};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::ClientContext;

use crate::tally::thousands;

#[derive(clap::Args)]
pub struct Args {
    /// Messages per run.
    #[arg(long, default_value_t = 500_000)]
    count: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Runs per contender (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Also print one tab-separated line per contender and run: `result NAME MSG_PER_S P50_MS P99_MS`.
    #[arg(long)]
    tsv: bool,
}

/// A histogram of microseconds from 1 µs to an hour, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

struct RunResult {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

pub fn run(args: &Args, overrides: &[(String, String)]) -> anyhow::Result<bool> {
    let external = crate::brokers_from_env()?;
    let mock = match external {
        Some(_) => None,
        None => Some(MockCluster::new(3)?),
    };
    let bootstrap = external.unwrap_or_else(|| {
        mock.as_ref()
            .map(|m| m.bootstrap_servers().to_string())
            .unwrap()
    });
    let config = crate::config(overrides, Some(&bootstrap)).build()?;
    let topic = "kafkasender-bench";
    if let Some(cluster) = &mock {
        cluster.create_topic(topic, 6, 3)?;
    }
    let payload = vec![b'x'; args.size];
    eprintln!(
        "{} messages of {} bytes per run, {} runs each, {} (acks={}, idempotence={}, linger.ms={})",
        thousands(args.count),
        args.size,
        args.runs,
        if mock.is_some() {
            "in-process 3-broker mock cluster"
        } else {
            "KAFKA_BROKERS"
        },
        config.get("acks").unwrap_or("?"),
        config.get("enable.idempotence").unwrap_or("?"),
        config.get("linger.ms").unwrap_or("?"),
    );

    let spool =
        std::env::temp_dir().join(format!("kafkasender-bench-spool-{}", std::process::id()));
    let resilient = crate::config(
        &[
            overrides,
            &[
                ("breaker.enabled".to_string(), "true".to_string()),
                ("dlq.topic".to_string(), format!("{topic}-dlq")),
                ("spool.dir".to_string(), spool.display().to_string()),
                (
                    "ratelimit.messages.per.second".to_string(),
                    "1000000000".to_string(),
                ),
            ][..],
        ]
        .concat(),
        Some(&bootstrap),
    )
    .build()?;
    let (mut raw, mut ours, mut guarded) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=args.runs {
        raw.push(print_run(
            run,
            "librdkafka ",
            raw_librdkafka(&config, topic, &payload, args.count)?,
            args.tsv,
        ));
        ours.push(print_run(
            run,
            "kafkasender",
            kafkasender_send(&config, topic, &payload, args.count)?,
            args.tsv,
        ));
        guarded.push(print_run(
            run,
            "kafkasender+resilience",
            kafkasender_send(&resilient, topic, &payload, args.count)?,
            args.tsv,
        ));
    }
    let _ = std::fs::remove_dir_all(&spool);
    let (raw, ours, guarded) = (median(raw), median(ours), median(guarded));
    println!("| contender | msg/s (median) | p50 latency | p99 latency | rate vs librdkafka |");
    println!("|---|---:|---:|---:|---:|");
    for (name, r) in [
        ("librdkafka (rdkafka BaseProducer)", &raw),
        ("kafkasender send + callback", &ours),
        ("kafkasender, every resilience stage on but idle", &guarded),
    ] {
        println!(
            "| {name} | {} | {:.1} ms | {:.1} ms | {:.2} |",
            thousands(r.rate as u64),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.rate / raw.rate
        );
    }
    println!(
        "\nresilience stages idle vs bare kafkasender: {:.3}× the message rate",
        guarded.rate / ours.rate
    );
    Ok(true)
}

fn print_run(run: usize, contender: &str, result: RunResult, tsv: bool) -> RunResult {
    if tsv {
        println!(
            "result\t{}\t{:.0}\t{:.3}\t{:.3}",
            contender.trim(),
            result.rate,
            result.p50.as_secs_f64() * 1e3,
            result.p99.as_secs_f64() * 1e3
        );
    }
    eprintln!(
        "run {run}: {contender} {:>10} msg/s  p50 {:?}  p99 {:?}",
        thousands(result.rate as u64),
        result.p50,
        result.p99
    );
    result
}

fn median(mut results: Vec<RunResult>) -> RunResult {
    results.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    results.swap_remove(results.len() / 2)
}

fn kafkasender_send(
    config: &Config,
    topic: &str,
    payload: &[u8],
    count: u64,
) -> anyhow::Result<RunResult> {
    let producer = Producer::new(config.clone())?;
    // Leaked (a few KiB per run) so the callback holds a plain reference: an Arc cloned here and
    // dropped on the delivery thread would bounce its count between cores, a cost of the benchmark
    // rather than of the producer.
    let recorder: &'static Recorder = Box::leak(Box::new(Recorder::new()));
    let started = Instant::now();
    for _ in 0..count {
        producer.send(
            &Record::new(topic).value(payload),
            Box::new(move |report| {
                if report.is_delivered() {
                    recorder.record(report.latency);
                }
            }),
        )?;
    }
    producer.flush(Duration::from_secs(300))?;
    let elapsed = started.elapsed();
    producer.close(Duration::ZERO);
    recorder.result(count, elapsed)
}

/// What both contenders do per delivered message: count it and record its latency.
struct Recorder {
    delivered: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            delivered: AtomicU64::new(0),
            latency_us: Mutex::new(latency_histogram()),
        }
    }

    fn record(&self, latency: Duration) {
        self.latency_us
            .lock()
            .unwrap()
            .saturating_record(latency.as_micros() as u64);
        self.delivered.fetch_add(1, Ordering::Release);
    }

    fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Acquire)
    }

    fn result(&self, count: u64, elapsed: Duration) -> anyhow::Result<RunResult> {
        anyhow::ensure!(
            self.delivered() == count,
            "{} of {count} delivered",
            self.delivered()
        );
        let latency = self.latency_us.lock().unwrap();
        Ok(RunResult {
            rate: count as f64 / elapsed.as_secs_f64(),
            p50: Duration::from_micros(latency.value_at_quantile(0.5)),
            p99: Duration::from_micros(latency.value_at_quantile(0.99)),
        })
    }
}

/// The ceiling: librdkafka with nothing around it but a poll thread and the same recorder.
struct RawContext(Recorder);

impl ClientContext for RawContext {}

impl ProducerContext for RawContext {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: Box<Instant>) {
        if result.is_ok() {
            self.0.record(sent_at.elapsed());
        }
    }
}

fn raw_librdkafka(
    config: &Config,
    topic: &str,
    payload: &[u8],
    count: u64,
) -> anyhow::Result<RunResult> {
    let mut client_config = rdkafka::ClientConfig::new();
    for (key, value) in config.librdkafka_properties() {
        client_config.set(key, value);
    }
    let context = RawContext(Recorder::new());
    let producer: Arc<BaseProducer<RawContext>> =
        Arc::new(client_config.create_with_context(context)?);
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let (producer, done) = (producer.clone(), done.clone());
        thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                producer.poll(Duration::from_millis(100));
            }
        })
    };
    let started = Instant::now();
    for _ in 0..count {
        let mut record =
            BaseRecord::with_opaque_to(topic, Box::new(Instant::now())).payload(payload);
        loop {
            match producer.send::<(), [u8]>(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    thread::sleep(Duration::from_micros(200));
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
    }
    let context = producer.context().clone();
    while context.0.delivered() < count {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "raw librdkafka run did not finish"
        );
        thread::sleep(Duration::from_micros(200));
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Release);
    poller.join().expect("poll thread");
    context.0.result(count, elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_up_to_an_hour_are_kept_not_clamped() {
        let mut histogram = latency_histogram();
        histogram.saturating_record(2_500_000);
        assert!(histogram.value_at_quantile(0.5) >= 2_490_000);
    }
}
