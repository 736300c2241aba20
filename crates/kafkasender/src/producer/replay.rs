//! Spool replay: every record the spool keeps goes through the whole send path again, oldest file
//! first. A file is deleted once every record in it has been reported again (delivered,
//! dead-lettered, failed, or spooled anew); a torn record is counted and skipped, never sent.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::message::Ticket;
use super::rescue::{circuit_open_error, Rescue};
use crate::breaker::BreakerState;
use crate::error::{Error, ErrorKind, Result};
use crate::lock;
use crate::record::Record;
use crate::spool::{SpoolReader, TornRecord};

/// What a spool replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Spool files read.
    pub files: usize,
    /// Records handed to librdkafka again; each is reported (to metrics) like any send, and its
    /// file is deleted once all of them are.
    pub records: u64,
    /// Torn or corrupt records that were skipped, never sent.
    pub torn: Vec<TornRecord>,
}

/// Re-sends every record of the spool files waiting for a replay through `submit` (the send path
/// from the gate on).
pub(crate) fn replay(
    rescue: &Arc<Rescue>,
    submit: impl Fn(&Record<'_>, Ticket) -> Result<()>,
) -> Result<ReplayReport> {
    let Some(spool) = &rescue.spool else {
        return Err(Error::new(ErrorKind::Config, "no spool.dir is configured"));
    };
    if rescue.breaker_state() == BreakerState::Open {
        return Err(circuit_open_error());
    }
    let _one_at_a_time = lock(&rescue.replaying);
    let mut report = ReplayReport::default();
    for path in spool.take_for_replay() {
        report.files += 1;
        let file = Arc::new(ReplayedFile {
            path: path.clone(),
            // One for the reader itself, so the file cannot go before it is read to the end.
            unreported: AtomicU64::new(1),
            rescue: rescue.clone(),
        });
        for item in SpoolReader::open(&path)? {
            let spooled = match item {
                Ok(spooled) => spooled,
                Err(torn) => {
                    tracing::warn!(
                        target: "kafkasender",
                        path = %torn.path.display(),
                        offset = torn.offset,
                        reason = %torn.reason,
                        "skipping a torn spool record"
                    );
                    rescue.torn_records.fetch_add(1, Ordering::Relaxed);
                    report.torn.push(torn);
                    continue;
                }
            };
            file.unreported.fetch_add(1, Ordering::AcqRel);
            let reporter = file.clone();
            let mut ticket = Ticket::new(move |_report| reporter.reported_one());
            ticket.attempts = spooled.attempts + 1;
            ticket.partition = spooled.record.partition;
            if let Err(error) = submit(&spooled.record.as_record(), ticket) {
                // Not enqueued (closing, or the spool is full): leave the file for the next replay.
                tracing::warn!(target: "kafkasender", %error, path = %path.display(), "spool replay interrupted");
                return Err(error);
            }
            rescue.replayed.fetch_add(1, Ordering::Relaxed);
            report.records += 1;
        }
        file.reported_one();
    }
    if report.files > 0 {
        tracing::info!(target: "kafkasender", files = report.files, records = report.records, torn = report.torn.len(), "spool replayed");
    }
    Ok(report)
}

/// A spool file being replayed: deleted when its last record has been reported.
struct ReplayedFile {
    path: PathBuf,
    unreported: AtomicU64,
    rescue: Arc<Rescue>,
}

impl ReplayedFile {
    fn reported_one(&self) {
        if self.unreported.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(spool) = &self.rescue.spool {
                spool.remove_replayed(&self.path);
            }
        }
    }
}
