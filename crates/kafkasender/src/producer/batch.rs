//! `send_batch`: one callback with every record's report, in the order the records were given.
//!
//! A batch is one array of cells, whatever its length. A record's cell first holds its
//! bookkeeping ([`Pending`], the ticket librdkafka carries), then, in the same place, its report:
//! no allocation per record on the sending thread, none to free on the delivery thread, no
//! reference count or lock per record. The batch lives until its last report is in, counted by
//! `remaining`; the array then goes to the callback as the reports' `Vec`, without a copy.

use std::cell::UnsafeCell;
use std::mem::{self, ManuallyDrop};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::message::{Pending, Ticket};
use crate::delivery::{BatchCallback, DeliveryReport};

/// Collects a batch's reports and hands them over once the last one is in.
pub(crate) struct Batch {
    /// Each holds its record's entry until the report replaces it, exactly once, from its
    /// record's ticket or from [`Slots::fail`].
    cells: Box<[UnsafeCell<Cell>]>,
    remaining: AtomicUsize,
    on_delivery: UnsafeCell<Option<BatchCallback>>,
}

/// One record's place: its entry while in flight, its report once done.
#[repr(C)]
union Cell {
    entry: ManuallyDrop<Entry>,
    report: ManuallyDrop<DeliveryReport>,
}

// The filled array is handed over as reports, so a cell must be laid out as exactly one report.
const _: () = assert!(
    mem::size_of::<Cell>() == mem::size_of::<DeliveryReport>()
        && mem::align_of::<Cell>() == mem::align_of::<DeliveryReport>()
);

/// One record's ticket storage: `Pending` first, so a pointer to this is a pointer to it.
#[repr(C)]
struct Entry {
    pending: Pending,
    batch: NonNull<Batch>,
    index: usize,
}

/// Where a batch's tickets come from. It never touches the batch once its last record has a
/// ticket or a report, as the batch may be gone as soon as every report is in.
pub(crate) struct Slots(Option<NonNull<Batch>>);

impl Batch {
    /// A batch of `len` records sent now. With no records, `on_delivery` runs now with no reports.
    pub(crate) fn start(len: usize, on_delivery: BatchCallback) -> Slots {
        if len == 0 {
            on_delivery(Vec::new());
            return Slots(None);
        }
        let sent_at = Instant::now(); // one clock read for the batch, not one per record
        let batch = Box::into_raw(Box::new(Batch {
            cells: Box::new([]),
            remaining: AtomicUsize::new(len),
            on_delivery: UnsafeCell::new(Some(on_delivery)),
        }));
        let batch = NonNull::new(batch).expect("a box is never null");
        let cells = (0..len)
            .map(|index| {
                let pending = Pending::new(sent_at, end_entry);
                let entry = Entry {
                    pending,
                    batch,
                    index,
                };
                UnsafeCell::new(Cell {
                    entry: ManuallyDrop::new(entry),
                })
            })
            .collect();
        // SAFETY: nothing else sees the batch yet.
        unsafe { (*batch.as_ptr()).cells = cells };
        Slots(Some(batch))
    }

    /// Replaces cell `index`'s entry with its report; the last one in hands every report over and
    /// frees the batch.
    ///
    /// # Safety
    /// `batch` is alive, cell `index` holds its entry, and no ticket of it is alive.
    unsafe fn complete(batch: NonNull<Batch>, index: usize, report: DeliveryReport) {
        let batch = batch.as_ptr();
        // SAFETY: the batch lives until `remaining` reaches 0, which needs this report too; this
        // is the cell's only user now, and it writes before its release below.
        unsafe {
            let cell = (*batch).cells[index].get();
            ManuallyDrop::drop(&mut (*cell).entry);
            ptr::write(&mut (*cell).report, ManuallyDrop::new(report));
        }
        // AcqRel: the last decrement acquires every earlier report's write.
        if unsafe { (*batch).remaining.fetch_sub(1, Ordering::AcqRel) } != 1 {
            return;
        }
        // SAFETY: every report is in and no ticket is left; this is the batch's last user.
        let batch = unsafe { Box::from_raw(batch) };
        let Batch {
            cells, on_delivery, ..
        } = *batch;
        // SAFETY: every cell holds its report, and a cell is laid out as one report (asserted above).
        let reports = unsafe { Box::from_raw(Box::into_raw(cells) as *mut [DeliveryReport]) };
        if let Some(on_delivery) = on_delivery.into_inner() {
            on_delivery(reports.into_vec());
        }
    }
}

impl Slots {
    /// The ticket of record `index`.
    ///
    /// # Safety
    /// `index` is below the batch's length, and record `index` gets one ticket, delivered once,
    /// or else one [`Slots::fail`]: a ticket dropped undelivered (a refused send) leaves its
    /// record to `fail`.
    pub(crate) unsafe fn ticket(&self, index: usize) -> Ticket {
        let batch = self.0.expect("a batch with records");
        // SAFETY: the batch is alive while record `index` has no report (this function's contract).
        let cell = unsafe { batch.as_ref() }.cells[index].get();
        // SAFETY: the cell holds its entry, used by this ticket alone; an entry starts with its
        // `Pending`, and a cell with its entry.
        unsafe { Ticket::stored_at(NonNull::new_unchecked(cell).cast()) }
    }

    /// Reports record `index` without a ticket (it was never enqueued).
    ///
    /// # Safety
    /// As for [`Slots::ticket`]: record `index` has no report yet, and none of its tickets is alive.
    pub(crate) unsafe fn fail(&self, index: usize, report: DeliveryReport) {
        // SAFETY: per this function's contract.
        unsafe { Batch::complete(self.0.expect("a batch with records"), index, report) }
    }
}

/// Without a report (a refused send), the entry stays in its cell for the record's report from
/// `Slots::fail` to replace.
unsafe fn end_entry(pending: NonNull<Pending>, report: Option<DeliveryReport>) {
    let Some(report) = report else { return };
    // SAFETY: `pending` heads the `Entry` in a cell of a live batch (see `Slots::ticket`); read
    // before the report replaces it.
    let (batch, index) = unsafe {
        let entry = pending.cast::<Entry>().as_ref();
        (entry.batch, entry.index)
    };
    // SAFETY: a ticket is delivered once, and its record has no other report.
    unsafe { Batch::complete(batch, index, report) }
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
            recovered: false,
            outcome: Outcome::Delivered,
        }
    }

    #[test]
    fn reports_come_in_record_order_once_the_last_slot_is_filled_on_any_thread() {
        let (sender, receiver) = mpsc::channel();
        let slots = Batch::start(4, Box::new(move |reports| sender.send(reports).unwrap()));
        // SAFETY: each index below 4 gets one ticket, delivered once, or one `fail`.
        let [first, middle, last] = [0, 1, 2].map(|index| unsafe { slots.ticket(index) });
        assert_eq!(middle.attempts, 1);
        std::thread::spawn(move || middle.deliver(report(2)))
            .join()
            .unwrap();
        let refused = unsafe { slots.ticket(3) };
        drop(refused); // a refused send: its record is reported by `fail`
        unsafe { slots.fail(3, report(4)) };
        last.deliver(report(3));
        assert!(receiver.try_recv().is_err(), "not before the last report");
        first.deliver(report(1));
        let offsets: Vec<i64> = receiver.recv().unwrap().iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [1, 2, 3, 4]);
    }

    #[test]
    fn an_empty_batch_reports_at_once() {
        let (sender, receiver) = mpsc::channel();
        Batch::start(0, Box::new(move |reports| sender.send(reports).unwrap()));
        assert!(receiver.recv().unwrap().is_empty());
    }
}
