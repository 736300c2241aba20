//! Counts the forks this process descends from: librdkafka's threads (and ours) do not survive
//! `fork()`, so a producer made before a fork must refuse to work in the child, while a producer
//! made in the child works.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Registers the fork handler once per process.
pub fn watch() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: registers a handler that only adds to an atomic, which is async-signal-safe.
        unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
    });
}

/// The number of forks between the module's loading and now, in this process's ancestry.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}
