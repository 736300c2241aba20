//! What travels through librdkafka with each message as its per-message opaque pointer: the
//! message's bookkeeping and the caller's callback, in **one** allocation. A report then needs no
//! lookup, and a send allocates once (a boxed callback plus a boxed record of it would be two
//! allocations made on the sending thread and freed on the delivery thread, glibc's slowest case).
//! A batch's tickets allocate nothing: their bookkeeping lives in the batch (see `batch`).

use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::time::Instant;

use rdkafka::util::IntoOpaque;

use crate::delivery::{DeliveryReport, Names};
use crate::error::Error;
use crate::record::OwnedRecord;
use crate::spool::now_ms;

/// One message's bookkeeping, from `send` to its report.
///
/// Kept small: the ticket is allocated on the sending thread and freed on the delivery thread, and
/// glibc frees a chunk of up to 128 bytes (its fastbins) without the lock of the arena the sender
/// is allocating from; a bigger ticket made the two threads queue on that lock once per message.
pub(crate) struct Pending {
    pub(crate) sent_at: Instant,
    /// Milliseconds from `sent_at` to the latest attempt (an offset is 12 bytes smaller than an
    /// `Instant`).
    last_attempt_after_ms: u32,
    /// Hand-offs to librdkafka for the message's own topic: 1, plus client re-sends.
    pub(crate) attempts: u32,
    /// The partition the caller asked for (librdkafka's message only knows the assigned one).
    pub(crate) partition: Option<i32>,
    /// The partition librdkafka had assigned when it last reported the message (-1: none);
    /// re-sends keep their order within it.
    pub(crate) assigned_partition: i32,
    /// A half-open circuit breaker's probe: its result decides the breaker's state.
    pub(crate) probe: bool,
    /// Sent in a transaction: reported when the transaction ends (see `transaction`).
    pub(crate) in_transaction: bool,
    /// Sent again through a new client after a fatal error (see `recovery`).
    pub(crate) recovered: bool,
    /// Set while the message goes to the dead-letter topic instead of its own.
    pub(crate) dead_letter: Option<Box<DeadLetter>>,
    /// Where the journal holds the message (`spool.mode=journal`): crossed off when reported.
    pub(crate) journaled_at: Option<(u64, u32)>,
    /// A token send's token (see [`Pending::token`]); `sent_as` beside it says whether there is
    /// one, rather than an `Option<u64>`, which would take 16 bytes.
    token: u64,
    pub(crate) sent_as: SentAs,
    /// What to do with whatever is stored behind this struct (a callback: see `WithCallback`).
    end: End,
}

/// How the message was sent, which decides where its report goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SentAs {
    /// With a callback of its own (or a future).
    Callback,
    /// With a token, for the producer's report sink.
    Token,
    /// As a record of a batch, whose reports go to the batch's callback together.
    BatchRecord,
}

/// What a ticket does with the storage its [`Pending`] heads as it ends: hands over the report
/// or, without one (a ticket dropped undelivered), releases the storage unrun. The ticket is gone
/// afterwards. One function rather than two keeps [`Pending`] a word smaller.
pub(crate) type End = unsafe fn(NonNull<Pending>, Option<DeliveryReport>);

/// A message on its way to the dead-letter topic: the original, and why it could not go there.
pub(crate) struct DeadLetter {
    pub(crate) original: OwnedRecord,
    pub(crate) reason: Error,
}

impl Pending {
    /// The bookkeeping of a message sent at `sent_at`, its ticket ended by `end`.
    pub(crate) fn new(sent_at: Instant, end: End) -> Pending {
        Pending {
            sent_at,
            last_attempt_after_ms: 0,
            attempts: 1,
            partition: None,
            assigned_partition: -1,
            probe: false,
            in_transaction: false,
            recovered: false,
            dead_letter: None,
            journaled_at: None,
            token: 0,
            sent_as: SentAs::Callback,
            end,
        }
    }

    /// Wall-clock time of the first attempt, in milliseconds since the epoch (derived on the
    /// failure path only, so the send path reads no wall clock).
    pub(crate) fn first_attempt_ms(&self) -> i64 {
        wall_clock_ms(self.sent_at)
    }

    /// Wall-clock time of the latest attempt, in milliseconds since the epoch.
    pub(crate) fn last_attempt_ms(&self) -> i64 {
        self.first_attempt_ms() + i64::from(self.last_attempt_after_ms)
    }

    /// A token send's token: its report goes to the producer's report sink, not to a callback.
    pub(crate) fn token(&self) -> Option<u64> {
        (self.sent_as == SentAs::Token).then_some(self.token)
    }

    /// Where the report's topic and key come from: a token's or a batch's sender knows them
    /// without a copy per message.
    pub(crate) fn names(&self) -> Names {
        match self.sent_as {
            SentAs::Callback => Names::Copied,
            SentAs::Token | SentAs::BatchRecord => Names::BySender,
        }
    }

    /// The message is handed to librdkafka again now.
    pub(crate) fn attempted_now(&mut self) {
        let after = self.sent_at.elapsed().as_millis();
        self.last_attempt_after_ms = u32::try_from(after).unwrap_or(u32::MAX);
    }
}

/// An instant of the monotonic clock as wall-clock milliseconds since the epoch.
fn wall_clock_ms(at: Instant) -> i64 {
    now_ms() - i64::try_from(at.elapsed().as_millis()).unwrap_or(0)
}

/// `Pending` first, so a pointer to this is a pointer to its `Pending`.
#[repr(C)]
struct WithCallback<F> {
    pending: Pending,
    callback: F,
}

/// Owns one message's [`Pending`] and callback; a thin pointer, so it rides as librdkafka's
/// opaque. Delivering it runs the callback once; dropping it undelivered drops the callback unrun.
pub(crate) struct Ticket(NonNull<Pending>);

// SAFETY: a ticket is the only owner of its allocation. The callback is `Send` (required by
// `Ticket::new`) and `Pending` is plain data. librdkafka's opaque must also be `Sync`: a shared
// `&Ticket` only reaches `Pending`'s plain fields, never the callback, which is taken by value.
unsafe impl Send for Ticket {}
unsafe impl Sync for Ticket {}

impl Ticket {
    /// A ticket for a message sent now.
    pub(crate) fn new<F: FnOnce(DeliveryReport) + Send + 'static>(on_delivery: F) -> Ticket {
        let boxed = Box::new(WithCallback {
            pending: Pending::new(Instant::now(), end::<F>),
            callback: on_delivery,
        });
        Ticket(NonNull::from(Box::leak(boxed)).cast())
    }

    /// A ticket whose report goes to the producer's report sink with `token`.
    pub(crate) fn for_token(token: u64) -> Ticket {
        let mut ticket = Ticket::new(|_: DeliveryReport| {});
        (ticket.token, ticket.sent_as) = (token, SentAs::Token);
        ticket
    }

    /// A ticket for a `Pending` stored elsewhere.
    ///
    /// # Safety
    /// `pending` stays valid and used by nothing else until the ticket is delivered or dropped,
    /// and its [`End`] is right for where it is stored.
    pub(crate) unsafe fn stored_at(pending: NonNull<Pending>) -> Ticket {
        Ticket(pending)
    }

    /// Runs the callback with the message's report and frees the ticket.
    pub(crate) fn deliver(self, report: DeliveryReport) {
        let this = ManuallyDrop::new(self);
        // SAFETY: `end` was made for this allocation's callback type; `this` is not dropped.
        unsafe { (this.end)(this.0, Some(report)) }
    }

    /// Gives the callback back, unrun, and frees the ticket.
    ///
    /// # Safety
    /// `F` must be the callback type the ticket was made with.
    pub(crate) unsafe fn into_callback<F>(self) -> F {
        let this = ManuallyDrop::new(self);
        // SAFETY: made by `Ticket::new::<F>` per this function's contract; `this` is not dropped.
        let boxed = unsafe { Box::from_raw(this.0.as_ptr().cast::<WithCallback<F>>()) };
        boxed.callback
    }
}

unsafe fn end<F: FnOnce(DeliveryReport)>(
    pending: NonNull<Pending>,
    report: Option<DeliveryReport>,
) {
    // SAFETY: `pending` heads a `WithCallback<F>` made by `Ticket::new::<F>`, owned by the caller.
    let boxed = unsafe { Box::from_raw(pending.as_ptr().cast::<WithCallback<F>>()) };
    let WithCallback { callback, .. } = *boxed; // freed before the callback runs
    if let Some(report) = report {
        callback(report);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // SAFETY: `end` was made for this allocation's callback type, and this is its last use.
        unsafe { (self.end)(self.0, None) }
    }
}

impl Deref for Ticket {
    type Target = Pending;

    fn deref(&self) -> &Pending {
        // SAFETY: the ticket owns a live `Pending`.
        unsafe { self.0.as_ref() }
    }
}

impl DerefMut for Ticket {
    fn deref_mut(&mut self) -> &mut Pending {
        // SAFETY: the ticket owns a live `Pending`, and `&mut self` makes this the only access.
        unsafe { self.0.as_mut() }
    }
}

impl IntoOpaque for Ticket {
    fn into_ptr(self) -> *mut c_void {
        ManuallyDrop::new(self).0.as_ptr().cast()
    }

    unsafe fn from_ptr(ptr: *mut c_void) -> Ticket {
        // SAFETY: librdkafka hands back the non-NULL pointer `into_ptr` gave it, exactly once.
        Ticket(unsafe { NonNull::new_unchecked(ptr.cast()) })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::delivery::Outcome;

    fn report() -> DeliveryReport {
        DeliveryReport {
            topic: "t".into(),
            partition: 0,
            offset: 1,
            timestamp: None,
            key: None,
            attempts: 1,
            latency: Duration::ZERO,
            recovered: false,
            outcome: Outcome::Delivered,
        }
    }

    /// Counts how often it was dropped, to show each callback is released exactly once.
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_delivered_ticket_runs_its_callback_once_and_releases_it() {
        let (ran, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (ran2, guard) = (ran.clone(), Counted(dropped.clone()));
        let mut ticket = Ticket::new(move |report: DeliveryReport| {
            let _keep = &guard;
            assert_eq!(report.offset, 1);
            ran2.fetch_add(1, Ordering::SeqCst);
        });
        ticket.attempts += 1;
        assert_eq!(ticket.attempts, 2);
        // Through librdkafka's opaque and back.
        let ticket = unsafe { Ticket::from_ptr(ticket.into_ptr()) };
        ticket.deliver(report());
        assert_eq!(
            (ran.load(Ordering::SeqCst), dropped.load(Ordering::SeqCst)),
            (1, 1)
        );
    }

    #[test]
    fn a_dropped_ticket_releases_its_callback_unrun() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let guard = Counted(dropped.clone());
        let ticket = Ticket::new(move |_: DeliveryReport| {
            let _keep = &guard;
            panic!("must not run");
        });
        drop(ticket);
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_ticket_gives_its_callback_back_unrun() {
        fn round_trip<F: FnOnce(DeliveryReport) + Send + 'static>(on_delivery: F) -> F {
            // SAFETY: the same type `F` both ways, as `Producer::try_send` does.
            unsafe { Ticket::new(on_delivery).into_callback::<F>() }
        }
        let (sender, receiver) = std::sync::mpsc::channel();
        let callback =
            round_trip(move |report: DeliveryReport| sender.send(report.offset).unwrap());
        assert!(receiver.try_recv().is_err(), "not run on the way");
        callback(report());
        assert_eq!(receiver.recv().unwrap(), 1);
    }

    #[test]
    fn a_ticket_with_a_small_callback_fits_a_glibc_fastbin() {
        // 128-byte chunks: 120 bytes asked for plus glibc's 8-byte header. Room is left for a
        // callback of up to four words (a C callback, its data, its finalizer and a queue).
        assert!(std::mem::size_of::<Pending>() + 4 * 8 <= 120);
    }

    #[test]
    fn the_latest_attempt_is_kept_as_an_offset_from_the_first() {
        let mut ticket = Ticket::new(|_: DeliveryReport| {});
        assert_eq!(ticket.last_attempt_ms(), ticket.first_attempt_ms());
        std::thread::sleep(Duration::from_millis(30));
        ticket.attempted_now();
        let after = ticket.last_attempt_ms() - ticket.first_attempt_ms();
        assert!((30..5_000).contains(&after), "{after} ms");
    }
}
