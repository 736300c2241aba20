//! Token-bucket rate limit on sends: messages per second with a burst, and optionally bytes per
//! second. A send waits for its tokens, sleeping (never spinning), and fails with
//! [`ErrorKind::RateLimited`] instead when the wait would pass `enqueue.timeout.ms`.
//! Not configured, it does not exist: the send path checks one `Option`.

use std::num::NonZeroU32;
use std::thread;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};

use crate::config::Settings;
use crate::error::{Error, ErrorKind, Result};

pub(crate) struct RateLimit {
    messages: DefaultDirectRateLimiter,
    /// The byte bucket and its size (one second's worth).
    bytes: Option<(DefaultDirectRateLimiter, u32)>,
    max_wait: Duration,
    clock: DefaultClock,
}

fn non_zero(n: u64) -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
}

impl RateLimit {
    /// The limit the settings ask for, if any.
    pub(crate) fn from_settings(settings: &Settings) -> Option<RateLimit> {
        let limits = &settings.resilience;
        let per_second = limits.rate_limit_per_second?;
        let burst = limits.rate_limit_burst.unwrap_or(per_second);
        let messages = DefaultDirectRateLimiter::direct(
            Quota::per_second(non_zero(per_second)).allow_burst(non_zero(burst)),
        );
        let bytes = limits.rate_limit_bytes_per_second.map(|bytes| {
            let bucket = non_zero(bytes);
            (
                DefaultDirectRateLimiter::direct(Quota::per_second(bucket)),
                bucket.get(),
            )
        });
        Some(RateLimit {
            messages,
            bytes,
            max_wait: settings.enqueue_timeout,
            clock: DefaultClock::default(),
        })
    }

    /// Takes the tokens for one message of `size` bytes, waiting for them up to the bound.
    pub(crate) fn acquire(&self, size: usize) -> Result<()> {
        // The deadline is set by the first wait: a send that finds a token reads no clock of ours.
        let mut deadline = None;
        self.wait(&mut deadline, || {
            self.messages
                .check()
                .err()
                .map(|until| until.wait_time_from(self.clock.now()))
        })?;
        let Some((bytes, bucket)) = &self.bytes else {
            return Ok(());
        };
        let Some(n) = NonZeroU32::new(u32::try_from(size).unwrap_or(u32::MAX)) else {
            return Ok(());
        };
        if n.get() > *bucket {
            return Err(Error::new(
                ErrorKind::RateLimited,
                format!("a message of {size} bytes can never pass ratelimit.bytes.per.second ({bucket})"),
            ));
        }
        self.wait(&mut deadline, || match bytes.check_n(n) {
            Ok(Ok(())) | Err(_) => None,
            Ok(Err(until)) => Some(until.wait_time_from(self.clock.now())),
        })
    }

    /// Calls `try_take` until it takes (returns `None`), sleeping as long as it says to wait.
    fn wait(
        &self,
        deadline: &mut Option<Instant>,
        try_take: impl Fn() -> Option<Duration>,
    ) -> Result<()> {
        while let Some(wait) = try_take() {
            let now = Instant::now();
            if now + wait > *deadline.get_or_insert(now + self.max_wait) {
                return Err(Error::new(
                    ErrorKind::RateLimited,
                    format!(
                        "rate limit: no token within enqueue.timeout.ms ({:?})",
                        self.max_wait
                    ),
                ));
            }
            thread::sleep(wait);
        }
        Ok(())
    }
}
