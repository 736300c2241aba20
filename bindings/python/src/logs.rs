//! kafkasender's and librdkafka's log lines into Python's `logging` (loggers `kafkasender` and
//! `kafkasender.librdkafka`). Lines come from delivery and librdkafka threads, which must never
//! wait for the GIL (a Python thread holding it may be waiting for them), so they go through a
//! bounded queue to one thread of this module's own that takes the GIL to log them; when the
//! queue is full, lines are dropped and counted in the next line logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::Arc;

use kafkasender::config::LogLevel;
use kafkasender::logging::{set_sink, LogRecord};
use pyo3::prelude::*;

/// Lines waiting for the GIL; beyond this, a burst is dropped rather than held.
const QUEUE: usize = 4096;

struct Line {
    level: LogLevel,
    librdkafka: bool,
    message: String,
}

/// Sends every log line to Python's `logging` from now on.
pub fn forward_to_logging() {
    let (sender, receiver) = sync_channel::<Line>(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let counted = dropped.clone();
    let spawned = std::thread::Builder::new()
        .name("kafkasender-logging".into())
        .spawn(move || log_lines(&receiver, &counted));
    if spawned.is_err() {
        return; // no thread, no sink: lines keep going to stderr
    }
    set_sink(Some(Box::new(move |record: &LogRecord<'_>| {
        let line = Line {
            level: record.level,
            librdkafka: record.target == "librdkafka",
            message: record.message.to_string(),
        };
        if let Err(TrySendError::Full(_)) = sender.try_send(line) {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    })));
}

fn log_lines(receiver: &Receiver<Line>, dropped: &AtomicU64) {
    while let Ok(line) = receiver.recv() {
        let lost = dropped.swap(0, Ordering::Relaxed);
        // None when the interpreter is finalizing: nothing to log to any more.
        let logged = Python::try_attach(|py| log_one(py, &line, lost));
        if logged.is_none() {
            return;
        }
    }
}

fn log_one(py: Python<'_>, line: &Line, lost: u64) -> PyResult<()> {
    let name = if line.librdkafka {
        "kafkasender.librdkafka"
    } else {
        "kafkasender"
    };
    let logger = py.import("logging")?.call_method1("getLogger", (name,))?;
    // logging's numbers; TRACE below DEBUG.
    let level = match line.level {
        LogLevel::Off | LogLevel::Error => 40,
        LogLevel::Warn => 30,
        LogLevel::Info => 20,
        LogLevel::Debug => 10,
        LogLevel::Trace => 5,
    };
    if lost > 0 {
        logger.call_method1(
            "log",
            (
                30,
                format!("{lost} log lines dropped: Python did not take them in time"),
            ),
        )?;
    }
    logger.call_method1("log", (level, &line.message))?;
    Ok(())
}
