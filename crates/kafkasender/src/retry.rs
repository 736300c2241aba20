//! Client re-sends: what librdkafka gave up on with a retriable error is handed to it again after
//! an exponential backoff with full jitter, up to `retry.max` times.
//!
//! Guarantees: librdkafka's own wire retries (`retries`) are idempotent and never duplicate. A
//! client re-send is at-least-once: after a timeout nobody knows whether the broker wrote the
//! message, so the re-send may duplicate it. `DeliveryReport::attempts` > 1 marks those messages.

use std::time::Duration;

use crate::config::RetrySettings;
use crate::error::{Error, ErrorKind};

/// When and how often a failed message is re-sent.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    settings: RetrySettings,
}

impl RetryPolicy {
    pub(crate) fn new(settings: RetrySettings) -> RetryPolicy {
        RetryPolicy { settings }
    }

    /// Whether a message that failed with `error` after `attempts` attempts is re-sent.
    pub(crate) fn should_retry(&self, error: &Error, attempts: u32) -> bool {
        // A purge means the producer is closing; the breaker and the spool handle the rest.
        error.is_retriable()
            && !matches!(error.kind(), ErrorKind::Closed | ErrorKind::CircuitOpen)
            && attempts <= self.settings.max
    }

    /// The wait before re-send number `retry` (1 for the first): a random duration between zero
    /// and `base * multiplier^(retry-1)`, capped at `cap` ("full jitter", so that producers that
    /// failed together do not retry together).
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let RetrySettings {
            base,
            cap,
            multiplier,
            ..
        } = self.settings;
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let ceiling = base.as_secs_f64() * multiplier.powi(exponent);
        let ceiling = ceiling.min(cap.as_secs_f64());
        Duration::from_secs_f64(ceiling * fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::RDKafkaErrorCode;

    fn policy(max: u32) -> RetryPolicy {
        RetryPolicy::new(RetrySettings {
            max,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            multiplier: 2.0,
        })
    }

    #[test]
    fn backoff_is_jittered_below_an_exponential_ceiling_and_capped() {
        let policy = policy(10);
        for (retry, ceiling_ms) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let waits: Vec<Duration> = (0..200).map(|_| policy.backoff(retry)).collect();
            let ceiling = Duration::from_millis(ceiling_ms);
            assert!(waits.iter().all(|w| *w <= ceiling), "retry {retry}");
            // Full jitter spreads the waits over the whole range.
            assert!(waits.iter().any(|w| *w < ceiling / 4), "retry {retry}");
            assert!(waits.iter().any(|w| *w > ceiling * 3 / 4), "retry {retry}");
        }
    }

    #[test]
    fn only_retriable_errors_are_retried_and_only_up_to_the_maximum() {
        let policy = policy(2);
        let timeout = Error::from_code(RDKafkaErrorCode::MessageTimedOut, "");
        assert!(policy.should_retry(&timeout, 1));
        assert!(policy.should_retry(&timeout, 2));
        assert!(!policy.should_retry(&timeout, 3));
        let denied = Error::from_code(RDKafkaErrorCode::TopicAuthorizationFailed, "");
        assert!(!policy.should_retry(&denied, 1));
        let purged = Error::from_code(RDKafkaErrorCode::PurgeQueue, "");
        assert!(!policy.should_retry(&purged, 1));
        assert!(!RetryPolicy::new(RetrySettings {
            max: 0,
            ..policy.settings.clone()
        })
        .should_retry(&timeout, 1));
    }
}
