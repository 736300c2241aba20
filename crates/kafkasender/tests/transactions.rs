//! Transactions against librdkafka's mock cluster, which speaks the whole transactional protocol
//! but does not hide aborted messages from a `read_committed` consumer: what lands for such a
//! consumer is proved on a real broker (tests/e2e). Here: the calls, their typed errors, and that
//! every message is reported exactly once, when its transaction ends.

use std::collections::HashSet;
use std::time::Duration;

use kafkasender::testing::{read_topic, MockApi, MockCluster};
use kafkasender::{ErrorKind, Outcome, Producer, Record};

mod common;
use common::{value_of, Reports};

const TIMEOUT: Duration = Duration::from_secs(30);

fn transactional(cluster: &MockCluster, id: &str) -> Producer {
    let config = cluster
        .config()
        .set("transactional.id", id)
        .build()
        .unwrap();
    Producer::new(config).unwrap()
}

fn cluster_with_topics(topics: &[&str]) -> MockCluster {
    let cluster = MockCluster::new(3).expect("mock cluster");
    for topic in topics {
        cluster.create_topic(topic, 4, 3).expect("topic");
    }
    cluster
}

#[test]
fn calls_out_of_turn_are_typed_errors() {
    let _outages = common::beside_others();
    let cluster = cluster_with_topics(&["t"]);
    let plain = Producer::new(cluster.config().build().unwrap()).unwrap();
    assert_eq!(
        plain.begin_transaction().unwrap_err().kind(),
        ErrorKind::Transaction
    );
    assert_eq!(
        plain.commit_transaction(TIMEOUT).unwrap_err().kind(),
        ErrorKind::Transaction
    );

    let producer = transactional(&cluster, "out-of-turn");
    assert!(producer.is_transactional());
    let send = producer.send(&Record::new("t").value("v"), |_| panic!("never accepted"));
    let error = send.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transaction);
    assert!(!error.is_retriable());
    assert!(error.message().contains("begin_transaction"), "{error}");
    assert_eq!(
        producer.commit_transaction(TIMEOUT).unwrap_err().kind(),
        ErrorKind::Transaction
    );
    assert_eq!(
        producer.abort_transaction(TIMEOUT).unwrap_err().kind(),
        ErrorKind::Transaction
    );
    producer.begin_transaction().unwrap();
    assert_eq!(
        producer.begin_transaction().unwrap_err().kind(),
        ErrorKind::Transaction
    );
    producer.commit_transaction(TIMEOUT).unwrap();
    // A batch outside a transaction: each record is reported failed, nothing is lost silently.
    let reports = Reports::default();
    producer
        .send_batch(
            &[Record::new("t").value("a"), Record::new("t").value("b")],
            {
                let reports = reports.clone();
                Box::new(move |batch| batch.into_iter().for_each(|r| reports.callback()(r)))
            },
        )
        .unwrap();
    let reports = reports.wait_for(2, TIMEOUT);
    assert!(reports
        .iter()
        .all(|r| r.error().map(|e| e.kind()) == Some(ErrorKind::Transaction)));
}

#[test]
fn reports_wait_for_the_commit_and_an_abort_fails_every_message_retriably() {
    let _outages = common::beside_others();
    let cluster = cluster_with_topics(&["orders", "audit"]);
    let producer = transactional(&cluster, "commit-and-abort");
    let committed = Reports::default();
    producer.begin_transaction().unwrap();
    for i in 0..200 {
        let topic = if i % 2 == 0 { "orders" } else { "audit" };
        let (key, value) = (format!("k{}", i % 7), format!("c{i}"));
        let record = Record::new(topic).key(&key).value(&value);
        producer.send(&record, committed.callback()).unwrap();
    }
    // Acknowledged by the brokers, yet not reported: `delivered` must mean committed.
    producer.flush(TIMEOUT).unwrap();
    assert_eq!(committed.len(), 0, "no report before the transaction ends");
    producer.commit_transaction(TIMEOUT).unwrap();
    let reports = committed.take();
    assert_eq!(
        reports.len(),
        200,
        "every report delivered when commit returns"
    );
    assert!(reports
        .iter()
        .all(|r| r.outcome == Outcome::Delivered && r.offset >= 0));

    let aborted = Reports::default();
    producer.begin_transaction().unwrap();
    for i in 0..100 {
        producer
            .send(
                &Record::new("orders").value(&format!("a{i}")),
                aborted.callback(),
            )
            .unwrap();
    }
    producer.abort_transaction(TIMEOUT).unwrap();
    let reports = aborted.take();
    assert_eq!(reports.len(), 100);
    for report in &reports {
        let error = report.error().expect("failed");
        assert_eq!(error.kind(), ErrorKind::Transaction, "{error}");
        assert!(error.is_retriable());
        assert!(
            error.message().contains("transaction 2 was aborted"),
            "{error}"
        );
        assert_eq!(report.offset, -1);
    }
    // The next transaction works, and the mock shows the committed messages (it also shows
    // aborted ones, which is why the visibility proof runs on a real broker).
    producer.begin_transaction().unwrap();
    producer
        .send(&Record::new("audit").value("last"), |_| {})
        .unwrap();
    producer.commit_transaction(TIMEOUT).unwrap();
    let values: HashSet<String> = read_topic(cluster.bootstrap_servers(), "orders", TIMEOUT)
        .unwrap()
        .iter()
        .map(value_of)
        .collect();
    assert!((0..200)
        .step_by(2)
        .all(|i| values.contains(&format!("c{i}"))));
    let metrics = producer.metrics();
    assert_eq!((metrics.delivered, metrics.failed), (201, 100));
}

#[test]
fn a_commit_that_cannot_succeed_is_aborted_and_names_the_lost_transaction() {
    let _outages = common::beside_others();
    let cluster = cluster_with_topics(&["t"]);
    let producer = transactional(&cluster, "abortable");
    let reports = Reports::default();
    producer.begin_transaction().unwrap();
    // The broker refuses the partitions' registration with the transaction for good: the
    // transaction can only be aborted.
    cluster
        .push_request_errors(MockApi::AddPartitionsToTxn, &[29]) // TOPIC_AUTHORIZATION_FAILED
        .unwrap();
    for i in 0..50 {
        producer
            .send(
                &Record::new("t").key(&format!("k{i}")).value("v"),
                reports.callback(),
            )
            .unwrap();
    }
    let error = producer.commit_transaction(TIMEOUT).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transaction, "{error}");
    assert!(error.message().contains("transaction 1"), "{error}");
    assert!(error.is_retriable(), "{error}");
    let reports = reports.take();
    assert_eq!(reports.len(), 50, "each message reported once");
    assert!(reports.iter().all(|r| r.error().is_some()));
    // The producer goes on: the next transaction commits.
    let after = Reports::default();
    producer.begin_transaction().unwrap();
    producer
        .send(&Record::new("t").value("after"), after.callback())
        .unwrap();
    producer.commit_transaction(TIMEOUT).unwrap();
    assert_eq!(after.take()[0].outcome, Outcome::Delivered);
}

#[test]
fn closing_with_an_open_transaction_aborts_it_and_reports_every_message() {
    let _outages = common::beside_others();
    let cluster = cluster_with_topics(&["t"]);
    let producer = transactional(&cluster, "closed-open");
    let reports = Reports::default();
    producer.begin_transaction().unwrap();
    for _ in 0..30 {
        producer
            .send(&Record::new("t").value("v"), reports.callback())
            .unwrap();
    }
    producer.close(TIMEOUT);
    let reports = reports.take();
    assert_eq!(reports.len(), 30);
    for report in &reports {
        let error = report.error().unwrap();
        assert_eq!(error.kind(), ErrorKind::Transaction);
        assert!(error.message().contains("closed"), "{error}");
    }
}

#[test]
fn invalid_transactional_combinations_are_listed() {
    let error = kafkasender::Config::builder()
        .brokers("b:9092")
        .set("transactional.id", "tx")
        .set("enable.idempotence", "false")
        .set("spool.dir", "/tmp/x")
        .set("dlq.topic", "dead")
        .set("retry.max", "3")
        .build()
        .unwrap_err();
    let keys: Vec<&str> = error.problems().iter().map(|p| p.key.as_str()).collect();
    for key in ["enable.idempotence", "spool.dir", "dlq.topic", "retry.max"] {
        assert!(keys.contains(&key), "{key} missing in {error}");
    }
    let config = kafkasender::Config::builder()
        .brokers("b:9092")
        .set("transactional.id", "tx")
        .build()
        .unwrap();
    assert_eq!(
        config.get("message.timeout.ms"),
        None,
        "bounded by transaction.timeout.ms"
    );
}
