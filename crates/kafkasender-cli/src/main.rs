//! The `kafkasender` command.

mod bench;
mod demo;
mod health;
mod mock;
mod parity;
mod produce;
mod publish;
mod spool;
mod tally;

use std::process::ExitCode;
use std::sync::OnceLock;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use kafkasender::{Config, ConfigBuilder, Producers};

/// One resilient Kafka producer: produce from files or stdin, run the demo, or benchmark.
///
/// Configuration comes from KAFKA_* environment variables (KAFKA_BROKERS, …), then from -X options.
#[derive(Parser)]
#[command(name = "kafkasender", version, about)]
struct Cli {
    /// Set a configuration key (kafkasender setting or librdkafka property); repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE", global = true, value_parser = parse_key_value)]
    set: Vec<(String, String)>,
    /// A file of named producers (TOML: [defaults] and [producers.NAME] tables).
    #[arg(long, value_name = "FILE", global = true, env = "KAFKA_PRODUCERS_FILE")]
    producers_file: Option<std::path::PathBuf>,
    /// Configure as this producer of --producers-file (KAFKA_* variables and -X still override).
    #[arg(long, value_name = "NAME", global = true, requires = "producers_file")]
    producer: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce a stream of JSON events, take a broker down and up mid-stream, read everything back.
    Demo(demo::Args),
    /// Produce one message per line from files or stdin.
    Produce(produce::Args),
    /// Measure send throughput and latency against raw librdkafka on the same cluster.
    Bench(bench::Args),
    /// One benchmark contender's run (started by `bench`, in a process of its own).
    #[command(hide = true)]
    BenchRun(bench::RunArgs),
    /// Serve a mock cluster to other processes; prints its bootstrap address, runs until stdin closes.
    MockCluster(mock::Args),
    /// The Rust face's runner of one tests/parity scenario (steps on stdin; see tests/parity/run.py).
    #[command(hide = true)]
    ParityRun,
    /// Publish one business event (a CloudEvents envelope) to the topic its type maps to.
    Publish(publish::Args),
    /// Ask the cluster whether a producer with this configuration could deliver now; exits 1 when
    /// unhealthy (a container probe).
    Health(health::Args),
    /// Look into or replay a spool directory (spool.dir).
    #[command(subcommand)]
    Spool(spool::Command),
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// What `--producer NAME` of `--producers-file` sets, read once in `main`.
static NAMED_PRODUCER: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// The configuration: the command's own defaults, then the named producer's settings, then the
/// environment, then `-X` overrides, then `brokers` if given.
pub fn config(overrides: &[(String, String)], brokers: Option<&str>) -> ConfigBuilder {
    // A pipe has backpressure of its own: on a full queue the CLI waits for room (as a slow
    // reader would) rather than refusing a line and leaving a hole in the topic.
    let mut builder = Config::builder().set("enqueue.timeout.ms", "1h");
    for (key, value) in NAMED_PRODUCER.get().into_iter().flatten() {
        builder = builder.set(key, value);
    }
    let mut builder = builder.with_env();
    for (key, value) in overrides {
        builder = builder.set(key, value);
    }
    match brokers {
        Some(brokers) => builder.brokers(brokers),
        None => builder,
    }
}

/// Logs go to stderr, as text or JSON lines (`KAFKA_LOG_FORMAT=json`). `RUST_LOG` wins, then
/// `KAFKA_LOG_LEVEL`, then `default`.
fn init_logging(default: &str) {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("KAFKA_LOG_LEVEL"))
        .unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter));
    if std::env::var("KAFKA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo takes a broker down on purpose; librdkafka logs each refused connection as an error.
    init_logging(match cli.command {
        // The health verdict names the cause; every refused connection would repeat it.
        Command::Demo(_) | Command::Health(_) => "error,librdkafka=off",
        _ => "warn",
    });
    if let (Some(file), Some(name)) = (&cli.producers_file, &cli.producer) {
        let named = Producers::from_file(file).and_then(|p| p.settings_of(name).map(<[_]>::to_vec));
        match named {
            Ok(settings) => drop(NAMED_PRODUCER.set(settings)),
            Err(error) => {
                eprintln!("kafkasender: {}: {error}", file.display());
                return ExitCode::from(Exit::Usage as u8);
            }
        }
    }
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args, &cli.set).map(Exit::from),
        Command::Produce(args) => produce::run(&args, &cli.set),
        Command::Bench(args) => bench::run(&args, &cli.set).map(Exit::from),
        Command::BenchRun(args) => bench::run_one(&args, &cli.set).map(Exit::from),
        Command::MockCluster(args) => mock::run(&args).map(Exit::from),
        Command::ParityRun => parity::run().map(Exit::from),
        Command::Spool(command) => spool::run(&command, &cli.set).map(Exit::from),
        Command::Health(args) => health::run(&args, &cli.set),
        Command::Publish(args) => publish::run(&args, &cli.set),
    };
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(error) => {
            eprintln!("kafkasender: {error:#}");
            ExitCode::from(Exit::Usage as u8)
        }
    }
}

/// The exit status of every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything was done (for `produce`: every line delivered).
    Success = 0,
    /// `produce`: some messages were not delivered (failed, spooled, dead-lettered or refused);
    /// `health`: unhealthy (1 is what container health checks take for unhealthy).
    Failed = 1,
    /// A usage, configuration or input error: nothing was attempted, or the command stopped.
    Usage = 2,
    /// SASL authentication or the TLS handshake failed: no message could go.
    Authentication = 3,
}

impl From<bool> for Exit {
    fn from(success: bool) -> Exit {
        if success {
            Exit::Success
        } else {
            Exit::Failed
        }
    }
}

/// Fails with a clear message when KAFKA_BROKERS is set to something empty.
pub fn brokers_from_env() -> anyhow::Result<Option<String>> {
    match std::env::var("KAFKA_BROKERS") {
        Ok(brokers) if brokers.trim().is_empty() => bail!("KAFKA_BROKERS is set but empty"),
        Ok(brokers) => Ok(Some(brokers)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(error) => Err(error).context("KAFKA_BROKERS"),
    }
}
