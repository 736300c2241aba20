//! Logs. kafkasender logs through `tracing` (target `kafkasender`, and `librdkafka` for
//! librdkafka's own lines, whose verbosity follows `log.level`). A Rust program installs its own
//! subscriber as usual; the CLI and the C, Go, Python and Node bindings call [`init`], which
//! installs one writing to stderr, as text or one JSON object per line. No secret is ever logged:
//! configuration values are not logged at all.

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;

use crate::config::{LogFormat, LogLevel, Settings};

/// Installs a stderr logger at `level` in `format` for the whole process, unless one is installed
/// already (a program's own subscriber always wins). Returns whether this call installed it.
pub fn init(level: LogLevel, format: LogFormat) -> bool {
    if tracing::dispatcher::has_been_set() {
        return false;
    }
    let filter = match level {
        LogLevel::Off => LevelFilter::OFF,
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(filter)
        .with_target(true);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.is_ok()
}

/// [`init`] with a configuration's `log.level` and `log.format`.
pub fn init_from(settings: &Settings) -> bool {
    init(settings.log_level, settings.log_format)
}
