//! librdkafka's callbacks, on the delivery thread: logs, statistics, error events, and each
//! message's delivery. A delivered message is reported here; a failed one is handed to
//! [`Failures`] (the rescue stages), which either reports it or takes it further.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rdkafka::bindings::{rd_kafka_fatal_error, rd_kafka_msg_status_t};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafka;

use super::message::Ticket;
use super::round_robin::RoundRobin;
use super::tracker::Tracker;
use super::watchdog::CredentialFailures;
use crate::breaker::{Breaker, Transition};
use crate::delivery::{DeliveryReport, Outcome};
use crate::error::{Error, ErrorKind};
use crate::lock;
use crate::record::OwnedRecord;
use crate::reported::Reported;

/// What librdkafka's statistics JSON is passed to, every `statistics.interval.ms`.
pub type StatisticsCallback = Box<dyn Fn(&str) + Send + Sync + 'static>;

/// A message librdkafka gave up on.
pub(crate) struct Failure {
    pub(crate) record: OwnedRecord,
    pub(crate) ticket: Ticket,
    pub(crate) error: Error,
    pub(crate) written: Written,
}

/// Whether the brokers may have written a failed message (librdkafka's `rd_kafka_message_status`).
/// Only a message they certainly did not write can be sent again without risking a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Never sent, or refused by the broker.
    No,
    /// Sent, but no answer came (a timeout, a purge of an in-flight request).
    Possibly,
    /// The broker acknowledged it, yet librdkafka reports an error.
    Yes,
}

impl Written {
    fn of(message: Reported<'_>) -> Written {
        match message.status() {
            rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED => Written::No,
            rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_PERSISTED => Written::Yes,
            _ => Written::Possibly,
        }
    }
}

/// A report ready to be delivered.
pub(crate) type Finished = (Ticket, DeliveryReport);

/// The stages after librdkafka (re-send, dead-letter topic, spool), as the delivery thread sees them.
pub(crate) trait Failures: Send + Sync {
    /// Takes a failed message one stage further: its final report now, or `None` when a later
    /// stage has it.
    fn after_failure(&self, failure: Failure) -> Option<Finished>;
    /// The circuit breaker closed: whatever waits in the spool can go again.
    fn breaker_closed(&self);
    /// Final reports made on other threads, to be delivered on the delivery thread.
    fn take_handoffs(&self) -> Vec<Finished>;
}

/// librdkafka's callbacks for our producer.
pub(crate) struct Context {
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) breaker: Option<Arc<Breaker>>,
    pub(crate) failures: Arc<dyn Failures>,
    pub(crate) on_statistics: Option<Arc<StatisticsCallback>>,
    /// Authentication and TLS failures, for the watchdog.
    pub(crate) credentials: Arc<CredentialFailures>,
    /// The client this context belongs to, set once it exists (see [`Context::is_fatal`]).
    pub(crate) native: OnceLock<NativeClient>,
    /// With `partition.strategy=round_robin`: librdkafka asks it for each record's partition.
    pub(crate) round_robin: Option<Arc<RoundRobin>>,
}

/// librdkafka's handle of the client a context belongs to.
pub(crate) struct NativeClient(pub(crate) *mut RDKafka);

// SAFETY: librdkafka's handle may be used from any thread; it outlives the context, which the
// client owns.
unsafe impl Send for NativeClient {}
unsafe impl Sync for NativeClient {}

impl Context {
    /// The context of a client that replaces this one's (see `recovery`): the same state.
    pub(crate) fn renewed(&self) -> Context {
        Context {
            tracker: self.tracker.clone(),
            breaker: self.breaker.clone(),
            failures: self.failures.clone(),
            on_statistics: self.on_statistics.clone(),
            credentials: self.credentials.clone(),
            native: OnceLock::new(),
            round_robin: self.round_robin.clone(),
        }
    }

    /// Whether the client failed fatally. Asked on the failure path: the messages librdkafka
    /// purges as it goes fatal are reported before the delivery loop sees the fatal error.
    fn is_fatal(&self) -> bool {
        if self.tracker.fatal.load(Ordering::Acquire) {
            return true;
        }
        let Some(client) = self.native.get() else {
            return false;
        };
        // SAFETY: the handle is alive while its context is; no buffer is passed.
        let code = unsafe { rd_kafka_fatal_error(client.0, std::ptr::null_mut(), 0) };
        let fatal = code != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
        if fatal {
            self.tracker.fatal.store(true, Ordering::Release);
        }
        fatal
    }

    /// Delivers the reports other threads made ready.
    pub(crate) fn deliver_handoffs(&self) {
        for (ticket, report) in self.failures.take_handoffs() {
            self.tracker.finish(ticket, report);
        }
    }
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn stats_raw(&self, statistics: &[u8]) {
        if let Some(on_statistics) = &self.on_statistics {
            if let Ok(json) = std::str::from_utf8(statistics) {
                if panic::catch_unwind(AssertUnwindSafe(|| on_statistics(json))).is_err() {
                    tracing::error!(target: "kafkasender", "the statistics callback panicked; the panic was caught");
                }
            }
        }
        match serde_json::from_slice(statistics) {
            Ok(parsed) => self.stats(parsed),
            Err(error) => {
                tracing::warn!(target: "kafkasender", %error, "unreadable librdkafka statistics")
            }
        }
    }

    fn stats(&self, statistics: Statistics) {
        // librdkafka counts every transmission of a message (`txmsgs`) and every message
        // produced (`msgs`) per partition; transmissions beyond one per message are wire retries.
        let retries = statistics
            .topics
            .values()
            .flat_map(|topic| topic.partitions.values())
            .filter(|partition| partition.partition >= 0)
            .map(|partition| partition.txmsgs.saturating_sub(partition.msgs))
            .sum();
        let metrics = &self.tracker.metrics;
        metrics.wire_retries.store(retries, Ordering::Relaxed);
        lock(&self.tracker.brokers).update(&statistics, metrics.delivered(), metrics.failed());
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        if code == Some(RDKafkaErrorCode::Fatal) {
            self.tracker.fatal.store(true, Ordering::Release);
            tracing::error!(target: "kafkasender", %error, reason, "producer failed fatally");
        } else if matches!(
            code,
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL)
        ) {
            let cause = if code == Some(RDKafkaErrorCode::SSL) {
                "the TLS handshake failed"
            } else {
                "SASL authentication failed"
            };
            tracing::warn!(target: "kafkasender", reason, "{cause}");
            let error = Error::new(ErrorKind::Authentication, format!("{cause}: {reason}"));
            self.credentials.record(error, Instant::now());
        } else if code == Some(RDKafkaErrorCode::AllBrokersDown) && all_counted_down(reason) {
            tracing::warn!(target: "kafkasender", reason, "all brokers are down");
            if let Some(breaker) = &self.breaker {
                breaker.trip("all brokers are down", Instant::now());
            }
        } else {
            tracing::warn!(target: "kafkasender", %error, reason, "client error");
        }
    }
}

impl ProducerContext<RoundRobin> for Context {
    type DeliveryOpaque = Ticket;

    fn get_custom_partitioner(&self) -> Option<&RoundRobin> {
        self.round_robin.as_deref()
    }

    /// Only while a client is dropped: rust-rdkafka serves its queue one last time.
    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Ticket) {
        let message = match result {
            Ok(message) | Err((_, message)) => message,
        };
        self.on_report(Reported::of(message), ticket);
    }
}

impl Context {
    /// A message librdkafka is done with: delivered, or failed (see [`Failures`]).
    pub(crate) fn on_report(&self, message: Reported<'_>, mut ticket: Ticket) {
        let error = match message.error() {
            None => {
                self.credentials.clear();
                None
            }
            Some(code) => Some(self.delivery_error(code)),
        };
        if let (None, Some(breaker)) = (&ticket.dead_letter, &self.breaker) {
            // Only failures that say the brokers are in trouble count, not refusals of one message.
            let brokers_failing = error
                .as_ref()
                .is_some_and(|e| e.is_retriable() && e.kind() != ErrorKind::Closed);
            if breaker.record(brokers_failing, ticket.probe, message.reported_at())
                == Transition::Closed
            {
                self.failures.breaker_closed();
            }
        }
        ticket.probe = false;
        let names = ticket.names();
        if ticket.in_transaction {
            // Reported when its transaction ends, never re-sent or set aside on its own.
            let outcome = error.map_or(Outcome::Delivered, Outcome::Failed);
            let report = DeliveryReport::of_message(
                message,
                ticket.attempts,
                ticket.sent_at,
                outcome,
                names,
            );
            return self.tracker.hold(ticket, report);
        }
        let Some(error) = error else {
            let report = match ticket.dead_letter.take() {
                None => DeliveryReport::of_message(
                    message,
                    ticket.attempts,
                    ticket.sent_at,
                    Outcome::Delivered,
                    names,
                ),
                Some(letter) => DeliveryReport {
                    topic: letter.original.topic.into(),
                    ..DeliveryReport::of_message(
                        message,
                        ticket.attempts,
                        ticket.sent_at,
                        Outcome::DeadLettered {
                            topic: message.topic().to_string(),
                            reason: letter.reason,
                        },
                        names,
                    )
                },
            };
            return self.tracker.finish(ticket, report);
        };
        let record = OwnedRecord::of_message(message, ticket.partition);
        ticket.assigned_partition = message.partition();
        let failure = Failure {
            record,
            ticket,
            error,
            written: Written::of(message),
        };
        // A dead client's messages wait for its replacement (see `recovery`).
        let Some(failure) = self.tracker.recovery.divert(failure, self.is_fatal()) else {
            return;
        };
        if let Some((ticket, report)) = self.failures.after_failure(failure) {
            self.tracker.finish(ticket, report);
        }
    }

    fn delivery_error(&self, code: RDKafkaErrorCode) -> Error {
        let error = delivery_error(code);
        if error.kind() != ErrorKind::Closed {
            return error;
        }
        match self.tracker.refusal() {
            // Purged because authentication keeps failing: say that, not "closed".
            Some(refusal) => refusal,
            // Purged by librdkafka as the client failed fatally (a recovery re-sends it instead).
            None if self.is_fatal() => Error::new(
                ErrorKind::Fatal,
                format!("{}; the producer failed fatally", error.message()),
            ),
            None => error,
        }
    }
}

fn delivery_error(code: RDKafkaErrorCode) -> Error {
    match code {
        RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight => Error::from_code(
            code,
            "the producer closed before the message was acknowledged",
        ),
        code => Error::from_code(code, "delivery failed"),
    }
}

/// Whether librdkafka's "N/M brokers are down" says all of them: it also raises the event as
/// "0/1 brokers are down" while it swaps its bootstrap entry for the brokers it learned of.
fn all_counted_down(reason: &str) -> bool {
    let counts = reason
        .split_whitespace()
        .next()
        .and_then(|c| c.split_once('/'));
    matches!(counts, Some((down, all)) if down == all && all != "0")
}

#[cfg(test)]
mod tests {
    use super::all_counted_down;

    #[test]
    fn only_an_all_brokers_down_event_that_counts_all_of_them_trips_the_breaker() {
        assert!(all_counted_down("1/1 brokers are down"));
        assert!(all_counted_down("3/3 brokers are down"));
        assert!(!all_counted_down("0/1 brokers are down"));
        assert!(!all_counted_down("2/3 brokers are down"));
        assert!(!all_counted_down("0/0 brokers are down"));
        assert!(!all_counted_down(""));
    }
}
