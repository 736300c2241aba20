//! Hands delivery results to Python in batches: the core's delivery thread only queues them
//! (no GIL), and one dispatcher thread per producer takes everything queued and completes it
//! under a single GIL acquisition. Under load a batch holds thousands of reports. A `send` that
//! finds reports queued completes them itself (as confluent-kafka's `poll(0)` does): a sending
//! thread keeps the GIL for up to the switch interval, and reports would queue up meanwhile.
//! One thread completes at a time, taking the whole queue, so reports complete in order.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::{DeliveryReport, DeliveryReports};
use crate::otel;

/// Who waits for a result, and what to call when it arrives.
pub struct Waiter {
    /// A `concurrent.futures.Future`, resolved with the report (or the list of reports), unless
    /// the sender asked for a callback instead.
    pub future: Option<Py<PyAny>>,
    /// `on_delivery(report)`, if given.
    pub on_delivery: Option<Py<PyAny>>,
    /// The send's OpenTelemetry span, ended with the result.
    pub span: Option<otel::Span>,
}

pub enum Outcome {
    One(kafkasender::DeliveryReport),
    /// A batch's reports, and whether a lost message fails the whole future (`raise_on_failure`).
    Batch(Vec<kafkasender::DeliveryReport>, bool),
    /// The same, handed over as one `DeliveryReports` (`send_batch(..., columns=True)`).
    Columns(Vec<kafkasender::DeliveryReport>, bool),
}

/// The most results an emptied queue is kept for (about 3 MB): one grown past that by a burst
/// is freed rather than held for the rest of the producer's life.
const SPARE_KEPT: usize = 16_384;

#[derive(Default)]
struct Queue {
    ready: Vec<(Waiter, Outcome)>,
    /// The previous turn's `ready`, emptied, for the next turn to queue into: under load a turn
    /// holds thousands of results, and a queue grown afresh each turn reallocates and copies
    /// them over and over, in memory the allocator keeps giving back to the system.
    spare: Vec<(Waiter, Outcome)>,
    /// Queued or being completed.
    unfinished: usize,
    stop: bool,
}

#[derive(Default)]
pub struct Dispatcher {
    queue: Mutex<Queue>,
    wakeup: Condvar,
    idle: Condvar,
    /// Callbacks that raised (each is also reported through `sys.unraisablehook`).
    pub callback_errors: std::sync::atomic::AtomicU64,
    /// Reports are queued (read by every send without taking the lock).
    has_ready: AtomicBool,
    /// Held, with the GIL, by the thread completing reports. Tried, never waited for: a callback
    /// may let go of the GIL, and the holder needs it back to finish.
    completing: AtomicBool,
}

thread_local! {
    /// Whether this thread is completing reports (a callback that sends must not complete others).
    static COMPLETING_HERE: Cell<bool> = const { Cell::new(false) };
}

impl Dispatcher {
    /// Starts the dispatcher thread.
    pub fn start() -> (Arc<Dispatcher>, JoinHandle<()>) {
        let dispatcher = Arc::new(Dispatcher::default());
        let running = dispatcher.clone();
        let thread = std::thread::Builder::new()
            .name("kafkasender-python".into())
            .spawn(move || running.run())
            .expect("cannot start the kafkasender-python thread");
        (dispatcher, thread)
    }

    /// Queues a result (called on the core's delivery thread, without the GIL).
    pub fn push(&self, waiter: Waiter, outcome: Outcome) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.ready.push((waiter, outcome));
        queue.unfinished += 1;
        self.has_ready.store(true, Ordering::Release);
        if queue.ready.len() == 1 {
            self.wakeup.notify_all();
        }
    }

    /// Waits (without the GIL) until everything queued so far has been completed, at most `timeout`.
    pub fn wait_idle(&self, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        while queue.unfinished > 0 && !queue.stop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            queue = self
                .idle
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn finished(&self, n: usize) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.unfinished -= n;
        if queue.unfinished == 0 {
            self.idle.notify_all();
        }
    }

    /// Stops the thread once the queue is empty.
    pub fn stop(&self) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop = true;
        self.wakeup.notify_all();
    }

    fn run(&self) {
        loop {
            {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                while queue.ready.is_empty() && !queue.stop {
                    queue = self
                        .wakeup
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if queue.ready.is_empty() {
                    return;
                }
            }
            if !Python::attach(|py| self.complete_queued(py)) {
                if self.stopping() {
                    return; // the completing thread takes the rest (see `complete_queued`)
                }
                // Another thread is completing; what is queued goes with its next turn or ours.
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }

    /// Completes, on the calling thread, whatever is queued, if any is and no other thread is
    /// completing (a send calls this).
    pub fn complete_if_ready(&self, py: Python<'_>) {
        if self.has_ready.load(Ordering::Acquire) {
            self.complete_queued(py);
        }
    }

    /// Completes whatever is queued on the calling thread (which holds the GIL), and waits for
    /// another thread's completion under way (once the dispatcher is gone: closing).
    pub fn drain(&self, py: Python<'_>) {
        loop {
            if COMPLETING_HERE.get() {
                return; // closed from a callback: the completion under way takes the rest
            }
            let busy = self.completing.load(Ordering::Acquire);
            if !busy && !self.has_ready.load(Ordering::Acquire) {
                return;
            }
            if !self.complete_queued(py) {
                py.detach(|| std::thread::sleep(std::time::Duration::from_millis(1)));
            }
        }
    }

    fn stopping(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop
    }

    /// Takes the queue and completes it, unless another thread (or this one, further up the
    /// stack) is completing: then `false`.
    fn complete_queued(&self, py: Python<'_>) -> bool {
        if (self.completing)
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                COMPLETING_HERE.set(false);
                self.0.store(false, Ordering::Release);
            }
        }
        COMPLETING_HERE.set(true);
        let _release = Release(&self.completing);
        loop {
            let (mut batch, stopping) = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                self.has_ready.store(false, Ordering::Release);
                let spare = std::mem::take(&mut queue.spare);
                (std::mem::replace(&mut queue.ready, spare), queue.stop)
            };
            let empty = batch.is_empty();
            self.complete(py, &mut batch);
            if batch.capacity() <= SPARE_KEPT {
                self.queue
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .spare = batch;
            }
            // One batch a turn, so a send returns; but once the dispatcher is stopping, nothing
            // else would take what arrived meanwhile.
            if empty || !stopping || !self.has_ready.load(Ordering::Acquire) {
                return true;
            }
        }
    }

    /// Completes what `batch` holds, leaving it empty.
    fn complete(&self, py: Python<'_>, batch: &mut Vec<(Waiter, Outcome)>) {
        let n = batch.len();
        for (waiter, outcome) in batch.drain(..) {
            // A lost message fails its future; any other outcome (kept somewhere) resolves it.
            let (result, lost) = match outcome {
                Outcome::One(report) => {
                    let lost = matches!(report.outcome, kafkasender::Outcome::Failed(_));
                    let report = DeliveryReport::new(py, report).and_then(|r| Bound::new(py, r));
                    let lost = match (&report, lost) {
                        (Ok(report), true) => report.get().error().map(|e| e.clone_ref(py)),
                        _ => None,
                    };
                    (report.map(Bound::into_any), lost)
                }
                Outcome::Batch(reports, raise_on_failure) => {
                    let reports = reports
                        .into_iter()
                        .map(|r| DeliveryReport::new(py, r).and_then(|r| Bound::new(py, r)))
                        .collect::<PyResult<Vec<_>>>();
                    // With raise_on_failure, the first lost message's error, carrying them all.
                    let lost = match &reports {
                        Ok(reports) if raise_on_failure => reports
                            .iter()
                            .find(|r| r.get().outcome() == "failed")
                            .and_then(|r| r.get().error().map(|e| e.clone_ref(py))),
                        _ => None,
                    };
                    let reports =
                        reports.and_then(|reports| Ok(PyList::new(py, reports)?.into_any()));
                    (with_reports(py, reports, lost.as_ref()), lost)
                }
                Outcome::Columns(reports, raise_on_failure) => {
                    let reports = DeliveryReports::new(reports);
                    let lost = match reports.first_lost() {
                        Some(error) if raise_on_failure => {
                            crate::errors::instance(py, error).ok().map(Bound::unbind)
                        }
                        _ => None,
                    };
                    let reports = Bound::new(py, reports).map(Bound::into_any);
                    (with_reports(py, reports, lost.as_ref()), lost)
                }
            };
            let result = match result {
                Ok(result) => result,
                Err(error) => {
                    match &waiter.future {
                        Some(future) => {
                            let _ = future.call_method1(py, "set_exception", (error.value(py),));
                        }
                        None => error.write_unraisable(py, None),
                    }
                    continue;
                }
            };
            if let Some(span) = waiter.span {
                span.end(py, &result);
            }
            // The future first, so that a raising callback cannot keep a waiter waiting.
            if let Some(future) = &waiter.future {
                let _ = resolve(future.bind(py), &result, lost.as_ref());
            }
            if let Some(on_delivery) = waiter.on_delivery {
                if let Err(error) = on_delivery.call1(py, (&result,)) {
                    self.callback_errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    error.write_unraisable(py, Some(on_delivery.bind(py)));
                }
            }
        }
        if n > 0 {
            self.finished(n);
        }
    }
}

/// A batch's result, made the `reports` attribute of `lost` (the exception of its first lost
/// message, with raise_on_failure) so that the caller has every report either way.
fn with_reports<'py>(
    py: Python<'py>,
    reports: PyResult<Bound<'py, PyAny>>,
    lost: Option<&Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    if let (Ok(reports), Some(error)) = (&reports, lost) {
        let _ = error.setattr(py, intern!(py, "reports"), reports);
    }
    reports
}

/// Resolves a `DeliveryFuture` (kafkasender/_future.py). One nobody waits on and nobody asked to
/// call back has no lock yet (it is made on first use); it is completed by setting its fields.
/// Otherwise the ordinary `set_result`/`set_exception` wakes the waiters and runs the callbacks.
fn resolve(
    future: &Bound<'_, PyAny>,
    result: &Bound<'_, PyAny>,
    lost: Option<&Py<PyAny>>,
) -> PyResult<()> {
    let py = future.py();
    let fields = future
        .getattr(intern!(py, "__dict__"))?
        .cast_into::<PyDict>()?;
    let has_lock = || fields.contains(intern!(py, "_lazy_condition"));
    if !has_lock()? {
        match lost {
            Some(error) => future.setattr(intern!(py, "_exception"), error)?,
            None => future.setattr(intern!(py, "_result"), result)?,
        }
        future.setattr(intern!(py, "_state"), intern!(py, "FINISHED"))?;
        // The GIL can pass to another thread between these steps (seen: about one batch's
        // done-callback in 600 never ran), and that thread may have made the lock meanwhile, to
        // wait or to add a callback that saw the future pending: finish as set_result would.
        if has_lock()? {
            future.call_method0(intern!(py, "_finish_late"))?;
        }
        return Ok(());
    }
    match lost {
        Some(error) => future.call_method1(intern!(py, "set_exception"), (error,))?,
        None => future.call_method1(intern!(py, "set_result"), (result,))?,
    };
    Ok(())
}
