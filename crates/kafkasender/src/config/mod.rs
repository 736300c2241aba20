//! Configuration: one [`Config`], three ways in — the [`ConfigBuilder`], a string map (what C, Go,
//! Python and Node pass), and `KAFKA_*` environment variables. All three go through the same
//! normalisation and validation, which reports every problem at once and never echoes a secret.
//!
//! Keys are either kafkasender's own settings (listed in [`SETTINGS`]) or librdkafka properties,
//! which pass through unchanged after librdkafka itself has checked them. `settings` holds the
//! table and the typed settings, `parse` the value syntax, `validate` the cross-key rules.

mod file;
mod parse;
mod settings;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};

pub use self::file::Producers;
pub use self::parse::parse_duration;
use self::parse::*;
pub use self::settings::*;
use self::validate::*;
use crate::error::{ConfigProblem, Error, Result};

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

    /// Whether librdkafka may time out messages of an idempotent, non-transactional producer
    /// (`message.timeout.ms` set). Then it can write a message twice itself: after a timeout it
    /// bumps the producer epoch, and messages still waiting for a retry, which the brokers may
    /// have written, are sent again under new sequence numbers the brokers cannot de-duplicate.
    pub(crate) fn idempotent_messages_time_out(&self) -> bool {
        self.get("enable.idempotence") == Some("true")
            && self.get("transactional.id").is_none()
            && self.get("message.timeout.ms").is_some_and(|ms| ms != "0")
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
        if let Some(strategy) = latest.get("partition.strategy") {
            if let Some(partitioner) = latest.get("partitioner") {
                problems.push(ConfigProblem {
                    key: partitioner.label(),
                    message: format!("conflicts with {}: set one of them", strategy.label()),
                });
            }
            let strategy = settings.partition_strategy;
            properties.insert(
                "partitioner".into(),
                strategy.librdkafka_partitioner().into(),
            );
            if strategy == PartitionStrategy::RoundRobin {
                // Otherwise librdkafka keeps keyless records on one partition for a while.
                properties.insert("sticky.partitioning.linger.ms".into(), "0".into());
            }
        }
        let idempotent = properties.get("enable.idempotence").map(String::as_str) == Some("true");
        let transactional = properties.contains_key("transactional.id");
        // A timed-out message may have been written; only librdkafka's idempotent retries can
        // send it again without a duplicate, so they get all the time they need.
        // A transactional producer's messages are bounded by the transaction's timeout instead
        // (librdkafka refuses a longer message timeout).
        if idempotent && !transactional && !latest.contains_key("message.timeout.ms") {
            properties.insert("message.timeout.ms".into(), "0".into());
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

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
        assert_eq!(config.get("message.timeout.ms"), Some("0"));
        assert!(!config.idempotent_messages_time_out());
        let timing_out = |key: &str, value: &str| {
            let config = Config::builder()
                .brokers("x:1")
                .message_timeout(Duration::from_secs(10));
            config
                .set(key, value)
                .build()
                .unwrap()
                .idempotent_messages_time_out()
        };
        assert!(timing_out("linger.ms", "5"));
        assert!(!timing_out("enable.idempotence", "false"));
        assert!(!timing_out("transactional.id", "t"));

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
        let readme = include_str!("../../../../README.md");
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
