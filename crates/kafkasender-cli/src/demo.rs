//! `kafkasender demo`: business events (CloudEvents, keyed by customer, `ce_*` headers), a broker
//! taken down and brought back mid-stream (embedded mock cluster), and a read-back that must equal
//! what was sent.

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use kafkasender::events::{Event, EventBuilder};
use kafkasender::testing::{read_topic, MockCluster};
use kafkasender::Producer;
use serde_json::json;

use crate::tally::{delivery_rows, table, thousands, FirstErrors};

#[derive(clap::Args)]
pub struct Args {
    /// How many events to send.
    #[arg(long, default_value_t = 50_000)]
    count: u64,
    /// Events per second (0: as fast as possible).
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Topic (default: kafkasender-demo, or a fresh kafkasender-demo-<time> on a real cluster).
    #[arg(long)]
    topic: Option<String>,
}

const EVENT_TYPES: [&str; 4] = [
    "order.created",
    "order.paid",
    "order.shipped",
    "order.delivered",
];
const CUSTOMERS: u64 = 250;
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);
/// Which mock broker the demo takes down.
const FAULTY_BROKER: i32 = 2;

pub fn run(args: &Args, overrides: &[(String, String)]) -> anyhow::Result<bool> {
    let external = crate::brokers_from_env()?;
    let mock = match external {
        Some(_) => None,
        None => Some(MockCluster::new(3).context("starting the embedded mock cluster")?),
    };
    let bootstrap = match (&mock, &external) {
        (Some(cluster), _) => cluster.bootstrap_servers().to_string(),
        (None, Some(brokers)) => brokers.clone(),
        (None, None) => unreachable!("either a mock or external brokers"),
    };
    let topic = match (&args.topic, &mock) {
        (Some(topic), _) => topic.clone(),
        (None, Some(_)) => "kafkasender-demo".to_string(),
        (None, None) => format!(
            "kafkasender-demo-{}",
            SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis()
        ),
    };
    if let Some(cluster) = &mock {
        cluster.create_topic(&topic, 6, 3)?;
    }
    let where_to = if mock.is_some() {
        "an embedded 3-broker mock cluster"
    } else {
        "KAFKA_BROKERS"
    };
    eprintln!(
        "kafkasender {} (librdkafka {}): {} events to {topic} on {where_to} ({bootstrap})",
        kafkasender::VERSION,
        kafkasender::librdkafka_version(),
        thousands(args.count)
    );

    // CloudEvents to the demo topic, keyed by customer as a shop would (per-customer order).
    let config = crate::config(overrides, Some(&bootstrap))
        .set("statistics.interval.ms", "250")
        .set("event.default.topic", &topic)
        .set("event.key.field", "data.customer_id")
        .build()?;
    let events = EventBuilder::new("kafkasender-demo").version("1");
    let producer = Producer::new(config)?;
    let errors = FirstErrors::new();
    let progress = ProgressBar::new(args.count).with_style(ProgressStyle::with_template(
        "{bar:40.cyan/blue} {pos}/{len} delivered {msg} {per_sec}",
    )?);

    let started = Instant::now();
    let mut sent = 0u64;
    let mut rejected = 0u64;
    for i in 0..args.count {
        if let Some(cluster) = &mock {
            if i == args.count / 3 {
                cluster.broker_down(FAULTY_BROKER)?;
                progress.set_message(format!(
                    "broker {FAULTY_BROKER} DOWN: its partitions stall, nothing is lost"
                ));
            } else if i == 2 * args.count / 3 {
                cluster.broker_up(FAULTY_BROKER)?;
                progress.set_message(format!(
                    "broker {FAULTY_BROKER} back up: stalled batches resume"
                ));
            }
        }
        let customer = format!("customer-{}", i % CUSTOMERS);
        let event_type = EVENT_TYPES[(i / CUSTOMERS) as usize % EVENT_TYPES.len()];
        let mut event = events.event(
            event_type,
            json!({
                "sequence": i,
                "customer_id": customer,
                "amount_cents": 100 + (i * 7919) % 100_000,
            }),
        );
        event.correlation_id = format!("demo-{i:08}");
        match producer.publish_event(&event, errors.callback(&progress)) {
            Ok(()) => sent += 1,
            Err(error) => {
                rejected += 1;
                progress.println(format!("rejected: {error}"));
            }
        }
        pace(started, i + 1, args.rate);
    }
    let flushed = producer.flush(FLUSH_TIMEOUT);
    let elapsed = started.elapsed();
    producer.close(FLUSH_TIMEOUT);
    let metrics = producer.metrics();
    progress.finish_with_message("done");
    if let Err(error) = flushed {
        eprintln!("flush: {error}");
    }

    eprintln!("reading {topic} back with an independent consumer…");
    let read = read_topic(&bootstrap, &topic, Duration::from_secs(120))?;
    let unique: HashSet<String> = read
        .iter()
        .filter_map(|r| Event::from_json(std::str::from_utf8(r.value.as_deref()?).ok()?).ok())
        .map(|event| event.id)
        .collect();

    let ok = rejected == 0
        && metrics.failed == 0
        && read.len() as u64 == sent
        && unique.len() as u64 == sent;
    let mut rows = delivery_rows(&metrics, rejected, elapsed);
    rows.extend([
        ("read back by a consumer", thousands(read.len() as u64)),
        ("distinct events read back", thousands(unique.len() as u64)),
        (
            "read back == sent",
            if ok { "yes".into() } else { "NO".into() },
        ),
    ]);
    println!("{}", table("kafkasender demo", &rows));
    for line in errors.lines(&metrics) {
        println!("  {line}");
    }
    Ok(ok)
}

/// Sleeps so that `done` sends take at least `done / rate` seconds.
fn pace(started: Instant, done: u64, rate: u64) {
    if rate == 0 || !done.is_multiple_of(100) {
        return;
    }
    let due = started + Duration::from_secs_f64(done as f64 / rate as f64);
    if let Some(wait) = due.checked_duration_since(Instant::now()) {
        thread::sleep(wait);
    }
}
