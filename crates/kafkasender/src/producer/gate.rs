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
        self.breaker
            .as_ref()
            .map_or(Admission::Pass, |b| b.admit(Instant::now()))
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
