//! Sends a few records with each delivery form, then reads them back.
//!
//! Runs against `KAFKA_BROKERS` when set, otherwise against an embedded mock cluster:
//! `cargo run --release --example send`

use std::sync::mpsc;
use std::time::Duration;

use kafkasender::testing::{read_topic, MockCluster};
use kafkasender::{Config, Producer, Record};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let topic = "kafkasender-example";
    // Keep the mock alive for the whole run; with KAFKA_BROKERS set it is not started.
    let mock = match std::env::var("KAFKA_BROKERS") {
        Ok(_) => None,
        Err(_) => Some(MockCluster::new(1)?),
    };
    let config = match &mock {
        Some(cluster) => cluster
            .config()
            .with_env()
            .brokers(cluster.bootstrap_servers())
            .build()?,
        None => Config::from_env()?,
    };
    let bootstrap = config.bootstrap_servers().to_string();
    let producer = Producer::new(config)?;

    // 1. Callback: runs once on the producer's delivery thread.
    let (done, reports) = mpsc::channel();
    for i in 0..3 {
        let value = format!("callback {i}");
        let done = done.clone();
        producer.send(
            &Record::new(topic)
                .key("example")
                .value(&value)
                .header("form", "callback"),
            move |report| done.send(report).expect("main thread waits"),
        )?;
    }
    for report in reports.iter().take(3) {
        println!(
            "callback: {:?} at {}/{}",
            report.outcome, report.partition, report.offset
        );
    }

    // 2. Blocking.
    let report = producer.send_and_wait(
        &Record::new(topic).key("example").value("blocking"),
        Duration::from_secs(30),
    )?;
    println!(
        "blocking: delivered at {}/{}",
        report.partition, report.offset
    );

    // 3. Future (any executor; here the simplest one).
    let report = futures_executor::block_on(
        producer.send_async(&Record::new(topic).key("example").value("future")),
    )?;
    println!(
        "future: delivered at {}/{} after {:?}",
        report.partition, report.offset, report.latency
    );

    let closed = producer.close(Duration::from_secs(10));
    assert!(closed.is_clean());
    let read = read_topic(&bootstrap, topic, Duration::from_secs(30))?;
    println!("read back {} records", read.len());
    assert!(read.len() >= 5, "expected the 5 records just sent");
    Ok(())
}
