//! The one mapping from the core's `Error` to Python exceptions. The classes live in
//! `kafkasender/errors.py` (one per `ErrorKind`, found by the kind's name), so Python code can
//! subclass, pickle and document them like any exception.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

static BY_KIND: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

/// The Python exception for a core error: `KafkaSenderError` subclass instance with `.kind`,
/// `.retriable` and `.code`.
pub fn exception(py: Python<'_>, error: &kafkasender::Error) -> PyErr {
    match instance(py, error) {
        Ok(instance) => PyErr::from_value(instance),
        Err(import_failed) => import_failed,
    }
}

/// The exception instance itself (for `DeliveryReport.error`).
pub fn instance<'py>(py: Python<'py>, error: &kafkasender::Error) -> PyResult<Bound<'py, PyAny>> {
    let by_kind = BY_KIND.get_or_try_init(py, || -> PyResult<Py<PyDict>> {
        let module = py.import("kafkasender.errors")?;
        Ok(module.getattr("_BY_KIND")?.cast_into::<PyDict>()?.unbind())
    })?;
    let class = by_kind
        .bind(py)
        .get_item(error.kind().as_str())?
        .ok_or_else(|| {
            PyRuntimeError::new_err(format!("no exception class for {}", error.kind()))
        })?;
    class.call1((
        error.message(),
        error.kind().as_str(),
        error.is_retriable(),
        error.code(),
    ))
}

/// Result conversion for `?` in methods.
pub trait IntoPyResult<T> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, kafkasender::Error> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|error| exception(py, &error))
    }
}
