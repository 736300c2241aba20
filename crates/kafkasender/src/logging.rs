//! Logs. kafkasender logs through `tracing` (target `kafkasender`, and `librdkafka` for
//! librdkafka's own lines, whose verbosity follows `log.level`). A Rust program installs its own
//! subscriber as usual; the CLI and the C, Go, Python and Node bindings call [`init`], which
//! installs one that hands each line to the host's logging when a face has set a [`LogSink`]
//! (Python's `logging`, a Node handler, Go's `log/slog`, a C callback), and otherwise writes it to
//! stderr, as text or one JSON object per line. No secret is ever logged: configuration values are
//! not logged at all.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::{Arc, PoisonError, RwLock};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::{LogFormat, LogLevel, Settings};

/// One log line, as a host's logging takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRecord<'a> {
    /// `Error` to `Trace` (never `Off`).
    pub level: LogLevel,
    /// `kafkasender` or `librdkafka`.
    pub target: &'a str,
    /// The message, then its fields as `name=value`.
    pub message: &'a str,
}

/// Where log lines go instead of stderr. Called on the thread that logs (a delivery or librdkafka
/// thread): a sink must not block, and should hand lines to its host's own thread.
pub type LogSink = Box<dyn Fn(&LogRecord<'_>) + Send + Sync>;

static SINK: RwLock<Option<Arc<LogSink>>> = RwLock::new(None);

/// Sends every log line to `sink` from now on (`None`: to stderr again). Takes effect for the
/// subscriber [`init`] installs, whenever it is set.
pub fn set_sink(sink: Option<LogSink>) {
    *SINK.write().unwrap_or_else(PoisonError::into_inner) = sink.map(Arc::new);
}

fn sink() -> Option<Arc<LogSink>> {
    SINK.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Installs the process's logger at `level`: lines go to the [`set_sink`] sink when one is set,
/// otherwise to stderr in `format`. Does nothing when a subscriber is installed already (a
/// program's own always wins). Returns whether this call installed it.
pub fn init(level: LogLevel, format: LogFormat) -> bool {
    if tracing::dispatcher::has_been_set() {
        return false;
    }
    let no_sink = || filter_fn(|_| SINK.read().map_or(true, |s| s.is_none()));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true);
    let stderr = match format {
        LogFormat::Text => stderr.with_filter(no_sink()).boxed(),
        LogFormat::Json => stderr
            .json()
            .flatten_event(true)
            .with_filter(no_sink())
            .boxed(),
    };
    let (level, log_level) = level_filters(level);
    let installed = tracing_subscriber::registry()
        .with(stderr)
        .with(SinkLayer)
        .with(level)
        // Lines only: the faces trace with their host's OpenTelemetry, so the core's send spans
        // (producer::send_span) would be work for nobody.
        .with(filter_fn(|metadata| !metadata.is_span()))
        .try_init()
        .is_ok();
    if installed {
        // rust-rdkafka logs through the `log` crate, which try_init bridges (tracing-subscriber's
        // tracing-log feature) at TRACE, since the filters above give no level hint: a `trace!`
        // per librdkafka object freed, several per delivery batch, would each ask the
        // subscriber. Capped, the `log` macros drop them at once.
        log::set_max_level(log_level);
    }
    installed
}

/// [`init`] with a configuration's `log.level` and `log.format`.
pub fn init_from(settings: &Settings) -> bool {
    init(settings.log_level, settings.log_format)
}

/// `level` as `tracing`'s filter and as the `log` crate's.
fn level_filters(level: LogLevel) -> (LevelFilter, log::LevelFilter) {
    match level {
        LogLevel::Off => (LevelFilter::OFF, log::LevelFilter::Off),
        LogLevel::Error => (LevelFilter::ERROR, log::LevelFilter::Error),
        LogLevel::Warn => (LevelFilter::WARN, log::LevelFilter::Warn),
        LogLevel::Info => (LevelFilter::INFO, log::LevelFilter::Info),
        LogLevel::Debug => (LevelFilter::DEBUG, log::LevelFilter::Debug),
        LogLevel::Trace => (LevelFilter::TRACE, log::LevelFilter::Trace),
    }
}

/// Hands each event to the sink, if one is set.
struct SinkLayer;

impl<S: Subscriber> Layer<S> for SinkLayer {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let Some(sink) = sink() else { return };
        let mut text = Text::default();
        event.record(&mut text);
        let metadata = event.metadata();
        let level = match *metadata.level() {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::DEBUG => LogLevel::Debug,
            tracing::Level::TRACE => LogLevel::Trace,
        };
        sink(&LogRecord {
            level,
            target: metadata.target(),
            message: &text.0,
        });
    }
}

/// An event's message followed by its other fields as `name=value`.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let fields = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}{fields}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn lines_go_to_the_sink_with_their_fields_and_to_stderr_without_one() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = seen.clone();
        let subscriber = tracing_subscriber::registry().with(SinkLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "kafkasender", "before any sink");
            set_sink(Some(Box::new(move |r: &LogRecord<'_>| {
                kept.lock()
                    .unwrap()
                    .push((r.level, r.target.to_string(), r.message.to_string()))
            })));
            tracing::warn!(target: "librdkafka", facility = "FAIL", "connect failed");
            tracing::info!(target: "kafkasender", count = 3, "sent {}", "all");
            set_sink(None);
            tracing::error!(target: "kafkasender", "after the sink");
        });
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            [
                (
                    LogLevel::Warn,
                    "librdkafka".into(),
                    "connect failed facility=FAIL".into()
                ),
                (
                    LogLevel::Info,
                    "kafkasender".into(),
                    "sent all count=3".into()
                ),
            ]
        );
    }
}
