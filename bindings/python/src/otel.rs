//! OpenTelemetry spans and trace headers through Python's own API (`kafkasender/_tracing.py`),
//! asked for only once the program has set a tracer provider: until then a send costs one
//! lookup in `sys.modules` (and one attribute read once the program has imported
//! OpenTelemetry). Never imported from here: a program that set a tracer provider has imported
//! `opentelemetry.trace` itself, and importing it for one that has not cost 2.4 MB of RSS and 44
//! modules whenever the package was merely installed.

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

/// `kafkasender._tracing` and `opentelemetry.trace`, once the program has imported the latter.
struct Hooks {
    tracing: Py<PyModule>,
    trace_api: Py<PyModule>,
}

static HOOKS: PyOnceLock<Option<Hooks>> = PyOnceLock::new();
/// Set once a tracer provider is seen: OpenTelemetry lets a program set one only once.
static PROVIDER_SET: AtomicBool = AtomicBool::new(false);

/// The hooks, once the program has imported `opentelemetry.trace`.
fn hooks(py: Python<'_>) -> Option<&'static Hooks> {
    if let Some(hooks) = HOOKS.get(py) {
        return hooks.as_ref();
    }
    static MODULES: PyOnceLock<Option<Py<PyDict>>> = PyOnceLock::new();
    let modules = MODULES
        .get_or_init(py, || {
            let modules = py.import("sys").ok()?.getattr("modules").ok()?;
            Some(modules.cast_into::<PyDict>().ok()?.unbind())
        })
        .as_ref()?
        .bind(py);
    // The dict's own lookup: a module not imported costs no KeyError.
    if !matches!(
        modules.get_item(intern!(py, "opentelemetry.trace")),
        Ok(Some(_))
    ) {
        return None;
    }
    HOOKS
        .get_or_init(py, || {
            let trace_api = py.import("opentelemetry.trace").ok()?.unbind();
            let tracing = py.import("kafkasender._tracing").ok()?.unbind();
            Some(Hooks { tracing, trace_api })
        })
        .as_ref()
}

/// The hooks, if a tracer provider is set.
fn active(py: Python<'_>) -> Option<&'static Hooks> {
    let hooks = hooks(py)?;
    if !PROVIDER_SET.load(Ordering::Relaxed) {
        // `set_tracer_provider` stores it here; should a later OpenTelemetry move it, every
        // send asks `_tracing`, whose spans are then merely non-recording until one is set.
        let set = match hooks
            .trace_api
            .bind(py)
            .getattr(intern!(py, "_TRACER_PROVIDER"))
        {
            Ok(provider) => !provider.is_none(),
            Err(_) => true,
        };
        if !set {
            return None;
        }
        PROVIDER_SET.store(true, Ordering::Relaxed);
    }
    Some(hooks)
}

/// A send's span, ended by the dispatcher with the report (or by [`Span::fail`]).
pub struct Span(Py<PyAny>);

/// Starts the span of sending `count` records to `topic` (`None`: several topics) and returns it
/// with the trace headers to add to each record; `None` when nobody traces (or tracing failed:
/// that is reported, and the send goes on untraced).
pub fn start(
    py: Python<'_>,
    topic: Option<&str>,
    key: Option<&[u8]>,
    count: usize,
) -> Option<(Span, TraceHeaders)> {
    let hooks = active(py)?;
    let key = key.and_then(|key| std::str::from_utf8(key).ok());
    let started = hooks
        .tracing
        .bind(py)
        .call_method1(intern!(py, "start"), (topic, key, count))
        .and_then(|started| started.extract::<(Py<PyAny>, Vec<(String, Vec<u8>)>)>());
    match started {
        Ok((span, headers)) => Some((Span(span), TraceHeaders(headers))),
        Err(error) => {
            error.write_unraisable(py, None);
            None
        }
    }
}

/// The trace headers the host's propagator wrote, as names and values.
pub struct TraceHeaders(Vec<(String, Vec<u8>)>);

impl TraceHeaders {
    /// As headers for [`kafkasender::Record::replace_headers`].
    pub fn headers(&self) -> Vec<kafkasender::Header<'_>> {
        self.0
            .iter()
            .map(|(key, value)| kafkasender::Header {
                key,
                value: Some(value),
            })
            .collect()
    }
}

impl Span {
    /// Another reference to the same span.
    pub fn clone_ref(&self, py: Python<'_>) -> Span {
        Span(self.0.clone_ref(py))
    }

    /// Ends the span with what the waiter receives: a report, or a batch's list of them.
    pub fn end(self, py: Python<'_>, result: &Bound<'_, PyAny>) {
        call(py, "end", (self.0, result));
    }

    /// Ends the span of a send refused at once with `error`.
    pub fn fail(self, py: Python<'_>, error: &PyErr) {
        call(py, "fail", (self.0, error.value(py)));
    }
}

fn call<'py>(py: Python<'py>, name: &str, args: impl pyo3::call::PyCallArgs<'py>) {
    if let Some(hooks) = hooks(py) {
        // Tracing must never fail a send: a raising hook is reported, not propagated.
        if let Err(error) = hooks.tracing.bind(py).call_method1(name, args) {
            error.write_unraisable(py, None);
        }
    }
}
