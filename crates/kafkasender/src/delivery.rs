//! The one delivery model: every accepted send ends in exactly one [`DeliveryReport`].

use std::time::Duration;

use crate::error::{Error, Result};

/// How a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged by the brokers as `acks` requires; `partition` and `offset` are set.
    Delivered,
    /// Not delivered; the error says why and whether trying again may help.
    Failed(Error),
}

/// What happened to one message. Reported exactly once per accepted send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The topic the message was sent to.
    pub topic: String,
    /// The partition; -1 if none was assigned.
    pub partition: i32,
    /// The offset in the partition; -1 unless delivered.
    pub offset: i64,
    /// The message timestamp in milliseconds since the epoch, if known.
    pub timestamp: Option<i64>,
    /// The message key.
    pub key: Option<Vec<u8>>,
    /// How many times kafkasender handed the message to librdkafka (librdkafka's own idempotent
    /// wire retries are not counted).
    pub attempts: u32,
    /// Time from `send` to this report.
    pub latency: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

impl DeliveryReport {
    /// Whether the message was delivered.
    pub fn is_delivered(&self) -> bool {
        matches!(self.outcome, Outcome::Delivered)
    }

    /// The error, for a message that was not delivered.
    pub fn error(&self) -> Option<&Error> {
        match &self.outcome {
            Outcome::Failed(error) => Some(error),
            Outcome::Delivered => None,
        }
    }

    /// `Ok(self)` when delivered, the error otherwise.
    pub fn into_result(self) -> Result<DeliveryReport> {
        match self.outcome {
            Outcome::Failed(error) => Err(error),
            Outcome::Delivered => Ok(self),
        }
    }
}

/// Receives one message's report, on the producer's delivery thread. Keep it short: hand the
/// report to your own thread or runtime for anything slow.
pub type DeliveryCallback = Box<dyn FnOnce(DeliveryReport) + Send + 'static>;

/// Receives the reports of a whole batch at once, in the order the records were given.
pub type BatchCallback = Box<dyn FnOnce(Vec<DeliveryReport>) + Send + 'static>;
