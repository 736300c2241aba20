//! Python values in (config, record fields) and the `DeliveryReport` out.

use std::collections::BTreeMap;

use kafkasender::{Outcome, Record};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyList, PyMemoryView, PyString, PyTuple};

/// A record's headers: names, and values owned (null headers are `None`).
pub type Headers = Vec<(String, Option<Payload<'static>>)>;

/// Bytes borrowed from a Python object (`bytes`, `str`), or copied from a mutable one
/// (`bytearray`, `memoryview`) so another thread cannot change them while the GIL is released.
pub enum Payload<'py> {
    Borrowed(&'py [u8]),
    Owned(Vec<u8>),
}

impl Payload<'_> {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Borrowed(bytes) => bytes,
            Payload::Owned(bytes) => bytes,
        }
    }
}

/// `bytes`, `bytearray`, `memoryview`, `str` (UTF-8) or `None`; anything else is a `TypeError`
/// naming the argument.
pub fn payload<'a>(value: &'a Bound<'_, PyAny>, name: &str) -> PyResult<Option<Payload<'a>>> {
    if value.is_none() {
        return Ok(None);
    }
    if let Ok(bytes) = value.cast::<PyBytes>() {
        // Immutable, and kept alive by the caller's argument for as long as the borrow.
        return Ok(Some(Payload::Borrowed(bytes.as_bytes())));
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(Some(Payload::Owned(text.to_cow()?.as_bytes().to_vec())));
    }
    if value.is_instance_of::<PyByteArray>() || value.is_instance_of::<PyMemoryView>() {
        let copied = value.py().get_type::<PyBytes>().call1((value,))?;
        return Ok(Some(Payload::Owned(
            copied.cast::<PyBytes>()?.as_bytes().to_vec(),
        )));
    }
    Err(PyTypeError::new_err(format!(
        "{name} must be bytes, bytearray, memoryview, str or None, not {}",
        value.get_type().name()?
    )))
}

/// Headers: a dict, or a list of `(key, value)` pairs (repeated keys allowed). Keys are `str`;
/// values as [`payload`], copied (headers are small, and a dict's values are not pinned by the caller).
pub fn headers(value: &Bound<'_, PyAny>) -> PyResult<Headers> {
    if value.is_none() {
        return Ok(Vec::new());
    }
    let pairs: Vec<Bound<'_, PyAny>> = if let Ok(dict) = value.cast::<PyDict>() {
        dict.items().iter().collect()
    } else if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        value.try_iter()?.collect::<PyResult<_>>()?
    } else {
        return Err(PyTypeError::new_err(format!(
            "headers must be a dict or a list of (key, value) pairs, not {}",
            value.get_type().name()?
        )));
    };
    pairs
        .iter()
        .map(|pair| {
            let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair
                .extract()
                .map_err(|_| PyTypeError::new_err("each header must be a (key, value) pair"))?;
            let key: String = key
                .extract()
                .map_err(|_| PyTypeError::new_err("header keys must be str"))?;
            let value =
                payload(&value, "header value")?.map(|v| Payload::Owned(v.as_slice().to_vec()));
            Ok((key, value))
        })
        .collect()
}

/// Configuration values: `str`, `int`, `float` or `bool` (as `true`/`false`).
pub fn config_map(
    config: Option<&Bound<'_, PyDict>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    let mut add = |key: String, value: &Bound<'_, PyAny>| -> PyResult<()> {
        let text = if value.is_instance_of::<PyBool>() {
            value.extract::<bool>()?.to_string()
        } else if value.is_instance_of::<PyString>() {
            value.extract::<String>()?
        } else if let Ok(number) = value.extract::<i64>() {
            number.to_string()
        } else if let Ok(number) = value.extract::<f64>() {
            number.to_string()
        } else {
            return Err(PyTypeError::new_err(format!(
                "configuration value of {key:?} must be str, int, float or bool, not {}",
                value.get_type().name()?
            )));
        };
        map.insert(key, text);
        Ok(())
    };
    if let Some(config) = config {
        for (key, value) in config.iter() {
            let key: String = key
                .extract()
                .map_err(|_| PyTypeError::new_err("configuration keys must be str"))?;
            add(key, &value)?;
        }
    }
    // Keyword arguments cannot hold dots: `linger_ms=5` means `linger.ms`.
    if let Some(options) = options {
        for (key, value) in options.iter() {
            add(key.extract::<String>()?.replace('_', "."), &value)?;
        }
    }
    Ok(map)
}

/// Everything a record needs, extracted under the GIL, borrowing `bytes` arguments.
pub struct RecordArgs<'a> {
    pub topic: &'a str,
    pub value: Option<Payload<'a>>,
    pub key: Option<Payload<'a>>,
    pub headers: Headers,
    pub partition: Option<i32>,
    pub timestamp: Option<i64>,
}

impl<'a> RecordArgs<'a> {
    pub fn extract(
        topic: &'a Bound<'_, PyAny>,
        value: &'a Bound<'_, PyAny>,
        key: Option<&'a Bound<'_, PyAny>>,
        headers_arg: Option<&Bound<'_, PyAny>>,
        partition: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<RecordArgs<'a>> {
        // Borrowed from the str's own UTF-8 form (kept alive by the caller's argument): no copy
        // per record.
        let topic = topic
            .cast::<PyString>()
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "topic must be str, not {}",
                    topic
                        .get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?
            .to_str()?;
        let int = |arg: Option<&Bound<'_, PyAny>>, name: &str| -> PyResult<Option<i64>> {
            match arg {
                Some(v) if !v.is_none() && !v.is_instance_of::<PyBool>() => v
                    .extract::<i64>()
                    .map(Some)
                    .map_err(|_| PyTypeError::new_err(format!("{name} must be int or None"))),
                Some(v) if v.is_instance_of::<PyBool>() => {
                    Err(PyTypeError::new_err(format!("{name} must be int or None")))
                }
                _ => Ok(None),
            }
        };
        let partition = match int(partition, "partition")? {
            Some(p) => Some(
                i32::try_from(p)
                    .map_err(|_| PyTypeError::new_err("partition must fit in 32 bits"))?,
            ),
            None => None,
        };
        Ok(RecordArgs {
            topic,
            value: payload(value, "value")?,
            key: match key {
                Some(k) => payload(k, "key")?,
                None => None,
            },
            headers: match headers_arg {
                Some(h) => headers(h)?,
                None => Vec::new(),
            },
            partition,
            timestamp: int(timestamp, "timestamp")?,
        })
    }

    pub fn record(&self) -> Record<'_> {
        Record {
            topic: self.topic,
            key: self.key.as_ref().map(Payload::as_slice),
            value: self.value.as_ref().map(Payload::as_slice),
            headers: self
                .headers
                .iter()
                .map(|(key, value)| kafkasender::Header {
                    key,
                    value: value.as_ref().map(Payload::as_slice),
                })
                .collect(),
            partition: self.partition,
            timestamp: self.timestamp,
        }
    }
}

/// What happened to one message. Immutable.
#[pyclass(frozen, module = "kafkasender")]
pub struct DeliveryReport {
    topic: kafkasender::TopicName,
    #[pyo3(get)]
    partition: i32,
    #[pyo3(get)]
    offset: i64,
    /// Milliseconds since the epoch, or None.
    #[pyo3(get)]
    timestamp: Option<i64>,
    key: Option<kafkasender::Bytes>,
    #[pyo3(get)]
    attempts: u32,
    /// Seconds from send to this report.
    #[pyo3(get)]
    latency: f64,
    /// "delivered", "dead_lettered", "spooled" or "failed".
    #[pyo3(get)]
    outcome: &'static str,
    /// The dead-letter topic or the spool file, or None.
    #[pyo3(get)]
    destination: Option<String>,
    /// The KafkaSenderError that kept the message from its topic, or None when delivered.
    #[pyo3(get)]
    error: Option<Py<PyAny>>,
    /// Whether it was sent again through a new client after the first failed fatally
    /// (at-least-once: the first may have written it too).
    #[pyo3(get)]
    recovered: bool,
}

#[pymethods]
impl DeliveryReport {
    #[getter]
    fn topic(&self) -> &str {
        &self.topic
    }

    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.key.as_deref().map(|k| PyBytes::new(py, k))
    }

    /// Whether the message reached its topic.
    #[getter]
    fn delivered(&self) -> bool {
        self.outcome == "delivered"
    }

    fn __repr__(&self) -> String {
        format!(
            "DeliveryReport(topic={:?}, partition={}, offset={}, outcome={:?}, attempts={})",
            self.topic, self.partition, self.offset, self.outcome, self.attempts
        )
    }
}

impl DeliveryReport {
    /// "delivered", "dead_lettered", "spooled" or "failed".
    pub fn outcome(&self) -> &'static str {
        self.outcome
    }

    /// The exception that kept the message from its topic.
    pub fn error(&self) -> Option<&Py<PyAny>> {
        self.error.as_ref()
    }

    pub fn new(py: Python<'_>, report: kafkasender::DeliveryReport) -> PyResult<DeliveryReport> {
        let error = match report.outcome.error() {
            Some(error) => Some(crate::errors::instance(py, error)?.unbind()),
            None => None,
        };
        let destination = match &report.outcome {
            Outcome::DeadLettered { topic, .. } => Some(topic.clone()),
            Outcome::Spooled { path, .. } => Some(path.display().to_string()),
            Outcome::Delivered | Outcome::Failed(_) => None,
        };
        Ok(DeliveryReport {
            outcome: report.outcome.as_str(),
            topic: report.topic,
            partition: report.partition,
            offset: report.offset,
            timestamp: report.timestamp,
            key: report.key,
            attempts: report.attempts,
            latency: report.latency.as_secs_f64(),
            destination,
            error,
            recovered: report.recovered,
        })
    }
}

/// The reports of one batch as columns (`send_batch(records, columns=True)`): one Python object
/// for the batch instead of one per message, which is what a batch of thousands costs under the
/// GIL. A message's `DeliveryReport` is made only when it is indexed (or iterated). Immutable.
#[pyclass(frozen, sequence, module = "kafkasender")]
pub struct DeliveryReports {
    reports: Vec<kafkasender::DeliveryReport>,
}

impl DeliveryReports {
    pub fn new(reports: Vec<kafkasender::DeliveryReport>) -> DeliveryReports {
        DeliveryReports { reports }
    }

    /// The error of the first lost message, if one was lost.
    pub fn first_lost(&self) -> Option<&kafkasender::Error> {
        self.reports
            .iter()
            .find_map(|report| match &report.outcome {
                Outcome::Failed(error) => Some(error),
                _ => None,
            })
    }

    fn column<T>(&self, of: impl Fn(&kafkasender::DeliveryReport) -> T) -> Vec<T> {
        self.reports.iter().map(of).collect()
    }
}

#[pymethods]
impl DeliveryReports {
    fn __len__(&self) -> usize {
        self.reports.len()
    }

    /// The report of message `index` (in the order sent; negative counts from the end).
    fn __getitem__(&self, py: Python<'_>, index: isize) -> PyResult<DeliveryReport> {
        let len = self.reports.len() as isize;
        let at = if index < 0 { index + len } else { index };
        if !(0..len).contains(&at) {
            return Err(pyo3::exceptions::PyIndexError::new_err(
                "report index out of range",
            ));
        }
        DeliveryReport::new(py, self.reports[at as usize].clone())
    }

    /// Each message's partition (-1 if none was assigned), in the order sent.
    #[getter]
    fn partitions(&self) -> Vec<i32> {
        self.column(|r| r.partition)
    }

    /// Each message's offset (-1 unless delivered or dead-lettered, or when the acknowledgement carried none).
    #[getter]
    fn offsets(&self) -> Vec<i64> {
        self.column(|r| r.offset)
    }

    /// Each message's seconds from send to report.
    #[getter]
    fn latencies(&self) -> Vec<f64> {
        self.column(|r| r.latency.as_secs_f64())
    }

    /// Each message's outcome: "delivered", "dead_lettered", "spooled" or "failed".
    #[getter]
    fn outcomes(&self) -> Vec<&'static str> {
        self.column(|r| r.outcome.as_str())
    }

    /// The positions of the messages that were lost (outcome "failed"); index them for why.
    #[getter]
    fn lost(&self) -> Vec<usize> {
        (0..self.reports.len())
            .filter(|&i| matches!(self.reports[i].outcome, Outcome::Failed(_)))
            .collect()
    }

    fn __repr__(&self) -> String {
        let (len, lost) = (self.reports.len(), self.lost().len());
        format!("DeliveryReports({len} reports, {lost} lost)")
    }
}
