//! Stages 1–3 of the send path, before librdkafka: validate the record, take a rate-limit token,
//! ask the circuit breaker. Each refuses with a typed error before anything is enqueued; an idle
//! stage costs one `Option` check.

use std::sync::Arc;
use std::time::Instant;

use crate::breaker::{Admission, Breaker, BreakerState};
use crate::config::Config;
use crate::error::Result;
use crate::ratelimit::RateLimit;
use crate::record::Record;

pub(crate) struct Gate {
    max_message_bytes: usize,
    rate_limit: Option<RateLimit>,
    /// Shared with the delivery thread (which records outcomes) and the rescue worker (whose
    /// re-sends it admits too).
    pub(crate) breaker: Option<Arc<Breaker>>,
}

impl Gate {
    pub(crate) fn new(config: &Config) -> Gate {
        let resilience = &config.settings().resilience;
        Gate {
            max_message_bytes: config.max_message_bytes(),
            rate_limit: RateLimit::from_settings(config.settings()),
            breaker: resilience
                .breaker
                .enabled
                .then(|| Arc::new(Breaker::new(resilience.breaker.clone()))),
        }
    }

    /// Stage 1: what can be checked before enqueueing (topic name, partition, size).
    pub(crate) fn validate(&self, record: &Record<'_>) -> Result<()> {
        record.validate(self.max_message_bytes)
    }

    /// Stage 2: waits for a token up to `enqueue.timeout.ms`, or fails with `rate_limited`.
    pub(crate) fn take_token(&self, record: &Record<'_>) -> Result<()> {
        match &self.rate_limit {
            Some(rate_limit) => rate_limit.acquire(record.size()),
            None => Ok(()),
        }
    }

    /// Whether any send may wait for a token.
    pub(crate) fn may_wait(&self) -> bool {
        self.rate_limit.is_some()
    }

    /// Stage 3: whether the circuit breaker lets a message through now.
    pub(crate) fn admit(&self) -> Admission {
        match &self.breaker {
            // The clock is read only when the answer can depend on it, not per message.
            Some(breaker) if breaker.state() != BreakerState::Closed => {
                breaker.admit(Instant::now())
            }
            _ => Admission::Pass,
        }
    }

    /// A probe that never went out must not hold a half-open breaker's slot.
    pub(crate) fn release_probe(&self) {
        if let Some(breaker) = &self.breaker {
            breaker.release_probe();
        }
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker
            .as_ref()
            .map_or(BreakerState::Closed, |b| b.state())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn gate(settings: &[(&str, &str)]) -> Gate {
        let mut builder = Config::builder().set("bootstrap.servers", "127.0.0.1:9");
        for (key, value) in settings {
            builder = builder.set(*key, *value);
        }
        Gate::new(&builder.build().unwrap())
    }

    #[test]
    fn idle_stages_pass_everything_valid_and_validation_refuses_with_a_kind() {
        let gate = gate(&[("message.max.bytes", "1000")]);
        assert!(!gate.may_wait());
        assert_eq!(gate.admit(), Admission::Pass);
        assert_eq!(gate.breaker_state(), BreakerState::Closed);
        assert!(gate.validate(&Record::new("orders").value("ok")).is_ok());
        let big = vec![0u8; 2000];
        let refused = gate
            .validate(&Record::new("orders").value(&big))
            .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::MessageTooLarge);
        let refused = gate.validate(&Record::new("no spaces")).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::InvalidRecord);
    }

    #[test]
    fn a_rate_limit_makes_sends_wait_and_refuses_once_the_wait_would_pass_the_timeout() {
        let gate = gate(&[
            ("ratelimit.messages.per.second", "1"),
            ("ratelimit.burst", "1"),
            ("enqueue.timeout.ms", "10"),
        ]);
        assert!(gate.may_wait());
        let record = Record::new("orders").value("v");
        gate.take_token(&record).unwrap();
        let refused = gate.take_token(&record).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::RateLimited);
    }

    #[test]
    fn an_open_breaker_rejects_and_a_half_open_one_admits_one_probe() {
        let gate = gate(&[("breaker.enabled", "true"), ("breaker.timeout.ms", "1")]);
        let breaker = gate.breaker.clone().unwrap();
        breaker.trip("test", Instant::now());
        assert_eq!(gate.breaker_state(), BreakerState::Open);
        assert_eq!(gate.admit(), Admission::Reject);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(gate.admit(), Admission::Probe);
        assert_eq!(gate.admit(), Admission::Reject, "one probe at a time");
        gate.release_probe(); // it never went out
        assert_eq!(gate.admit(), Admission::Probe);
    }
}
