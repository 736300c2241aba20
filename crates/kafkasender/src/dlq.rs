//! Dead-letter routing: which failures go to `dlq.topic`, and the record that goes there.
//!
//! The dead-letter record keeps the original key, value and headers, adds `x-ks-*` headers
//! saying where it was going and why it did not get there, and is partitioned by its key.
//! Like any send, it is at-least-once: a message re-sent before it was dead-lettered may also
//! have reached its topic.

use crate::error::{Error, ErrorKind};
use crate::record::OwnedRecord;

/// Header with the topic the message was sent to.
pub const HEADER_ORIGINAL_TOPIC: &str = "x-ks-original-topic";
/// Header with the error that kept it from its topic (`kind: message`).
pub const HEADER_ERROR: &str = "x-ks-error";
/// Header with the number of attempts made.
pub const HEADER_ATTEMPTS: &str = "x-ks-attempts";
/// Header with the first attempt's time, milliseconds since the epoch.
pub const HEADER_FIRST_ATTEMPT_MS: &str = "x-ks-first-attempt-ms";
/// Header with the last attempt's time, milliseconds since the epoch.
pub const HEADER_LAST_ATTEMPT_MS: &str = "x-ks-last-attempt-ms";

/// Whether a message that finally failed with `error` belongs in the dead-letter topic: it
/// exhausted its re-sends, or the broker refused it for good. Invalid input never reaches a
/// broker; a closing, fatally failed or circuit-broken producer cannot reach the dead-letter
/// topic either, so those go to the spool.
pub(crate) fn accepts(error: &Error) -> bool {
    !matches!(
        error.kind(),
        ErrorKind::Config
            | ErrorKind::InvalidRecord
            | ErrorKind::Closed
            | ErrorKind::Fatal
            | ErrorKind::QueueFull
            | ErrorKind::RateLimited
            | ErrorKind::CircuitOpen
            | ErrorKind::Spool
    )
}

/// Times and counts of the attempts that came before dead-lettering.
pub(crate) struct Attempts {
    pub(crate) count: u32,
    pub(crate) first_ms: i64,
    pub(crate) last_ms: i64,
}

/// The record for the dead-letter topic.
pub(crate) fn dead_letter(
    original: &OwnedRecord,
    topic: &str,
    reason: &Error,
    attempts: &Attempts,
) -> OwnedRecord {
    let mut headers = original.headers.clone();
    let mut add =
        |key: &str, value: String| headers.push((key.to_string(), Some(value.into_bytes())));
    add(HEADER_ORIGINAL_TOPIC, original.topic.clone());
    add(HEADER_ERROR, reason.to_string());
    add(HEADER_ATTEMPTS, attempts.count.to_string());
    add(HEADER_FIRST_ATTEMPT_MS, attempts.first_ms.to_string());
    add(HEADER_LAST_ATTEMPT_MS, attempts.last_ms.to_string());
    OwnedRecord {
        topic: topic.to_string(),
        key: original.key.clone(),
        value: original.value.clone(),
        headers,
        partition: None,
        timestamp: original.timestamp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::RDKafkaErrorCode;

    #[test]
    fn broker_refusals_and_exhausted_retries_are_dead_lettered_but_not_bad_input_or_closing() {
        for code in [
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
        ] {
            assert!(accepts(&Error::from_code(code, "")), "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::InvalidRecord,
            RDKafkaErrorCode::PurgeQueue,
            RDKafkaErrorCode::Fatal,
        ] {
            assert!(!accepts(&Error::from_code(code, "")), "{code:?}");
        }
    }

    #[test]
    fn the_dead_letter_record_keeps_the_message_and_says_why() {
        let original = OwnedRecord {
            topic: "orders".into(),
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            headers: vec![("trace".into(), Some(b"t1".to_vec()))],
            partition: Some(2),
            timestamp: Some(5),
        };
        let reason = Error::from_code(
            RDKafkaErrorCode::TopicAuthorizationFailed,
            "delivery failed",
        );
        let attempts = Attempts {
            count: 3,
            first_ms: 10,
            last_ms: 20,
        };
        let record = dead_letter(&original, "orders.dlq", &reason, &attempts);
        assert_eq!(record.topic, "orders.dlq");
        assert_eq!((record.key, record.value), (original.key, original.value));
        assert_eq!(record.partition, None);
        let header = |name: &str| {
            let (_, value) = record.headers.iter().find(|(k, _)| k == name).unwrap();
            String::from_utf8(value.clone().unwrap()).unwrap()
        };
        assert_eq!(header("trace"), "t1");
        assert_eq!(header(HEADER_ORIGINAL_TOPIC), "orders");
        assert_eq!(header(HEADER_ERROR), reason.to_string());
        assert_eq!(header(HEADER_ATTEMPTS), "3");
        assert_eq!(header(HEADER_FIRST_ATTEMPT_MS), "10");
        assert_eq!(header(HEADER_LAST_ATTEMPT_MS), "20");
    }
}
