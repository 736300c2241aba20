//! Spool replay: every record the spool keeps goes through the whole send path again, oldest file
//! first. A file is deleted once every record in it has been reported again (delivered,
//! dead-lettered, failed, or spooled anew); a torn record is counted and skipped, never sent.
//! A replay refused midway (closing, an open breaker) leaves the rest for the next one, which
//! resumes after the last record enqueued: nothing is skipped, nothing is sent twice. Records
//! reported are also listed in the file's `.acks` (as a journal's are), so a replay by the next
//! producer on the directory skips them too. A record the brokers may have written already is
//! looked up in its topic first (see `lookup`) and skipped, listed as reported, if it is there:
//! a record marked so when it was spooled, any record of a journal, and, in a file that lists
//! reports but was left behind, any record not listed (its replay crashed before writing down the
//! last ones).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::lookup::{self, FindWritten, Wanted};
use super::message::Ticket;
use super::rescue::{circuit_open_error, Rescue};
use crate::error::{Error, ErrorKind, Result};
use crate::lock;
use crate::record::Record;
use crate::spool::{self, SpoolReader, SpooledMessage, TornRecord};

/// What a spool replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Spool files read.
    pub files: usize,
    /// Records handed to librdkafka again; each is reported (to metrics) like any send, and its
    /// file is deleted once all of them are.
    pub records: u64,
    /// Records that may have been written (see `SpooledMessage::may_be_written`) and were found
    /// in their topic: not sent again.
    pub already_written: u64,
    /// Torn or corrupt records that were skipped, never sent.
    pub torn: Vec<TornRecord>,
}

/// Re-sends every record of the spool files waiting for a replay through `submit` (the send path
/// from the gate on), but those that `lookup` finds in their topic.
pub(crate) fn replay(
    rescue: &Arc<Rescue>,
    lookup: Option<&dyn FindWritten>,
    submit: impl Fn(&Record<'_>, Ticket) -> Result<()>,
) -> Result<ReplayReport> {
    let Some(spool) = &rescue.spool else {
        return Err(Error::new(ErrorKind::Config, "no spool.dir is configured"));
    };
    if (rescue.breaker.as_ref()).is_some_and(|b| !b.would_admit(Instant::now())) {
        return Err(circuit_open_error());
    }
    let mut resume = lock(&rescue.replaying);
    let mut report = ReplayReport::default();
    // Until a take finds nothing: what is spooled meanwhile (sends queued behind the spool to
    // keep their order) goes out in this replay too, and then sends go straight again.
    loop {
        let mut paths = spool.take_for_replay().into_iter().peekable();
        if paths.peek().is_none() {
            break;
        }
        while let Some(path) = paths.next() {
            report.files += 1;
            let resumed = resume.take_if(|interrupted| interrupted.file.path == path);
            let (file, done) = match resumed {
                Some(interrupted) => (interrupted.file, interrupted.records_read),
                None => {
                    let file = Arc::new(ReplayedFile {
                        path: path.clone(),
                        // One for the reader itself, so the file cannot go before it is read to the end.
                        unreported: AtomicU64::new(1),
                        acks: Mutex::new(spool::Acks::open(&path)),
                        rescue: rescue.clone(),
                    });
                    (file, 0)
                }
            };
            let mut records_read = 0;
            // A journal file lists the messages reported before its producer stopped; a spool
            // file lists any only if a replay of it stopped (crashed) before its end.
            let reported = spool::reported_positions(&path);
            let stop = || rescue.is_stopping();
            let looked_up = lookup.map(|l| already_written(l, &path, (&reported, done), &stop));
            let written = match looked_up {
                None => HashSet::new(),
                Some(Ok(written)) => written,
                Some(Err(error)) => {
                    // The brokers do not answer (what would be sent could not go out either), or
                    // the producer closes.
                    *resume = Some(Interrupted {
                        file,
                        records_read: done,
                    });
                    return Err(interrupted(spool, path, paths, error));
                }
            };
            for item in SpoolReader::open(&path)? {
                records_read += 1;
                if records_read <= done {
                    continue; // enqueued by the interrupted replay
                }
                let position = u32::try_from(records_read - 1).unwrap_or(u32::MAX);
                if reported.contains(&position) {
                    continue;
                }
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
                // Only ids the lookup was asked for come back: those of records that may be written.
                let landed = lookup
                    .and_then(|l| lookup::id_of(&spooled.record, l.header()))
                    .is_some_and(|id| written.contains(id));
                if landed {
                    lock(&file.acks).write(position); // a later replay skips it too
                    rescue.already_written.fetch_add(1, Ordering::Relaxed);
                    report.already_written += 1;
                    continue;
                }
                file.unreported.fetch_add(1, Ordering::AcqRel);
                let reporter = file.clone();
                let mut ticket = Ticket::new(move |_report| {
                    lock(&reporter.acks).write(position);
                    reporter.reported_one();
                });
                ticket.attempts = spooled.attempts + 1;
                ticket.partition = spooled.record.partition;
                if let Err(error) = submit(&spooled.record.as_record(), ticket) {
                    // Not enqueued (closing, an open breaker): the next replay resumes at this record.
                    file.unreported.fetch_sub(1, Ordering::AcqRel); // its ticket is gone unreported
                    *resume = Some(Interrupted {
                        file,
                        records_read: records_read - 1,
                    });
                    return Err(interrupted(spool, path, paths, error));
                }
                rescue.replayed.fetch_add(1, Ordering::Relaxed);
                report.records += 1;
            }
            file.reported_one();
        }
    }
    if report.files > 0 {
        tracing::info!(target: "kafkasender", files = report.files, records = report.records,
            already_written = report.already_written, torn = report.torn.len(), "spool replayed");
    }
    Ok(report)
}

/// Gives the files not replayed back to the spool, for the next replay.
fn interrupted(
    spool: &spool::Spool,
    path: PathBuf,
    rest: impl Iterator<Item = PathBuf>,
    error: Error,
) -> Error {
    tracing::warn!(target: "kafkasender", %error, path = %path.display(), "spool replay interrupted");
    spool.give_back(std::iter::once(path).chain(rest).collect());
    error
}

/// The ids, found in their topics, of the file's records that may have been written and that
/// this replay has yet to send (after the first `done`, not `reported`). A spool file that lists
/// reports was left behind by a replay that crashed: any record it did not list may be written.
fn already_written(
    lookup: &dyn FindWritten,
    path: &std::path::Path,
    (reported, done): (&HashSet<u32>, u64),
    stop: lookup::Stop<'_>,
) -> Result<HashSet<Vec<u8>>> {
    let may_be_written = |s: &SpooledMessage| s.may_be_written || !reported.is_empty();
    let mut wanted = Wanted::default();
    for (position, item) in SpoolReader::open(path)?.enumerate() {
        let unsent = position as u64 >= done
            && u32::try_from(position).is_ok_and(|p| !reported.contains(&p));
        match item {
            Ok(spooled) if unsent && may_be_written(&spooled) => {
                wanted.add(&spooled.record, spooled.first_attempt_ms, lookup.header());
            }
            _ => {}
        }
    }
    if wanted.is_empty() {
        return Ok(HashSet::new());
    }
    lookup.find(&wanted, stop)
}

/// Where a replay refused midway stopped: the file it was reading (still counting its records'
/// reports) and how many of its records it had read, torn ones included.
pub(crate) struct Interrupted {
    file: Arc<ReplayedFile>,
    records_read: u64,
}

/// Writes down what an interrupted replay has had reported, for the next producer on the
/// directory to skip (this one resumes where it stopped anyway).
pub(crate) fn keep_progress(rescue: &Rescue) {
    if let Some(interrupted) = lock(&rescue.replaying).as_ref() {
        lock(&interrupted.file.acks).flush();
    }
}

/// A spool file being replayed: deleted when its last record has been reported.
struct ReplayedFile {
    path: PathBuf,
    unreported: AtomicU64,
    /// The positions of its records reported so far (see the module's note).
    acks: Mutex<spool::Acks>,
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::config::Config;
    use crate::delivery::{DeliveryReport, Outcome};
    use crate::record::OwnedRecord;
    use crate::spool::{now_ms, SpooledMessage};

    fn rescue_with_spool(name: &str) -> (Arc<Rescue>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "kafkasender-replay-{name}-{}-{}",
            std::process::id(),
            now_ms()
        ));
        let config = Config::builder()
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("spool.dir", dir.to_str().unwrap())
            .build()
            .unwrap();
        let rescue = Rescue::new(&config.settings().resilience, None).unwrap();
        (Arc::new(rescue), dir)
    }

    fn spooled(i: u8) -> SpooledMessage {
        SpooledMessage {
            record: OwnedRecord {
                topic: "orders".into(),
                key: Some(vec![i]),
                value: Some(vec![i; 10]),
                headers: Vec::new(),
                partition: Some(2),
                timestamp: None,
            },
            reason: Error::new(ErrorKind::Timeout, "timed out"),
            attempts: 2,
            first_attempt_ms: 1,
            spooled_at_ms: 2,
            may_be_written: false,
        }
    }

    #[test]
    fn every_record_goes_through_submit_in_order_and_the_file_goes_once_all_are_reported() {
        let (rescue, dir) = rescue_with_spool("order");
        let spool = rescue.spool.as_ref().unwrap();
        let path = spool.append(&spooled(1)).unwrap();
        spool.append(&spooled(2)).unwrap();
        let tickets = Mutex::new(Vec::new());
        let report = replay(&rescue, None, |record, ticket| {
            assert_eq!((record.partition, ticket.attempts), (Some(2), 3));
            tickets
                .lock()
                .unwrap()
                .push((record.key.unwrap().to_vec(), ticket));
            Ok(())
        })
        .unwrap();
        assert_eq!((report.files, report.records), (1, 2));
        assert_eq!(rescue.replayed.load(Ordering::SeqCst), 2);
        let mut tickets = tickets.into_inner().unwrap();
        assert_eq!(
            tickets.iter().map(|(k, _)| k[0]).collect::<Vec<_>>(),
            [1, 2]
        );
        let delivered = |(key, ticket): (Vec<u8>, Ticket)| {
            let owned = OwnedRecord {
                topic: "orders".into(),
                key: Some(key),
                value: None,
                headers: Vec::new(),
                partition: None,
                timestamp: None,
            };
            let report = DeliveryReport::of_record(&owned, 3, ticket.sent_at, Outcome::Delivered);
            ticket.deliver(report);
        };
        delivered(tickets.remove(0));
        assert!(path.exists(), "not before its last record is reported");
        delivered(tickets.remove(0));
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Holds `present` in every topic; remembers how many ids each lookup asked for.
    struct FakeLookup {
        present: Vec<&'static [u8]>,
        asked: Mutex<Vec<usize>>,
    }

    impl FindWritten for FakeLookup {
        fn header(&self) -> &str {
            "x-ks-id"
        }
        fn find(&self, wanted: &Wanted, _: lookup::Stop<'_>) -> Result<HashSet<Vec<u8>>> {
            self.asked.lock().unwrap().push(wanted.len());
            let present = self
                .present
                .iter()
                .filter(|id| wanted.contains("orders", id));
            Ok(present.map(|id| id.to_vec()).collect())
        }
    }

    #[test]
    fn a_record_that_may_have_been_written_and_is_in_its_topic_is_not_sent_again() {
        let (rescue, dir) = rescue_with_spool("lookup");
        let spool = rescue.spool.as_ref().unwrap();
        let with = |i: u8, id: Option<&str>, may_be_written: bool| {
            let mut message = spooled(i);
            message.may_be_written = may_be_written;
            if let Some(id) = id {
                message.record.headers = vec![("x-ks-id".into(), Some(id.as_bytes().to_vec()))];
            }
            spool.append(&message).unwrap()
        };
        let path = with(1, Some("a"), true); // written: skipped
        with(2, Some("b"), true); // not found: sent
        with(3, Some("c"), false); // never sent before: not looked up, sent
        with(4, None, true); // no id to look for: sent
        let lookup = FakeLookup {
            present: vec![b"a", b"c"],
            asked: Mutex::default(),
        };
        let tickets = Mutex::new(Vec::new());
        let report = replay(&rescue, Some(&lookup), |record, ticket| {
            tickets
                .lock()
                .unwrap()
                .push((record.key.unwrap()[0], ticket));
            Ok(())
        })
        .unwrap();
        assert_eq!(*lookup.asked.lock().unwrap(), [2], "a and b");
        assert_eq!((report.records, report.already_written), (3, 1));
        assert_eq!(rescue.already_written.load(Ordering::SeqCst), 1);
        let tickets = tickets.into_inner().unwrap();
        assert_eq!(
            tickets.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        for (key, ticket) in tickets {
            assert!(path.exists(), "not before its last record is reported");
            let owned = OwnedRecord::from(&spooled(key).record.as_record());
            let report = DeliveryReport::of_record(&owned, 3, ticket.sent_at, Outcome::Delivered);
            ticket.deliver(report);
        }
        assert!(!path.exists(), "the skipped record counts as reported");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn after_a_crashed_replay_every_record_it_did_not_list_is_looked_up() {
        let (rescue, dir) = rescue_with_spool("crashed");
        let spool = rescue.spool.as_ref().unwrap();
        let mut path = None;
        for (i, id) in [(1, "a"), (2, "b"), (3, "c")] {
            let mut message = spooled(i); // never sent before it was spooled
            message.record.headers = vec![("x-ks-id".into(), Some(id.as_bytes().to_vec()))];
            path = Some(spool.append(&message).unwrap());
        }
        // A replay reported the first record, sent the second, then its process died.
        let mut acks = spool::Acks::open(path.as_ref().unwrap());
        acks.write(0);
        acks.flush();
        let lookup = FakeLookup {
            present: vec![b"a", b"b"],
            asked: Mutex::default(),
        };
        let sent = Mutex::new(Vec::new());
        let report = replay(&rescue, Some(&lookup), |record, _| {
            sent.lock().unwrap().push(record.key.unwrap()[0]);
            Ok(())
        })
        .unwrap();
        assert_eq!(*lookup.asked.lock().unwrap(), [2], "b and c");
        assert_eq!(*sent.lock().unwrap(), [3]);
        assert_eq!(report.already_written, 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_refused_record_stops_the_replay_and_the_next_one_resumes_there() {
        let (rescue, dir) = rescue_with_spool("refused");
        let spool = rescue.spool.as_ref().unwrap();
        let path = spool.append(&spooled(1)).unwrap();
        spool.append(&spooled(2)).unwrap();
        spool.append(&spooled(3)).unwrap();
        // The first record goes, the second is refused.
        let enqueued = Mutex::new(Vec::new());
        let error = replay(&rescue, None, |record, ticket| {
            if enqueued.lock().unwrap().len() == 1 {
                return Err(Error::new(ErrorKind::CircuitOpen, "open"));
            }
            enqueued
                .lock()
                .unwrap()
                .push((record.key.unwrap()[0], ticket));
            Ok(())
        })
        .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::CircuitOpen);
        assert!(spool.has_waiting(), "the next replay takes it again");
        // The next replay resumes at the refused record: none skipped, none twice.
        replay(&rescue, None, |record, ticket| {
            enqueued
                .lock()
                .unwrap()
                .push((record.key.unwrap()[0], ticket));
            Ok(())
        })
        .unwrap();
        let enqueued = enqueued.into_inner().unwrap();
        assert_eq!(
            enqueued.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        for (_, ticket) in enqueued {
            assert!(path.exists(), "not before its last record is reported");
            let report = DeliveryReport::not_enqueued(&Record::new("orders"), error.clone());
            ticket.deliver(report);
        }
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_next_producer_on_the_directory_skips_what_an_interrupted_replay_had_reported() {
        let (rescue, dir) = rescue_with_spool("next-producer");
        let spool = rescue.spool.as_ref().unwrap();
        for i in 1..=3 {
            spool.append(&spooled(i)).unwrap();
        }
        // The first record is enqueued (and later reported), the second refused.
        let first = Mutex::new(None);
        let closing = Error::new(ErrorKind::Closed, "closing");
        replay(&rescue, None, |_, ticket| {
            let mut first = first.lock().unwrap();
            if first.is_some() {
                return Err(closing.clone());
            }
            *first = Some(ticket);
            Ok(())
        })
        .unwrap_err();
        let report = DeliveryReport::not_enqueued(&Record::new("orders"), closing);
        first.into_inner().unwrap().unwrap().deliver(report);
        // The producer closes, and another opens the directory.
        keep_progress(&rescue);
        spool.release();
        let next = Rescue::new(
            &Config::builder()
                .set("bootstrap.servers", "127.0.0.1:9")
                .set("spool.dir", dir.to_str().unwrap())
                .build()
                .unwrap()
                .settings()
                .resilience,
            None,
        )
        .unwrap();
        let sent = Mutex::new(Vec::new());
        replay(&Arc::new(next), None, |record, _| {
            sent.lock().unwrap().push(record.key.unwrap()[0]);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            sent.into_inner().unwrap(),
            [2, 3],
            "the reported one is not sent twice"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
