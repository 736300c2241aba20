//! `send_batch`: one callback with every record's report, in the order the records were given.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::delivery::{BatchCallback, DeliveryReport};
use crate::lock;

/// Collects a batch's reports and hands them over once the last one is in.
pub(crate) struct Batch {
    reports: Mutex<Vec<Option<DeliveryReport>>>,
    remaining: AtomicUsize,
    on_delivery: Mutex<Option<BatchCallback>>,
}

impl Batch {
    pub(crate) fn new(len: usize, on_delivery: BatchCallback) -> Batch {
        Batch {
            reports: Mutex::new(vec![None; len]),
            remaining: AtomicUsize::new(len),
            on_delivery: Mutex::new(Some(on_delivery)),
        }
    }

    pub(crate) fn complete(&self, index: usize, report: DeliveryReport) {
        lock(&self.reports)[index] = Some(report);
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let reports = std::mem::take(&mut *lock(&self.reports));
            self.finish(
                reports
                    .into_iter()
                    .map(|r| r.expect("every slot is filled once"))
                    .collect(),
            );
        }
    }

    pub(crate) fn finish_empty(&self) {
        self.finish(Vec::new());
    }

    fn finish(&self, reports: Vec<DeliveryReport>) {
        if let Some(on_delivery) = lock(&self.on_delivery).take() {
            on_delivery(reports);
        }
    }
}
