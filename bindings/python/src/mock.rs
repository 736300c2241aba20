//! `kafkasender.testing.MockCluster`: librdkafka's in-process mock brokers, for tests.

use std::time::Duration;

use kafkasender::testing::{read_topic, MockApi, MockCluster as CoreMockCluster};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::errors::IntoPyResult;

/// Mock Kafka brokers on 127.0.0.1 in this process (the real Kafka protocol).
#[pyclass(frozen, module = "kafkasender.testing")]
pub struct MockCluster {
    cluster: CoreMockCluster,
}

#[pymethods]
impl MockCluster {
    #[new]
    #[pyo3(signature = (brokers = 3))]
    fn new(py: Python<'_>, brokers: u16) -> PyResult<MockCluster> {
        let cluster = CoreMockCluster::new(brokers).or_raise(py)?;
        Ok(MockCluster { cluster })
    }

    /// The bootstrap servers, for `bootstrap.servers`.
    #[getter]
    fn bootstrap_servers(&self) -> &str {
        self.cluster.bootstrap_servers()
    }

    #[pyo3(signature = (topic, partitions = 4, replication_factor = 1))]
    fn create_topic(
        &self,
        py: Python<'_>,
        topic: &str,
        partitions: i32,
        replication_factor: i32,
    ) -> PyResult<()> {
        self.cluster
            .create_topic(topic, partitions, replication_factor)
            .or_raise(py)
    }

    fn broker_down(&self, py: Python<'_>, broker_id: i32) -> PyResult<()> {
        self.cluster.broker_down(broker_id).or_raise(py)
    }

    fn broker_up(&self, py: Python<'_>, broker_id: i32) -> PyResult<()> {
        self.cluster.broker_up(broker_id).or_raise(py)
    }

    /// Makes the next requests of `api` ("produce", "metadata", …) fail with `codes`, one each,
    /// in order (librdkafka's error codes).
    fn push_request_errors(&self, py: Python<'_>, api: &str, codes: Vec<i32>) -> PyResult<()> {
        MockApi::from_name(api)
            .and_then(|api| self.cluster.push_request_errors(api, &codes))
            .or_raise(py)
    }

    /// Every record of `topic`, read with a consumer of its own, as dicts with `partition`,
    /// `offset`, `key`, `value`, `headers` (list of pairs) and `timestamp`.
    #[pyo3(signature = (topic, timeout = 60.0))]
    fn read_topic<'py>(
        &self,
        py: Python<'py>,
        topic: &str,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyList>> {
        let bootstrap = self.cluster.bootstrap_servers().to_string();
        let topic = topic.to_string();
        let records = py
            .detach(move || read_topic(&bootstrap, &topic, Duration::from_secs_f64(timeout)))
            .or_raise(py)?;
        let bytes = |b: &Option<Vec<u8>>| b.as_deref().map(|b| PyBytes::new(py, b));
        let rows = records
            .iter()
            .map(|r| {
                let row = PyDict::new(py);
                row.set_item("partition", r.partition)?;
                row.set_item("offset", r.offset)?;
                row.set_item("key", bytes(&r.key))?;
                row.set_item("value", bytes(&r.value))?;
                let headers: Vec<(String, Option<Bound<'_, PyBytes>>)> = r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), bytes(v)))
                    .collect();
                row.set_item("headers", headers)?;
                row.set_item("timestamp", r.timestamp)?;
                Ok(row)
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, rows)
    }
}
