//! `send_batch`: one callback with every record's report, in the order the records were given.
//!
//! A batch is one array of cells, whatever its length. A record's cell first holds its
//! bookkeeping ([`Pending`], the ticket librdkafka carries), then, in the same place, its report:
//! no allocation per record on the sending thread, none to free on the delivery thread, no
//! reference count or lock per record. The batch lives until its last report is in, counted by
//! `remaining`; the array then goes to the callback as the reports' `Vec`, without a copy.
//!
//! The reports' keys are slices of one buffer of the batch's keys, copied once as it is sent, and
//! their topics clones of one name per run of records with the same topic: no allocation per
//! report on the delivery thread either, where 20,000 small ones alive per 10,000 records kept
//! glibc in its slow paths.

use std::cell::UnsafeCell;
use std::mem::{self, ManuallyDrop};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;

use super::message::{Pending, SentAs, Ticket};
use crate::delivery::{BatchCallback, DeliveryReport, TopicName};
use crate::error::{Error, ErrorKind, Result};
use crate::record::Record;

/// Collects a batch's reports and hands them over once the last one is in.
pub(crate) struct Batch {
    /// Each holds its record's entry until the report replaces it, exactly once, from its
    /// record's ticket or from [`Slots::fail`].
    cells: Box<[UnsafeCell<Cell>]>,
    remaining: AtomicUsize,
    on_delivery: UnsafeCell<Option<BatchCallback>>,
    /// Every record's key, one after another (see [`Entry::key`]).
    keys: Bytes,
    /// One name per run of records with the same topic (see [`Entry::topic`]).
    topics: Vec<TopicName>,
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
    /// Where the record's key lies in the batch's `keys`; `None` without a key.
    key: Option<(u32, u32)>,
    /// The record's topic, in the batch's `topics`.
    topic: u32,
}

/// Where a batch's tickets come from. It never touches the batch once its last record has a
/// ticket or a report, as the batch may be gone as soon as every report is in.
pub(crate) struct Slots(Option<NonNull<Batch>>);

impl Batch {
    /// A batch of `records` sent now. Without records, `on_delivery` runs now with no reports.
    /// Refuses a batch whose keys take 4 GiB or more (its positions are 32-bit, to keep a cell
    /// the size of a report).
    pub(crate) fn start(records: &[Record<'_>], on_delivery: BatchCallback) -> Result<Slots> {
        if records.is_empty() {
            on_delivery(Vec::new());
            return Ok(Slots(None));
        }
        let key_bytes: usize = records.iter().map(|r| r.key.map_or(0, <[u8]>::len)).sum();
        if u32::try_from(key_bytes.max(records.len())).is_err() {
            return Err(Error::new(
                ErrorKind::MessageTooLarge,
                format!("a batch's keys take {key_bytes} bytes; send it in parts under 4 GiB"),
            ));
        }
        let sent_at = Instant::now(); // one clock read for the batch, not one per record
        let batch = Box::into_raw(Box::new(Batch {
            cells: Box::new([]),
            remaining: AtomicUsize::new(records.len()),
            on_delivery: UnsafeCell::new(Some(on_delivery)),
            keys: Bytes::new(),
            topics: Vec::new(),
        }));
        let batch = NonNull::new(batch).expect("a box is never null");
        let mut keys = Vec::with_capacity(key_bytes);
        let mut topics: Vec<TopicName> = Vec::new();
        let cells = records
            .iter()
            .enumerate()
            .map(|(index, record)| {
                let key = record.key.map(|key| {
                    let start = keys.len();
                    keys.extend_from_slice(key);
                    (place(start), place(key.len()))
                });
                if topics.last().is_none_or(|last| **last != *record.topic) {
                    topics.push(TopicName::from(record.topic));
                }
                let mut pending = Pending::new(sent_at, end_entry);
                pending.sent_as = SentAs::BatchRecord;
                let entry = Entry {
                    pending,
                    batch,
                    index,
                    key,
                    topic: place(topics.len() - 1),
                };
                UnsafeCell::new(Cell {
                    entry: ManuallyDrop::new(entry),
                })
            })
            .collect();
        // SAFETY: nothing else sees the batch yet.
        unsafe {
            let batch = &mut *batch.as_ptr();
            (batch.cells, batch.keys, batch.topics) = (cells, Bytes::from(keys), topics);
        }
        Ok(Slots(Some(batch)))
    }

    /// Replaces cell `index`'s entry with its report; the last one in hands every report over and
    /// frees the batch.
    ///
    /// # Safety
    /// `batch` is alive, cell `index` holds its entry, and no ticket of it is alive.
    unsafe fn complete(batch: NonNull<Batch>, index: usize, mut report: DeliveryReport) {
        let batch = batch.as_ptr();
        // SAFETY: the batch lives until `remaining` reaches 0, which needs this report too; this
        // is the cell's only user now, and it writes before its release below.
        unsafe {
            let shared = &*batch; // its cells change only through their `UnsafeCell`s
            let cell = shared.cells[index].get();
            let entry: &Entry = &(*cell).entry;
            report.key = entry.key.map(|(start, len)| {
                let start = start as usize;
                shared.keys.slice(start..start + len as usize)
            });
            report.topic = shared.topics[entry.topic as usize].clone();
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

/// A position in a batch, below 4 GiB of keys or 4G records (checked by [`Batch::start`]).
fn place(n: usize) -> u32 {
    n as u32
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
        let records = [
            ("a", Some(&b"k0"[..])),
            ("a", None),
            ("b", Some(b"")),
            ("a", Some(b"k3")),
        ]
        .map(|(topic, key)| Record {
            key,
            ..Record::new(topic)
        });
        let slots = Batch::start(
            &records,
            Box::new(move |reports| sender.send(reports).unwrap()),
        )
        .unwrap();
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
        let reports = receiver.recv().unwrap();
        let offsets: Vec<i64> = reports.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [1, 2, 3, 4]);
        // Each report names its own record's topic and key, whatever the report came with.
        let names: Vec<(&str, Option<&[u8]>)> = reports
            .iter()
            .map(|r| (r.topic.as_str(), r.key.as_deref()))
            .collect();
        let expected: [(&str, Option<&[u8]>); 4] = [
            ("a", Some(b"k0")),
            ("a", None),
            ("b", Some(b"")),
            ("a", Some(b"k3")),
        ];
        assert_eq!(names, expected);
    }

    #[test]
    fn an_empty_batch_reports_at_once() {
        let (sender, receiver) = mpsc::channel();
        Batch::start(&[], Box::new(move |reports| sender.send(reports).unwrap())).unwrap();
        assert!(receiver.recv().unwrap().is_empty());
    }
}
