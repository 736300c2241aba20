//! Business events: the core's CloudEvents envelope. Python hands the data over as JSON text
//! (`json.dumps` in the pure-Python `EventBuilder`) and gets it back through `json.loads`.

use kafkasender::events::EventBuilder;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::IntoPyResult;

/// One business event (a CloudEvents 1.0 envelope). Make them with `EventBuilder.event`.
#[pyclass(frozen, module = "kafkasender", name = "Event")]
pub struct Event {
    pub(crate) inner: kafkasender::events::Event,
}

#[pymethods]
impl Event {
    #[new]
    #[pyo3(signature = (event_type, data_json, *, source, correlation_id = None, causation_id = None, version = None))]
    fn new(
        event_type: &str,
        data_json: &str,
        source: &str,
        correlation_id: Option<String>,
        causation_id: Option<String>,
        version: Option<String>,
    ) -> PyResult<Event> {
        let data = serde_json::from_str(data_json)
            .map_err(|e| PyValueError::new_err(format!("data_json is not JSON: {e}")))?;
        let mut builder = EventBuilder::new(source);
        if let Some(version) = version {
            builder = builder.version(version);
        }
        if let Some(correlation_id) = correlation_id {
            builder = builder.correlation_id(correlation_id);
        }
        let mut inner = builder.event(event_type, data);
        inner.causation_id = causation_id;
        Ok(Event { inner })
    }

    /// Reads an envelope (the value of a record `publish_event` wrote).
    #[staticmethod]
    fn from_json(py: Python<'_>, json: &str) -> PyResult<Event> {
        let inner = kafkasender::events::Event::from_json(json).or_raise(py)?;
        Ok(Event { inner })
    }

    /// The envelope as CloudEvents JSON.
    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }

    #[getter]
    fn r#type(&self) -> &str {
        &self.inner.event_type
    }

    #[getter]
    fn source(&self) -> &str {
        &self.inner.source
    }

    /// RFC 3339, UTC, with milliseconds.
    #[getter]
    fn time(&self) -> String {
        kafkasender::events::rfc3339(self.inner.time)
    }

    /// The data, as `json.loads` gives it.
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?
            .call_method1("loads", (self.inner.data.to_string(),))
    }

    #[getter]
    fn correlation_id(&self) -> &str {
        &self.inner.correlation_id
    }

    #[getter]
    fn causation_id(&self) -> Option<&str> {
        self.inner.causation_id.as_deref()
    }

    #[getter]
    fn version(&self) -> Option<&str> {
        self.inner.version.as_deref()
    }

    fn __repr__(&self) -> String {
        format!(
            "Event(type={:?}, id={:?})",
            self.inner.event_type, self.inner.id
        )
    }
}

/// What `Producer.publish_event` sends: `(topic, key, value, headers)`.
pub type RecordParts<'py> = (
    String,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Vec<(String, Bound<'py, PyBytes>)>,
);

pub fn record_parts<'py>(py: Python<'py>, record: kafkasender::OwnedRecord) -> RecordParts<'py> {
    let bytes = |b: Option<Vec<u8>>| PyBytes::new(py, &b.unwrap_or_default());
    let headers = record
        .headers
        .into_iter()
        .map(|(k, v)| (k, bytes(v)))
        .collect();
    (
        record.topic,
        bytes(record.key),
        bytes(record.value),
        headers,
    )
}
