//! The active half of health. Broker states in librdkafka's statistics are only evidence while
//! connections are in use: an idle producer keeps no connection (librdkafka connects sparsely),
//! so with every broker gone its statistics still look fine. So once health has been asked for,
//! a thread of its own asks the cluster for metadata (brokers and the topics this producer knows,
//! waiting at most `health.check.interval.ms`) whenever an interval passed with nothing
//! delivered; a delivery is evidence enough. Never on the send path, at most once per interval,
//! and only for producers whose health someone reads.

use std::ptr;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::Producer as _;

use super::engine::Client;
use crate::lock;

/// The last metadata request and what came of it.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) at: Instant,
    /// How long the request took.
    pub(crate) took: Duration,
    /// Delivered reports when it was asked: a failure is stale once anything was delivered since.
    pub(crate) delivered: u64,
    /// The brokers the answer listed, or why none answered.
    pub(crate) result: Result<usize, String>,
}

pub(crate) struct HealthCheck {
    /// `health.check.interval.ms`; zero: no active check.
    pub(crate) interval: Duration,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    started: bool,
    stopped: bool,
    last: Option<Answer>,
}

/// What the checking thread needs of the producer each time: its client and its delivered
/// total, or `None` once it is closed or gone.
pub(crate) type Look = dyn Fn() -> Option<(Arc<Client>, u64)> + Send + Sync;

impl HealthCheck {
    pub(crate) fn new(interval: Duration) -> HealthCheck {
        HealthCheck {
            interval,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        }
    }

    /// Starts the checking thread, once; later calls do nothing (and do not make `look`).
    pub(crate) fn start(self: &Arc<Self>, look: impl FnOnce() -> Box<Look>) {
        let mut state = lock(&self.state);
        if self.interval.is_zero() || state.started || state.stopped {
            return;
        }
        state.started = true;
        let look = look();
        let check = Arc::downgrade(self);
        let spawned = thread::Builder::new()
            .name("kafkasender-health".into())
            .spawn(move || run(&check, &*look));
        if let Err(error) = spawned {
            tracing::warn!(target: "kafkasender", %error, "cannot start the health check thread; health stays passive");
        }
    }

    /// Asks the cluster now, on the calling thread, waiting at most `timeout`, and keeps the answer.
    pub(crate) fn ask_now(&self, client: &Client, delivered: u64, timeout: Duration) -> Answer {
        let asked = Instant::now();
        let result = ask_for_metadata(client, timeout);
        let answer = Answer {
            result,
            at: Instant::now(),
            took: asked.elapsed(),
            delivered,
        };
        lock(&self.state).last = Some(answer.clone());
        answer
    }

    /// The last answer, when it was a failure and nothing has been delivered since.
    pub(crate) fn failure(&self, delivered_now: u64) -> Option<Answer> {
        lock(&self.state)
            .last
            .clone()
            .filter(|answer| answer.result.is_err() && answer.delivered == delivered_now)
    }

    /// Ends the checking thread (at close).
    pub(crate) fn stop(&self) {
        lock(&self.state).stopped = true;
        self.wake.notify_all();
    }
}

fn run(check: &Weak<HealthCheck>, look: &Look) {
    let mut delivered_before = None;
    loop {
        let Some(check) = check.upgrade() else { return };
        let Some((client, delivered)) = look() else {
            return;
        };
        if delivered_before.is_some_and(|before| before != delivered) {
            // Something was delivered this interval: evidence enough, and any failure is stale.
            lock(&check.state).last = None;
        } else {
            check.ask_now(&client, delivered, check.interval);
        }
        delivered_before = Some(delivered);
        drop(client);
        let state = lock(&check.state);
        if state.stopped {
            return;
        }
        let (state, _) = check
            .wake
            .wait_timeout(state, check.interval)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.stopped {
            return;
        }
    }
}

/// A metadata request for the brokers and the topics the client knows (not every topic of the
/// cluster): the number of brokers in the answer, or why there was none.
fn ask_for_metadata(client: &Client, timeout: Duration) -> Result<usize, String> {
    let mut metadata: *const rd::rd_kafka_metadata = ptr::null();
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the client's handle lives as long as `client`; `metadata` is written only on
    // success and destroyed once read.
    let code = unsafe {
        rd::rd_kafka_metadata(
            client.client().native_ptr(),
            0,
            ptr::null_mut(),
            &mut metadata,
            timeout_ms,
        )
    };
    if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Err(RDKafkaErrorCode::from(code).to_string());
    }
    // SAFETY: success: `metadata` points to a valid answer until destroyed.
    let brokers = unsafe { (*metadata).broker_cnt };
    unsafe { rd::rd_kafka_metadata_destroy(metadata) };
    Ok(usize::try_from(brokers).unwrap_or(0))
}
