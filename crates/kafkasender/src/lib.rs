//! kafkasender: one resilient Apache Kafka producer, used the same way from Rust, C, Go, Python
//! and Node.
//!
//! Every send ends in exactly one [`DeliveryReport`], reported once through a callback on the
//! producer's delivery thread (or through the future of [`Producer::send_async`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use kafkasender::{Config, Producer, Record};
//!
//! let producer = Producer::new(Config::builder().brokers("127.0.0.1:9092").build()?)?;
//! producer.send(
//!     &Record::new("orders").key("customer-7").value(r#"{"total": 12}"#).header("source", "web"),
//!     |report| println!("{:?} at offset {}", report.outcome, report.offset),
//! )?;
//! producer.close(Duration::from_secs(10));
//! # Ok::<(), kafkasender::Error>(())
//! ```

#![warn(missing_docs)]

mod breaker;
pub mod config;
pub mod delivery;
pub mod dlq;
pub mod error;
pub mod events;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod producer;
mod ratelimit;
pub mod record;
mod reported;
mod retry;
pub mod spool;
pub mod testing;

pub use breaker::BreakerState;
/// The type of report keys ([`DeliveryReport::key`]), re-exported so callers need no `bytes` of
/// their own.
pub use bytes::Bytes;
pub use config::{Config, ConfigBuilder, Producers, MESSAGE_ID_HEADER};
pub use delivery::{
    BatchCallback, DeliveryCallback, DeliveryReport, Outcome, ReportSink, TopicName,
};
pub use error::{ConfigProblem, Error, ErrorKind, Result};
pub use health::{Health, HealthStatus};
pub use metrics::{LatencySummary, Metric, MetricKind, MetricValue, MetricsSnapshot};
pub use producer::{
    CloseReport, DeliveryFuture, PartitionRequest, PartitionerFn, Producer, ReplayReport,
    StatisticsCallback, TrySend,
};
pub use record::{Header, OwnedRecord, Record};

/// Locks a mutex, going on past a poisoned one: a panicking user callback must not make every
/// later report or metric unusable.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The kafkasender version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The librdkafka version this build links.
pub fn librdkafka_version() -> String {
    rdkafka::util::get_rdkafka_version().1
}
