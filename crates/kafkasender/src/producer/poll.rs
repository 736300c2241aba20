//! librdkafka's event queue, served on the delivery thread: each message of a delivery-report
//! event goes to [`Context::on_report`]; logs, statistics and error events to the context's
//! handlers. Handled delivery-report events are destroyed by a sending thread ([`Retired`]).
//!
//! Served here rather than by rust-rdkafka's `BaseProducer::poll`, which destroys each event
//! as soon as it is handled, on the polling thread.

use std::ffi::CStr;
use std::os::raw::c_char;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::bindings as rdsys;
use rdkafka::client::ClientContext as _;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer as _;
use rdkafka::util::IntoOpaque;

use super::engine::Client;
use super::message::Ticket;
use super::produce::HeaderLists;
use crate::lock;
use crate::reported::Reported;

/// Serves `client`'s event queue until `timeout` has passed; with a zero timeout, until the
/// queue is empty.
pub(crate) fn serve(client: &Arc<Client>, timeout: Duration, retired: &Retired) {
    let mut now = Instant::now();
    let deadline = now + timeout;
    // SAFETY: a new reference to the client's main queue, destroyed below.
    let queue = unsafe { rdsys::rd_kafka_queue_get_main(client.client().native_ptr()) };
    loop {
        let wait = deadline.saturating_duration_since(now);
        let wait_ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: a live queue; the event, if any, is ours to destroy.
        let event = unsafe { rdsys::rd_kafka_queue_poll(queue, wait_ms) };
        // One clock read per event: it dates the event's reports and times this loop, which so
        // may run past `timeout` by the handling of one event.
        now = Instant::now();
        match NonNull::new(event) {
            Some(event) => handle(client, event, retired, now),
            None if timeout.is_zero() => break,
            None => {}
        }
        if !timeout.is_zero() && now >= deadline {
            break;
        }
    }
    // SAFETY: the reference taken above.
    unsafe { rdsys::rd_kafka_queue_destroy(queue) };
    retired.destroy_unclaimed();
}

/// Handles an event taken from the queue at `taken_at`.
fn handle(
    client: &Arc<Client>,
    event: NonNull<rdsys::rd_kafka_event_t>,
    retired: &Retired,
    taken_at: Instant,
) {
    let context = client.context();
    let ev = event.as_ptr();
    // SAFETY: a live event, read according to its type, then destroyed exactly once.
    unsafe {
        match rdsys::rd_kafka_event_type(ev) {
            rdsys::RD_KAFKA_EVENT_DR => {
                // Counted here: `rd_kafka_event_message_count` counts only the messages not yet
                // taken with `rd_kafka_event_message_next`, none once they all are.
                let mut messages = 0;
                let (mut lists, count) = (Vec::new(), rdsys::rd_kafka_event_message_count(ev));
                loop {
                    let message = rdsys::rd_kafka_event_message_next(ev);
                    let Some(message) = message.as_ref() else {
                        break;
                    };
                    messages += 1;
                    if message._private.is_null() {
                        continue; // not one of ours (none is sent without a ticket)
                    }
                    let ticket = Ticket::from_ptr(message._private);
                    context.on_report(Reported::new(message, taken_at), ticket);
                    retired.header_lists.take_back(message, &mut lists, count);
                }
                retired.header_lists.give_back(&mut lists);
                retired.keep(HandledEvent {
                    event,
                    messages,
                    _client: client.clone(),
                });
                return;
            }
            rdsys::RD_KAFKA_EVENT_LOG => {
                let (mut facility, mut text, mut level) = (ptr::null(), ptr::null(), 0);
                if rdsys::rd_kafka_event_log(ev, &mut facility, &mut text, &mut level) == 0 {
                    context.log(log_level(level), &lossy(facility), lossy(text).trim());
                }
            }
            rdsys::RD_KAFKA_EVENT_STATS => {
                context.stats_raw(CStr::from_ptr(rdsys::rd_kafka_event_stats(ev)).to_bytes());
            }
            rdsys::RD_KAFKA_EVENT_ERROR => {
                let error = KafkaError::Global(rdsys::rd_kafka_event_error(ev).into());
                let reason = lossy(rdsys::rd_kafka_event_error_string(ev));
                context.error(error, reason.trim());
            }
            _ => {} // no OAUTHBEARER token callback is configured; nothing else is enabled
        }
        rdsys::rd_kafka_event_destroy(ev);
    }
}

/// # Safety
/// `text` is a NUL-terminated string.
unsafe fn lossy(text: *const c_char) -> std::borrow::Cow<'static, str> {
    // SAFETY: the caller's promise; the text is copied if it is not UTF-8.
    unsafe { CStr::from_ptr(text) }.to_string_lossy()
}

fn log_level(level: i32) -> RDKafkaLogLevel {
    match level {
        0 => RDKafkaLogLevel::Emerg,
        1 => RDKafkaLogLevel::Alert,
        2 => RDKafkaLogLevel::Critical,
        3 => RDKafkaLogLevel::Error,
        4 => RDKafkaLogLevel::Warning,
        5 => RDKafkaLogLevel::Notice,
        6 => RDKafkaLogLevel::Info,
        _ => RDKafkaLogLevel::Debug,
    }
}

/// A delivery-report event whose messages were all reported; destroying it frees them. It holds
/// its client, which must outlive it.
pub(crate) struct HandledEvent {
    event: NonNull<rdsys::rd_kafka_event_t>,
    /// How many messages it frees.
    messages: usize,
    _client: Arc<Client>,
}

// SAFETY: librdkafka lets any thread destroy an event, once; nothing else touches it.
unsafe impl Send for HandledEvent {}

impl Drop for HandledEvent {
    fn drop(&mut self) {
        // SAFETY: handled, and destroyed only here.
        unsafe { rdsys::rd_kafka_event_destroy(self.event.as_ptr()) };
    }
}

/// Handled delivery-report events, waiting for a sending thread to destroy them.
///
/// Destroying an event frees its messages, which librdkafka allocated on the thread that sent
/// them. glibc's malloc gives each thread an arena of its own; a chunk freed by another thread
/// goes back under that arena's lock, the lock the sender takes to allocate, so a sender and a
/// delivery thread that frees would contend on it once per message. Freed by the sender, the
/// chunks go back to its own cache and are reused by its next sends. (Measured: raw librdkafka
/// polled by its sending thread ran 1.4-2x the rate of one polled by a thread of its own, at
/// half the CPU per message; twice that gap with one header per message.)
///
/// What no send claims within two polls (an idle producer) the delivery thread destroys.
///
/// The header lists of those messages that carry a single header (their id) are not freed but
/// taken back for the next sends to reuse ([`HeaderLists`]).
#[derive(Default)]
pub(crate) struct Retired {
    pub(crate) header_lists: HeaderLists,
    events: Mutex<Vec<HandledEvent>>,
    /// Whether `events` holds any: a send looks here, not at the lock.
    waiting: AtomicBool,
    /// Whether the events waiting were there at the end of the previous poll already.
    unclaimed: AtomicBool,
    /// Messages in the events waiting: librdkafka counts them as queued until they are freed.
    messages: AtomicUsize,
    /// Threads waiting in librdkafka for every message to be freed (a transaction's commit or
    /// abort flushes): events are destroyed at once meanwhile.
    urgent: AtomicUsize,
}

impl Retired {
    fn keep(&self, event: HandledEvent) {
        let mut events = lock(&self.events);
        // Read under the lock, so that `while_urgent`'s `destroy_all` cannot miss this event.
        if self.urgent.load(Ordering::Acquire) > 0 {
            drop(events);
            drop(event);
            return;
        }
        self.messages.fetch_add(event.messages, Ordering::Relaxed);
        events.push(event);
        drop(events);
        self.waiting.store(true, Ordering::Release);
    }

    /// Messages reported but not yet freed.
    pub(crate) fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed) as u64
    }

    /// Runs `call`, which waits in librdkafka for every message to be freed, with nothing
    /// waiting here to be destroyed meanwhile.
    pub(crate) fn while_urgent<T>(&self, call: impl FnOnce() -> T) -> T {
        self.urgent.fetch_add(1, Ordering::AcqRel);
        self.destroy_all();
        let result = call();
        self.urgent.fetch_sub(1, Ordering::AcqRel);
        result
    }

    /// On a sending thread: destroys the events waiting, if the delivery thread is not adding
    /// one right now. Returns whether it destroyed any (their messages' room is free now).
    pub(crate) fn destroy_on_sender(&self) -> bool {
        if !self.waiting.load(Ordering::Acquire) {
            return false;
        }
        match self.events.try_lock() {
            Ok(events) => self.destroy_taken(events),
            Err(_) => false,
        }
    }

    /// At the end of a poll: destroys the events that waited since the previous one.
    fn destroy_unclaimed(&self) {
        if !self.waiting.load(Ordering::Acquire) {
            return;
        }
        if self.unclaimed.swap(true, Ordering::Relaxed) {
            self.destroy_all();
        }
    }

    /// Destroys every event waiting (before their client goes, and when delivery stops).
    pub(crate) fn destroy_all(&self) {
        self.destroy_taken(lock(&self.events));
    }

    /// Empties the locked `events`, then destroys what they held with the lock let go and stops
    /// counting their messages. Returns whether there were any.
    fn destroy_taken(&self, mut events: MutexGuard<'_, Vec<HandledEvent>>) -> bool {
        let taken = std::mem::take(&mut *events);
        self.waiting.store(false, Ordering::Release);
        self.unclaimed.store(false, Ordering::Relaxed);
        drop(events);
        let any = !taken.is_empty();
        let messages: usize = taken.iter().map(|e| e.messages).sum();
        drop(taken);
        self.messages.fetch_sub(messages, Ordering::Relaxed);
        any
    }
}
