//! The `kafkasender._kafkasender` extension module: thin conversions between Python and the core.
//! Everything a Python user calls directly is re-exported (and documented) by the pure-Python
//! package `kafkasender`, which also holds the exception classes and the asyncio glue.

mod convert;
mod dispatch;
mod errors;
mod events;
mod fork;
mod logs;
mod mock;
mod otel;
mod producer;
mod serialize;

use pyo3::prelude::*;

/// The producers a file of named producers (TOML) has, after checking every one of them; a
/// ConfigError lists every problem otherwise.
#[pyfunction]
fn producer_names(py: Python<'_>, file: std::path::PathBuf) -> PyResult<Vec<String>> {
    use crate::errors::IntoPyResult;
    let producers = kafkasender::Producers::from_file(file).or_raise(py)?;
    Ok(producers.names().into_iter().map(String::from).collect())
}

#[pymodule]
fn _kafkasender(module: &Bound<'_, PyModule>) -> PyResult<()> {
    fork::watch();
    logs::forward_to_logging();
    module.add_class::<producer::Producer>()?;
    module.add_class::<convert::DeliveryReport>()?;
    module.add_class::<convert::DeliveryReports>()?;
    module.add_class::<mock::MockCluster>()?;
    module.add_class::<events::Event>()?;
    module.add_function(wrap_pyfunction!(producer_names, module)?)?;
    module.add("__version__", kafkasender::VERSION)?;
    module.add("librdkafka_version", kafkasender::librdkafka_version())?;
    Ok(())
}
