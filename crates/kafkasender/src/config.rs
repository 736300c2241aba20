//! Configuration: one [`Config`], three ways in — the [`ConfigBuilder`], a string map (what C, Go,
//! Python and Node pass), and `KAFKA_*` environment variables. All three go through the same
//! normalisation and validation, which reports every problem at once and never echoes a secret.
//!
//! Keys are either kafkasender's own settings (listed in [`SETTINGS`]) or librdkafka properties,
//! which pass through unchanged after librdkafka itself has checked them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaConfRes;

use crate::error::{ConfigProblem, Error, Result};
use crate::record::validate_topic;

/// How a setting's value is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Free text.
    Text,
    /// Free text that is never shown (passwords, tokens).
    Secret,
    /// `true`/`false`, also `1`/`0`, `yes`/`no`, `on`/`off`.
    Bool,
    /// A whole number, at least 1 (0 allowed where `allows_zero`).
    Count {
        /// Whether 0 is a valid value.
        allows_zero: bool,
    },
    /// A duration: `250ms`, `10s`, `2m`, `1h`, `1m30s`; a bare number means milliseconds.
    Duration,
    /// `all`/`-1`/`WaitForAll`, `1`/`WaitForLocal`, `0`/`NoResponse`.
    Acks,
    /// One of a fixed list (case-insensitive).
    Choice(&'static [&'static str]),
    /// A number above 0 and at most 1 (`0.5`).
    Ratio,
    /// A number of at least 1 (`2`, `1.5`).
    Factor,
}

/// Where a setting ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A librdkafka property of the same name.
    Librdkafka,
    /// A kafkasender setting, read into [`Settings`].
    Own,
}

/// One documented setting: its key, its environment variable, and how it is read.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The key in maps and the builder.
    pub key: &'static str,
    /// The environment variable read by [`Config::from_env`].
    pub env: &'static str,
    /// How its value is parsed.
    pub kind: ValueKind,
    /// Where it ends up.
    pub target: Target,
    /// The default, as shown in documentation (`—` for none).
    pub default: &'static str,
    /// One line on what it does.
    pub doc: &'static str,
}

const fn setting(
    key: &'static str,
    env: &'static str,
    kind: ValueKind,
    target: Target,
    default: &'static str,
    doc: &'static str,
) -> Setting {
    Setting {
        key,
        env,
        kind,
        target,
        default,
        doc,
    }
}

const COUNT: ValueKind = ValueKind::Count { allows_zero: false };
const COUNT_OR_ZERO: ValueKind = ValueKind::Count { allows_zero: true };
const COMPRESSIONS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];
const SECURITY_PROTOCOLS: &[&str] = &["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
const LOG_LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
const LOG_FORMATS: &[&str] = &["text", "json"];
const FSYNC_POLICIES: &[&str] = &["always", "interval", "never"];

/// Every setting with a name of its own; any other key is taken as a librdkafka property.
pub const SETTINGS: &[Setting] = &[
    setting("bootstrap.servers", "KAFKA_BROKERS", ValueKind::Text, Target::Librdkafka, "— (required)",
        "Comma-separated `host:port` list of brokers to bootstrap from."),
    setting("client.id", "KAFKA_CLIENT_ID", ValueKind::Text, Target::Librdkafka, "kafkasender",
        "Client id sent to the brokers (shows in their logs and quotas)."),
    setting("security.protocol", "KAFKA_SECURITY_PROTOCOL", ValueKind::Choice(SECURITY_PROTOCOLS),
        Target::Librdkafka, "plaintext", "`plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`."),
    setting("sasl.mechanism", "KAFKA_SASL_MECHANISM", ValueKind::Text, Target::Librdkafka, "—",
        "`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, `OAUTHBEARER` or `GSSAPI`."),
    setting("sasl.username", "KAFKA_SASL_USERNAME", ValueKind::Text, Target::Librdkafka, "—",
        "SASL user name."),
    setting("sasl.password", "KAFKA_SASL_PASSWORD", ValueKind::Secret, Target::Librdkafka, "—",
        "SASL password; never shown in logs, `Debug` output or errors."),
    setting("message.timeout.ms", "KAFKA_PRODUCER_TIMEOUT", ValueKind::Duration, Target::Librdkafka, "5m",
        "How long a message may take from `send` to acknowledgement, retries included."),
    setting("retries", "KAFKA_PRODUCER_RETRY_MAX", COUNT_OR_ZERO, Target::Librdkafka, "2147483647",
        "How often librdkafka re-sends a failed produce request on the wire (idempotent, no duplicates)."),
    setting("linger.ms", "KAFKA_PRODUCER_FLUSH_FREQUENCY", ValueKind::Duration, Target::Librdkafka, "5ms",
        "How long to wait for more messages before sending a batch."),
    setting("batch.num.messages", "KAFKA_PRODUCER_BATCH_SIZE", COUNT, Target::Librdkafka, "10000",
        "Most messages in one batch."),
    setting("compression.codec", "KAFKA_PRODUCER_COMPRESSION", ValueKind::Choice(COMPRESSIONS),
        Target::Librdkafka, "none", "`none`, `gzip`, `snappy`, `lz4` or `zstd`."),
    setting("acks", "KAFKA_PRODUCER_REQUIRED_ACKS", ValueKind::Acks, Target::Librdkafka, "all",
        "`all` (`WaitForAll`, `-1`), `1` (`WaitForLocal`) or `0` (`NoResponse`); idempotence needs `all`."),
    setting("enable.idempotence", "KAFKA_PRODUCER_IDEMPOTENT", ValueKind::Bool, Target::Librdkafka, "true",
        "Idempotent producer: wire retries never duplicate or reorder messages."),
    setting("enqueue.timeout.ms", "KAFKA_PRODUCER_ENQUEUE_TIMEOUT", ValueKind::Duration, Target::Own, "5s",
        "How long `send` waits for room when the local queue is full before failing with `queue_full`."),
    setting("close.timeout.ms", "KAFKA_PRODUCER_CLOSE_TIMEOUT", ValueKind::Duration, Target::Own, "10s",
        "How long dropping an unclosed producer waits for in-flight messages."),
    setting("log.level", "KAFKA_LOG_LEVEL", ValueKind::Choice(LOG_LEVELS), Target::Own, "info",
        "`off`, `error`, `warn`, `info`, `debug` or `trace`; also sets librdkafka's `log_level`."),
    setting("ratelimit.messages.per.second", "KAFKA_RATE_LIMIT_REQUESTS", COUNT, Target::Own, "off",
        "Token-bucket limit on sends per second; `send` waits for a token up to `enqueue.timeout.ms`, then fails with `rate_limited`."),
    setting("ratelimit.burst", "KAFKA_RATE_LIMIT_BURST", COUNT, Target::Own, "the rate",
        "Sends allowed at once above the rate (the bucket size)."),
    setting("ratelimit.bytes.per.second", "KAFKA_RATE_LIMIT_BYTES", COUNT, Target::Own, "off",
        "Token-bucket limit on key + value + header bytes per second (bucket: one second's worth)."),
    setting("retry.max", "KAFKA_RETRY_MAX", COUNT_OR_ZERO, Target::Own, "2",
        "Client re-sends of a message after librdkafka gave up on it with a retriable error (0 = off); at-least-once."),
    setting("retry.backoff.base.ms", "KAFKA_RETRY_BACKOFF_BASE", ValueKind::Duration, Target::Own, "100ms",
        "First re-send waits up to this long (full jitter: a random wait from zero to the backoff)."),
    setting("retry.backoff.cap.ms", "KAFKA_RETRY_BACKOFF_CAP", ValueKind::Duration, Target::Own, "10s",
        "Longest backoff between re-sends."),
    setting("retry.backoff.multiplier", "KAFKA_RETRY_BACKOFF_MULTIPLIER", ValueKind::Factor, Target::Own, "2",
        "Backoff growth per re-send (at least 1)."),
    setting("breaker.enabled", "KAFKA_BREAKER_ENABLED", ValueKind::Bool, Target::Own, "false",
        "Circuit breaker: fail fast (`circuit_open`) or spool while the brokers keep failing."),
    setting("breaker.max.requests", "KAFKA_BREAKER_MAX_REQUESTS", COUNT, Target::Own, "1",
        "Probes a half-open breaker lets through; that many successes close it, one failure reopens it."),
    setting("breaker.interval.ms", "KAFKA_BREAKER_INTERVAL", ValueKind::Duration, Target::Own, "60s",
        "Window over which a closed breaker counts failures (counts restart every window)."),
    setting("breaker.timeout.ms", "KAFKA_BREAKER_TIMEOUT", ValueKind::Duration, Target::Own, "30s",
        "How long an open breaker fails fast before it lets probes through."),
    setting("breaker.consecutive.failures", "KAFKA_BREAKER_CONSECUTIVE_FAILURES", COUNT, Target::Own, "5",
        "Consecutive failed deliveries that open the breaker."),
    setting("breaker.failure.ratio", "KAFKA_BREAKER_FAILURE_RATIO", ValueKind::Ratio, Target::Own, "0.5",
        "Failure ratio in the window (of at least 20 results) that opens the breaker."),
    setting("dlq.topic", "KAFKA_DLQ_TOPIC", ValueKind::Text, Target::Own, "off",
        "Dead-letter topic for messages that exhausted their re-sends or failed for good at the broker."),
    setting("spool.dir", "KAFKA_SPOOL_DIR", ValueKind::Text, Target::Own, "off",
        "Directory of the durable local spool: what neither the topic nor the dead-letter topic took."),
    setting("spool.fsync", "KAFKA_SPOOL_FSYNC", ValueKind::Choice(FSYNC_POLICIES), Target::Own, "interval",
        "`always` (each record), `interval` (at most 200 ms of records at risk on power loss) or `never`."),
    setting("spool.max.bytes", "KAFKA_SPOOL_MAX_BYTES", COUNT, Target::Own, "1073741824",
        "Spool size cap; a message that does not fit is reported failed with `spool`."),
    setting("log.format", "KAFKA_LOG_FORMAT", ValueKind::Choice(LOG_FORMATS), Target::Own, "text",
        "`text` or `json`, for the logger the CLI and the bindings install."),
];

/// Prefix of environment variables that pass any librdkafka property through:
/// `KAFKA_RDKAFKA_LINGER_MS` → `linger.ms`; a double underscore stands for `_` (`LOG__LEVEL` → `log_level`).
pub const RDKAFKA_ENV_PREFIX: &str = "KAFKA_RDKAFKA_";

/// Environment prefixes that belong to kafkasender: an unknown variable under them is a typo, not
/// somebody else's variable (unlike `KAFKA_HOME` or `KAFKA_OPTS`, which are ignored).
const OWN_ENV_PREFIXES: &[&str] = &[
    "KAFKA_PRODUCER_",
    "KAFKA_BREAKER_",
    "KAFKA_RATE_LIMIT_",
    "KAFKA_RETRY_",
    "KAFKA_SPOOL_",
    "KAFKA_SASL_",
];

/// Defaults that differ from librdkafka's. The partitioner matches the Java client, so a key lands
/// in the same partition whichever language produced it.
const DEFAULTS: &[(&str, &str)] = &[
    ("client.id", "kafkasender"),
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("linger.ms", "5"),
    ("partitioner", "murmur2_random"),
    // Health reads broker states from librdkafka's statistics; one small JSON a second.
    ("statistics.interval.ms", "1000"),
];

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// Whether a key holds a secret whose value must never be shown.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "ssl.key.pem",
        "ssl_key",
        "oauthbearer.config",
    ]
    .iter()
    .any(|marker| key.contains(marker))
}

/// How much kafkasender logs (and how much librdkafka is asked to log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Nothing.
    Off,
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// The default.
    Info,
    /// Verbose.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    fn parse(name: &str) -> LogLevel {
        match name {
            "off" => LogLevel::Off,
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => LogLevel::Info,
        }
    }

    /// The name accepted by `log.level`.
    pub fn as_str(self) -> &'static str {
        LOG_LEVELS[self as usize]
    }

    /// librdkafka's syslog-style level (it has no "off": errors are the least it logs).
    fn syslog(self) -> i64 {
        match self {
            LogLevel::Off | LogLevel::Error => 3,
            LogLevel::Warn => 4,
            LogLevel::Info => 6,
            LogLevel::Debug | LogLevel::Trace => 7,
        }
    }
}

/// How `fsync` is applied to spool appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every record: nothing is lost on power failure; slowest.
    Always,
    /// At most every 200 ms and on close: a process crash loses nothing, a power failure at most
    /// that much.
    Interval,
    /// Left to the operating system.
    Never,
}

/// Client re-sends (`retry.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    /// `retry.max`: re-sends after the first attempt; 0 turns client retries off.
    pub max: u32,
    /// `retry.backoff.base.ms`.
    pub base: Duration,
    /// `retry.backoff.cap.ms`.
    pub cap: Duration,
    /// `retry.backoff.multiplier`.
    pub multiplier: f64,
}

/// The circuit breaker (`breaker.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// `breaker.enabled`.
    pub enabled: bool,
    /// `breaker.max.requests`: probes while half-open.
    pub max_requests: u32,
    /// `breaker.interval.ms`: the counting window while closed.
    pub interval: Duration,
    /// `breaker.timeout.ms`: how long it stays open.
    pub timeout: Duration,
    /// `breaker.consecutive.failures`.
    pub consecutive_failures: u32,
    /// `breaker.failure.ratio`.
    pub failure_ratio: f64,
}

/// The durable spool (`spool.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    /// `spool.dir`; `None` turns spooling off.
    pub dir: Option<PathBuf>,
    /// `spool.fsync`.
    pub fsync: FsyncPolicy,
    /// `spool.max.bytes`.
    pub max_bytes: u64,
}

/// Settings of the resilience layer: what happens around librdkafka when the brokers misbehave.
#[derive(Debug, Clone, PartialEq)]
pub struct ResilienceSettings {
    /// `ratelimit.messages.per.second`
    pub rate_limit_per_second: Option<u64>,
    /// `ratelimit.burst`
    pub rate_limit_burst: Option<u64>,
    /// `ratelimit.bytes.per.second`
    pub rate_limit_bytes_per_second: Option<u64>,
    /// `retry.*`
    pub retry: RetrySettings,
    /// `breaker.*`
    pub breaker: BreakerSettings,
    /// `dlq.topic`; `None` turns dead-lettering off.
    pub dlq_topic: Option<String>,
    /// `spool.*`
    pub spool: SpoolSettings,
}

impl Default for ResilienceSettings {
    fn default() -> ResilienceSettings {
        ResilienceSettings {
            rate_limit_per_second: None,
            rate_limit_burst: None,
            rate_limit_bytes_per_second: None,
            retry: RetrySettings {
                max: 2,
                base: Duration::from_millis(100),
                cap: Duration::from_secs(10),
                multiplier: 2.0,
            },
            breaker: BreakerSettings {
                enabled: false,
                max_requests: 1,
                interval: Duration::from_secs(60),
                timeout: Duration::from_secs(30),
                consecutive_failures: 5,
                failure_ratio: 0.5,
            },
            dlq_topic: None,
            spool: SpoolSettings {
                dir: None,
                fsync: FsyncPolicy::Interval,
                max_bytes: 1 << 30,
            },
        }
    }
}

/// The format of the log lines of [`crate::logging::init`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// kafkasender's own settings (everything that is not a librdkafka property).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `enqueue.timeout.ms`: how long `send` waits for queue room.
    pub enqueue_timeout: Duration,
    /// `close.timeout.ms`: how long drop waits for in-flight messages.
    pub close_timeout: Duration,
    /// `log.level`.
    pub log_level: LogLevel,
    /// `log.format`.
    pub log_format: LogFormat,
    /// The resilience layer's settings.
    pub resilience: ResilienceSettings,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            enqueue_timeout: Duration::from_secs(5),
            close_timeout: Duration::from_secs(10),
            log_level: LogLevel::Info,
            log_format: LogFormat::Text,
            resilience: ResilienceSettings::default(),
        }
    }
}

/// A validated configuration. Build one with [`Config::builder`], [`Config::from_map`] or
/// [`Config::from_env`]. Its `Debug` output shows every value except secrets.
#[derive(Clone)]
pub struct Config {
    properties: BTreeMap<String, String>,
    settings: Settings,
}

impl Config {
    /// A builder with nothing set.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// A configuration from string keys and values (kafkasender settings or librdkafka properties).
    pub fn from_map<K: AsRef<str>, V: AsRef<str>>(
        map: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Config> {
        let mut builder = Config::builder();
        for (key, value) in map {
            builder = builder.set(key.as_ref(), value.as_ref());
        }
        builder.build()
    }

    /// A configuration from the process environment (`KAFKA_BROKERS`, … see [`SETTINGS`]).
    pub fn from_env() -> Result<Config> {
        Config::builder().with_env().build()
    }

    /// The librdkafka properties this configuration sets, defaults included. Contains secrets:
    /// for display use `Debug`, which redacts them.
    pub fn librdkafka_properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// kafkasender's own settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A librdkafka property, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }

    /// The bootstrap servers.
    pub fn bootstrap_servers(&self) -> &str {
        self.get("bootstrap.servers").unwrap_or_default()
    }

    /// The largest message librdkafka will accept (`message.max.bytes`).
    pub fn max_message_bytes(&self) -> usize {
        self.get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES)
    }

    /// The librdkafka client configuration for these properties.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        // rust-rdkafka applies its own log level after creation, overriding the `log_level` property.
        let syslog = self
            .get("log_level")
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.settings.log_level.syslog());
        config.set_log_level(match syslog {
            i64::MIN..=3 => RDKafkaLogLevel::Error,
            4 => RDKafkaLogLevel::Warning,
            5 => RDKafkaLogLevel::Notice,
            6 => RDKafkaLogLevel::Info,
            _ => RDKafkaLogLevel::Debug,
        });
        config
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if is_secret(k) {
                        "[redacted]"
                    } else {
                        v.as_str()
                    },
                )
            })
            .collect();
        f.debug_struct("Config")
            .field("properties", &shown)
            .field("settings", &self.settings)
            .finish()
    }
}

/// One key and value as the user gave it, and where it came from (for error messages).
#[derive(Clone)]
struct Entry {
    key: String,
    value: String,
    origin: String,
}

impl Entry {
    /// The name a problem is reported under: the key, or `KAFKA_X (key)` for the environment.
    fn label(&self) -> String {
        if self.origin == self.key {
            self.key.clone()
        } else {
            format!("{} ({})", self.origin, self.key)
        }
    }
}

/// Builds a [`Config`]; later settings of a key override earlier ones. Validation happens once,
/// in [`ConfigBuilder::build`], and reports every problem at once.
#[derive(Clone, Default)]
pub struct ConfigBuilder {
    entries: Vec<Entry>,
    problems: Vec<ConfigProblem>,
}

impl fmt::Debug for ConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigBuilder")
            .field(
                "keys",
                &self.entries.iter().map(|e| &e.key).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ConfigBuilder {
    /// Sets any key: a kafkasender setting or a librdkafka property.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> ConfigBuilder {
        let key = key.into().trim().to_string();
        self.entries.push(Entry {
            origin: key.clone(),
            key,
            value: value.into(),
        });
        self
    }

    /// Reads `KAFKA_*` variables from the process environment (see [`ConfigBuilder::with_env_vars`]).
    pub fn with_env(self) -> ConfigBuilder {
        self.with_env_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// Reads `KAFKA_*` variables from the given pairs: the named ones of [`SETTINGS`] and
    /// `KAFKA_RDKAFKA_<PROPERTY>`. Unknown `KAFKA_PRODUCER_*`, `KAFKA_BREAKER_*`, `KAFKA_RATE_LIMIT_*`
    /// and `KAFKA_SASL_*` variables are reported as problems; other `KAFKA_*` variables are ignored.
    pub fn with_env_vars(
        mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> ConfigBuilder {
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("KAFKA_"))
            .collect();
        vars.sort();
        for (name, value) in vars {
            if let Some(setting) = SETTINGS.iter().find(|s| s.env == name) {
                self.entries.push(Entry {
                    key: setting.key.to_string(),
                    value,
                    origin: name,
                });
            } else if let Some(property) = name.strip_prefix(RDKAFKA_ENV_PREFIX) {
                let key = property
                    .to_ascii_lowercase()
                    .replace("__", "\u{0}")
                    .replace('_', ".")
                    .replace('\u{0}', "_");
                self.entries.push(Entry {
                    key,
                    value,
                    origin: name,
                });
            } else if OWN_ENV_PREFIXES.iter().any(|p| name.starts_with(p)) {
                self.problems.push(ConfigProblem {
                    key: name,
                    message: "unknown kafkasender environment variable".into(),
                });
            }
        }
        self
    }

    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub fn brokers(self, servers: impl Into<String>) -> ConfigBuilder {
        self.set("bootstrap.servers", servers)
    }

    /// `client.id`.
    pub fn client_id(self, id: impl Into<String>) -> ConfigBuilder {
        self.set("client.id", id)
    }

    /// `acks`: `"all"`, `"1"` or `"0"` (or the `WaitForAll` style names).
    pub fn acks(self, acks: impl Into<String>) -> ConfigBuilder {
        self.set("acks", acks)
    }

    /// `enable.idempotence`.
    pub fn idempotence(self, enabled: bool) -> ConfigBuilder {
        self.set("enable.idempotence", enabled.to_string())
    }

    /// `linger.ms`.
    pub fn linger(self, linger: Duration) -> ConfigBuilder {
        self.set("linger.ms", linger.as_millis().to_string())
    }

    /// `message.timeout.ms`.
    pub fn message_timeout(self, timeout: Duration) -> ConfigBuilder {
        self.set("message.timeout.ms", timeout.as_millis().to_string())
    }

    /// `compression.codec`: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub fn compression(self, codec: impl Into<String>) -> ConfigBuilder {
        self.set("compression.codec", codec)
    }

    /// `enqueue.timeout.ms`.
    pub fn enqueue_timeout(self, timeout: Duration) -> ConfigBuilder {
        self.set("enqueue.timeout.ms", timeout.as_millis().to_string())
    }

    /// `close.timeout.ms`.
    pub fn close_timeout(self, timeout: Duration) -> ConfigBuilder {
        self.set("close.timeout.ms", timeout.as_millis().to_string())
    }

    /// Validates everything and returns the configuration, or one [`ErrorKind::Config`](crate::ErrorKind::Config)
    /// error listing every problem.
    pub fn build(self) -> Result<Config> {
        let mut problems = self.problems;
        // The last value of each key wins; a bad value that was overridden is no problem.
        let mut latest: BTreeMap<String, Entry> = BTreeMap::new();
        for entry in self.entries {
            latest.insert(entry.key.clone(), entry);
        }

        let mut properties = BTreeMap::new();
        let mut settings = Settings::default();
        for entry in latest.values() {
            let known = SETTINGS.iter().find(|s| s.key == entry.key);
            let normalized = match known {
                Some(setting) => normalize(setting.kind, &entry.key, &entry.value),
                None => normalize_passthrough(&entry.key, &entry.value),
            };
            let value = match normalized {
                Ok(value) => value,
                Err(message) => {
                    problems.push(ConfigProblem {
                        key: entry.label(),
                        message,
                    });
                    continue;
                }
            };
            match known.map(|s| s.target) {
                Some(Target::Own) => apply_own(&mut settings, &entry.key, value),
                _ => match check_with_librdkafka(&entry.key, &value) {
                    Ok(()) => {
                        properties.insert(entry.key.clone(), value);
                    }
                    Err(message) => problems.push(ConfigProblem {
                        key: entry.label(),
                        message,
                    }),
                },
            }
        }

        for (key, value) in DEFAULTS {
            if !latest.contains_key(*key) {
                properties.insert((*key).to_string(), (*value).to_string());
            }
        }
        check_combinations(&properties, &settings, &latest, &mut problems);

        if problems.is_empty() {
            Ok(Config {
                properties,
                settings,
            })
        } else {
            Err(Error::config(problems))
        }
    }
}

/// Checks rules that involve more than one key.
fn check_combinations(
    properties: &BTreeMap<String, String>,
    settings: &Settings,
    given: &BTreeMap<String, Entry>,
    problems: &mut Vec<ConfigProblem>,
) {
    let label = |key: &str| {
        given
            .get(key)
            .map(Entry::label)
            .unwrap_or_else(|| key.to_string())
    };
    match properties.get("bootstrap.servers") {
        Some(servers) if !servers.trim().is_empty() => {}
        _ => problems.push(ConfigProblem {
            key: label("bootstrap.servers"),
            message: "required: the brokers to connect to (set bootstrap.servers or KAFKA_BROKERS)"
                .into(),
        }),
    }
    if settings.resilience.rate_limit_burst.is_some()
        && settings.resilience.rate_limit_per_second.is_none()
    {
        problems.push(ConfigProblem {
            key: label("ratelimit.burst"),
            message: "needs ratelimit.messages.per.second".into(),
        });
    }
    check_resilience(&settings.resilience, given, &label, problems);
    let idempotent = properties.get("enable.idempotence").map(String::as_str) == Some("true");
    if !idempotent {
        return;
    }
    if let Some(acks) = properties
        .get("acks")
        .filter(|a| !matches!(a.as_str(), "all" | "-1"))
    {
        problems.push(ConfigProblem {
            key: label("acks"),
            message: format!(
                "acks={acks} conflicts with enable.idempotence=true, which needs acks=all; \
                 set enable.idempotence=false to use acks={acks}"
            ),
        });
    }
    for key in ["max.in.flight.requests.per.connection", "max.in.flight"] {
        if let Some(n) = properties
            .get(key)
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|n| *n > 5)
        {
            problems.push(ConfigProblem {
                key: label(key),
                message: format!(
                    "{n} conflicts with enable.idempotence=true, which allows at most 5"
                ),
            });
        }
    }
}

/// Resilience keys that would silently do nothing, and values that contradict each other.
fn check_resilience(
    resilience: &ResilienceSettings,
    given: &BTreeMap<String, Entry>,
    label: &impl Fn(&str) -> String,
    problems: &mut Vec<ConfigProblem>,
) {
    let needs = |prefix: &str, switch: &str, on: bool, problems: &mut Vec<ConfigProblem>| {
        if on {
            return;
        }
        for key in given
            .keys()
            .filter(|k| k.starts_with(prefix) && *k != switch)
        {
            problems.push(ConfigProblem {
                key: label(key),
                message: format!("has no effect unless {switch} is set"),
            });
        }
    };
    needs(
        "breaker.",
        "breaker.enabled",
        resilience.breaker.enabled,
        problems,
    );
    needs(
        "spool.",
        "spool.dir",
        resilience.spool.dir.is_some(),
        problems,
    );
    if resilience.retry.base > resilience.retry.cap {
        problems.push(ConfigProblem {
            key: label("retry.backoff.base.ms"),
            message: "is longer than retry.backoff.cap.ms".into(),
        });
    }
    if let Some(Err(error)) = resilience.dlq_topic.as_deref().map(validate_topic) {
        problems.push(ConfigProblem {
            key: label("dlq.topic"),
            message: error.message().to_string(),
        });
    }
}

/// Shows a value in a problem message unless its key is secret.
fn shown(key: &str, value: &str) -> String {
    if is_secret(key) {
        "(value not shown)".into()
    } else {
        format!("{value:?}")
    }
}

/// Parses a value of a known setting into its canonical string form.
fn normalize(kind: ValueKind, key: &str, raw: &str) -> std::result::Result<String, String> {
    let value = raw.trim();
    match kind {
        ValueKind::Text | ValueKind::Secret => {
            if value.is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(value.to_string())
            }
        }
        ValueKind::Bool => parse_bool(value)
            .map(|b| b.to_string())
            .ok_or_else(|| format!("expected true or false, got {}", shown(key, value))),
        ValueKind::Count { allows_zero } => match value.parse::<u64>() {
            Ok(0) if !allows_zero => Err("must be at least 1".into()),
            Ok(n) => Ok(n.to_string()),
            Err(_) => Err(format!(
                "expected a whole number, got {}",
                shown(key, value)
            )),
        },
        ValueKind::Duration => parse_duration(value)
            .map(|d| d.as_millis().to_string())
            .ok_or_else(|| {
                format!(
                    "expected a duration like 250ms, 10s or 2m, got {}",
                    shown(key, value)
                )
            }),
        ValueKind::Acks => match value.to_ascii_lowercase().as_str() {
            "all" | "-1" | "waitforall" => Ok("all".into()),
            "1" | "waitforlocal" => Ok("1".into()),
            "0" | "noresponse" => Ok("0".into()),
            _ => Err(format!(
                "expected all (WaitForAll), 1 (WaitForLocal) or 0 (NoResponse), got {}",
                shown(key, value)
            )),
        },
        ValueKind::Ratio => match value.parse::<f64>() {
            Ok(n) if n > 0.0 && n <= 1.0 => Ok(n.to_string()),
            _ => Err(format!(
                "expected a number above 0 and at most 1, got {}",
                shown(key, value)
            )),
        },
        ValueKind::Factor => match value.parse::<f64>() {
            Ok(n) if (1.0..=1000.0).contains(&n) => Ok(n.to_string()),
            _ => Err(format!(
                "expected a number from 1 to 1000, got {}",
                shown(key, value)
            )),
        },
        ValueKind::Choice(choices) => {
            let lower = value.to_ascii_lowercase();
            if choices.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err(format!(
                    "expected one of {}, got {}",
                    choices.join(", "),
                    shown(key, value)
                ))
            }
        }
    }
}

/// librdkafka properties pass through as given, except that `*.ms` keys also take durations.
fn normalize_passthrough(key: &str, raw: &str) -> std::result::Result<String, String> {
    let value = raw.trim();
    if key.ends_with(".ms") && value.parse::<i64>().is_err() {
        return parse_duration(value)
            .map(|d| d.as_millis().to_string())
            .ok_or_else(|| {
                format!(
                    "expected milliseconds or a duration like 250ms or 10s, got {}",
                    shown(key, value)
                )
            });
    }
    Ok(value.to_string())
}

/// Asks librdkafka whether it knows the property and accepts the value.
fn check_with_librdkafka(key: &str, value: &str) -> std::result::Result<(), String> {
    let mut probe = ClientConfig::new();
    probe.set(key, value);
    match probe.create_native_config() {
        Ok(_) => Ok(()),
        Err(KafkaError::ClientConfig(RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN, ..)) => {
            Err("unknown key: neither a kafkasender setting nor a librdkafka property".into())
        }
        Err(KafkaError::ClientConfig(_, description, ..)) if !is_secret(key) => Err(description),
        Err(_) => Err("invalid value (not shown: secret)".into()),
    }
}

fn apply_own(settings: &mut Settings, key: &str, value: String) {
    let millis = || Duration::from_millis(value.parse().unwrap_or_default());
    let count = || value.parse::<u64>().ok();
    let small_count = || value.parse::<u32>().unwrap_or(u32::MAX);
    let number = || value.parse::<f64>().unwrap_or(1.0);
    let resilience = &mut settings.resilience;
    match key {
        "enqueue.timeout.ms" => settings.enqueue_timeout = millis(),
        "close.timeout.ms" => settings.close_timeout = millis(),
        "log.level" => settings.log_level = LogLevel::parse(&value),
        "ratelimit.messages.per.second" => resilience.rate_limit_per_second = count(),
        "ratelimit.burst" => resilience.rate_limit_burst = count(),
        "ratelimit.bytes.per.second" => resilience.rate_limit_bytes_per_second = count(),
        "log.format" => {
            settings.log_format = if value == "json" {
                LogFormat::Json
            } else {
                LogFormat::Text
            }
        }
        "retry.max" => resilience.retry.max = small_count(),
        "retry.backoff.base.ms" => resilience.retry.base = millis(),
        "retry.backoff.cap.ms" => resilience.retry.cap = millis(),
        "retry.backoff.multiplier" => resilience.retry.multiplier = number(),
        "breaker.enabled" => resilience.breaker.enabled = value == "true",
        "breaker.max.requests" => resilience.breaker.max_requests = small_count(),
        "breaker.interval.ms" => resilience.breaker.interval = millis(),
        "breaker.timeout.ms" => resilience.breaker.timeout = millis(),
        "breaker.consecutive.failures" => resilience.breaker.consecutive_failures = small_count(),
        "breaker.failure.ratio" => resilience.breaker.failure_ratio = number(),
        "dlq.topic" => resilience.dlq_topic = Some(value),
        "spool.dir" => resilience.spool.dir = Some(PathBuf::from(value)),
        "spool.fsync" => {
            resilience.spool.fsync = match value.as_str() {
                "always" => FsyncPolicy::Always,
                "never" => FsyncPolicy::Never,
                _ => FsyncPolicy::Interval,
            }
        }
        "spool.max.bytes" => resilience.spool.max_bytes = count().unwrap_or(u64::MAX),
        other => unreachable!("own setting {other} has no field"),
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Parses `250ms`, `10s`, `2m`, `1h`, `1m30s`, or a bare number of milliseconds.
pub fn parse_duration(value: &str) -> Option<Duration> {
    if let Ok(millis) = value.parse::<u64>() {
        return Some(Duration::from_millis(millis));
    }
    let mut total = Duration::ZERO;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .filter(|&i| i > 0)?;
        let amount: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return None,
        };
        total += unit.checked_mul(u32::try_from(amount).ok()?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn durations_accept_units_and_bare_milliseconds() {
        assert_eq!(parse_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10 s"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("5d"), None);
    }

    #[test]
    fn every_seed_environment_variable_is_read() {
        let config = Config::builder()
            .with_env_vars(env(&[
                ("KAFKA_BROKERS", "a:9092,b:9092"),
                ("KAFKA_CLIENT_ID", "orders"),
                ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
                ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256"),
                ("KAFKA_SASL_USERNAME", "alice"),
                ("KAFKA_SASL_PASSWORD", "hunter2-secret"),
                ("KAFKA_PRODUCER_TIMEOUT", "10s"),
                ("KAFKA_PRODUCER_RETRY_MAX", "7"),
                ("KAFKA_PRODUCER_FLUSH_FREQUENCY", "100ms"),
                ("KAFKA_PRODUCER_BATCH_SIZE", "500"),
                ("KAFKA_PRODUCER_COMPRESSION", "zstd"),
                ("KAFKA_PRODUCER_REQUIRED_ACKS", "WaitForAll"),
                ("KAFKA_PRODUCER_IDEMPOTENT", "true"),
                ("KAFKA_RATE_LIMIT_REQUESTS", "1000"),
                ("KAFKA_RATE_LIMIT_BURST", "100"),
                ("KAFKA_BREAKER_ENABLED", "true"),
                ("KAFKA_BREAKER_MAX_REQUESTS", "3"),
                ("KAFKA_BREAKER_INTERVAL", "1m"),
                ("KAFKA_BREAKER_TIMEOUT", "30s"),
                ("KAFKA_LOG_LEVEL", "debug"),
                ("KAFKA_DLQ_TOPIC", "orders.dlq"),
                ("KAFKA_SPOOL_DIR", "/var/spool/ks"),
                ("KAFKA_SPOOL_FSYNC", "always"),
                ("KAFKA_RETRY_MAX", "4"),
                ("KAFKA_RETRY_BACKOFF_BASE", "50ms"),
                ("KAFKA_LOG_FORMAT", "json"),
                ("KAFKA_RDKAFKA_QUEUE_BUFFERING_MAX_MESSAGES", "2000"),
                ("KAFKA_RDKAFKA_LOG__LEVEL", "5"),
                ("KAFKA_HOME", "/opt/kafka"),
            ]))
            .build()
            .expect("valid configuration");
        let get = |k| config.get(k).unwrap_or_else(|| panic!("{k} missing"));
        assert_eq!(get("bootstrap.servers"), "a:9092,b:9092");
        assert_eq!(get("client.id"), "orders");
        assert_eq!(get("security.protocol"), "sasl_ssl");
        assert_eq!(get("sasl.mechanism"), "SCRAM-SHA-256");
        assert_eq!(get("sasl.username"), "alice");
        assert_eq!(get("sasl.password"), "hunter2-secret");
        assert_eq!(get("message.timeout.ms"), "10000");
        assert_eq!(get("retries"), "7");
        assert_eq!(get("linger.ms"), "100");
        assert_eq!(get("batch.num.messages"), "500");
        assert_eq!(get("compression.codec"), "zstd");
        assert_eq!(get("acks"), "all");
        assert_eq!(get("enable.idempotence"), "true");
        assert_eq!(get("queue.buffering.max.messages"), "2000");
        assert_eq!(
            get("log_level"),
            "5",
            "an explicit librdkafka log_level wins over KAFKA_LOG_LEVEL"
        );
        let settings = config.settings();
        assert_eq!(settings.log_level, LogLevel::Debug);
        let r = &settings.resilience;
        assert_eq!(r.rate_limit_per_second, Some(1000));
        assert_eq!(r.rate_limit_burst, Some(100));
        assert!(r.breaker.enabled);
        assert_eq!(r.breaker.max_requests, 3);
        assert_eq!(r.breaker.interval, Duration::from_secs(60));
        assert_eq!(r.breaker.timeout, Duration::from_secs(30));
        assert_eq!(r.dlq_topic.as_deref(), Some("orders.dlq"));
        assert_eq!(r.spool.dir, Some(PathBuf::from("/var/spool/ks")));
        assert_eq!(r.spool.fsync, FsyncPolicy::Always);
        assert_eq!(r.retry.max, 4);
        assert_eq!(r.retry.base, Duration::from_millis(50));
        assert_eq!(settings.log_format, LogFormat::Json);
    }

    #[test]
    fn required_acks_accepts_seed_spellings_and_numbers() {
        for (given, expected) in [
            ("WaitForLocal", "1"),
            ("NoResponse", "0"),
            ("-1", "all"),
            ("1", "1"),
        ] {
            let config = Config::builder()
                .brokers("x:1")
                .idempotence(false)
                .acks(given)
                .build()
                .unwrap();
            assert_eq!(config.get("acks"), Some(expected), "acks={given}");
        }
    }

    #[test]
    fn validation_reports_every_problem_at_once_naming_each_key() {
        let error = Config::builder()
            .with_env_vars(env(&[
                ("KAFKA_PRODUCER_TIMEOUT", "soon"),
                ("KAFKA_PRODUCER_TYPO", "1"),
            ]))
            .set("linger.ms", "fast")
            .set("no.such.property", "1")
            .set("batch.num.messages", "0")
            .set("compression.codec", "brotli")
            .acks("1")
            .build()
            .unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::Config);
        let keys: Vec<&str> = error.problems().iter().map(|p| p.key.as_str()).collect();
        for expected in [
            "KAFKA_PRODUCER_TIMEOUT (message.timeout.ms)",
            "KAFKA_PRODUCER_TYPO",
            "linger.ms",
            "no.such.property",
            "batch.num.messages",
            "compression.codec",
            "acks",
            "bootstrap.servers",
        ] {
            assert!(keys.contains(&expected), "{expected} not among {keys:?}");
        }
        assert_eq!(keys.len(), 8, "{keys:?}");
    }

    #[test]
    fn later_values_override_earlier_ones_even_when_those_were_invalid() {
        let config = Config::builder()
            .with_env_vars(env(&[
                ("KAFKA_BROKERS", "env:1"),
                ("KAFKA_PRODUCER_FLUSH_FREQUENCY", "bad"),
            ]))
            .set("linger.ms", "20ms")
            .brokers("explicit:1")
            .build()
            .unwrap();
        assert_eq!(config.bootstrap_servers(), "explicit:1");
        assert_eq!(config.get("linger.ms"), Some("20"));
    }

    #[test]
    fn secrets_never_appear_in_debug_or_errors() {
        let secret = "s3cr3t-Pa55";
        let config = Config::from_map([
            ("bootstrap.servers", "x:1"),
            ("sasl.password", secret),
            ("ssl.key.password", secret),
            ("ssl.keystore.password", secret),
        ])
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains(secret), "{debug}");
        assert!(debug.contains("[redacted]"));

        // A rejected secret is named by its key, never quoted.
        let error = normalize(ValueKind::Bool, "ssl.key.password", secret).unwrap_err();
        assert!(!error.contains(secret), "{error}");
        let error =
            Config::from_map([("bootstrap.servers", "x:1"), ("sasl.password", " ")]).unwrap_err();
        assert_eq!(error.problems()[0].key, "sasl.password");
    }

    #[test]
    fn idempotence_is_on_by_default_and_conflicts_are_named() {
        let config = Config::builder().brokers("x:1").build().unwrap();
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("partitioner"), Some("murmur2_random"));

        let error = Config::builder()
            .brokers("x:1")
            .acks("WaitForLocal")
            .set("max.in.flight.requests.per.connection", "10")
            .build()
            .unwrap_err();
        assert_eq!(error.problems().len(), 2, "{error}");
        assert!(error.to_string().contains("enable.idempotence"));
    }

    #[test]
    fn passthrough_ms_keys_take_durations() {
        let config =
            Config::from_map([("bootstrap.servers", "x:1"), ("socket.timeout.ms", "30s")]).unwrap();
        assert_eq!(config.get("socket.timeout.ms"), Some("30000"));
    }

    #[test]
    fn the_readme_documents_every_setting_and_its_variable() {
        let readme = include_str!("../../../README.md");
        for setting in SETTINGS {
            let row = format!(
                "| `{}` | `{}` | {} |",
                setting.env, setting.key, setting.default
            );
            assert!(
                readme.contains(&row),
                "README.md lacks the row starting {row}"
            );
        }
    }

    #[test]
    fn a_burst_without_a_rate_is_a_problem() {
        let error = Config::builder()
            .brokers("x:1")
            .set("ratelimit.burst", "10")
            .build()
            .unwrap_err();
        assert_eq!(error.problems()[0].key, "ratelimit.burst");
    }

    #[test]
    fn resilience_keys_that_would_do_nothing_or_contradict_are_problems() {
        let error = Config::builder()
            .brokers("x:1")
            .set("breaker.timeout.ms", "5s")
            .set("spool.fsync", "always")
            .set("retry.backoff.base.ms", "20s")
            .set("breaker.failure.ratio", "1.5")
            .set("dlq.topic", "bad topic")
            .build()
            .unwrap_err();
        let keys: Vec<&str> = error.problems().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "breaker.failure.ratio",
                "breaker.failure.ratio",
                "breaker.timeout.ms",
                "spool.fsync",
                "retry.backoff.base.ms",
                "dlq.topic"
            ],
            "{error}"
        );
        assert!(Config::builder()
            .brokers("x:1")
            .set("breaker.enabled", "true")
            .set("breaker.failure.ratio", "0.25")
            .set("spool.dir", "/tmp/x")
            .set("spool.fsync", "never")
            .build()
            .is_ok());
    }
}
