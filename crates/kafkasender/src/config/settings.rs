//! The settings table: every key kafkasender itself understands, with its `KAFKA_*` variable, kind,
//! default and documentation (the one list the README, the parsers and the faces derive from), and
//! the typed [`Settings`] they fill in.

use std::path::PathBuf;
use std::time::Duration;

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

pub(super) const fn setting(
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

pub(super) const COUNT: ValueKind = ValueKind::Count { allows_zero: false };
pub(super) const COUNT_OR_ZERO: ValueKind = ValueKind::Count { allows_zero: true };
pub(super) const COMPRESSIONS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];
pub(super) const SECURITY_PROTOCOLS: &[&str] = &["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
pub(super) const LOG_LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
pub(super) const PARTITION_STRATEGIES: &[&str] =
    &["murmur2", "consistent", "random", "round_robin"];
pub(super) const LOG_FORMATS: &[&str] = &["text", "json"];
pub(super) const FSYNC_POLICIES: &[&str] = &["always", "interval", "never"];
pub(super) const SPOOL_MODES: &[&str] = &["spool", "journal"];

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
    setting("message.timeout.ms", "KAFKA_PRODUCER_TIMEOUT", ValueKind::Duration, Target::Librdkafka,
        "0 (none) when idempotent, the transaction timeout when transactional, else 5m",
        "How long a message may take from `send` to acknowledgement, retries included. A timeout can hit a message the broker wrote, and re-sending that one would duplicate it: so an idempotent producer keeps every message in librdkafka's own (duplicate-free) retries, bounded by the circuit breaker and the spool."),
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
    setting("transactional.id", "KAFKA_TRANSACTIONAL_ID", ValueKind::Text, Target::Librdkafka, "off",
        "Makes the producer transactional: every send belongs to a transaction (`begin_transaction` … `commit_transaction`), whose messages are reported once it ends, `delivered` when committed, failed with `transaction` when aborted. Unique per producer instance; a new producer with the same id fences the old one."),
    setting("transaction.timeout.ms", "KAFKA_TRANSACTION_TIMEOUT", ValueKind::Duration, Target::Librdkafka, "60s",
        "How long a transaction may stay open before the broker aborts it; also bounds `message.timeout.ms`."),
    setting("enqueue.timeout.ms", "KAFKA_PRODUCER_ENQUEUE_TIMEOUT", ValueKind::Duration, Target::Own, "5s",
        "How long `send` waits for room when the local queue is full before failing with `queue_full`."),
    setting("batch.run.ahead.messages", "KAFKA_PRODUCER_BATCH_RUN_AHEAD", COUNT_OR_ZERO, Target::Own, "20000",
        "How many messages may wait in the local queue before a batch send queues more, while the brokers keep taking them: a batch is queued faster than it is sent, and every message queued ahead holds memory. Brokers that take nothing for 100 ms are not waited for. A producer gets at most this many messages per round trip to the brokers: raise it for a link with a long round trip. 0 = no limit but `queue.buffering.max.messages`."),
    setting("close.timeout.ms", "KAFKA_PRODUCER_CLOSE_TIMEOUT", ValueKind::Duration, Target::Own, "10s",
        "How long dropping an unclosed producer waits for in-flight messages."),
    setting("message.id.header", "KAFKA_PRODUCER_ID_HEADER", ValueKind::Text, Target::Own, "auto",
        "Header carrying each message's id (`x-ks-id`), the same on every re-send and spool replay, so a consumer can drop a copy an at-least-once path made. `auto`: on with a spool (the only path that can make a copy), off without (it costs librdkafka three allocations per message); `off`, or a header name."),
    setting("recovery.max", "KAFKA_PRODUCER_RECOVERY_MAX", COUNT_OR_ZERO, Target::Own, "3",
        "How often, within `recovery.window.ms`, a client that failed fatally (unknown producer id, out-of-order sequence, a transaction timed out) is replaced by a new one, what it held sent again (`recovered` in their reports; at-least-once); past that, the producer stays failed with `fatal`. 0 = never."),
    setting("recovery.window.ms", "KAFKA_PRODUCER_RECOVERY_WINDOW", ValueKind::Duration, Target::Own, "5m",
        "The window `recovery.max` counts recoveries in."),
    setting("auth.failure.timeout.ms", "KAFKA_PRODUCER_AUTH_FAILURE_TIMEOUT", ValueKind::Duration, Target::Own, "5s",
        "How long SASL authentication or the TLS handshake may keep failing before every pending and new send fails with `authentication` (until a first delivery, counted from the oldest waiting send if that is earlier)."),
    setting("partition.strategy", "KAFKA_PARTITION_STRATEGY", ValueKind::Choice(PARTITION_STRATEGIES), Target::Own, "murmur2",
        "How a record without an explicit partition gets one: `murmur2` (a key lands where the Java client puts it; keyless records spread at random), `consistent` (CRC32 of the key, as librdkafka's `consistent_random`), `random`, or `round_robin` (each record to the next partition with a leader, keys ignored). Not together with librdkafka's `partitioner`."),
    setting("health.check.interval.ms", "KAFKA_HEALTH_CHECK_INTERVAL", ValueKind::Duration, Target::Own, "2s",
        "Once `health()` has been called: how long may pass with nothing delivered before a metadata request asks the cluster whether any broker answers (on a thread of its own, waiting at most this long; at most once per interval). 0: health stays passive."),
    setting("event.topic.map", "KAFKA_TOPIC_MAP", ValueKind::Text, Target::Own, "—",
        "Where `publish_event` sends each event type: `user.*=user-events,api.error=error-events`; an exact type wins over a prefix pattern (`*` at the end), a longer prefix over a shorter. Unmapped types go to `event.default.topic`."),
    setting("event.default.topic", "KAFKA_DEFAULT_TOPIC", ValueKind::Text, Target::Own, "default-events",
        "The topic of event types `event.topic.map` does not name."),
    setting("event.key.field", "KAFKA_EVENT_KEY_FIELD", ValueKind::Text, Target::Own, "correlationid",
        "What an event's key is: an envelope attribute (`correlationid`, `id`, `type`, `source`, `causationid`, `version`) or a field of its data (`data.user.id`); an event without it is refused."),
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
    setting("breaker.stall.ms", "KAFKA_BREAKER_STALL", ValueKind::Duration, Target::Own, "10s",
        "Messages in flight but none reported for this long (a partial outage: a lost leader, too few in-sync replicas) opens the breaker."),
    setting("dlq.topic", "KAFKA_DLQ_TOPIC", ValueKind::Text, Target::Own, "off",
        "Dead-letter topic for messages that exhausted their re-sends or failed for good at the broker."),
    setting("spool.dir", "KAFKA_SPOOL_DIR", ValueKind::Text, Target::Own, "off",
        "Directory of the durable local spool: what neither the topic nor the dead-letter topic took."),
    setting("spool.fsync", "KAFKA_SPOOL_FSYNC", ValueKind::Choice(FSYNC_POLICIES), Target::Own, "interval",
        "`always` (each record), `interval` (on power loss, what was appended since the last sync began: about 200 ms) or `never`."),
    setting("spool.mode", "KAFKA_SPOOL_MODE", ValueKind::Choice(SPOOL_MODES), Target::Own, "spool",
        "`spool`: what could not be delivered; `journal`: also every accepted message, written before `send` returns and dropped once reported, so a crashed producer's messages are re-sent by the next one on the directory."),
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
pub(super) const OWN_ENV_PREFIXES: &[&str] = &[
    "KAFKA_PRODUCER_",
    "KAFKA_BREAKER_",
    "KAFKA_RATE_LIMIT_",
    "KAFKA_RETRY_",
    "KAFKA_SPOOL_",
    "KAFKA_SASL_",
];

/// Defaults that differ from librdkafka's. The partitioner matches the Java client, so a key lands
/// in the same partition whichever language produced it.
pub(super) const DEFAULTS: &[(&str, &str)] = &[
    ("client.id", "kafkasender"),
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("linger.ms", "5"),
    ("partitioner", "murmur2_random"),
    // Health reads broker states from librdkafka's statistics; one small JSON a second.
    ("statistics.interval.ms", "1000"),
];

/// The default `message.id.header`.
pub const MESSAGE_ID_HEADER: &str = "x-ks-id";

/// librdkafka's default `message.max.bytes`.
pub(super) const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

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
    pub(super) fn parse(name: &str) -> LogLevel {
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
    pub(super) fn syslog(self) -> i64 {
        match self {
            LogLevel::Off | LogLevel::Error => 3,
            LogLevel::Warn => 4,
            LogLevel::Info => 6,
            LogLevel::Debug | LogLevel::Trace => 7,
        }
    }
}

/// `partition.strategy`: how a record without an explicit partition gets one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionStrategy {
    /// Java-compatible murmur2 of the key (librdkafka's `murmur2_random`).
    Murmur2,
    /// CRC32 of the key (librdkafka's `consistent_random`).
    Consistent,
    /// Any partition (librdkafka's `random`).
    Random,
    /// The next partition with a leader, keys ignored (kafkasender's own partitioner).
    RoundRobin,
}

impl PartitionStrategy {
    pub(super) fn parse(name: &str) -> PartitionStrategy {
        match name {
            "consistent" => PartitionStrategy::Consistent,
            "random" => PartitionStrategy::Random,
            "round_robin" => PartitionStrategy::RoundRobin,
            _ => PartitionStrategy::Murmur2,
        }
    }

    /// The librdkafka `partitioner` it stands for (round-robin runs on top of the default).
    pub(super) fn librdkafka_partitioner(self) -> &'static str {
        match self {
            PartitionStrategy::Murmur2 | PartitionStrategy::RoundRobin => "murmur2_random",
            PartitionStrategy::Consistent => "consistent_random",
            PartitionStrategy::Random => "random",
        }
    }
}

/// How `fsync` is applied to spool appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every record: nothing is lost on power failure; slowest.
    Always,
    /// At most every 200 ms and on close: a process crash loses nothing, a power failure what was
    /// appended since the last sync began (about 200 ms; more while a slow disk finishes a sync,
    /// which in journal mode runs off the sending thread).
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
    /// `breaker.stall.ms`: no report for this long with messages in flight opens the breaker.
    pub stall: Duration,
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
    /// `spool.mode`.
    pub mode: SpoolMode,
}

/// `spool.mode`: what goes to the spool directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolMode {
    /// Messages that could not be delivered (or not now).
    Spool,
    /// Also every accepted message until it is reported: a crash loses nothing accepted.
    Journal,
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
                stall: Duration::from_secs(10),
            },
            dlq_topic: None,
            spool: SpoolSettings {
                dir: None,
                fsync: FsyncPolicy::Interval,
                max_bytes: 1 << 30,
                mode: SpoolMode::Spool,
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

/// `message.id.header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageIdHeader {
    /// [`MESSAGE_ID_HEADER`] when a spool is configured (spool replay is the only path on which
    /// kafkasender can make a copy of a message), none otherwise.
    Auto,
    /// No id header.
    Off,
    /// This header.
    Named(String),
}

impl Settings {
    /// The header each message's id goes in, if any.
    pub fn message_id_header(&self) -> Option<&str> {
        match &self.message_id_header {
            MessageIdHeader::Auto => self
                .resilience
                .spool
                .dir
                .is_some()
                .then_some(MESSAGE_ID_HEADER),
            MessageIdHeader::Off => None,
            MessageIdHeader::Named(name) => Some(name),
        }
    }
}

/// kafkasender's own settings (everything that is not a librdkafka property).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `enqueue.timeout.ms`: how long `send` waits for queue room.
    pub enqueue_timeout: Duration,
    /// `batch.run.ahead.messages`: how many queued messages make a batch send wait (0: none).
    pub batch_run_ahead: u64,
    /// `close.timeout.ms`: how long drop waits for in-flight messages.
    pub close_timeout: Duration,
    /// `message.id.header`: whether each message carries its id, and under which header.
    pub message_id_header: MessageIdHeader,
    /// `auth.failure.timeout.ms`: how long authentication may keep failing before sends fail.
    pub auth_failure_timeout: Duration,
    /// `partition.strategy`.
    pub partition_strategy: PartitionStrategy,
    /// `health.check.interval.ms`: how stale health's evidence may get before it asks the
    /// cluster (zero: never).
    pub health_check_interval: Duration,
    /// `recovery.max`: client replacements after fatal errors allowed per window (0: none).
    pub recovery_max: u32,
    /// `recovery.window.ms`.
    pub recovery_window: Duration,
    /// `log.level`.
    pub log_level: LogLevel,
    /// `log.format`.
    pub log_format: LogFormat,
    /// The resilience layer's settings.
    pub resilience: ResilienceSettings,
    /// How business events are published.
    pub events: EventSettings,
}

/// `event.*`: how [`crate::Producer::publish_event`] makes a record of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSettings {
    /// `event.topic.map`, as written.
    pub topic_map: String,
    /// `event.default.topic`.
    pub default_topic: String,
    /// `event.key.field`.
    pub key_field: String,
}

impl Default for EventSettings {
    fn default() -> EventSettings {
        EventSettings {
            topic_map: String::new(),
            default_topic: crate::events::DEFAULT_TOPIC.into(),
            key_field: "correlationid".into(),
        }
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            enqueue_timeout: Duration::from_secs(5),
            batch_run_ahead: 20_000,
            close_timeout: Duration::from_secs(10),
            message_id_header: MessageIdHeader::Auto,
            auth_failure_timeout: Duration::from_secs(5),
            health_check_interval: Duration::from_secs(2),
            partition_strategy: PartitionStrategy::Murmur2,
            recovery_max: 3,
            recovery_window: Duration::from_secs(300),
            log_level: LogLevel::Info,
            log_format: LogFormat::Text,
            resilience: ResilienceSettings::default(),
            events: EventSettings::default(),
        }
    }
}
