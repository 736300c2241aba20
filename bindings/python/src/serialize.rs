//! `Producer(value_serializer=…, key_serializer=…)`: what turns a value or key of the caller's
//! into bytes before it becomes a record. `"json"`, `"str"` (kafkasender/_serializers.py) or any
//! callable returning bytes. Without one, only bytes-like values and `str` are taken (see
//! `convert::payload`): an explicit choice, never a guess that changes bytes silently.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

#[derive(Default)]
pub struct Serializers {
    value: Option<Py<PyAny>>,
    key: Option<Py<PyAny>>,
}

impl Serializers {
    pub fn new(
        py: Python<'_>,
        value: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Serializers> {
        Ok(Serializers {
            value: resolve(py, value, "value_serializer")?,
            key: resolve(py, key, "key_serializer")?,
        })
    }

    /// `value` as the record takes it: serialized when a serializer is set (`None`, a tombstone,
    /// stays `None`).
    pub fn value<'py>(&self, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        apply(self.value.as_ref(), value, "value_serializer")
    }

    /// `key` as the record takes it (`None`, no key, stays `None`).
    pub fn key<'py>(&self, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        apply(self.key.as_ref(), key, "key_serializer")
    }
}

fn resolve(
    py: Python<'_>,
    serializer: Option<&Bound<'_, PyAny>>,
    name: &str,
) -> PyResult<Option<Py<PyAny>>> {
    let Some(serializer) = serializer.filter(|s| !s.is_none()) else {
        return Ok(None);
    };
    if let Ok(named) = serializer.extract::<String>() {
        let known = py.import("kafkasender._serializers")?.getattr("NAMED")?;
        return match known.get_item(&named) {
            Ok(function) => Ok(Some(function.unbind())),
            Err(_) => Err(PyTypeError::new_err(format!(
                "{name} must be \"json\", \"str\" or a callable returning bytes, not {named:?}"
            ))),
        };
    }
    if !serializer.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be \"json\", \"str\" or a callable returning bytes"
        )));
    }
    Ok(Some(serializer.clone().unbind()))
}

fn apply<'py>(
    serializer: Option<&Py<PyAny>>,
    value: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    match serializer {
        Some(serializer) if !value.is_none() => {
            let bytes = serializer.bind(value.py()).call1((value,))?;
            if !bytes.is_instance_of::<PyBytes>() {
                return Err(PyTypeError::new_err(format!(
                    "{name} must return bytes, not {}",
                    bytes.get_type().name()?
                )));
            }
            Ok(bytes)
        }
        _ => Ok(value.clone()),
    }
}
