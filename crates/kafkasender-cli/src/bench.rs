//! `kafkasender bench`: how fast each way of sending is against raw librdkafka, measured the way
//! every benchmark of this project measures (the rules of ../shared/KAFKA.md, "How we benchmark"):
//!
//! 1. **A broker in another process**: a 3-broker mock cluster served by `kafkasender
//!    mock-cluster`, or the brokers in `KAFKA_BROKERS` (a real Kafka).
//! 2. **Every contender in a process of its own** (`kafkasender bench-run`, or another face's
//!    program given with `--external`), so peak RSS and CPU time are its own.
//! 3. **A fresh topic per run**, 6 partitions.
//! 4. **Warm**: each contender sends one message and waits for its report before the clock starts
//!    (connections, metadata and the idempotent producer id take about half a second).
//! 5. **Keyed**: distinct 16-byte keys, `--size`-byte values; acks=all, idempotence, linger.ms=5
//!    (kafkasender's defaults; raw librdkafka gets the very same properties).
//! 6. **Interleaved rounds**: A B C, A B C, … (the order rotates each round); medians with min–max,
//!    and ratios to raw librdkafka computed **within a round** before taking their median.
//! 7. **The ceiling** is rdkafka's `BaseProducer` with a dedicated poll thread.
//! 8. **Latency at a fixed rate** in rounds of their own (at full speed latency is queueing).
//! 9. Built as users get it: the release profile has no debug assertions.
//!
//! An external contender is run as `PROGRAM BOOTSTRAP TOPIC COUNT SIZE RATE` (RATE 0: as fast as
//! it can) and follows rules 4 and 5 itself. It prints one line (tab-separated):
//! `result NAME MSGS_PER_S P50_MS P99_MS PEAK_RSS_KB CPU_SECONDS`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hdrhistogram::Histogram;
use kafkasender::{Config, Producer, Record};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as RdHeader, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::ClientContext;

use crate::tally::thousands;

/// Partitions of each run's topic.
const PARTITIONS: i32 = 6;
/// Records per `send_batch` call.
const BATCH: usize = 10_000;
/// The ceiling every ratio is taken against.
const RAW: &str = "librdkafka";
/// The ceiling for contenders whose messages carry an id header (the journal's).
const RAW_WITH_HEADER: &str = "librdkafka-header";
/// Raw librdkafka polled by the thread that sends, as confluent-kafka-python is: each message is
/// freed by the thread that allocated it. Not a ceiling (its reports wait for the next send),
/// but where the core's speed past a poll thread comes from (see the core's `producer::poll`).
const RAW_SELF_POLLED: &str = "librdkafka-self-poll";

/// The contenders built into this binary, each run in a child process by `bench-run`.
const BUILT_IN: [(&str, &str); 8] = [
    (RAW, "raw librdkafka (rdkafka BaseProducer + poll thread)"),
    (
        RAW_SELF_POLLED,
        "raw librdkafka, polled by the sending thread (poll(0) every 16 sends)",
    ),
    (
        RAW_WITH_HEADER,
        "raw librdkafka, one 33-byte header per message (what an x-ks-id costs librdkafka)",
    ),
    ("rust-send", "kafkasender Rust `send` + callback"),
    (
        "rust-send-batch",
        "kafkasender Rust `send_batch` (10,000 a call)",
    ),
    (
        "rust-send-resilience",
        "kafkasender Rust `send`, every resilience stage on but idle",
    ),
    (
        "rust-send-id",
        "kafkasender Rust `send`, each message with its `x-ks-id` header (as a spool or journal sends it)",
    ),
    (
        "rust-send-journal",
        "kafkasender Rust `send`, spool.mode=journal (fsync=interval)",
    ),
];

#[derive(clap::Args)]
pub struct Args {
    /// Messages per throughput run.
    #[arg(long, default_value_t = 300_000)]
    count: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Interleaved rounds (each runs every contender once); medians are over rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Messages per second of the fixed-rate latency runs; 0 skips them (as does a count of 0).
    #[arg(long, default_value_t = 50_000)]
    latency_rate: u64,
    /// Messages per fixed-rate latency run.
    #[arg(long, default_value_t = 100_000)]
    latency_count: u64,
    /// Only these contenders (comma-separated names); default: all, and every --external.
    #[arg(long = "only", value_delimiter = ',')]
    only: Vec<String>,
    /// Another face's benchmark program, as NAME=PROGRAM (see `kafkasender bench --help` above).
    #[arg(long = "external", value_name = "NAME=PROGRAM", value_parser = crate::parse_key_value)]
    externals: Vec<(String, String)>,
    /// Also write every run's figures to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl Args {
    fn measures_latency(&self) -> bool {
        self.latency_rate > 0 && self.latency_count > 0
    }
}

/// `kafkasender bench-run`: one contender's run, in a process of its own.
#[derive(clap::Args)]
pub struct RunArgs {
    contender: String,
    bootstrap: String,
    topic: String,
    count: u64,
    size: usize,
    /// Messages per second; 0 as fast as it goes.
    rate: u64,
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
struct Figures {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    peak_rss_kb: u64,
    cpu_s: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Throughput,
    FixedRate,
}

pub fn run(args: &Args, overrides: &[(String, String)]) -> anyhow::Result<bool> {
    let mut contenders: Vec<(String, Option<String>)> = BUILT_IN
        .iter()
        .map(|(name, _)| (name.to_string(), None))
        .chain(
            args.externals
                .iter()
                .map(|(name, program)| (name.clone(), Some(program.clone()))),
        )
        .filter(|(name, _)| args.only.is_empty() || args.only.contains(name))
        .collect();
    if !contenders.iter().any(|(name, _)| name == RAW) {
        contenders.insert(0, (RAW.to_string(), None)); // every ratio needs the ceiling
    }
    let broker = Broker::start()?;
    eprintln!(
        "{} messages of {} bytes, 16-byte keys, {} rounds, {} (acks=all, idempotence, linger.ms=5 unless -X says otherwise)",
        thousands(args.count),
        args.size,
        args.rounds,
        broker.describe(),
    );
    let mut modes = vec![(Mode::Throughput, args.count, 0)];
    if args.measures_latency() {
        modes.push((Mode::FixedRate, args.latency_count, args.latency_rate));
    }
    let mut runs: Vec<(usize, Mode, String, Figures)> = Vec::new();
    let exe = std::env::current_exe()?;
    for round in 0..args.rounds {
        for &(mode, count, rate) in &modes {
            for i in 0..contenders.len() {
                // Rotating the order keeps any "first after a pause" effect off one contender.
                let (name, external) = &contenders[(i + round) % contenders.len()];
                let topic = format!("ksbench-{}-{round}-{name}-{rate}", std::process::id());
                broker.create_topic(&topic)?;
                let mut command = match external {
                    Some(program) => Command::new(program),
                    None => {
                        let mut command = Command::new(&exe);
                        for (key, value) in overrides {
                            command.arg("-X").arg(format!("{key}={value}"));
                        }
                        command.arg("bench-run").arg(name);
                        command
                    }
                };
                command.args([
                    broker.bootstrap.clone(),
                    topic,
                    count.to_string(),
                    args.size.to_string(),
                    rate.to_string(),
                ]);
                let figures = run_child(command, name)?;
                eprintln!(
                    "round {} {:<10} {:<22} {:>10} msg/s  p50 {:.2} ms  p99 {:.2} ms  peak RSS {} MB",
                    round + 1,
                    if mode == Mode::Throughput { "throughput" } else { "fixed-rate" },
                    name,
                    thousands(figures.rate as u64),
                    figures.p50_ms,
                    figures.p99_ms,
                    figures.peak_rss_kb / 1024,
                );
                runs.push((round, mode, name.clone(), figures));
            }
        }
    }
    let names: Vec<&str> = contenders.iter().map(|(n, _)| n.as_str()).collect();
    print_tables(&names, &runs, args);
    if let Some(path) = &args.json {
        write_json(path, &runs, args, &broker)?;
    }
    Ok(true)
}

/// Runs one contender's child process and reads its `result` line.
fn run_child(mut command: Command, name: &str) -> anyhow::Result<Figures> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run contender {name}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find(|l| l.starts_with("result\t"));
    match (output.status.success(), line) {
        (true, Some(line)) => parse_result(line).with_context(|| format!("{name}: {line:?}")),
        _ => bail!(
            "contender {name} failed ({}):\n{}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn parse_result(line: &str) -> anyhow::Result<Figures> {
    let fields: Vec<&str> = line.split('\t').collect();
    let [_, _, rate, p50, p99, rss, cpu] = fields[..] else {
        bail!("expected 7 tab-separated fields");
    };
    Ok(Figures {
        rate: rate.parse()?,
        p50_ms: p50.parse()?,
        p99_ms: p99.parse()?,
        peak_rss_kb: rss.parse()?,
        cpu_s: cpu.parse()?,
    })
}

/// The median of some numbers, with their minimum and maximum.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    (median, values[0], values[n - 1])
}

fn print_tables(names: &[&str], runs: &[(usize, Mode, String, Figures)], args: &Args) {
    let of = |mode: Mode, name: &str| -> BTreeMap<usize, Figures> {
        runs.iter()
            .filter(|(_, m, n, _)| *m == mode && n == name)
            .map(|(round, _, _, f)| (*round, *f))
            .collect()
    };
    let ratios = |mode: Mode, name: &str, value: fn(&Figures) -> f64| {
        let raw = of(mode, RAW);
        spread(
            of(mode, name)
                .iter()
                .filter_map(|(round, f)| raw.get(round).map(|r| value(f) / value(r)))
                .collect(),
        )
    };
    println!(
        "\n### Throughput: {} keyed messages of {} bytes, {} interleaved rounds\n",
        thousands(args.count),
        args.size,
        args.rounds
    );
    println!("| contender | msg/s, median (min–max) | vs raw librdkafka, median of rounds (min–max) | p50 ms | p99 ms | peak RSS MB | CPU s per 1M msgs |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for name in names {
        let figures: Vec<Figures> = of(Mode::Throughput, name).into_values().collect();
        let column = |value: fn(&Figures) -> f64| spread(figures.iter().map(value).collect());
        let (rate, rate_min, rate_max) = column(|f| f.rate);
        let (ratio, ratio_min, ratio_max) = ratios(Mode::Throughput, name, |f| f.rate);
        println!(
            "| {} | {} ({}–{}) | {ratio:.2} ({ratio_min:.2}–{ratio_max:.2}) | {:.1} | {:.1} | {:.0} | {:.2} |",
            label(name),
            thousands(rate as u64),
            thousands(rate_min as u64),
            thousands(rate_max as u64),
            column(|f| f.p50_ms).0,
            column(|f| f.p99_ms).0,
            column(|f| f.peak_rss_kb as f64 / 1024.0).0,
            column(|f| f.cpu_s).0 * 1e6 / args.count as f64,
        );
    }
    if !args.measures_latency() {
        return;
    }
    println!(
        "\n### Delivery latency at a fixed {} msg/s, {} messages per run\n",
        thousands(args.latency_rate),
        thousands(args.latency_count)
    );
    println!("| contender | p50 ms, median (min–max) | p99 ms, median (min–max) | p99 vs raw librdkafka, median of rounds |");
    println!("|---|---:|---:|---:|");
    for name in names {
        let figures: Vec<Figures> = of(Mode::FixedRate, name).into_values().collect();
        let (p50, p50_min, p50_max) = spread(figures.iter().map(|f| f.p50_ms).collect());
        let (p99, p99_min, p99_max) = spread(figures.iter().map(|f| f.p99_ms).collect());
        let (ratio, _, _) = ratios(Mode::FixedRate, name, |f| f.p99_ms);
        println!(
            "| {} | {p50:.2} ({p50_min:.2}–{p50_max:.2}) | {p99:.2} ({p99_min:.2}–{p99_max:.2}) | {ratio:.2} |",
            label(name)
        );
    }
}

fn label(name: &str) -> String {
    BUILT_IN
        .iter()
        .find(|(n, _)| *n == name)
        .map_or_else(|| name.to_string(), |(_, label)| label.to_string())
}

fn write_json(
    path: &PathBuf,
    runs: &[(usize, Mode, String, Figures)],
    args: &Args,
    broker: &Broker,
) -> anyhow::Result<()> {
    let runs: Vec<serde_json::Value> = runs
        .iter()
        .map(|(round, mode, name, f)| {
            serde_json::json!({
                "round": round + 1,
                "mode": if *mode == Mode::Throughput { "throughput" } else { "fixed_rate" },
                "contender": name,
                "label": label(name),
                "msgs_per_s": f.rate,
                "p50_ms": f.p50_ms,
                "p99_ms": f.p99_ms,
                "peak_rss_kb": f.peak_rss_kb,
                "cpu_s": f.cpu_s,
            })
        })
        .collect();
    let document = serde_json::json!({
        "broker": broker.describe(),
        "cores": thread::available_parallelism().map_or(0, |n| n.get()),
        "count": args.count,
        "size": args.size,
        "rounds": args.rounds,
        "latency_rate": args.latency_rate,
        "latency_count": args.latency_count,
        "librdkafka": kafkasender::librdkafka_version(),
        "runs": runs,
    });
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(&document)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Where the runs send: a mock cluster in a child process, or the brokers of `KAFKA_BROKERS`.
struct Broker {
    bootstrap: String,
    mock: Option<Mutex<MockProcess>>,
}

struct MockProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Broker {
    fn start() -> anyhow::Result<Broker> {
        if let Some(bootstrap) = crate::brokers_from_env()? {
            return Ok(Broker {
                bootstrap,
                mock: None,
            });
        }
        let mut child = Command::new(std::env::current_exe()?)
            .args(["mock-cluster", "--brokers", "3"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the mock cluster")?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut bootstrap = String::new();
        stdout.read_line(&mut bootstrap)?;
        Ok(Broker {
            bootstrap: bootstrap.trim().to_string(),
            mock: Some(Mutex::new(MockProcess {
                child,
                stdin,
                stdout,
            })),
        })
    }

    fn describe(&self) -> String {
        match self.mock {
            Some(_) => "3-broker librdkafka mock cluster in another process".into(),
            None => format!("the brokers at {}", self.bootstrap),
        }
    }

    fn create_topic(&self, topic: &str) -> anyhow::Result<()> {
        let Some(mock) = &self.mock else {
            return create_real_topic(&self.bootstrap, topic);
        };
        let mut mock = mock.lock().unwrap();
        writeln!(mock.stdin, "topic {topic} {PARTITIONS}")?;
        mock.stdin.flush()?;
        let mut answer = String::new();
        mock.stdout.read_line(&mut answer)?;
        match answer.trim() {
            "ok" => Ok(()),
            other => bail!("mock cluster: {other}"),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mock) = &self.mock {
            let mut mock = mock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = mock.child.kill();
            let _ = mock.child.wait();
        }
    }
}

/// Creates a topic on a real cluster, replicated to as many brokers as it has (at most 3).
fn create_real_topic(bootstrap: &str, topic: &str) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let brokers = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))?
        .brokers()
        .len();
    let replication = i32::try_from(brokers.clamp(1, 3)).unwrap_or(1);
    let new_topic = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(replication));
    let results = futures_executor::block_on(admin.create_topics(
        [&new_topic],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))?;
    for result in results {
        result.map_err(|(topic, code)| anyhow::anyhow!("cannot create topic {topic}: {code}"))?;
    }
    Ok(())
}

/// `kafkasender bench-run`: runs one contender and prints its `result` line.
pub fn run_one(args: &RunArgs, overrides: &[(String, String)]) -> anyhow::Result<bool> {
    let config = crate::config(overrides, Some(&args.bootstrap)).build()?;
    let load = Load {
        topic: &args.topic,
        payload: vec![b'x'; args.size],
        count: args.count,
        rate: args.rate,
    };
    let recorder: &'static Recorder = Box::leak(Box::new(Recorder::new()));
    match args.contender.as_str() {
        RAW => raw_librdkafka(&config, &load, recorder, Raw::PollThread)?,
        RAW_WITH_HEADER => raw_librdkafka(&config, &load, recorder, Raw::WithHeader)?,
        RAW_SELF_POLLED => raw_librdkafka(&config, &load, recorder, Raw::SelfPolled)?,
        "rust-send" => kafkasender_send(config, &load, recorder)?,
        "rust-send-batch" => kafkasender_send_batch(config, &load, recorder)?,
        "rust-send-resilience" => {
            kafkasender_send(with_idle_resilience(overrides, args)?, &load, recorder)?
        }
        "rust-send-id" => kafkasender_send(with_id_header(overrides, args)?, &load, recorder)?,
        "rust-send-journal" => kafkasender_send(with_journal(overrides, args)?, &load, recorder)?,
        other => bail!("unknown contender {other:?}"),
    }
    for kind in ["spool", "journal"] {
        // The directory goes when only its lock was in it: what a run left stays, to be looked at.
        let _ = std::fs::remove_file(scratch_dir(kind).join(".lock"));
        let _ = std::fs::remove_dir(scratch_dir(kind));
    }
    let (elapsed, latency) = recorder.result(args.count)?;
    let usage = resource_usage();
    println!(
        "result\t{}\t{:.0}\t{:.3}\t{:.3}\t{}\t{:.3}",
        args.contender,
        args.count as f64 / elapsed.as_secs_f64(),
        latency.value_at_quantile(0.5) as f64 / 1e3,
        latency.value_at_quantile(0.99) as f64 / 1e3,
        usage.0,
        usage.1
    );
    Ok(true)
}

/// Every resilience stage configured, none of them ever needed.
fn with_idle_resilience(overrides: &[(String, String)], args: &RunArgs) -> anyhow::Result<Config> {
    let spool = scratch_dir("spool");
    with_settings(
        overrides,
        args,
        [
            ("breaker.enabled", "true".to_string()),
            ("dlq.topic", format!("{}-dlq", args.topic)),
            ("spool.dir", spool.display().to_string()),
            ("ratelimit.messages.per.second", "1000000000".to_string()),
        ],
    )
}

/// Each message with the id header that a spool or a journal turns on, and nothing else
/// configured: what the journal costs beyond the header it needs.
fn with_id_header(overrides: &[(String, String)], args: &RunArgs) -> anyhow::Result<Config> {
    let id = kafkasender::MESSAGE_ID_HEADER.to_string();
    with_settings(overrides, args, [("message.id.header", id)])
}

/// Every accepted message journaled before `send` returns, and nothing else configured.
fn with_journal(overrides: &[(String, String)], args: &RunArgs) -> anyhow::Result<Config> {
    let journal = scratch_dir("journal");
    with_settings(
        overrides,
        args,
        [
            ("spool.dir", journal.display().to_string()),
            ("spool.mode", "journal".to_string()),
        ],
    )
}

/// The run's configuration with `settings` after the command line's.
fn with_settings<const N: usize>(
    overrides: &[(String, String)],
    args: &RunArgs,
    settings: [(&str, String); N],
) -> anyhow::Result<Config> {
    let settings = settings.map(|(key, value)| (key.to_string(), value));
    Ok(crate::config(&[overrides, &settings[..]].concat(), Some(&args.bootstrap)).build()?)
}

/// This run's own directory for a spool or a journal.
fn scratch_dir(kind: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("kafkasender-bench-{kind}-{}", std::process::id()))
}

/// Peak resident set (KiB) and CPU seconds (user + system) of this process.
fn resource_usage() -> (u64, f64) {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        u64::try_from(usage.ru_maxrss).unwrap_or(0),
        seconds(usage.ru_utime) + seconds(usage.ru_stime),
    )
}

/// What every contender sends.
struct Load<'a> {
    topic: &'a str,
    payload: Vec<u8>,
    count: u64,
    rate: u64,
}

impl Load<'_> {
    /// The distinct 16-byte key of message `i`.
    fn key(i: u64) -> [u8; 16] {
        let mut key = *b"........ks-bench";
        key[..8].copy_from_slice(&i.to_be_bytes());
        key
    }

    /// Sends the warm-up message, starts the clock, then sends message after message (each when
    /// due, at a fixed rate).
    fn run<E: Into<anyhow::Error>>(
        &self,
        recorder: &Recorder,
        send: impl Fn(u64) -> Result<(), E>,
    ) -> anyhow::Result<()> {
        let started = warm_up(recorder, self.count, || send(u64::MAX))?;
        for i in 0..self.count {
            self.pace(started, i);
            send(i).map_err(Into::into)?;
        }
        Ok(())
    }

    /// At a fixed rate, waits until message `i` is due.
    fn pace(&self, started: Instant, i: u64) {
        if self.rate > 0 {
            let due = started + Duration::from_secs_f64(i as f64 / self.rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
        }
    }
}

/// A histogram of microseconds from 1 µs to an hour, 3 significant digits.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// What every contender does per delivered message: count it and record its latency. The clock
/// starts after the warm-up message and stops at the last report.
struct Recorder {
    delivered: AtomicU64,
    failed: AtomicU64,
    started: Mutex<Option<Instant>>,
    finished: Mutex<Option<Instant>>,
    expected: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            started: Mutex::new(None),
            finished: Mutex::new(None),
            expected: AtomicU64::new(u64::MAX),
            latency_us: Mutex::new(latency_histogram()),
        }
    }

    /// Forgets the warm-up and starts the clock for `count` messages.
    fn start(&self, count: u64) -> Instant {
        self.latency_us.lock().unwrap().reset();
        self.delivered.store(0, Ordering::SeqCst);
        self.expected.store(count, Ordering::SeqCst);
        let now = Instant::now();
        *self.started.lock().unwrap() = Some(now);
        now
    }

    fn record(&self, delivered: bool, latency: Duration) {
        if !delivered {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.latency_us
            .lock()
            .unwrap()
            .saturating_record(latency.as_micros() as u64);
        if self.delivered.fetch_add(1, Ordering::AcqRel) + 1
            == self.expected.load(Ordering::Acquire)
        {
            *self.finished.lock().unwrap() = Some(Instant::now());
        }
    }

    fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Acquire)
    }

    /// Waits (polling) until `count` reports are in since the clock started.
    fn wait_for(&self, count: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(300);
        while self.delivered() < count {
            anyhow::ensure!(self.failed.load(Ordering::Relaxed) == 0, "a message failed");
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} of {count} delivered after 300 s",
                self.delivered()
            );
            thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    fn result(&self, count: u64) -> anyhow::Result<(Duration, Histogram<u64>)> {
        anyhow::ensure!(
            self.delivered() == count && self.failed.load(Ordering::Relaxed) == 0,
            "{} of {count} delivered, {} failed",
            self.delivered(),
            self.failed.load(Ordering::Relaxed)
        );
        let started = self.started.lock().unwrap().expect("started");
        let finished = self.finished.lock().unwrap().expect("finished");
        Ok((finished - started, self.latency_us.lock().unwrap().clone()))
    }
}

/// Sends the warm-up message and waits for its report; then starts the clock.
fn warm_up<E: Into<anyhow::Error>>(
    recorder: &Recorder,
    count: u64,
    send_one: impl FnOnce() -> Result<(), E>,
) -> anyhow::Result<Instant> {
    recorder.expected.store(1, Ordering::SeqCst);
    send_one().map_err(Into::into)?;
    recorder.wait_for(1)?;
    Ok(recorder.start(count))
}

/// kafkasender's `send`, one callback per message.
fn kafkasender_send(
    config: Config,
    load: &Load<'_>,
    recorder: &'static Recorder,
) -> anyhow::Result<()> {
    let producer = Producer::new(config)?;
    // The callback holds a plain reference: an Arc cloned per message would bounce its count
    // between the sending and the delivery thread, a cost of the benchmark, not of the producer.
    let send = |i: u64| {
        let key = Load::key(i);
        producer.send(
            &Record::new(load.topic).key(&key).value(&load.payload),
            move |report| recorder.record(report.is_delivered(), report.latency),
        )
    };
    load.run(recorder, send)?;
    producer.flush(Duration::from_secs(300))?;
    producer.close(Duration::ZERO);
    Ok(())
}

/// kafkasender's `send_batch`: one call and one callback per batch (at a fixed rate, a batch per
/// millisecond).
fn kafkasender_send_batch(
    config: Config,
    load: &Load<'_>,
    recorder: &'static Recorder,
) -> anyhow::Result<()> {
    let producer = Producer::new(config)?;
    let batch_len = if load.rate > 0 {
        (load.rate / 1000).max(1) as usize
    } else {
        BATCH
    };
    let send = |first: u64, len: usize| {
        let keys: Vec<[u8; 16]> = (first..first + len as u64).map(Load::key).collect();
        let records: Vec<Record<'_>> = keys
            .iter()
            .map(|key| Record::new(load.topic).key(key).value(&load.payload))
            .collect();
        producer.send_batch(
            &records,
            Box::new(move |reports| {
                for report in reports {
                    recorder.record(report.is_delivered(), report.latency);
                }
            }),
        )
    };
    let started = warm_up(recorder, load.count, || send(u64::MAX - 1, 1))?;
    let mut first = 0;
    while first < load.count {
        load.pace(started, first);
        let len = batch_len.min((load.count - first) as usize);
        send(first, len)?;
        first += len as u64;
    }
    producer.flush(Duration::from_secs(300))?;
    producer.close(Duration::ZERO);
    Ok(())
}

/// The ceiling: librdkafka with nothing around it but a poll thread and the same recorder.
struct RawContext(&'static Recorder);

impl ClientContext for RawContext {}

impl ProducerContext for RawContext {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: Box<Instant>) {
        self.0.record(result.is_ok(), sent_at.elapsed());
    }
}

/// The raw librdkafka contenders.
#[derive(Clone, Copy, PartialEq)]
enum Raw {
    PollThread,
    WithHeader,
    /// Polled by the sending thread once the warm-up message is delivered.
    SelfPolled,
}

fn raw_librdkafka(
    config: &Config,
    load: &Load<'_>,
    recorder: &'static Recorder,
    raw: Raw,
) -> anyhow::Result<()> {
    let self_polled = raw == Raw::SelfPolled;
    let mut client_config = rdkafka::ClientConfig::new();
    for (key, value) in config.librdkafka_properties() {
        client_config.set(key, value);
    }
    let producer: Arc<BaseProducer<RawContext>> =
        Arc::new(client_config.create_with_context(RawContext(recorder))?);
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let (producer, done) = (producer.clone(), done.clone());
        thread::spawn(move || {
            while !(done.load(Ordering::Acquire) || self_polled && recorder.delivered() > 0) {
                producer.poll(Duration::from_millis(10));
            }
        })
    };
    let send = |i: u64| -> anyhow::Result<()> {
        let key = Load::key(i);
        let mut record = BaseRecord::with_opaque_to(load.topic, Box::new(Instant::now()))
            .key(&key[..])
            .payload(&load.payload[..]);
        if raw == Raw::WithHeader {
            // The shape of kafkasender's ids: a 16-digit prefix, '-', a hex sequence number,
            // written on the stack as the core writes them (an allocation here would be a cost
            // of the benchmark, not of the header).
            let mut id = [0; 33];
            write!(&mut id[..], "00abcdef01234567-{i:016x}").expect("33 bytes");
            record = record.headers(OwnedHeaders::new_with_capacity(1).insert(RdHeader {
                key: "x-ks-id",
                value: Some(&id[..]),
            }));
        }
        // rust-rdkafka's poll handles at most one event per zero-timeout call: often enough for
        // events to never queue up (a few per millisecond).
        if self_polled && i.is_multiple_of(16) {
            producer.poll(Duration::ZERO);
        }
        loop {
            match producer.send::<[u8], [u8]>(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    if self_polled {
                        producer.poll(Duration::from_millis(1));
                        continue;
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
    };
    load.run(recorder, send)?;
    while self_polled && recorder.delivered() < load.count {
        producer.poll(Duration::from_millis(1));
    }
    recorder.wait_for(load.count)?;
    done.store(true, Ordering::Release);
    poller.join().expect("poll thread");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_gives_the_median_and_the_range() {
        assert_eq!(spread(vec![3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(spread(vec![4.0, 1.0, 2.0, 3.0]), (2.5, 1.0, 4.0));
    }

    #[test]
    fn a_result_line_has_every_figure_or_is_refused() {
        let figures = parse_result("result\tc-send\t812345\t1.250\t9.500\t40960\t2.125").unwrap();
        assert_eq!(figures.rate, 812_345.0);
        assert_eq!((figures.p50_ms, figures.p99_ms), (1.25, 9.5));
        assert_eq!((figures.peak_rss_kb, figures.cpu_s), (40_960, 2.125));
        assert!(parse_result("result\tc-send\t812345\t1.250\t9.500").is_err());
    }

    #[test]
    fn latencies_up_to_an_hour_are_kept_not_clamped() {
        let mut histogram = latency_histogram();
        histogram.saturating_record(2_500_000);
        assert!(histogram.value_at_quantile(0.5) >= 2_490_000);
    }

    #[test]
    fn keys_are_distinct_and_sixteen_bytes() {
        assert_ne!(Load::key(1), Load::key(2));
        assert_eq!(Load::key(7).len(), 16);
    }
}
