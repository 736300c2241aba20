//! The durable local spool: messages that neither their topic nor the dead-letter topic took are
//! appended to files in `spool.dir`, and re-sent later by a replay.
//!
//! A spool file is `KSSPOOL1` followed by records, each `[length u32 LE][crc32 u32 LE][body]`.
//! A record is written with one `write` call, so a killed process leaves at most one torn record
//! at the end of the active file; a reader stops there and reports it instead of replaying garbage.
//! Files are named `spool-<sequence>.ks` and replayed oldest first; a file is deleted only when
//! every record in it has been reported again; the positions of those reported are listed beside
//! it (see below), so a crash during a replay re-sends only the few not yet listed (at-least-once,
//! each with the `x-ks-id` it was spooled with). One producer at a time owns a directory (an
//! exclusive lock on `.lock`).
//!
//! With `spool.mode=journal` every accepted message is also appended, before `send` returns, to
//! journal files: spool files of their own, named alike, each done with once every message in it
//! has been reported. A process killed at any point leaves them behind, and the next producer on
//! the directory replays them like any spool file. A journal file begins with `KSJOURN1` and a
//! salt of its own, which every record's checksum starts from: a file done with is renamed
//! `journal-free-<sequence>.ks` and written over as a later journal file (a fresh file's blocks
//! are allocated, zeroed and freed again by the file system, per file), and what is left of its
//! earlier records past the new ones fails their checksum. A journal file therefore ends at the
//! first record that does not check out: past it are only an earlier use of the file, or the one
//! send that had not returned when the process died. Beside each journal file, and each spool
//! file being replayed, `<file>.acks` lists the positions of its messages already reported
//! (little-endian u32s, written in blocks), and a replay skips those; the others may have been
//! written (a crash loses the last unwritten block), so a replay looks them up in their topic
//! before it sends them.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memmap2::{MmapMut, MmapOptions};

use crate::config::{FsyncPolicy, SpoolMode, SpoolSettings};
use crate::error::{Error, ErrorKind, Result};
use crate::lock;
use crate::record::{OwnedRecord, Record};

const MAGIC: &[u8; 8] = b"KSSPOOL1";
/// A journal file's magic, followed by its salt (u32 LE): see the module's documentation.
const JOURNAL_MAGIC: &[u8; 8] = b"KSJOURN1";
const JOURNAL_HEADER_BYTES: u64 = JOURNAL_MAGIC.len() as u64 + 4;
/// Version 2 added a flags byte at the end of the body (bit 0: may be written); version 1
/// records are still read, as never written.
const RECORD_VERSION: u8 = 2;
/// A journal's record (`spool.mode=journal`): what a spool record says of why and when it was
/// spooled is left out, as every journaled message was accepted and not yet reported, and one
/// time (when it was journaled) stands in its place: 45 bytes fewer, and the journal writes one
/// record per message (5% of its rate in an A/B on the mock cluster).
const JOURNAL_RECORD_VERSION: u8 = 3;
/// Why a journaled message read back is waiting (its record does not say): if it is ever read
/// from there, the producer stopped before it was reported.
const JOURNALED_REASON: &str = "journaled; not reported";
const MAY_BE_WRITTEN: u8 = 1;
const FILE_PREFIX: &str = "spool-";
const FILE_SUFFIX: &str = ".ks";
/// A journal file done with and kept to be written over (not a spool file: no replay reads it).
const FREE_JOURNAL_PREFIX: &str = "journal-free-";
/// Journal files kept to be written over, at most. A producer needs one more file than those
/// waiting for reports (a librdkafka queue of 100,000 messages of 100 bytes fills one); more
/// would only hold disk space.
const FREE_JOURNALS_KEPT: usize = 3;
/// Longest a record may claim to be; anything longer is a torn or corrupt length.
const MAX_RECORD_BYTES: u32 = 256 << 20;
/// How often `spool.fsync=interval` syncs.
const FSYNC_INTERVAL: Duration = Duration::from_millis(200);

/// One spooled message and why it was spooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledMessage {
    /// The message, as it was sent.
    pub record: OwnedRecord,
    /// Why it was not delivered.
    pub reason: Error,
    /// Attempts made before it was spooled.
    pub attempts: u32,
    /// When it was first sent (milliseconds since the epoch).
    pub first_attempt_ms: i64,
    /// When it was spooled (milliseconds since the epoch).
    pub spooled_at_ms: i64,
    /// Whether the brokers may have written it already (a request went out and no answer came,
    /// or it was journaled when accepted): a replay first looks for its id in the topic.
    pub may_be_written: bool,
}

/// The spool directory of one producer.
pub(crate) struct Spool {
    dir: PathBuf,
    fsync: FsyncPolicy,
    max_bytes: u64,
    /// Held until the producer closes: its lock keeps a second producer out of the directory.
    lock: Mutex<Option<File>>,
    state: Mutex<State>,
    /// Whether the spool holds messages no replay has found empty since: later sends are spooled
    /// behind them, so that a key's messages keep their order (see [`Spool::holds_messages`]).
    holding: AtomicBool,
    /// With `spool.mode=journal`: the accepted messages not yet reported.
    journal: Option<Journal>,
}

/// Journal files being written or waiting for their messages' reports. Two locks: the sending
/// threads append under `writer`, the delivery thread notes reports under `files`, so neither
/// waits for the other per message (only when a file is created or closed).
#[derive(Default)]
struct Journal {
    writer: Mutex<JournalWriter>,
    /// Every journal file still on disk, by sequence number.
    files: Mutex<BTreeMap<u64, JournalFile>>,
}

#[derive(Default)]
struct JournalWriter {
    /// The file appends go to.
    active: Option<ActiveJournal>,
    /// When the last sync began, on the coarse monotonic clock (see [`coarse_clock`]).
    last_sync: Option<Duration>,
    /// `fsync=interval`'s syncs, made off the sending thread.
    syncs: Arc<BackgroundSyncs>,
    /// Where each message is framed before it is written: one buffer, not one per message.
    frame: Vec<u8>,
}

struct ActiveJournal {
    sequence: u64,
    file: File,
    path: PathBuf,
    /// What every record's checksum in this file starts from.
    salt: u32,
    bytes: u64,
    /// Messages appended so far; the next one's position.
    appended: u32,
    /// The mapped stretch of the file appends are copied to.
    window: Option<Window>,
}

/// A mapped stretch of the active journal file: from the end of the file when it was mapped to
/// the end of that [`JOURNAL_WINDOW`].
struct Window {
    /// Where `map` starts in the file.
    offset: u64,
    map: MmapMut,
    /// How much of `map`, from its start, is made writable (see [`POPULATED_AHEAD`]).
    populated: usize,
}

/// Journal appends are copied into a memory map of the file, a window at a time: no system call
/// per message. A copy is in the page cache at once, as a write would be, so a process killed
/// after `send` returned cannot take it back; `spool.fsync` makes it durable as before. Each
/// window's blocks are allocated before it is mapped, so a full disk refuses the send rather
/// than raising SIGBUS. (Small in tests, like the files.)
const JOURNAL_WINDOW: u64 = if cfg!(test) { 4 << 10 } else { 4 << 20 };
/// A window's pages are made writable this far ahead of the appends, with one system call
/// (`MADV_POPULATE_WRITE`) in place of a write fault per page on the sending thread. Not the
/// whole window at once: that dirties every page of it, and an interval sync then writes out
/// pages no append reached and write-protects each mapped one, with an interrupt to every CPU
/// running the producer per page (`ptep_clear_flush`; see docs/reliability.md).
const POPULATED_AHEAD: usize = 64 << 10;
/// Bytes of the window prefetched ahead of the appends: a few frames' worth.
const PREFETCHED_AHEAD: usize = 256;

impl ActiveJournal {
    /// Copies `frame` to the end of the file. On failure nothing counts as appended: the next
    /// append writes over what was copied.
    fn append(&mut self, frame: &[u8]) -> io::Result<()> {
        let start = self.bytes;
        let copied = self.copy(frame);
        if copied.is_err() {
            self.bytes = start;
        }
        copied
    }

    fn copy(&mut self, mut rest: &[u8]) -> io::Result<()> {
        while !rest.is_empty() {
            let bytes = self.bytes;
            let window = match &mut self.window {
                Some(w) if bytes < w.offset + w.map.len() as u64 => w,
                _ => {
                    self.map_window()?;
                    continue;
                }
            };
            let at = (bytes - window.offset) as usize;
            let n = rest.len().min(window.map.len() - at);
            if at + n > window.populated {
                window.populate_to(at + n);
            }
            window.map[at..at + n].copy_from_slice(&rest[..n]);
            window.prefetch_from(at + n);
            rest = &rest[n..];
            self.bytes += n as u64;
        }
        Ok(())
    }

    /// Maps the file from its end to the end of the [`JOURNAL_WINDOW`] that holds it.
    fn map_window(&mut self) -> io::Result<()> {
        self.window = None; // unmapped; what was copied stays in the page cache
        let window_end = (self.bytes / JOURNAL_WINDOW + 1) * JOURNAL_WINDOW;
        allocate(&self.file, window_end - JOURNAL_WINDOW, JOURNAL_WINDOW)?;
        // SAFETY: the file is this producer's alone (the directory's lock keeps others out) and
        // keeps its size while mapped: it is cut to its records only once unmapped (`close`).
        let map = unsafe {
            MmapOptions::new()
                .offset(self.bytes)
                .len((window_end - self.bytes) as usize)
                .map_mut(&self.file)?
        };
        self.window = Some(Window {
            offset: self.bytes,
            map,
            populated: 0,
        });
        Ok(())
    }

    /// Unmaps the window before an interval sync begins: the sync then write-protects no page
    /// the appends since the last one dirtied through it (see [`POPULATED_AHEAD`]). The next
    /// append maps the rest of the window again.
    fn unmap_for_sync(&mut self) {
        self.window = None;
    }

    fn sync(&self) -> io::Result<()> {
        // fdatasync writes back the pages dirtied through the map as well (msync is for the
        // mapped range only, and earlier windows are unmapped).
        self.file.sync_data()
    }

    /// Unmaps the window; with `syncs`, syncs its last appends there. The file keeps its
    /// allocated size (readers stop after its records), to be written over once done with.
    /// Returns what the file list keeps of it: see [`JournalFile::closed`].
    fn close(mut self, syncs: Option<&Arc<BackgroundSyncs>>) -> ClosedJournal {
        self.window = None;
        if let Some(syncs) = syncs {
            syncs.begin(self.file, &self.path, false);
        }
        ClosedJournal {
            sequence: self.sequence,
            bytes: self.bytes,
            appended: self.appended,
        }
    }
}

impl Window {
    /// Asks the CPU for the cache lines the next appends will write, from `at`: a journal file
    /// written over is seldom in the CPU's cache, and a copy to lines that are not waits for them
    /// at the next lock's release (a memory barrier), two thirds of `Spool::journal`'s own samples
    /// in a profile. Fetched now, they arrive while the rest of the send runs.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    fn prefetch_from(&self, at: usize) {
        #[cfg(target_arch = "x86_64")]
        for line in (at..self.map.len().min(at + PREFETCHED_AHEAD)).step_by(64) {
            // SAFETY: a hint with an address inside the map; it reads and faults nothing.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<_MM_HINT_T0>(self.map.as_ptr().add(line).cast());
            }
        }
    }

    /// Makes the map writable to `end` and [`POPULATED_AHEAD`] beyond. Where the kernel cannot
    /// (before 5.14), the first write to each page faults instead.
    fn populate_to(&mut self, end: usize) {
        let to = (end + POPULATED_AHEAD).min(self.map.len());
        #[cfg(target_os = "linux")]
        let _ = self.map.advise_range(
            memmap2::Advice::PopulateWrite,
            self.populated,
            to - self.populated,
        );
        self.populated = to;
    }
}

/// `spool.fsync=interval` in journal mode: each sync runs on a thread of its own. A sync writes
/// out what up to 200 ms of appends dirtied, and a send that made it waited for the disk
/// meanwhile: 7% of the journal's rate (1M messages, 4 rounds). A sync is begun at most once an
/// interval, and not while the last one runs; a file closed for appends gets one of its own, so
/// its last appends are synced too. One that fails refuses the next append with its error.
#[derive(Default)]
struct BackgroundSyncs {
    running: AtomicBool,
    /// Whether `failed` holds an error: every append looks here, not at the lock.
    has_failed: AtomicBool,
    failed: Mutex<Option<Error>>,
}

impl BackgroundSyncs {
    /// Syncs `file` (`path`) on a new thread; with `every_interval`, unless the last such sync
    /// still runs.
    fn begin(self: &Arc<Self>, file: File, path: &Path, every_interval: bool) {
        if every_interval && self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (syncs, path) = (self.clone(), path.to_path_buf());
        let sync = move || {
            if let Err(error) = file.sync_data() {
                tracing::error!(target: "kafkasender", path = %path.display(), %error,
                    "cannot fsync a journal file; the next send is refused");
                syncs.keep_failure(io_error("cannot fsync", &path, error));
            }
            if every_interval {
                syncs.running.store(false, Ordering::Release);
            }
        };
        let spawned = std::thread::Builder::new()
            .name("kafkasender-fsync".into())
            .spawn(sync);
        if let Err(error) = spawned {
            tracing::warn!(target: "kafkasender", %error, "cannot start a journal sync; the next one tries again");
            if every_interval {
                self.running.store(false, Ordering::Release);
            }
        }
    }

    /// Keeps a failed sync's error for the next append.
    fn keep_failure(&self, error: Error) {
        *lock(&self.failed) = Some(error);
        self.has_failed.store(true, Ordering::Release);
    }

    /// The error of a sync that failed since the last call, if any.
    fn failure(&self) -> Option<Error> {
        // Every append asks: a plain read while none failed, the swap only once one has.
        if !self.has_failed.load(Ordering::Acquire)
            || !self.has_failed.swap(false, Ordering::Acquire)
        {
            return None;
        }
        lock(&self.failed).take()
    }
}

/// A journal file just closed for appends.
struct ClosedJournal {
    sequence: u64,
    bytes: u64,
    appended: u32,
}

impl JournalFile {
    /// Notes the file's final size and message count, in `files` if it is still listed.
    fn closed(files: &mut BTreeMap<u64, JournalFile>, closed: &ClosedJournal) {
        if let Some(file) = files.get_mut(&closed.sequence) {
            file.bytes = closed.bytes;
            file.appended = Some(closed.appended);
        }
    }
}

/// Allocates `len` bytes of `file` from `offset`, growing it as needed.
fn allocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (offset, len) = (offset as libc::off_t, len as libc::off_t);
        // SAFETY: a valid descriptor; no memory is passed.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) } == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(error);
        }
    }
    // Without fallocate: a sparse file of that size (a full disk then shows on the copy).
    if file.metadata()?.len() < offset + len {
        file.set_len(offset + len)?;
    }
    Ok(())
}

struct JournalFile {
    path: PathBuf,
    /// Its size once closed for appends (0 while active).
    bytes: u64,
    /// How many messages it holds, once closed for appends.
    appended: Option<u32>,
    reported: u32,
    /// The positions of reported messages, for a replay after a crash to skip.
    acks: Acks,
}

/// The file listing which messages of the spool file `path` were reported (by the producer that
/// journaled them, or by a replay).
pub(crate) fn acks_path(path: &Path) -> PathBuf {
    path.with_extension("acks")
}

/// The `.acks` file of a spool file, appended to as its messages are reported; what
/// [`reported_positions`] reads back.
pub(crate) struct Acks(Option<io::BufWriter<File>>);

impl Acks {
    /// `acks_path(path)`, opened to append to; without it (it cannot be opened) a replay after a
    /// crash only sends more copies.
    pub(crate) fn open(path: &Path) -> Acks {
        Acks(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(acks_path(path))
                .map(|file| io::BufWriter::with_capacity(ACKS_BLOCK, file))
                .ok(),
        )
    }

    /// Notes the message at `position` as reported. Buffered: a crash loses at most the last
    /// block, which only means more copies.
    pub(crate) fn write(&mut self, position: u32) {
        if let Some(acks) = &mut self.0 {
            let _ = acks.write_all(&position.to_le_bytes());
        }
    }

    pub(crate) fn flush(&mut self) {
        if let Some(acks) = &mut self.0 {
            let _ = acks.flush();
        }
    }
}

/// The positions `acks_path(path)` lists; empty when there is none (or it cannot be read).
pub(crate) fn reported_positions(path: &Path) -> std::collections::HashSet<u32> {
    fs::read(acks_path(path))
        .unwrap_or_default()
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// A journal file is closed for appends at this size; it is done with once its messages are
/// reported. Small enough that a producer soon writes over files it is done with (and keeps
/// little disk space for those it keeps); a file costs a few system calls. (Smaller in tests,
/// so that they close files.)
const JOURNAL_FILE_BYTES: u64 = if cfg!(test) { 1 << 10 } else { 16 << 20 };
/// Reported positions are written to the `.acks` file in blocks of this many bytes.
const ACKS_BLOCK: usize = 4096;

struct State {
    /// The file appends go to, created on the first append.
    active: Option<(PathBuf, File)>,
    next_sequence: u64,
    /// Bytes in every spool file of the directory.
    bytes: u64,
    last_sync: Instant,
    /// Closed files not yet taken by a replay, oldest first.
    waiting: VecDeque<PathBuf>,
    /// Journal files done with, kept to be written over, and their sizes: not in `bytes` (they
    /// hold no messages), but within `spool.max.bytes` with them (see [`State::free_bytes`]).
    free_journals: Vec<(PathBuf, u64)>,
}

impl State {
    /// Bytes in the journal files kept to be written over (at most [`FREE_JOURNALS_KEPT`]).
    fn free_bytes(&self) -> u64 {
        self.free_journals.iter().map(|(_, size)| size).sum()
    }
}

impl Spool {
    /// Opens (creating it if needed) and locks the directory. Files already there wait for a replay.
    pub(crate) fn open(settings: &SpoolSettings) -> Result<Option<Spool>> {
        let Some(dir) = settings.dir.clone() else {
            return Ok(None);
        };
        fs::create_dir_all(&dir)
            .map_err(|e| io_error("cannot create the spool directory", &dir, e))?;
        let lock_path = dir.join(".lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_error("cannot open", &lock_path, e))?;
        lock_file.try_lock().map_err(|_| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "spool.dir {} is in use by another producer (one producer per spool directory)",
                    dir.display()
                ),
            )
        })?;
        // Journal files kept for reuse by a producer that did not close: nothing in them is waited for.
        for free in free_journal_files(&dir) {
            let _ = fs::remove_file(free);
        }
        let files = spool_files(&dir)?;
        let bytes = files
            .iter()
            .filter_map(|path| fs::metadata(path).ok())
            .map(|m| m.len())
            .sum();
        let next_sequence = files
            .last()
            .and_then(|path| sequence_of(path))
            .map_or(1, |n| n + 1);
        Ok(Some(Spool {
            dir,
            fsync: settings.fsync,
            max_bytes: settings.max_bytes,
            holding: AtomicBool::new(!files.is_empty()),
            journal: (settings.mode == SpoolMode::Journal).then(Journal::default),
            lock: Mutex::new(Some(lock_file)),
            state: Mutex::new(State {
                active: None,
                next_sequence,
                bytes,
                last_sync: Instant::now(),
                waiting: files.into(),
                free_journals: Vec::new(),
            }),
        }))
    }

    /// Appends one message; returns the file it went to.
    pub(crate) fn append(&self, message: &SpooledMessage) -> Result<PathBuf> {
        let framed = framed_record(&message.record.as_record(), &Entry::of(message));
        let mut state = lock(&self.state);
        self.room_for(&mut state, framed.len())?;
        if state.active.is_none() {
            let created = self.create_file(&mut state)?;
            state.active = Some(created);
        }
        let sync = match self.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval => state.last_sync.elapsed() >= FSYNC_INTERVAL,
            FsyncPolicy::Never => false,
        };
        self.holding.store(true, Ordering::Release);
        let (path, file) = state.active.as_mut().expect("created above");
        let path = path.clone();
        // One write call per record: a crash tears at most the record being written.
        file.write_all(&framed)
            .map_err(|e| io_error("cannot append to", &path, e))?;
        if sync {
            file.sync_data()
                .map_err(|e| io_error("cannot fsync", &path, e))?;
            state.last_sync = Instant::now();
        }
        state.bytes += framed.len() as u64;
        Ok(path)
    }

    /// Whether `spool.max.bytes` leaves room for `bytes` more (spool and journal files count
    /// alike); journal files kept for reuse are deleted to make room.
    fn room_for(&self, state: &mut State, bytes: usize) -> Result<()> {
        let needed = state.bytes + bytes as u64;
        while needed + state.free_bytes() > self.max_bytes {
            let Some((path, _)) = state.free_journals.pop() else {
                break;
            };
            let _ = fs::remove_file(path);
        }
        if needed <= self.max_bytes {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Spool,
            format!(
                "the spool is full ({} of spool.max.bytes {} used); the message could not be kept",
                state.bytes, self.max_bytes
            ),
        ))
    }

    /// A new spool file, numbered after every other, with its magic written.
    fn create_file(&self, state: &mut State) -> Result<(PathBuf, File)> {
        let path = self.file_path(FILE_PREFIX, state.next_sequence);
        let file = new_file(&path, MAGIC)?;
        state.next_sequence += 1;
        state.bytes += MAGIC.len() as u64;
        Ok((path, file))
    }

    /// Where the file numbered `sequence` lies: a spool or journal file with [`FILE_PREFIX`], a
    /// journal file kept for reuse with [`FREE_JOURNAL_PREFIX`].
    fn file_path(&self, prefix: &str, sequence: u64) -> PathBuf {
        self.dir
            .join(format!("{prefix}{sequence:020}{FILE_SUFFIX}"))
    }

    /// A journal file to append to, numbered after every other, its header written with a salt
    /// of its own: a file done with written over when one is kept, else a new one. Returns the
    /// file, its path, sequence number and salt.
    fn create_journal_file(&self, state: &mut State) -> Result<(File, PathBuf, u64, u32)> {
        let sequence = state.next_sequence;
        let path = self.file_path(FILE_PREFIX, sequence);
        let reused = state.free_journals.pop().and_then(|(free, _)| {
            self.reuse_journal_file(&free, &path)
                .inspect_err(|error| {
                    tracing::warn!(target: "kafkasender", path = %free.display(), %error,
                        "cannot reuse a journal file; a new one is made");
                    let _ = fs::remove_file(&free);
                })
                .ok()
        });
        let (file, salt) = match reused {
            Some(reused) => reused,
            None => {
                let salt = new_salt(None);
                (new_file(&path, &journal_header(salt))?, salt)
            }
        };
        state.next_sequence += 1;
        state.bytes += JOURNAL_HEADER_BYTES;
        Ok((file, path, sequence, salt))
    }

    /// Gives the journal file `free` a new salt, then the name `path`: its earlier records then
    /// fail their checksums. The header is synced first (unless `spool.fsync=never`): after a
    /// power loss, the file must not come back under a journal's name with its old salt, and
    /// its old messages read as never reported.
    fn reuse_journal_file(&self, free: &Path, path: &Path) -> io::Result<(File, u32)> {
        use std::os::unix::fs::FileExt;
        let file = OpenOptions::new().read(true).write(true).open(free)?;
        let mut old = [0u8; JOURNAL_HEADER_BYTES as usize];
        let old_salt = file
            .read_exact_at(&mut old, 0)
            .ok()
            .filter(|()| &old[..8] == JOURNAL_MAGIC)
            .map(|()| u32::from_le_bytes([old[8], old[9], old[10], old[11]]));
        let salt = new_salt(old_salt);
        file.write_all_at(&journal_header(salt), 0)?;
        if self.fsync != FsyncPolicy::Never {
            file.sync_data()?;
        }
        fs::rename(free, path)?;
        Ok((file, salt))
    }

    /// Whether accepted messages are journaled (`spool.mode=journal`).
    pub(crate) fn journals(&self) -> bool {
        self.journal.is_some()
    }

    /// Appends an accepted message to the journal; returns where it is (the journal file's
    /// sequence number and the message's position in it), for [`Spool::journal_reported`]. Fails
    /// (the send is then refused) when it cannot be written.
    pub(crate) fn journal(
        &self,
        record: &Record<'_>,
        id: Option<(&str, &[u8])>,
        attempts: u32,
    ) -> Result<(u64, u32)> {
        let journal = self.journal.as_ref().expect("journal mode");
        // The clock is read before the writer lock is taken, as it was when the caller read it.
        let journaled = Framing::Journaled {
            attempts,
            at_ms: coarse_now_ms(),
        };
        let mut writer = lock(&journal.writer);
        let JournalWriter {
            active,
            last_sync,
            syncs,
            frame,
        } = &mut *writer;
        if let Some(error) = syncs.failure() {
            return Err(error);
        }
        frame_record(frame, record, id, &journaled);
        let len = frame.len() as u64;
        if active
            .as_ref()
            .is_some_and(|a| a.bytes + len > JOURNAL_FILE_BYTES)
        {
            let closed = active
                .take()
                .expect("checked above")
                .close(match self.fsync {
                    FsyncPolicy::Interval => Some(&*syncs),
                    FsyncPolicy::Always | FsyncPolicy::Never => None,
                });
            let mut files = lock(&journal.files);
            JournalFile::closed(&mut files, &closed);
            self.forget_if_reported(&mut files, closed.sequence);
        }
        let created = {
            let mut state = lock(&self.state);
            self.room_for(&mut state, frame.len())?;
            let created = match active {
                None => Some(self.create_journal_file(&mut state)?),
                Some(_) => None,
            };
            state.bytes += len;
            created
        };
        // `files` is taken without `state` held: the delivery thread takes them in the other
        // order (a report that completes a file deletes it and updates the size).
        if let Some((file, path, sequence, salt)) = created {
            let acks = Acks::open(&path);
            lock(&journal.files).insert(
                sequence,
                JournalFile {
                    path: path.clone(),
                    bytes: 0,
                    appended: None,
                    reported: 0,
                    acks,
                },
            );
            *active = Some(ActiveJournal {
                sequence,
                file,
                path,
                salt,
                bytes: JOURNAL_HEADER_BYTES,
                appended: 0,
                window: None,
            });
        }
        let active = active.as_mut().expect("created above");
        seal(frame, active.salt);
        active
            .append(frame)
            .map_err(|e| io_error("cannot append to", &active.path, e))?;
        let place = (active.sequence, active.appended);
        active.appended += 1;
        match self.fsync {
            FsyncPolicy::Always => {
                if let Err(error) = active.sync() {
                    let error = io_error("cannot fsync", &active.path, error);
                    // The frame is in the file: crossed off at once, so a replay skips what its
                    // sender heard refused, and those after it keep positions that are theirs.
                    self.journal_reported(place);
                    return Err(error);
                }
            }
            FsyncPolicy::Interval => {
                let now = coarse_clock(Clock::Monotonic);
                if last_sync.is_none_or(|at| now.saturating_sub(at) >= FSYNC_INTERVAL) {
                    // A second descriptor of the file: the sync may outlive the active file.
                    // Without one (no descriptor left), the message is appended all the same and
                    // the next append tries again: refusing it now would leave its frame behind.
                    match active.file.try_clone() {
                        Ok(file) => {
                            active.unmap_for_sync();
                            syncs.begin(file, &active.path, true);
                            *last_sync = Some(now);
                        }
                        Err(error) => {
                            tracing::warn!(target: "kafkasender", path = %active.path.display(),
                                %error, "cannot start a journal sync; the next append tries again")
                        }
                    }
                }
            }
            FsyncPolicy::Never => {}
        }
        Ok(place)
    }

    /// A journaled message was reported (delivered, dead-lettered, spooled or failed): a closed
    /// journal file goes once all of its messages are.
    pub(crate) fn journal_reported(&self, (sequence, position): (u64, u32)) {
        let Some(journal) = &self.journal else { return };
        let mut files = lock(&journal.files);
        if let Some(file) = files.get_mut(&sequence) {
            file.reported += 1;
            file.acks.write(position);
            if file.appended.is_some() {
                self.forget_if_reported(&mut files, sequence);
            }
        }
    }

    /// Deletes a journal file closed for appends once every message in it is reported.
    fn forget_if_reported(&self, files: &mut BTreeMap<u64, JournalFile>, sequence: u64) {
        if files
            .get(&sequence)
            .is_some_and(|f| f.appended == Some(f.reported))
        {
            let file = files.remove(&sequence).expect("checked above");
            drop(file.acks);
            let _ = fs::remove_file(acks_path(&file.path));
            let mut state = lock(&self.state);
            let size = fs::metadata(&file.path).map_or(0, |m| m.len());
            let free = self.file_path(FREE_JOURNAL_PREFIX, sequence);
            let kept = state.free_journals.len() < FREE_JOURNALS_KEPT
                && state.bytes.saturating_sub(file.bytes) + state.free_bytes() + size
                    <= self.max_bytes
                && fs::rename(&file.path, &free).is_ok();
            let gone = if kept {
                state.free_journals.push((free, size));
                Ok(())
            } else {
                fs::remove_file(&file.path)
            };
            match gone {
                Ok(()) => state.bytes = state.bytes.saturating_sub(file.bytes),
                Err(error) => {
                    tracing::error!(target: "kafkasender", path = %file.path.display(), %error,
                    "cannot delete a journal file; its messages will be sent again by the next producer")
                }
            }
        }
    }

    /// Whether there are files for a replay to take.
    pub(crate) fn has_waiting(&self) -> bool {
        let state = lock(&self.state);
        !state.waiting.is_empty() || state.active.is_some()
    }

    /// Whether messages wait in the spool (or are being replayed from it): a send made now must
    /// go behind them, into the spool too, or it could overtake an earlier message of its key.
    /// Cleared only when a replay finds nothing left to take.
    pub(crate) fn holds_messages(&self) -> bool {
        self.holding.load(Ordering::Acquire)
    }

    /// Closes the active file and hands every closed file to a replay, oldest first. Messages
    /// spooled from now on go to a new file. Nothing left to take means the replay has drained
    /// the spool: sends go straight to the brokers again.
    pub(crate) fn take_for_replay(&self) -> Vec<PathBuf> {
        let mut state = lock(&self.state);
        if let Some((path, file)) = state.active.take() {
            let _ = file.sync_data();
            state.waiting.push_back(path);
        }
        if state.waiting.is_empty() {
            self.holding.store(false, Ordering::Release);
        }
        state.waiting.drain(..).collect()
    }

    /// Puts files a replay took but did not finish back in front of the waiting ones.
    pub(crate) fn give_back(&self, paths: Vec<PathBuf>) {
        let mut state = lock(&self.state);
        for path in paths.into_iter().rev() {
            state.waiting.push_front(path);
        }
        if !state.waiting.is_empty() {
            self.holding.store(true, Ordering::Release);
        }
    }

    /// Deletes a file every record of which has been reported again.
    pub(crate) fn remove_replayed(&self, path: &Path) {
        let _ = fs::remove_file(acks_path(path));
        let size = fs::metadata(path).map_or(0, |m| m.len());
        match fs::remove_file(path) {
            Ok(()) => {
                let mut state = lock(&self.state);
                state.bytes = state.bytes.saturating_sub(size);
            }
            Err(error) => tracing::error!(
                target: "kafkasender",
                path = %path.display(),
                %error,
                "cannot delete a replayed spool file; its messages will be replayed again"
            ),
        }
    }

    /// Bytes in the spool's files.
    pub(crate) fn bytes(&self) -> u64 {
        lock(&self.state).bytes
    }

    /// Flushes the active file to disk and lets another producer have the directory (on close,
    /// when nothing appends any more).
    pub(crate) fn release(&self) {
        if let Some((_, file)) = &lock(&self.state).active {
            let _ = file.sync_data();
        }
        if let Some(journal) = &self.journal {
            let active = lock(&journal.writer).active.take();
            let mut files = lock(&journal.files);
            if let Some(active) = active {
                let _ = active.sync();
                JournalFile::closed(&mut files, &active.close(None));
            }
            for file in files.values_mut() {
                file.acks.flush();
            }
            let sequences: Vec<u64> = files.keys().copied().collect();
            for sequence in sequences {
                self.forget_if_reported(&mut files, sequence);
            }
            // No other producer would reuse them: a closed producer leaves only what it must.
            let mut state = lock(&self.state);
            for (free, _) in state.free_journals.drain(..) {
                let _ = fs::remove_file(free);
            }
        }
        lock(&self.lock).take();
    }
}

/// Reads a spool file record by record. After a torn or corrupt record it yields that one
/// `Err` and stops: what follows a bad length cannot be trusted.
pub struct SpoolReader {
    path: PathBuf,
    reader: BufReader<File>,
    offset: u64,
    done: bool,
    /// A journal file's salt (see the module's documentation): its records' checksums start from
    /// it, and the first record that does not check out is its end, not a torn record.
    salt: Option<u32>,
    /// The file's size when opened (see `next`).
    size: u64,
}

/// Where a spool file stops making sense, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornRecord {
    /// The file.
    pub path: PathBuf,
    /// Byte offset of the bad record.
    pub offset: u64,
    /// What is wrong with it.
    pub reason: String,
}

impl SpoolReader {
    /// Opens a spool file.
    pub fn open(path: &Path) -> Result<SpoolReader> {
        let file = File::open(path).map_err(|e| io_error("cannot open", path, e))?;
        let size = file.metadata().map_or(u64::MAX, |m| m.len());
        let mut reader = SpoolReader {
            path: path.to_path_buf(),
            reader: BufReader::new(file),
            offset: 0,
            done: false,
            salt: None,
            size,
        };
        let mut magic = [0u8; 8];
        let mut salt = [0u8; 4];
        match read_fully(&mut reader.reader, &mut magic) {
            Ok(8) if &magic == MAGIC => reader.offset = 8,
            Ok(8) if &magic == JOURNAL_MAGIC => {
                if read_fully(&mut reader.reader, &mut salt).ok() == Some(4) {
                    reader.salt = Some(u32::from_le_bytes(salt));
                    reader.offset = JOURNAL_HEADER_BYTES;
                } else {
                    reader.done = true; // killed while its header was written: nothing in it
                }
            }
            Ok(0) => reader.done = true, // created, then killed before the header was written
            _ => {
                return Err(Error::new(
                    ErrorKind::Spool,
                    format!("{} is not a kafkasender spool file", path.display()),
                ))
            }
        }
        Ok(reader)
    }

    /// Stops at a record that does not check out: a torn record in a spool file; in a journal
    /// file, its end (see the module's documentation).
    fn torn(
        &mut self,
        reason: impl Into<String>,
    ) -> Option<std::result::Result<SpooledMessage, TornRecord>> {
        if self.salt.is_some() {
            self.done = true;
            return None;
        }
        self.stop(reason.into())
    }

    /// Stops at a read error, in any file.
    fn unreadable(
        &mut self,
        error: io::Error,
    ) -> Option<std::result::Result<SpooledMessage, TornRecord>> {
        self.stop(format!("read error: {error}"))
    }

    /// Stops, yielding where and why.
    fn stop(&mut self, reason: String) -> Option<std::result::Result<SpooledMessage, TornRecord>> {
        self.done = true;
        Some(Err(TornRecord {
            path: self.path.clone(),
            offset: self.offset,
            reason,
        }))
    }
}

impl Iterator for SpoolReader {
    type Item = std::result::Result<SpooledMessage, TornRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut frame_header = [0u8; 8];
        match read_fully(&mut self.reader, &mut frame_header) {
            Ok(0) => {
                self.done = true;
                return None;
            }
            // A journal's allocated tail, after the last record of a killed producer.
            Ok(8) if frame_header == [0; 8] => {
                self.done = true;
                return None;
            }
            Ok(8) => {}
            Ok(n) => return self.torn(format!("{n} bytes of a record header, then the end")),
            Err(e) => return self.unreadable(e),
        }
        let length = u32::from_le_bytes(frame_header[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(frame_header[4..].try_into().expect("4 bytes"));
        if length > MAX_RECORD_BYTES {
            return self.torn(format!("implausible record length {length}"));
        }
        // A journal file's old records may claim any length: no buffer for more than is left. (A
        // spool file may still grow while it is read: `inspect` works beside its producer.)
        let left = self.size.saturating_sub(self.offset + 8);
        if self.salt.is_some() && u64::from(length) > left {
            return self.torn(format!("{left} of {length} body bytes, then the end"));
        }
        let mut body = vec![0u8; length as usize];
        match read_fully(&mut self.reader, &mut body) {
            Ok(n) if n == body.len() => {}
            Ok(n) => return self.torn(format!("{n} of {length} body bytes, then the end")),
            Err(e) => return self.unreadable(e),
        }
        if checksum(self.salt.unwrap_or(0), &body) != crc {
            return self.torn("checksum mismatch");
        }
        match decode(&body) {
            Some(message) => {
                self.offset += 8 + u64::from(length);
                Some(Ok(message))
            }
            None => self.torn("checksum matches but the record does not decode"),
        }
    }
}

/// What one spool file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolFileSummary {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Readable records.
    pub records: u64,
    /// Records per topic.
    pub topics: BTreeMap<String, u64>,
    /// Records per reason (error kind).
    pub reasons: BTreeMap<String, u64>,
    /// The torn or corrupt record that ends the file early, if any.
    pub torn: Option<TornRecord>,
}

/// Summarises every spool file in `dir`, oldest first, without changing anything (works while a
/// producer owns the directory).
pub fn inspect(dir: &Path) -> Result<Vec<SpoolFileSummary>> {
    spool_files(dir)?
        .into_iter()
        .map(|path| {
            let mut summary = SpoolFileSummary {
                bytes: fs::metadata(&path).map_or(0, |m| m.len()),
                path: path.clone(),
                records: 0,
                topics: BTreeMap::new(),
                reasons: BTreeMap::new(),
                torn: None,
            };
            for item in SpoolReader::open(&path)? {
                match item {
                    Ok(message) => {
                        summary.records += 1;
                        *summary.topics.entry(message.record.topic).or_default() += 1;
                        *summary
                            .reasons
                            .entry(message.reason.kind().as_str().to_string())
                            .or_default() += 1;
                    }
                    Err(torn) => summary.torn = Some(torn),
                }
            }
            Ok(summary)
        })
        .collect()
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Milliseconds since the epoch as of the kernel's last tick (a few ms ago at most): what the
/// journal stamps each message with, read for a fraction of what [`now_ms`] costs.
pub(crate) fn coarse_now_ms() -> i64 {
    i64::try_from(coarse_clock(Clock::Realtime).as_millis()).unwrap_or(i64::MAX)
}

#[derive(Clone, Copy)]
enum Clock {
    Realtime,
    Monotonic,
}

/// A clock at the resolution of the kernel's tick, read without the precise clocks' work (the
/// journal reads one per message; pacing fsyncs and dating a message need no finer).
#[cfg(target_os = "linux")]
fn coarse_clock(clock: Clock) -> Duration {
    let id = match clock {
        Clock::Realtime => libc::CLOCK_REALTIME_COARSE,
        Clock::Monotonic => libc::CLOCK_MONOTONIC_COARSE,
    };
    let mut at = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes only `at`; these clocks exist on every Linux this builds for.
    unsafe { libc::clock_gettime(id, &mut at) };
    Duration::new(at.tv_sec as u64, at.tv_nsec as u32)
}

#[cfg(not(target_os = "linux"))]
fn coarse_clock(clock: Clock) -> Duration {
    match clock {
        Clock::Realtime => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
        Clock::Monotonic => {
            static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            START.get_or_init(Instant::now).elapsed()
        }
    }
}

fn spool_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let paths = match paths_in(dir) {
        Ok(paths) => paths,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("cannot list", dir, e)),
    };
    let mut files: Vec<PathBuf> = paths.filter(|path| sequence_of(path).is_some()).collect();
    files.sort_by_key(|path| sequence_of(path));
    Ok(files)
}

/// The paths of `dir`'s entries (those that can be read).
fn paths_in(dir: &Path) -> io::Result<impl Iterator<Item = PathBuf>> {
    Ok(fs::read_dir(dir)?.filter_map(|entry| entry.ok().map(|e| e.path())))
}

/// Creates the file `path` (which must not exist) and writes `header`; later writes follow it.
fn new_file(path: &Path, header: &[u8]) -> Result<File> {
    // Readable too: a journal file is mapped.
    let mut file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error("cannot create", path, e))?;
    file.write_all(header)
        .map_err(|e| io_error("cannot write", path, e))?;
    Ok(file)
}

/// Journal files kept for reuse in `dir` (see [`FREE_JOURNAL_PREFIX`]).
fn free_journal_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(paths) = paths_in(dir) else {
        return Vec::new();
    };
    paths
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(FREE_JOURNAL_PREFIX))
        })
        .collect()
}

fn sequence_of(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix(FILE_PREFIX)?
        .strip_suffix(FILE_SUFFIX)?
        .parse()
        .ok()
}

fn io_error(what: &str, path: &Path, error: io::Error) -> Error {
    Error::new(
        ErrorKind::Spool,
        format!("{what} {}: {error}", path.display()),
    )
}

/// Reads until `buf` is full or the end; returns how much was read.
fn read_fully(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// What a spool record says besides the message itself.
struct Entry<'a> {
    reason_kind: &'a str,
    reason: &'a str,
    attempts: u32,
    first_attempt_ms: i64,
    spooled_at_ms: i64,
    may_be_written: bool,
}

impl Entry<'_> {
    fn of(message: &SpooledMessage) -> Entry<'_> {
        Entry {
            reason_kind: message.reason.kind().as_str(),
            reason: message.reason.message(),
            attempts: message.attempts,
            first_attempt_ms: message.first_attempt_ms,
            spooled_at_ms: message.spooled_at_ms,
            may_be_written: message.may_be_written,
        }
    }
}

/// What a record says besides the message: a spool record why and when it was spooled, a
/// journal record only when it was journaled (see [`JOURNAL_RECORD_VERSION`]).
enum Framing<'a> {
    Spooled(&'a Entry<'a>),
    Journaled { attempts: u32, at_ms: i64 },
}

/// One record as written: `[length u32 LE][crc32 u32 LE][body]`, in one buffer, straight from
/// the borrowed record (the journal writes one per send: no owned copy of the message first).
fn framed_record(record: &Record<'_>, entry: &Entry<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    frame_record(&mut out, record, None, &Framing::Spooled(entry));
    seal(&mut out, 0);
    out
}

/// Frames a record into `out` (cleared first; its capacity is kept for the next), with the id
/// header `id` after its own headers, if given; [`seal`] then fills in its length and checksum.
fn frame_record(
    out: &mut Vec<u8>,
    record: &Record<'_>,
    id: Option<(&str, &[u8])>,
    framing: &Framing<'_>,
) {
    out.clear();
    out.reserve(
        72 + record.topic.len()
            + record.key.map_or(0, <[u8]>::len)
            + record.value.map_or(0, <[u8]>::len),
    );
    out.extend_from_slice(&[0; 8]); // the length and the checksum, once the body is known
    let may_be_written = match framing {
        Framing::Spooled(entry) => {
            out.push(RECORD_VERSION);
            out.extend_from_slice(&entry.first_attempt_ms.to_le_bytes());
            out.extend_from_slice(&entry.spooled_at_ms.to_le_bytes());
            out.extend_from_slice(&entry.attempts.to_le_bytes());
            put_bytes(out, entry.reason_kind.as_bytes());
            put_bytes(out, entry.reason.as_bytes());
            entry.may_be_written
        }
        Framing::Journaled { attempts, at_ms } => {
            out.push(JOURNAL_RECORD_VERSION);
            out.extend_from_slice(&at_ms.to_le_bytes());
            out.extend_from_slice(&attempts.to_le_bytes());
            true // it may have been sent before the producer stopped
        }
    };
    put_bytes(out, record.topic.as_bytes());
    put_optional(out, record.key);
    put_optional(out, record.value);
    let (count, headers) = record.headers_then(id);
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (key, value) in headers {
        put_bytes(out, key.as_bytes());
        put_optional(out, value);
    }
    match record.partition {
        Some(p) => {
            out.push(1);
            out.extend_from_slice(&p.to_le_bytes());
        }
        None => out.push(0),
    }
    match record.timestamp {
        Some(t) => {
            out.push(1);
            out.extend_from_slice(&t.to_le_bytes());
        }
        None => out.push(0),
    }
    out.push(if may_be_written { MAY_BE_WRITTEN } else { 0 });
}

/// Writes a framed record's length and checksum, the checksum starting from `salt` (a journal
/// file's, or 0 in a spool file: a plain CRC-32).
fn seal(framed: &mut [u8], salt: u32) {
    let body = u32::try_from(framed.len() - 8).unwrap_or(u32::MAX);
    let crc = checksum(salt, &framed[8..]);
    framed[..4].copy_from_slice(&body.to_le_bytes());
    framed[4..8].copy_from_slice(&crc.to_le_bytes());
}

fn checksum(salt: u32, body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(salt);
    hasher.update(body);
    hasher.finalize()
}

/// A journal file's header: its magic and `salt`.
fn journal_header(salt: u32) -> [u8; JOURNAL_HEADER_BYTES as usize] {
    let mut header = [0; JOURNAL_HEADER_BYTES as usize];
    header[..8].copy_from_slice(JOURNAL_MAGIC);
    header[8..].copy_from_slice(&salt.to_le_bytes());
    header
}

/// A salt for a journal file, other than the one it had (`old`): random per process and call.
fn new_salt(old: Option<u32>) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    loop {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        let salt = hasher.finish() as u32;
        if Some(salt) != old {
            return salt;
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            out.push(1);
            put_bytes(out, bytes);
        }
        None => out.push(0),
    }
}

/// A cursor over a record body; every read is bounds-checked, so a bad body gives `None`.
struct Body<'a>(&'a [u8]);

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    fn optional(&mut self) -> Option<Option<Vec<u8>>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.bytes()?.to_vec())),
            _ => None,
        }
    }
}

fn decode(body: &[u8]) -> Option<SpooledMessage> {
    let mut b = Body(body);
    let version = b.u8()?;
    let (first_attempt_ms, spooled_at_ms, attempts, reason) = match version {
        1 | RECORD_VERSION => {
            let (first_attempt_ms, spooled_at_ms, attempts) = (b.i64()?, b.i64()?, b.u32()?);
            let kind = ErrorKind::from_name(&b.text()?)?;
            (
                first_attempt_ms,
                spooled_at_ms,
                attempts,
                Error::new(kind, b.text()?),
            )
        }
        JOURNAL_RECORD_VERSION => {
            let (at_ms, attempts) = (b.i64()?, b.u32()?);
            let reason = Error::new(ErrorKind::Closed, JOURNALED_REASON);
            (at_ms, at_ms, attempts, reason)
        }
        _ => return None,
    };
    let topic = b.text()?;
    let key = b.optional()?;
    let value = b.optional()?;
    let header_count = b.u32()?;
    let mut headers = Vec::new();
    for _ in 0..header_count {
        headers.push((b.text()?, b.optional()?));
    }
    let partition = match b.u8()? {
        0 => None,
        _ => Some(b.i32()?),
    };
    let timestamp = match b.u8()? {
        0 => None,
        _ => Some(b.i64()?),
    };
    let flags = if version == 1 { 0 } else { b.u8()? };
    b.0.is_empty().then_some(SpooledMessage {
        record: OwnedRecord {
            topic,
            key,
            value,
            headers,
            partition,
            timestamp,
        },
        reason,
        attempts,
        first_attempt_ms,
        spooled_at_ms,
        may_be_written: flags & MAY_BE_WRITTEN != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "kafkasender-spool-{name}-{}-{}",
            std::process::id(),
            now_ms()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn framed(message: &SpooledMessage) -> Vec<u8> {
        framed_record(&message.record.as_record(), &Entry::of(message))
    }

    fn settings(dir: &Path, max_bytes: u64) -> SpoolSettings {
        SpoolSettings {
            dir: Some(dir.to_path_buf()),
            fsync: FsyncPolicy::Always,
            max_bytes,
            mode: SpoolMode::Spool,
        }
    }

    /// [`settings`] in journal mode, with room for 1 MiB.
    fn journaling(dir: &Path) -> SpoolSettings {
        SpoolSettings {
            mode: SpoolMode::Journal,
            ..settings(dir, 1 << 20)
        }
    }

    fn message(i: u32) -> SpooledMessage {
        SpooledMessage {
            record: OwnedRecord {
                topic: "orders".into(),
                key: Some(format!("k{i}").into_bytes()),
                value: (!i.is_multiple_of(3)).then(|| vec![i as u8; 100]),
                headers: vec![("h".into(), Some(b"v".to_vec())), ("null".into(), None)],
                partition: i.is_multiple_of(2).then_some(3),
                timestamp: Some(1_700_000_000_000 + i64::from(i)),
            },
            reason: Error::new(ErrorKind::Timeout, "message timed out"),
            attempts: 3,
            first_attempt_ms: 1,
            spooled_at_ms: 2,
            may_be_written: i % 4 == 1,
        }
    }

    #[test]
    fn a_version_1_record_reads_as_never_written() {
        let written = SpooledMessage {
            may_be_written: true,
            ..message(1)
        };
        let framed = framed(&written);
        // Version 1: the same body without the flags byte.
        let mut body = framed[8..framed.len() - 1].to_vec();
        body[0] = 1;
        assert_eq!(decode(&framed[8..]), Some(written.clone()));
        let read = decode(&body).expect("a version 1 record");
        assert!(!read.may_be_written);
        assert_eq!(read.record, written.record);
        body[0] = 3;
        assert_eq!(decode(&body), None, "an unknown version");
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_reported_not_replayed() {
        let dir = temp_dir("roundtrip");
        let spool = Spool::open(&settings(&dir, 1 << 20)).unwrap().unwrap();
        let written: Vec<SpooledMessage> = (0..10).map(message).collect();
        let mut path = PathBuf::new();
        for m in &written {
            path = spool.append(m).unwrap();
        }
        // A crash in the middle of the next record's write.
        let torn = framed(&message(99));
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&torn[..torn.len() / 2])
            .unwrap();

        let items: Vec<_> = SpoolReader::open(&path).unwrap().collect();
        assert_eq!(items.len(), 11);
        let read: Vec<SpooledMessage> = items[..10].iter().map(|i| i.clone().unwrap()).collect();
        assert_eq!(read, written);
        let torn = items[10].clone().unwrap_err();
        assert!(torn.reason.contains("then the end"), "{torn:?}");

        let summary = inspect(&dir).unwrap();
        assert_eq!(summary.len(), 1);
        assert_eq!(summary[0].records, 10);
        assert_eq!(summary[0].topics["orders"], 10);
        assert_eq!(summary[0].reasons["timeout"], 10);
        assert!(summary[0].torn.is_some());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_flipped_byte_stops_the_reader_at_that_record() {
        let dir = temp_dir("corrupt");
        let spool = Spool::open(&settings(&dir, 1 << 20)).unwrap().unwrap();
        let path = (0..3)
            .map(|i| spool.append(&message(i)).unwrap())
            .last()
            .unwrap();
        let mut bytes = fs::read(&path).unwrap();
        let second_record = 8 + framed(&message(0)).len() + 8 + 20;
        bytes[second_record] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let items: Vec<_> = SpoolReader::open(&path).unwrap().collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert_eq!(items[1].clone().unwrap_err().reason, "checksum mismatch");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// How `message(i)` reads back from a journal, journaled at `at_ms` (checked to be about
    /// now): its record keeps the message, its attempts and that time, and it reads back as
    /// accepted and not reported, and as possibly written.
    fn journaled(i: u32, at_ms: i64) -> SpooledMessage {
        assert!((now_ms() - at_ms).abs() < 60_000, "journaled at {at_ms}");
        SpooledMessage {
            reason: Error::new(ErrorKind::Closed, JOURNALED_REASON),
            first_attempt_ms: at_ms,
            spooled_at_ms: at_ms,
            may_be_written: true,
            ..message(i)
        }
    }

    /// Journals `message(i)` for each `i`; returns where each went.
    fn journal_messages(spool: &Spool, numbers: std::ops::Range<u32>) -> Vec<(u64, u32)> {
        journal_each(spool, numbers.map(message))
    }

    /// Journals each of `messages`; returns where each went.
    fn journal_each(
        spool: &Spool,
        messages: impl Iterator<Item = SpooledMessage>,
    ) -> Vec<(u64, u32)> {
        messages
            .map(|m| {
                spool
                    .journal(&m.record.as_record(), None, m.attempts)
                    .unwrap()
            })
            .collect()
    }

    /// `message(i)`, made as long as every other `uniform(j)`.
    fn uniform(i: u32) -> SpooledMessage {
        let mut m = message(1);
        m.record.key = Some(format!("k{i:06}").into_bytes());
        m
    }

    #[test]
    fn interval_syncs_go_on_across_closed_files_and_a_failed_one_refuses_the_next_append() {
        let dir = temp_dir("journal-interval");
        let settings = SpoolSettings {
            fsync: FsyncPolicy::Interval,
            ..journaling(&dir)
        };
        let spool = Spool::open(&settings).unwrap().unwrap();
        // Files of 1 KB in tests: these close several, each synced on a thread of its own.
        let positions = journal_messages(&spool, 0..20);
        assert!(positions.last().unwrap().0 > positions[0].0, "files closed");
        let journal = spool.journal.as_ref().unwrap();
        let syncs = lock(&journal.writer).syncs.clone();
        syncs.keep_failure(io_error(
            "cannot fsync",
            &dir,
            io::Error::from_raw_os_error(libc::EIO),
        ));
        let m = message(20);
        let refused = spool
            .journal(&m.record.as_record(), None, m.attempts)
            .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Spool);
        assert!(refused.to_string().contains("cannot fsync"), "{refused}");
        journal_messages(&spool, 21..22); // reported once, then appends go on
        drop(spool);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn full_journal_files_close_and_go_once_their_messages_are_reported() {
        let dir = temp_dir("journal-files");
        let spool = Spool::open(&journaling(&dir)).unwrap().unwrap();
        let places = journal_messages(&spool, 0..40);
        let files: std::collections::BTreeSet<u64> = places.iter().map(|(f, _)| *f).collect();
        assert!(files.len() > 2, "files {files:?}");
        assert_eq!(spool_files(&dir).unwrap().len(), files.len());
        for place in places.iter().rev() {
            spool.journal_reported(*place); // the newest first: the closed files go last
        }
        assert_eq!(
            spool_files(&dir).unwrap().len(),
            1,
            "every closed file went; the active one stays until close"
        );
        assert!(spool.bytes() > 0);
        spool.release();
        assert!(spool_files(&dir).unwrap().is_empty());
        assert_eq!(spool.bytes(), 0, "the byte count follows the files");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn journaling_and_reports_on_two_threads_never_wait_for_each_other() {
        // A sender creating a file and a report deleting one took the spool's locks in opposite
        // orders, and a producer in journal mode could hang for good.
        let dir = temp_dir("journal-threads");
        let spool = std::sync::Arc::new(
            Spool::open(&SpoolSettings {
                fsync: FsyncPolicy::Never,
                max_bytes: 1 << 30,
                ..journaling(&dir)
            })
            .unwrap()
            .unwrap(),
        );
        let (places, reports) = std::sync::mpsc::channel();
        let reporter = {
            let spool = spool.clone();
            std::thread::spawn(move || reports.iter().for_each(|p| spool.journal_reported(p)))
        };
        let (done, finished) = std::sync::mpsc::channel();
        let sender = std::thread::spawn(move || {
            for i in 0..20_000 {
                let m = message(i);
                let place = spool
                    .journal(&m.record.as_record(), None, m.attempts)
                    .unwrap();
                places.send(place).unwrap();
            }
            drop(places);
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(Duration::from_secs(60))
            .expect("20,000 messages journaled and reported within a minute (no deadlock)");
        sender.join().unwrap();
        reporter.join().unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn appends_after_the_window_is_unmapped_for_a_sync_follow_those_before_it() {
        let dir = temp_dir("journal-remapped");
        let spool = Spool::open(&journaling(&dir)).unwrap().unwrap();
        let journal = spool.journal.as_ref().unwrap();
        journal_messages(&spool, 0..2);
        let unmap = || {
            let mut writer = lock(&journal.writer);
            let active = writer.active.as_mut().unwrap();
            active.unmap_for_sync();
            active.bytes
        };
        let first_end = unmap();
        journal_messages(&spool, 2..3);
        let window_offset = |writer: &JournalWriter| {
            writer
                .active
                .as_ref()
                .unwrap()
                .window
                .as_ref()
                .unwrap()
                .offset
        };
        assert_eq!(
            window_offset(&lock(&journal.writer)),
            first_end,
            "mapped again from the end of the file"
        );
        unmap();
        journal_messages(&spool, 3..4);
        std::mem::forget(spool); // what kill -9 leaves
        let files = spool_files(&dir).unwrap();
        assert_eq!(
            fs::metadata(&files[0]).unwrap().len(),
            JOURNAL_WINDOW,
            "one window allocated"
        );
        let read: Vec<_> = SpoolReader::open(&files[0])
            .unwrap()
            .map(|m| m.unwrap().record.key)
            .collect();
        let expected: Vec<_> = (0..4).map(|i| message(i).record.key).collect();
        assert_eq!(read, expected, "each record once, in order");
    }

    #[test]
    fn a_killed_producers_journal_reads_back_every_record_and_stops_at_its_zeros() {
        let dir = temp_dir("journal-killed");
        let spool = Spool::open(&journaling(&dir)).unwrap().unwrap();
        journal_messages(&spool, 0..3);
        let with_id = message(3);
        let id = ("x-ks-id", &b"prefix-3"[..]);
        spool
            .journal(&with_id.record.as_record(), Some(id), with_id.attempts)
            .unwrap();
        std::mem::forget(spool); // no release, no cut: what kill -9 leaves
        let files = spool_files(&dir).unwrap();
        assert_eq!(files.len(), 1);
        let size = fs::metadata(&files[0]).unwrap().len();
        assert_eq!(
            size, JOURNAL_WINDOW,
            "the allocated window, zeros after the records"
        );
        let read: Vec<_> = SpoolReader::open(&files[0]).unwrap().collect();
        // Each at its own time: the coarse clock may tick between two appends.
        let mut expected: Vec<_> = (0..4)
            .map(|i| journaled(i, read[i as usize].as_ref().unwrap().first_attempt_ms))
            .collect();
        expected[3]
            .record
            .headers
            .push((id.0.into(), Some(id.1.to_vec()))); // after its own headers
        assert_eq!(
            read,
            expected.into_iter().map(Ok).collect::<Vec<_>>(),
            "every record with its id, and no torn one for the zeros"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn journal_files_done_with_are_written_over_and_their_old_records_never_read_back() {
        let dir = temp_dir("journal-reuse");
        let spool = Spool::open(&journaling(&dir)).unwrap().unwrap();
        // Files of 1 KB in tests: these fill several, each kept once its messages are reported.
        // Records of one size: a reused file's old records lie where new ones would.
        let first = journal_each(&spool, (0..40).map(uniform));
        for place in &first {
            spool.journal_reported(*place);
        }
        assert_eq!(free_journal_files(&dir).len(), FREE_JOURNALS_KEPT);
        assert_eq!(spool_files(&dir).unwrap().len(), 1, "the active file");
        // Fill the active file, then two messages into the next: a file written over, whose
        // old records follow the new ones.
        let mut places = Vec::new();
        let active = first.last().unwrap().0;
        while places.last().is_none_or(|(file, _)| *file == active) {
            let next = 100 + places.len() as u32;
            places.extend(journal_each(&spool, (next..next + 1).map(uniform)));
        }
        let last = 100 + places.len() as u32;
        places.extend(journal_each(&spool, (last..last + 1).map(uniform)));
        let reused = places.last().unwrap().0;
        assert_eq!(
            free_journal_files(&dir).len(),
            FREE_JOURNALS_KEPT - 1,
            "one reused"
        );
        let file = spool_files(&dir).unwrap().pop().unwrap();
        assert_eq!(sequence_of(&file), Some(reused));
        let bytes = fs::read(&file).unwrap();
        let mut reader = SpoolReader::open(&file).unwrap();
        let keys = |messages: &mut dyn Iterator<Item = SpooledMessage>| {
            messages.map(|m| m.record.key.unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(
            keys(&mut reader.by_ref().map(|m| m.unwrap())),
            keys(&mut (last - 1..=last).map(uniform)),
            "the reused file holds its two new messages, none of its old ones"
        );
        let written = reader.offset as usize;
        assert!(
            bytes[written..written + 64].iter().any(|b| *b != 0),
            "old records follow the new ones"
        );
        lock(&spool.lock).take(); // the process's end lets the lock go,
        std::mem::forget(spool); // and nothing else: what kill -9 leaves
        let mut read = keys(
            &mut spool_files(&dir)
                .unwrap()
                .iter()
                .flat_map(|path| SpoolReader::open(path).unwrap().map(|m| m.unwrap())),
        );
        let count = read.len();
        read.sort();
        read.dedup();
        assert_eq!(read.len(), count, "each message once");
        assert!(keys(&mut (100..=last).map(uniform))
            .iter()
            .all(|k| read.contains(k)));
        let spool = Spool::open(&journaling(&dir)).unwrap().unwrap();
        assert!(
            free_journal_files(&dir).is_empty(),
            "left by a killed producer: deleted"
        );
        for path in spool
            .take_for_replay()
            .iter()
            .chain(&spool_files(&dir).unwrap())
        {
            spool.remove_replayed(path);
        }
        for place in journal_each(&spool, (0..40).map(uniform)) {
            spool.journal_reported(place);
        }
        assert!(!free_journal_files(&dir).is_empty());
        spool.release();
        assert!(free_journal_files(&dir).is_empty(), "deleted on close");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_record_larger_than_a_reused_journal_file_grows_it_and_reads_back_whole() {
        let dir = temp_dir("journal-reuse-large");
        let spool = Spool::open(&SpoolSettings {
            max_bytes: 1 << 30,
            ..journaling(&dir)
        })
        .unwrap()
        .unwrap();
        for place in journal_each(&spool, (0..40).map(uniform)) {
            spool.journal_reported(place);
        }
        let kept = free_journal_files(&dir).len();
        assert!(kept > 0);
        // Two windows and more (4 KB each in tests): a file of its own, a reused one.
        let mut large = message(7);
        large.record.value = Some(vec![7; 3 * JOURNAL_WINDOW as usize]);
        let (file, _) = spool
            .journal(&large.record.as_record(), None, large.attempts)
            .unwrap();
        assert_eq!(
            free_journal_files(&dir).len(),
            kept - 1,
            "a kept file reused"
        );
        lock(&spool.lock).take();
        std::mem::forget(spool); // what kill -9 leaves
        let path = spool_files(&dir)
            .unwrap()
            .into_iter()
            .find(|path| sequence_of(path) == Some(file))
            .unwrap();
        let read: Vec<_> = SpoolReader::open(&path)
            .unwrap()
            .map(|m| m.unwrap())
            .collect();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].record, large.record);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn journal_files_kept_for_reuse_fit_within_the_size_cap() {
        let dir = temp_dir("journal-reuse-cap");
        let spool = Spool::open(&SpoolSettings {
            max_bytes: 3 * JOURNAL_WINDOW,
            ..journaling(&dir)
        })
        .unwrap()
        .unwrap();
        for place in journal_messages(&spool, 0..40) {
            spool.journal_reported(place);
        }
        // Each file kept takes a window (4 KB in tests); the active one takes one too.
        let kept = free_journal_files(&dir);
        assert!(
            !kept.is_empty() && kept.len() < FREE_JOURNALS_KEPT,
            "{kept:?}"
        );
        let state = lock(&spool.state);
        assert!(state.bytes + state.free_bytes() <= 3 * JOURNAL_WINDOW);
        drop(state);
        spool.release();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_journal_file_goes_once_its_messages_are_reported_and_stays_for_a_replay_otherwise() {
        let dir = temp_dir("journal");
        let journaling = journaling(&dir);
        let spool = Spool::open(&journaling).unwrap().unwrap();
        assert!(spool.journals());
        let places = journal_messages(&spool, 0..3);
        assert!(places.iter().all(|(f, _)| *f == places[0].0), "one file");
        assert_eq!(
            places.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(
            !spool.holds_messages(),
            "journaled messages are not spooled ones"
        );
        assert!(spool.take_for_replay().is_empty(), "nor taken by a replay");
        spool.journal_reported(places[0]);
        spool.journal_reported(places[2]);
        spool.release(); // one message unreported: its file stays
        drop(spool);
        let leftover = spool_files(&dir).unwrap();
        assert_eq!(leftover.len(), 1);
        assert_eq!(
            reported_positions(&leftover[0]),
            [0, 2].into(),
            "what a replay skips"
        );
        let replayed: Vec<SpooledMessage> = SpoolReader::open(&leftover[0])
            .unwrap()
            .map(|m| m.unwrap())
            .collect();
        assert_eq!(
            replayed,
            (0..3)
                .map(|i| journaled(i, replayed[i as usize].first_attempt_ms))
                .collect::<Vec<_>>(),
            "the next producer replays the file"
        );

        let spool = Spool::open(&journaling).unwrap().unwrap();
        assert!(
            spool.holds_messages(),
            "a crashed producer's journal waits for a replay"
        );
        spool.remove_replayed(&leftover[0]);
        assert!(!acks_path(&leftover[0]).exists());
        let m = message(9);
        let file = spool
            .journal(&m.record.as_record(), None, m.attempts)
            .unwrap();
        spool.journal_reported(file);
        spool.release();
        assert!(
            spool_files(&dir).unwrap().is_empty(),
            "reported in full: deleted on close"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_size_cap_refuses_with_a_clear_error_and_one_producer_owns_a_directory() {
        let dir = temp_dir("cap");
        let two = (MAGIC.len() + framed(&message(1)).len() + framed(&message(2)).len()) as u64;
        let spool = Spool::open(&settings(&dir, two + 5)).unwrap().unwrap();
        spool.append(&message(1)).unwrap();
        spool.append(&message(2)).unwrap();
        let error = spool.append(&message(4)).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Spool);
        assert!(error.message().contains("spool is full"), "{error}");

        let second = Spool::open(&settings(&dir, two)).err().expect("locked");
        assert!(second.message().contains("in use"), "{second}");
        spool.release();

        let reopened = Spool::open(&settings(&dir, 1 << 20)).unwrap().unwrap();
        assert!(reopened.has_waiting());
        let files = reopened.take_for_replay();
        assert_eq!(files.len(), 1);
        reopened.append(&message(5)).unwrap();
        assert_eq!(
            inspect(&dir).unwrap().len(),
            2,
            "new appends go to a new file"
        );
        reopened.remove_replayed(&files[0]);
        assert_eq!(inspect(&dir).unwrap().len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
