//! Helpers shared by the integration tests.

#![allow(dead_code)] // each test file uses its own subset

use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use kafkasender::testing::ConsumedRecord;
use kafkasender::DeliveryReport;

/// Collects reports from delivery callbacks.
#[derive(Clone, Default)]
pub struct Reports(Arc<(Mutex<Vec<DeliveryReport>>, Condvar)>);

impl Reports {
    /// A callback that keeps its report here.
    pub fn callback(&self) -> kafkasender::DeliveryCallback {
        let reports = self.clone();
        Box::new(move |report| {
            let (list, ready) = &*reports.0;
            list.lock().unwrap().push(report);
            ready.notify_all();
        })
    }

    /// Every report so far, leaving none.
    pub fn take(&self) -> Vec<DeliveryReport> {
        std::mem::take(&mut *self.0 .0.lock().unwrap())
    }

    /// How many reports arrived.
    pub fn len(&self) -> usize {
        self.0 .0.lock().unwrap().len()
    }

    /// The reports once `n` have arrived, or whatever arrived within `limit`.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<DeliveryReport> {
        let (list, ready) = &*self.0;
        let deadline = Instant::now() + limit;
        let mut guard = list.lock().unwrap();
        while guard.len() < n && Instant::now() < deadline {
            guard = ready
                .wait_timeout(guard, Duration::from_millis(50))
                .unwrap()
                .0;
        }
        guard.clone()
    }
}

/// A read-back record's value as text.
pub fn value_of(record: &ConsumedRecord) -> String {
    String::from_utf8(record.value.clone().unwrap()).unwrap()
}

/// Bringing a mock broker back up re-binds the port it listened on, and librdkafka's mock aborts
/// the whole process when that port was taken meanwhile, which an outgoing connection of a test
/// running beside it can do (both come from the ephemeral range). So a test that brings a broker
/// up runs alone ([`alone`]), and every other test holds [`beside_others`] while it runs.
static OUTAGES: RwLock<()> = RwLock::new(());

/// For a test that takes brokers down and brings them up again.
pub fn alone() -> RwLockWriteGuard<'static, ()> {
    OUTAGES.write().unwrap_or_else(PoisonError::into_inner)
}

/// For every other test.
pub fn beside_others() -> RwLockReadGuard<'static, ()> {
    OUTAGES.read().unwrap_or_else(PoisonError::into_inner)
}
