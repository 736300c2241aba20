//! The one delivery model: every accepted send ends in exactly one [`DeliveryReport`].

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::record::{OwnedRecord, Record};
use crate::reported::Reported;

/// How a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged by the brokers as `acks` requires; `partition` and `offset` are set.
    Delivered,
    /// Not delivered to its topic, but written to the dead-letter topic (`dlq.topic`);
    /// `partition` and `offset` are where in the dead-letter topic.
    DeadLettered {
        /// The dead-letter topic.
        topic: String,
        /// Why the message could not go to its own topic.
        reason: Error,
    },
    /// Not delivered yet, but kept in the local spool, from which it is re-sent later
    /// (see [`Producer::replay_spool`](crate::Producer::replay_spool)).
    Spooled {
        /// The spool file holding it.
        path: PathBuf,
        /// Why it could not be delivered now.
        reason: Error,
    },
    /// Not delivered and not kept; the error says why and whether trying again may help.
    Failed(Error),
}

impl Outcome {
    /// A stable snake_case name: `delivered`, `dead_lettered`, `spooled` or `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::DeadLettered { .. } => "dead_lettered",
            Outcome::Spooled { .. } => "spooled",
            Outcome::Failed(_) => "failed",
        }
    }

    /// The error that kept the message from its topic, if it did not get there.
    pub fn error(&self) -> Option<&Error> {
        match self {
            Outcome::Delivered => None,
            Outcome::DeadLettered { reason, .. } | Outcome::Spooled { reason, .. } => Some(reason),
            Outcome::Failed(error) => Some(error),
        }
    }
}

/// What happened to one message. Reported exactly once per accepted send.
///
/// The topic and key are shared rather than owned: a batch's reports point into one buffer of
/// its keys and one copy of each topic, where a copy per report (made on the delivery thread,
/// freed on the caller's) cost `send_batch` about a fifth of its CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The topic the message was sent to (also when it was dead-lettered).
    pub topic: TopicName,
    /// The partition (of the dead-letter topic when dead-lettered); -1 if none was assigned.
    pub partition: i32,
    /// The offset in the partition; -1 unless delivered or dead-lettered, and -1 when the
    /// acknowledgement did not carry one (`acks=0`, or a message librdkafka knows was written
    /// because a later request to its partition succeeded after its own failed).
    pub offset: i64,
    /// The message timestamp in milliseconds since the epoch, if known.
    pub timestamp: Option<i64>,
    /// The message key.
    pub key: Option<Bytes>,
    /// How many times kafkasender handed the message to librdkafka for its topic: 1, plus its
    /// client re-sends (`retry.max`). librdkafka's own idempotent wire retries are not counted.
    pub attempts: u32,
    /// Time from `send` to this report.
    pub latency: Duration,
    /// Whether the message was sent again through a new client after the first one failed
    /// fatally (a self-healing recovery; at-least-once: the first client may have written it).
    pub recovered: bool,
    /// How it ended.
    pub outcome: Outcome,
}

impl DeliveryReport {
    /// Whether the message was delivered.
    pub fn is_delivered(&self) -> bool {
        matches!(self.outcome, Outcome::Delivered)
    }

    /// The error that kept the message from its topic, if it did not get there.
    pub fn error(&self) -> Option<&Error> {
        self.outcome.error()
    }

    /// The report of a message librdkafka reported on, sent `attempts` times since `sent_at`;
    /// without its topic and key when its sender `names` them (a token send, see [`ReportSink`],
    /// or a batch's record).
    pub(crate) fn of_message(
        message: Reported<'_>,
        attempts: u32,
        sent_at: Instant,
        outcome: Outcome,
        names: Names,
    ) -> DeliveryReport {
        let placed = matches!(outcome, Outcome::Delivered | Outcome::DeadLettered { .. });
        let (topic, key) = match names {
            Names::BySender => (TopicName::default(), None),
            Names::Copied => (
                TopicName::shared(message.topic()),
                message.key().map(Bytes::copy_from_slice),
            ),
        };
        DeliveryReport {
            topic,
            partition: message.partition(),
            // librdkafka's "no offset" is -1001; every face documents -1.
            offset: if placed { message.offset().max(-1) } else { -1 },
            timestamp: message.timestamp(),
            key,
            attempts,
            latency: message.reported_at().saturating_duration_since(sent_at),
            recovered: false,
            outcome,
        }
    }

    /// The report of a message that librdkafka no longer holds (spooled, or failed on the way).
    pub(crate) fn of_record(
        record: &OwnedRecord,
        attempts: u32,
        sent_at: Instant,
        outcome: Outcome,
    ) -> DeliveryReport {
        DeliveryReport {
            topic: TopicName::from(record.topic.as_str()),
            partition: record.partition.unwrap_or(-1),
            offset: -1,
            timestamp: record.timestamp,
            key: record.key.as_deref().map(Bytes::copy_from_slice),
            attempts,
            latency: sent_at.elapsed(),
            recovered: false,
            outcome,
        }
    }

    /// The same message's report, failed with `error` instead: what its transaction's end (or
    /// the producer's) made of a message librdkafka had reported.
    pub(crate) fn failed_instead(self, error: Error) -> DeliveryReport {
        DeliveryReport {
            offset: -1,
            outcome: Outcome::Failed(error),
            ..self
        }
    }

    /// The report of a record that never reached librdkafka.
    pub(crate) fn not_enqueued(record: &Record<'_>, error: Error) -> DeliveryReport {
        DeliveryReport {
            topic: TopicName::from(record.topic),
            partition: record.partition.unwrap_or(-1),
            offset: -1,
            timestamp: record.timestamp,
            key: record.key.map(Bytes::copy_from_slice),
            attempts: 0,
            latency: Duration::ZERO,
            recovered: false,
            outcome: Outcome::Failed(error),
        }
    }

    /// `Err` only when the message is lost ([`Outcome::Failed`]); a dead-lettered or spooled
    /// message is kept, so its report is `Ok` and says where.
    pub fn into_result(self) -> Result<DeliveryReport> {
        match self.outcome {
            Outcome::Failed(error) => Err(error),
            _ => Ok(self),
        }
    }
}

/// A report's topic: a name shared between reports, so a clone copies no text, and empty
/// without an allocation (a token send's report, whose sender knows its topic).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(Option<Arc<str>>);

impl TopicName {
    /// The name as a `str`.
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or_default()
    }

    /// `name`, shared with the previous report made on this thread when that one named the same
    /// topic, as reports in a row mostly do: a copy per report was a malloc on the delivery
    /// thread and a free on the caller's. Each thread keeps the one name it saw last.
    fn shared(name: &str) -> TopicName {
        thread_local! {
            static LAST: RefCell<TopicName> = RefCell::default();
        }
        LAST.with_borrow_mut(|last| {
            if last.as_str() != name {
                *last = TopicName::from(name);
            }
            last.clone()
        })
    }
}

impl Deref for TopicName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for TopicName {
    fn from(name: &str) -> TopicName {
        TopicName((!name.is_empty()).then(|| Arc::from(name)))
    }
}

impl From<String> for TopicName {
    fn from(name: String) -> TopicName {
        TopicName((!name.is_empty()).then(|| Arc::from(name)))
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for TopicName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for TopicName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for TopicName {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

/// Where a report's topic and key come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Names {
    /// Copied from librdkafka's message.
    Copied,
    /// Left out: the sender knows them (a token send) or fills them in (a batch).
    BySender,
}

/// Receives one message's report, on the producer's delivery thread. Keep it short: hand the
/// report to your own thread or runtime for anything slow.
pub type DeliveryCallback = Box<dyn FnOnce(DeliveryReport) + Send + 'static>;

/// Receives the reports of a whole batch at once, in the order the records were given.
pub type BatchCallback = Box<dyn FnOnce(Vec<DeliveryReport>) + Send + 'static>;

/// Where the reports of token sends go ([`Producer::send_token`](crate::Producer::send_token)):
/// called once per such message with its token and report, on the thread that reports it. For a
/// binding that queues reports for its host: each send carries a number instead of a callback
/// holding a share of that queue, whose count would bounce between the sending and the
/// delivery thread on every message.
///
/// The report's `topic` is empty and its `key` `None`: the binding knows both by the token, and
/// copying them for every message (made on the delivery thread, freed on the binding's) took
/// about a tenth of the Go face's CPU per message.
pub type ReportSink = Box<dyn Fn(u64, DeliveryReport) + Send + Sync + 'static>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::TopicName;

    fn same_text(a: &TopicName, b: &TopicName) -> bool {
        matches!((&a.0, &b.0), (Some(a), Some(b)) if Arc::ptr_eq(a, b))
    }

    #[test]
    fn reports_in_a_row_to_one_topic_share_its_name_and_a_new_topic_gets_its_own() {
        let first = TopicName::shared("orders");
        let second = TopicName::shared("orders");
        let other = TopicName::shared("payments");
        let again = TopicName::shared("orders");
        assert!(same_text(&first, &second));
        assert_eq!(&*other, "payments");
        assert!(
            !same_text(&first, &again),
            "a name is shared with the previous report only"
        );
        assert_eq!(&*again, "orders");
        assert_eq!(TopicName::shared(""), TopicName::default());
    }
}
