//! `partition.strategy`, read back from a mock cluster: where records of each strategy land.

use std::collections::HashMap;
use std::time::Duration;

use kafkasender::testing::{read_topic, MockCluster};
use kafkasender::{Config, Producer, Record};

mod common;
use common::Reports;

const TIMEOUT: Duration = Duration::from_secs(60);
const WARM_UP: &str = "warm-up";

/// Sends `keys` with `strategy` to a fresh 4-partition topic; returns (key, partition) as read back.
fn land(strategy: &str, keys: &[String]) -> Vec<(String, i32)> {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("spread", 4, 1).unwrap();
    let config = cluster
        .config()
        .set("partition.strategy", strategy)
        .build()
        .unwrap();
    let producer = Producer::new(config).unwrap();
    // One delivered record first, so the producer knows every partition's leader before the
    // counted ones: until then librdkafka may find a partition unavailable and strategies skip it.
    let reports = Reports::default();
    producer
        .send(
            &Record::new("spread").key(WARM_UP).value("v"),
            reports.callback(),
        )
        .unwrap();
    assert!(reports.wait_for(1, TIMEOUT)[0].is_delivered());
    for key in keys {
        producer
            .send(
                &Record::new("spread").key(key).value("v"),
                reports.callback(),
            )
            .unwrap();
    }
    assert!(reports
        .wait_for(keys.len() + 1, TIMEOUT)
        .iter()
        .all(|r| r.is_delivered()));
    producer.close(TIMEOUT);
    read_topic(cluster.bootstrap_servers(), "spread", TIMEOUT)
        .unwrap()
        .into_iter()
        .map(|r| (String::from_utf8(r.key.unwrap()).unwrap(), r.partition))
        .filter(|(key, _)| key != WARM_UP)
        .collect()
}

fn per_partition(landed: &[(String, i32)]) -> HashMap<i32, usize> {
    let mut counts = HashMap::new();
    for (_, partition) in landed {
        *counts.entry(*partition).or_default() += 1;
    }
    counts
}

#[test]
fn round_robin_gives_each_partition_its_turn_whatever_the_key() {
    let keys: Vec<String> = (0..40).map(|_| "the same key".to_string()).collect();
    let counts = per_partition(&land("round_robin", &keys));
    assert_eq!(counts, HashMap::from([(0, 10), (1, 10), (2, 10), (3, 10)]));
}

#[test]
fn consistent_puts_each_key_on_its_crc32_partition() {
    let keys: Vec<String> = (0..200).map(|i| format!("key-{i}")).collect();
    for (key, partition) in land("consistent", &keys) {
        assert_eq!(
            partition as u32,
            crc32fast::hash(key.as_bytes()) % 4,
            "{key}"
        );
    }
}

#[test]
fn random_and_murmur2_spread_keys_over_every_partition() {
    let keys: Vec<String> = (0..200).map(|i| format!("key-{i}")).collect();
    for strategy in ["random", "murmur2"] {
        assert_eq!(per_partition(&land(strategy, &keys)).len(), 4, "{strategy}");
    }
}

#[test]
fn a_strategy_and_a_librdkafka_partitioner_together_are_a_conflict() {
    let error = Config::builder()
        .brokers("127.0.0.1:9092")
        .set("partition.strategy", "round_robin")
        .set("partitioner", "random")
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("partition.strategy"), "{error}");
    let error = Config::builder()
        .brokers("x:1")
        .set("partition.strategy", "sideways")
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("round_robin"), "{error}");
}

#[test]
fn a_partitioner_function_places_records_on_the_sending_thread_and_is_checked() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("custom", 4, 1).unwrap();
    let producer = Producer::new(cluster.config().build().unwrap()).unwrap();
    let sending_thread = std::thread::current().id();
    producer
        .set_partitioner(Box::new(move |request| {
            assert_eq!(
                std::thread::current().id(),
                sending_thread,
                "on the sending thread"
            );
            assert_eq!((request.topic, request.partition_count), ("custom", 4));
            match request.key {
                Some(b"nowhere") => Ok(9),
                Some(b"broken") => Err("no rule for this key".into()),
                key => Ok(key.map_or(0, |k| k.len() as i32 % 4)),
            }
        }))
        .unwrap();
    let again = producer.set_partitioner(Box::new(|_| Ok(0))).unwrap_err();
    assert_eq!(again.kind(), kafkasender::ErrorKind::Config);
    let reports = Reports::default();
    for key in ["a", "bb", "ccc", "dddd", "eeeee"] {
        producer
            .send(
                &Record::new("custom").key(key).value(key),
                reports.callback(),
            )
            .unwrap();
    }
    // An explicit partition is not the function's to change.
    producer
        .send(
            &Record::new("custom")
                .key("ccc")
                .value("explicit")
                .partition(0),
            reports.callback(),
        )
        .unwrap();
    let wrong = producer
        .send(&Record::new("custom").key("nowhere"), reports.callback())
        .unwrap_err();
    assert!(
        wrong
            .to_string()
            .contains("returned 9 for topic \"custom\", which has partitions 0 to 3"),
        "{wrong}"
    );
    let failed = producer
        .send(&Record::new("custom").key("broken"), reports.callback())
        .unwrap_err();
    assert_eq!(failed.kind(), kafkasender::ErrorKind::InvalidRecord);
    assert!(
        failed.to_string().contains("no rule for this key"),
        "{failed}"
    );
    assert!(reports
        .wait_for(6, TIMEOUT)
        .iter()
        .all(|r| r.is_delivered()));
    producer.close(TIMEOUT);
    let landed: HashMap<String, i32> = read_topic(cluster.bootstrap_servers(), "custom", TIMEOUT)
        .unwrap()
        .into_iter()
        .map(|r| (String::from_utf8(r.value.unwrap()).unwrap(), r.partition))
        .collect();
    assert_eq!(
        landed,
        HashMap::from([
            ("a".into(), 1),
            ("bb".into(), 2),
            ("ccc".into(), 3),
            ("dddd".into(), 0),
            ("eeeee".into(), 1),
            ("explicit".into(), 0)
        ])
    );
}
