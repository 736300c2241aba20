//! Self-healing after a fatal error, on librdkafka's mock cluster: the client is made to fail
//! fatally (librdkafka's `rd_kafka_test_fatal_error`, as a broker's UNKNOWN_PRODUCER_ID would)
//! while keyed messages are in flight. Every message must get one report, all must be read back
//! (copies allowed: a re-send after a fatal error is at-least-once), and each key's order kept.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kafkasender::testing::{inject_fatal_error, read_topic, MockCluster};
use kafkasender::{ErrorKind, Outcome, Producer, Record};

mod common;
use common::{value_of, Reports};

const TIMEOUT: Duration = Duration::from_secs(60);
const UNKNOWN_PRODUCER_ID: i32 = 59;
const KEYS: usize = 50;

fn send_numbered(
    producer: &Producer,
    topic: &str,
    range: std::ops::Range<usize>,
    reports: &Reports,
) {
    for i in range {
        let (key, value) = (format!("k{}", i % KEYS), i.to_string());
        producer
            .send(
                &Record::new(topic).key(&key).value(&value),
                reports.callback(),
            )
            .unwrap();
    }
}

/// Each key's values, deduplicated (first copy wins), in partition-offset order.
fn per_key_order(cluster: &MockCluster, topic: &str) -> (usize, HashMap<String, Vec<usize>>) {
    let records = read_topic(cluster.bootstrap_servers(), topic, TIMEOUT).unwrap();
    let mut seen = HashSet::new();
    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    for record in &records {
        let value: usize = value_of(record).parse().unwrap();
        if seen.insert(value) {
            let key = String::from_utf8(record.key.clone().unwrap()).unwrap();
            by_key.entry(key).or_default().push(value);
        }
    }
    (seen.len(), by_key)
}

#[test]
fn a_fatal_error_mid_stream_is_recovered_from_and_every_message_lands_once_reported() {
    let _outages = common::beside_others();
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic("healing", 6, 3).unwrap();
    let producer = Producer::new(cluster.config().build().unwrap()).unwrap();
    let reports = Reports::default();
    send_numbered(&producer, "healing", 0..10_000, &reports);
    inject_fatal_error(&producer, UNKNOWN_PRODUCER_ID, "injected by the test").unwrap();
    // Sends wait for the new client rather than fail.
    send_numbered(&producer, "healing", 10_000..20_000, &reports);
    producer.flush(TIMEOUT).unwrap();

    let reports = reports.take();
    assert_eq!(reports.len(), 20_000, "one report per message");
    let failed: Vec<_> = reports.iter().filter_map(|r| r.error()).collect();
    assert!(
        failed.is_empty(),
        "{} failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    let recovered = reports.iter().filter(|r| r.recovered).count();
    assert!(reports
        .iter()
        .filter(|r| r.recovered)
        .all(|r| r.attempts == 2));
    let metrics = producer.metrics();
    assert_eq!(metrics.recoveries, 1);
    assert_eq!(metrics.delivered, 20_000);
    assert!(producer.health().status != kafkasender::HealthStatus::Unhealthy);

    let (distinct, by_key) = per_key_order(&cluster, "healing");
    assert_eq!(distinct, 20_000, "every message read back");
    for (key, values) in &by_key {
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "order of {key} broken"
        );
    }
    eprintln!("{recovered} messages were sent again through the new client");
}

#[test]
fn a_fault_that_never_clears_ends_in_the_fatal_error_after_the_allowed_recoveries() {
    let _outages = common::beside_others();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("doomed", 2, 1).unwrap();
    let config = cluster.config().set("recovery.max", "2").build().unwrap();
    let producer = Producer::new(config).unwrap();
    let reports = Reports::default();
    let mut sent = 0;
    for round in 0..3 {
        send_numbered(&producer, "doomed", sent..sent + 500, &reports);
        sent += 500;
        inject_fatal_error(&producer, UNKNOWN_PRODUCER_ID, "injected again").unwrap();
        if round < 2 {
            // Recovered: the next send goes through the new client.
            producer
                .send_and_wait(&Record::new("doomed").value("probe"), TIMEOUT)
                .unwrap();
            sent += 1;
        }
    }
    let error = producer
        .send(&Record::new("doomed").value("late"), |_| {})
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Fatal, "{error}");
    producer.flush(TIMEOUT).unwrap();
    let reports = reports.take();
    assert_eq!(reports.len(), 1_500, "every message reported");
    assert_eq!(producer.metrics().recoveries, 2);
    assert!(reports.iter().all(|r| r.outcome == Outcome::Delivered
        || r.error().map(|e| e.kind()) == Some(ErrorKind::Fatal)));
    assert_eq!(
        producer.health().status,
        kafkasender::HealthStatus::Unhealthy
    );
    let _ = sent;
}

#[test]
fn a_transactional_producer_reports_the_lost_transaction_and_the_next_one_commits() {
    let _outages = common::beside_others();
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic("tx-heal", 3, 3).unwrap();
    let config = cluster
        .config()
        .set("transactional.id", "healing-tx")
        .build()
        .unwrap();
    let producer = Producer::new(config).unwrap();
    let lost = Reports::default();
    producer.begin_transaction().unwrap();
    send_numbered(&producer, "tx-heal", 0..200, &lost);
    inject_fatal_error(&producer, UNKNOWN_PRODUCER_ID, "injected in a transaction").unwrap();
    let reports = lost.wait_for(200, TIMEOUT);
    assert_eq!(reports.len(), 200);
    for report in &reports {
        let error = report.error().expect("lost");
        assert_eq!(error.kind(), ErrorKind::Transaction, "{error}");
        assert!(error.is_retriable() && report.recovered, "{error}");
    }
    let commit = producer.commit_transaction(TIMEOUT).unwrap_err();
    assert!(
        commit.message().contains("transaction 1 was lost"),
        "{commit}"
    );
    let next = Reports::default();
    producer.begin_transaction().unwrap();
    send_numbered(&producer, "tx-heal", 200..300, &next);
    producer.commit_transaction(TIMEOUT).unwrap();
    assert!(next.take().iter().all(|r| r.outcome == Outcome::Delivered));
    assert_eq!(producer.metrics().recoveries, 1);
}
