//! `kafkasender.Producer`: the core producer, with results handed to Python by the dispatcher.

use std::mem::ManuallyDrop;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use kafkasender::{
    Config, Error, ErrorKind, HealthStatus, MetricValue, PartitionRequest, Producers, TrySend,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::convert::{config_map, Payload, RecordArgs};
use crate::dispatch::{Dispatcher, Outcome, Waiter};
use crate::errors::{exception, IntoPyResult};
use crate::events::{record_parts, Event, RecordParts};
use crate::otel;
use crate::serialize::Serializers;

static FUTURE_CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A waiting that no caller can mean: `None` waits "forever" (a year).
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// A Kafka producer. Thread-safe; release it with `close()` or a `with` block.
#[pyclass(frozen, subclass, weakref, module = "kafkasender")]
pub struct Producer {
    /// Dropped by hand: in a forked child its threads do not exist, so it must be leaked instead.
    producer: ManuallyDrop<kafkasender::Producer>,
    dispatcher: Arc<Dispatcher>,
    dispatcher_thread: Mutex<Option<JoinHandle<()>>>,
    /// The process that made it, and how many forks deep it was; librdkafka's threads do not
    /// survive `fork()`.
    pid: u32,
    fork_generation: u64,
    /// `value_serializer` and `key_serializer`, if given.
    serializers: Serializers,
}

#[pymethods]
impl Producer {
    /// `Producer(config=None, *, value_serializer=None, key_serializer=None, **options)`:
    /// `config` maps kafkasender settings and librdkafka properties to values; keyword options
    /// are the same keys with `_` for `.`. A serializer (`"json"`, `"str"` or a callable returning
    /// bytes) turns every value or key given to `send` and `send_batch` into bytes; without one
    /// they must be bytes-like or `str`.
    #[new]
    #[pyo3(signature = (config = None, *, value_serializer = None, key_serializer = None, _env = false, _named = None, **options))]
    fn new(
        py: Python<'_>,
        config: Option<&Bound<'_, PyAny>>,
        value_serializer: Option<&Bound<'_, PyAny>>,
        key_serializer: Option<&Bound<'_, PyAny>>,
        _env: bool,
        _named: Option<(String, String)>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Producer> {
        let serializers = Serializers::new(py, value_serializer, key_serializer)?;
        if _env {
            // `Producer.from_env()` (in Python, so that it makes the Python subclass).
            return Producer::start(py, Config::from_env(), serializers);
        }
        if let Some((file, name)) = _named {
            // `Producers.get(name)`: a producer of a file of named producers.
            let config = Producers::from_file(file).and_then(|p| p.config(&name));
            return Producer::start(py, config, serializers);
        }
        let config = match config {
            Some(c) if !c.is_none() => Some(c.cast::<PyDict>().map_err(|_| {
                PyTypeError::new_err("config must be a dict of str to str, int, float or bool")
            })?),
            _ => None,
        };
        let map = config_map(config, options)?;
        Producer::start(py, Config::from_map(map), serializers)
    }

    /// Sends a message. Without `on_delivery`, returns a `concurrent.futures.Future` of its
    /// `DeliveryReport`, which fails with the KafkaSenderError only when the message is lost
    /// (dead-lettered and spooled messages resolve with a report that says where they went). With
    /// `on_delivery`, returns None and `on_delivery(report)` runs once instead (no Future is made),
    /// on the producer's dispatcher thread or inside a later `send` on the caller's thread, in
    /// the order reports arrive, never inside another callback. Raises at once (nothing sent) for
    /// bad arguments, a closed producer, a full queue, a rate limit or an open circuit breaker
    /// without a spool.
    #[pyo3(signature = (topic, value, *, key = None, headers = None, partition = None, timestamp = None, on_delivery = None, _serialized = false))]
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        key: Option<&Bound<'_, PyAny>>,
        headers: Option<&Bound<'_, PyAny>>,
        partition: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        on_delivery: Option<&Bound<'_, PyAny>>,
        _serialized: bool,
    ) -> PyResult<Py<PyAny>> {
        self.check_process(py)?;
        // `_serialized`: bytes made here already (a published event), not the caller's values.
        let (value, key) = match _serialized {
            true => (value.clone(), key.cloned()),
            false => (
                self.serializers.value(value)?,
                key.map(|key| self.serializers.key(key)).transpose()?,
            ),
        };
        let args = RecordArgs::extract(topic, &value, key.as_ref(), headers, partition, timestamp)?;
        let mut waiter = self.waiter(py, on_delivery)?;
        let key = args.key.as_ref().map(Payload::as_slice);
        let trace = otel::start(py, Some(args.topic), key, 1).map(|(span, trace)| {
            waiter.span = Some(span);
            trace
        });
        let if_refused = waiter.span.as_ref().map(|span| span.clone_ref(py));
        let future = match &waiter.future {
            Some(future) => future.clone_ref(py),
            None => py.None(),
        };
        let dispatcher = self.dispatcher.clone();
        let mut record = args.record();
        if let Some(trace) = &trace {
            record.replace_headers(&trace.headers());
        }
        let on_delivery = move |report: kafkasender::DeliveryReport| {
            dispatcher.push(waiter, Outcome::One(report))
        };
        // Only a send that would wait lets go of the GIL: a release per message hands the GIL to
        // the dispatcher thread every time, which costs more than the send.
        let sent = match self.producer.try_send(&record, on_delivery) {
            Ok(TrySend::Sent) => Ok(()),
            Ok(TrySend::WouldBlock(on_delivery)) => {
                let producer = &*self.producer;
                py.detach(|| producer.send(&record, on_delivery))
            }
            Err(error) => Err(error),
        };
        if let (Err(error), Some(span)) = (&sent, if_refused) {
            span.fail(py, &exception(py, error));
        }
        sent.or_raise(py)?;
        self.dispatcher.complete_if_ready(py);
        Ok(future)
    }

    /// Sends many messages with one call: `records` is an iterable of dicts (`topic`, `value`,
    /// and optionally `key`, `headers`, `partition`, `timestamp`) or `(topic, value[, key])`
    /// tuples. Returns one Future of the list of reports, in order. The Future resolves even when
    /// messages were lost (each lost one's report says why, in its place), unless
    /// `raise_on_failure` is true: then it fails with the first lost message's exception, whose
    /// `reports` attribute holds every report. With `columns=True` the reports come as one
    /// `DeliveryReports` (partitions, offsets, latencies, outcomes and lost positions as lists;
    /// a message's `DeliveryReport` when indexed) instead of a Python object per message.
    #[pyo3(signature = (records, raise_on_failure = false, columns = false, _serialized = false))]
    fn send_batch(
        &self,
        py: Python<'_>,
        records: &Bound<'_, PyAny>,
        raise_on_failure: bool,
        columns: bool,
        _serialized: bool,
    ) -> PyResult<Py<PyAny>> {
        self.check_process(py)?;
        let items: Vec<Bound<'_, PyAny>> = records
            .try_iter()
            .map_err(|_| PyTypeError::new_err("records must be an iterable of dicts or tuples"))?
            .collect::<PyResult<_>>()?;
        let mut fields: Vec<[Option<Bound<'_, PyAny>>; 6]> =
            items.iter().map(record_fields).collect::<PyResult<_>>()?;
        if !_serialized {
            for [_, value, key, ..] in &mut fields {
                if let Some(v) = value {
                    *v = self.serializers.value(v)?;
                }
                if let Some(k) = key {
                    *k = self.serializers.key(k)?;
                }
            }
        }
        let args: Vec<RecordArgs<'_>> = fields
            .iter()
            .map(|[topic, value, key, headers, partition, timestamp]| {
                RecordArgs::extract(
                    topic.as_ref().expect("checked by record_fields"),
                    value.as_ref().expect("checked by record_fields"),
                    key.as_ref(),
                    headers.as_ref(),
                    partition.as_ref(),
                    timestamp.as_ref(),
                )
            })
            .collect::<PyResult<_>>()?;
        let mut waiter = self.waiter(py, None)?;
        let topic = args.first().map(|first| first.topic);
        let topic = topic.filter(|topic| args.iter().all(|a| a.topic == *topic));
        let key = match args.as_slice() {
            [one] => one.key.as_ref().map(Payload::as_slice),
            _ => None,
        };
        let trace = otel::start(py, topic, key, args.len()).map(|(span, trace)| {
            waiter.span = Some(span);
            trace
        });
        let future = waiter
            .future
            .as_ref()
            .expect("a waiter without a callback has a future")
            .clone_ref(py);
        let dispatcher = self.dispatcher.clone();
        let if_refused = waiter.span.as_ref().map(|span| span.clone_ref(py));
        let mut records: Vec<kafkasender::Record<'_>> =
            args.iter().map(RecordArgs::record).collect();
        if let Some(trace) = &trace {
            let headers = trace.headers();
            records.iter_mut().for_each(|r| r.replace_headers(&headers));
        }
        let producer = &*self.producer;
        let sent = py.detach(|| {
            producer.send_batch(
                &records,
                Box::new(move |reports| {
                    let outcome = match columns {
                        true => Outcome::Columns(reports, raise_on_failure),
                        false => Outcome::Batch(reports, raise_on_failure),
                    };
                    dispatcher.push(waiter, outcome)
                }),
            )
        });
        if let (Err(error), Some(span)) = (&sent, if_refused) {
            span.fail(py, &exception(py, error));
        }
        sent.or_raise(py)?;
        Ok(future)
    }

    /// Waits until every message sent so far is reported and its Future resolved, at most
    /// `timeout` seconds (None: no limit). Raises KafkaTimeoutError if some are still in flight.
    /// Releases the GIL while it waits.
    #[pyo3(signature = (timeout = None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        self.check_process(py)?;
        let timeout = seconds(timeout)?;
        let producer = &*self.producer;
        let dispatcher = &self.dispatcher;
        py.detach(|| {
            producer.flush(timeout)?;
            dispatcher.wait_idle(timeout);
            Ok::<(), Error>(())
        })
        .or_raise(py)
    }

    /// Opens a transaction (a producer made with `transactional.id`): every send until the commit
    /// or abort belongs to it. Raises TransactionError without `transactional.id`, or when a
    /// transaction is open. Prefer `with producer.transaction():`.
    fn begin_transaction(&self, py: Python<'_>) -> PyResult<()> {
        self.check_process(py)?;
        let producer = &*self.producer;
        py.detach(|| producer.begin_transaction()).or_raise(py)
    }

    /// Commits the open transaction, waiting at most `timeout` seconds (None: no limit). On
    /// return every message of it is committed and its Future resolved as delivered (a message is
    /// reported only when its transaction ends). When it cannot commit it is aborted, every Future
    /// fails with a retriable TransactionError, and so does this call, naming the transaction. A
    /// KafkaTimeoutError leaves it ending: commit or abort again. Releases the GIL while it waits.
    #[pyo3(signature = (timeout = None))]
    fn commit_transaction(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        self.end_transaction(py, timeout, kafkasender::Producer::commit_transaction)
    }

    /// Aborts the open transaction, waiting at most `timeout` seconds: every Future of it fails
    /// with a retriable TransactionError and no `read_committed` consumer sees its messages.
    #[pyo3(signature = (timeout = None))]
    fn abort_transaction(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        self.end_transaction(py, timeout, kafkasender::Producer::abort_transaction)
    }

    /// Makes the librdkafka client fail fatally as if a broker had answered with `code` (see
    /// `kafkasender.testing.inject_fatal_error`).
    fn _inject_fatal_error(&self, py: Python<'_>, code: i32) -> PyResult<()> {
        kafkasender::testing::inject_fatal_error(&self.producer, code, "injected from Python")
            .or_raise(py)
    }

    /// Whether the producer was made with `transactional.id`.
    #[getter]
    fn transactional(&self) -> bool {
        self.producer.is_transactional()
    }

    /// Stops accepting messages, waits up to `timeout` seconds (None: `close.timeout.ms`) for
    /// those in flight, then fails (or, with a spool, spools) the rest. Every Future is resolved
    /// when it returns; returns how many messages were failed for want of time. Closing again
    /// does nothing. Releases the GIL while it waits.
    #[pyo3(signature = (timeout = None))]
    fn close(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<u64> {
        self.check_process(py)?;
        let timeout = match timeout {
            None => self.producer.settings().close_timeout,
            some => seconds(some)?,
        };
        let producer = &*self.producer;
        let report = py.detach(|| producer.close(timeout));
        self.stop_dispatcher(py);
        Ok(report.purged)
    }

    /// Whether `close()` has been called.
    #[getter]
    fn closed(&self) -> bool {
        self.producer.is_closed()
    }

    /// Messages sent and not yet reported.
    #[getter]
    fn in_flight(&self) -> usize {
        self.producer.in_flight()
    }

    /// Re-sends everything in the spool (`spool.dir`); returns a dict with `files`, `records` and
    /// `torn` (records skipped as torn or corrupt).
    fn replay_spool<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.check_process(py)?;
        let producer = &*self.producer;
        let report = py.detach(|| producer.replay_spool()).or_raise(py)?;
        let dict = PyDict::new(py);
        dict.set_item("files", report.files)?;
        dict.set_item("records", report.records)?;
        dict.set_item("torn", report.torn.len())?;
        Ok(dict)
    }

    /// The core's metrics by name (tests/parity/metrics.txt: counts, and seconds for names
    /// ending in `_seconds`), and `callback_errors`: on_delivery callbacks that raised.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for metric in self.producer.metrics().list() {
            match metric.value {
                MetricValue::Count(n) => dict.set_item(metric.name, n)?,
                MetricValue::Seconds(s) => dict.set_item(metric.name, s)?,
            }
        }
        // The Python face's own: on_delivery callbacks that raised.
        dict.set_item(
            "callback_errors",
            self.dispatcher.callback_errors.load(Ordering::Relaxed),
        )?;
        Ok(dict)
    }

    /// Gives every record without an explicit partition the one
    /// `partitioner(topic, key, partition_count)` returns (`key`: bytes or None), called on the
    /// sending thread. A partition out of range, or an exception, fails that send with
    /// InvalidRecordError naming it. Set once, before sending.
    fn set_partitioner(&self, py: Python<'_>, partitioner: Py<PyAny>) -> PyResult<()> {
        if !partitioner.bind(py).is_callable() {
            return Err(PyTypeError::new_err("partitioner must be callable"));
        }
        let function = move |request: &PartitionRequest<'_>| {
            Python::attach(|py| {
                let key = request.key.map(|k| PyBytes::new(py, k));
                partitioner
                    .call1(py, (request.topic, key, request.partition_count))
                    .and_then(|partition| partition.extract::<i32>(py))
                    .map_err(|e| e.to_string())
            })
        };
        self.producer
            .set_partitioner(Box::new(function))
            .or_raise(py)
    }

    /// The record an event is published as: `(topic, key, value, headers)` (see
    /// `publish_event` in the Python layer).
    fn _event_record<'py>(&self, py: Python<'py>, event: &Event) -> PyResult<RecordParts<'py>> {
        let record = self.producer.event_record(&event.inner).or_raise(py)?;
        Ok(record_parts(py, record))
    }

    /// Sends events of a type (`api.error`) or a prefix pattern (`user.*`) to `topic` from now
    /// on, over what `event.topic.map` said.
    fn map_event_topic(&self, py: Python<'_>, pattern: &str, topic: &str) -> PyResult<()> {
        self.producer.map_event_topic(pattern, topic).or_raise(py)
    }

    /// The metrics in Prometheus text exposition format.
    fn metrics_prometheus(&self) -> String {
        self.producer.metrics_prometheus()
    }

    /// `{"status": "healthy" | "degraded" | "unhealthy", "reasons": [...]}`.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let health = self.producer.health();
        let dict = PyDict::new(py);
        dict.set_item(
            "status",
            match health.status {
                HealthStatus::Healthy => "healthy",
                HealthStatus::Degraded => "degraded",
                HealthStatus::Unhealthy => "unhealthy",
            },
        )?;
        dict.set_item("reasons", health.reasons)?;
        Ok(dict)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py, None)?;
        Ok(false)
    }
}

impl Producer {
    /// Commits or aborts, then waits until the transaction's reports reached their Futures.
    fn end_transaction(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        end: fn(&kafkasender::Producer, Duration) -> kafkasender::Result<()>,
    ) -> PyResult<()> {
        self.check_process(py)?;
        let timeout = seconds(timeout)?;
        let producer = &*self.producer;
        let dispatcher = &self.dispatcher;
        py.detach(|| {
            let ended = end(producer, timeout);
            dispatcher.wait_idle(timeout);
            ended
        })
        .or_raise(py)
    }

    fn start(
        py: Python<'_>,
        config: kafkasender::Result<Config>,
        serializers: Serializers,
    ) -> PyResult<Producer> {
        let config = config.or_raise(py)?;
        kafkasender::logging::init_from(config.settings());
        let producer = py
            .detach(|| kafkasender::Producer::new(config))
            .or_raise(py)?;
        let (dispatcher, thread) = Dispatcher::start();
        Ok(Producer {
            producer: ManuallyDrop::new(producer),
            dispatcher,
            dispatcher_thread: Mutex::new(Some(thread)),
            pid: std::process::id(),
            fork_generation: crate::fork::generation(),
            serializers,
        })
    }

    fn waiter(&self, py: Python<'_>, on_delivery: Option<&Bound<'_, PyAny>>) -> PyResult<Waiter> {
        let class = FUTURE_CLASS.get_or_try_init(py, || {
            Ok::<_, PyErr>(
                py.import("kafkasender._future")?
                    .getattr("DeliveryFuture")?
                    .unbind(),
            )
        })?;
        let on_delivery = match on_delivery {
            Some(callback) if !callback.is_none() => {
                if !callback.is_callable() {
                    return Err(PyTypeError::new_err("on_delivery must be callable or None"));
                }
                Some(callback.clone().unbind())
            }
            _ => None,
        };
        // A callback, or a future: the future is made only when nobody is called back.
        let future = match on_delivery {
            Some(_) => None,
            None => Some(class.call0(py)?),
        };
        Ok(Waiter {
            future,
            on_delivery,
            span: None,
        })
    }

    fn check_process(&self, py: Python<'_>) -> PyResult<()> {
        // One atomic load: asking the kernel for the pid on every send would cost a syscall.
        if !self.forked_away() {
            return Ok(());
        }
        Err(exception(
            py,
            &Error::new(
                ErrorKind::Closed,
                format!(
                    "this producer was made in process {} and cannot work in this forked child \
                     (librdkafka's threads do not survive fork); make producers after forking",
                    self.pid
                ),
            ),
        ))
    }

    /// Whether this is a forked child of the process that made the producer.
    fn forked_away(&self) -> bool {
        crate::fork::generation() != self.fork_generation
    }

    fn stop_dispatcher(&self, py: Python<'_>) {
        self.dispatcher.stop();
        let thread = self
            .dispatcher_thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match thread {
            // Closed from a callback the dispatcher thread runs: it ends once that batch is done.
            Some(thread) if thread.thread().id() == std::thread::current().id() => {}
            // The dispatcher needs the GIL to finish its last batch.
            Some(thread) => py.detach(|| drop(thread.join())),
            None => {}
        }
        self.dispatcher.drain(py);
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if self.forked_away() {
            return; // a forked child: the threads to stop are not in this process
        }
        Python::attach(|py| {
            // SAFETY: dropped exactly once, here.
            let producer = unsafe { ManuallyDrop::take(&mut self.producer) };
            py.detach(move || drop(producer)); // closes with close.timeout.ms
            self.stop_dispatcher(py);
        });
    }
}

/// The fields of one `send_batch` record: topic, value, key, headers, partition, timestamp.
fn record_fields<'py>(item: &Bound<'py, PyAny>) -> PyResult<[Option<Bound<'py, PyAny>>; 6]> {
    if let Ok(dict) = item.cast::<PyDict>() {
        let topic = dict
            .get_item("topic")?
            .ok_or_else(|| PyTypeError::new_err("each record dict needs a 'topic'"))?;
        let value = dict
            .get_item("value")?
            .unwrap_or_else(|| item.py().None().into_bound(item.py()));
        return Ok([
            Some(topic),
            Some(value),
            dict.get_item("key")?,
            dict.get_item("headers")?,
            dict.get_item("partition")?,
            dict.get_item("timestamp")?,
        ]);
    }
    if let Ok(tuple) = item.cast::<PyTuple>() {
        if (2..=3).contains(&tuple.len()) {
            return Ok([
                Some(tuple.get_item(0)?),
                Some(tuple.get_item(1)?),
                tuple.get_item(2).ok(),
                None,
                None,
                None,
            ]);
        }
    }
    Err(PyTypeError::new_err(
        "each record must be a dict with 'topic' and 'value', or a (topic, value[, key]) tuple",
    ))
}

fn seconds(timeout: Option<f64>) -> PyResult<Duration> {
    match timeout {
        None => Ok(FOREVER),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Duration::from_secs_f64(s).min(FOREVER)),
        Some(_) => Err(PyTypeError::new_err(
            "timeout must be a non-negative number of seconds or None",
        )),
    }
}
