//! `send_batch`: one callback with every record's report, in the order the records were given.
//!
//! Each record's callback holds only a [`Slot`] (a pointer and an index): the batch lives until
//! its last report is in, counted by `remaining`, so no reference count moves between the sending
//! and the delivery thread per record, and no lock is taken per report.

use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::delivery::{BatchCallback, DeliveryReport};

/// Collects a batch's reports and hands them over once the last one is in.
pub(crate) struct Batch {
    /// Each written exactly once, through its own slot.
    reports: Box<[UnsafeCell<Option<DeliveryReport>>]>,
    remaining: AtomicUsize,
    on_delivery: UnsafeCell<Option<BatchCallback>>,
}

/// One record's place in a batch: fill it exactly once with [`Slot::complete`].
pub(crate) struct Slot {
    batch: NonNull<Batch>,
    index: usize,
}

// SAFETY: a slot writes only its own report cell, once; the batch it points to lives until every
// slot has been filled (see `Slot::complete`). Reports and the callback are `Send`.
unsafe impl Send for Slot {}

/// Where a batch's slots come from. It never touches the batch itself, which may be gone once
/// every slot is filled.
pub(crate) struct Slots(Option<NonNull<Batch>>);

impl Batch {
    /// A batch of `len` reports. With no records, `on_delivery` runs now with no reports.
    pub(crate) fn start(len: usize, on_delivery: BatchCallback) -> Slots {
        if len == 0 {
            on_delivery(Vec::new());
            return Slots(None);
        }
        let batch = Box::new(Batch {
            reports: (0..len).map(|_| UnsafeCell::new(None)).collect(),
            remaining: AtomicUsize::new(len),
            on_delivery: UnsafeCell::new(Some(on_delivery)),
        });
        Slots(Some(NonNull::from(Box::leak(batch))))
    }
}

impl Slots {
    /// The slot of record `index`.
    ///
    /// # Safety
    /// `index` is below the batch's length, and only one slot per index is ever completed (a slot
    /// dropped unfilled, as a refused send drops its callback, may be minted again).
    pub(crate) unsafe fn slot(&self, index: usize) -> Slot {
        Slot {
            batch: self.0.expect("a batch with records"),
            index,
        }
    }
}

impl Slot {
    /// Fills this record's report; the last one in hands every report over and frees the batch.
    pub(crate) fn complete(self, report: DeliveryReport) {
        let batch = self.batch.as_ptr();
        // SAFETY: the batch lives until `remaining` reaches 0, which needs this slot too; this
        // slot is the only writer of its cell, and it writes before its release below.
        unsafe { *(*batch).reports[self.index].get() = Some(report) };
        // AcqRel: the last decrement acquires every earlier slot's write.
        if unsafe { (*batch).remaining.fetch_sub(1, Ordering::AcqRel) } != 1 {
            return;
        }
        // SAFETY: every slot is filled and gone; this is the batch's last user, so it may own it.
        let batch = unsafe { Box::from_raw(batch) };
        let Batch {
            reports,
            on_delivery,
            ..
        } = *batch;
        let reports = reports
            .into_vec()
            .into_iter()
            .map(|r| r.into_inner().expect("every slot is filled once"))
            .collect();
        if let Some(on_delivery) = on_delivery.into_inner() {
            on_delivery(reports);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::delivery::Outcome;

    fn report(offset: i64) -> DeliveryReport {
        DeliveryReport {
            topic: "t".into(),
            partition: 0,
            offset,
            timestamp: None,
            key: None,
            attempts: 1,
            latency: Duration::ZERO,
            outcome: Outcome::Delivered,
        }
    }

    #[test]
    fn reports_come_in_record_order_once_the_last_slot_is_filled_on_any_thread() {
        let (sender, receiver) = mpsc::channel();
        let slots = Batch::start(3, Box::new(move |reports| sender.send(reports).unwrap()));
        // SAFETY: each index below 3, each completed once.
        let [first, middle, last] = [0, 1, 2].map(|index| unsafe { slots.slot(index) });
        std::thread::spawn(move || middle.complete(report(2)))
            .join()
            .unwrap();
        last.complete(report(3));
        assert!(receiver.try_recv().is_err(), "not before the last slot");
        first.complete(report(1));
        let offsets: Vec<i64> = receiver.recv().unwrap().iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [1, 2, 3]);
    }

    #[test]
    fn an_empty_batch_reports_at_once() {
        let (sender, receiver) = mpsc::channel();
        Batch::start(0, Box::new(move |reports| sender.send(reports).unwrap()));
        assert!(receiver.recv().unwrap().is_empty());
    }
}
