//! Turns what users write into canonical values: durations (`100ms`, `10s`, `2m`), booleans,
//! counts and names, and fills kafkasender's own [`Settings`] from them.

use std::path::PathBuf;
use std::time::Duration;

use super::settings::*;

/// Shows a value in a problem message unless its key is secret.
pub(super) fn shown(key: &str, value: &str) -> String {
    if is_secret(key) {
        "(value not shown)".into()
    } else {
        format!("{value:?}")
    }
}

/// Parses a value of a known setting into its canonical string form.
pub(super) fn normalize(
    kind: ValueKind,
    key: &str,
    raw: &str,
) -> std::result::Result<String, String> {
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
pub(super) fn normalize_passthrough(key: &str, raw: &str) -> std::result::Result<String, String> {
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

pub(super) fn apply_own(settings: &mut Settings, key: &str, value: String) {
    let millis = || Duration::from_millis(value.parse().unwrap_or_default());
    let count = || value.parse::<u64>().ok();
    let small_count = || value.parse::<u32>().unwrap_or(u32::MAX);
    let number = || value.parse::<f64>().unwrap_or(1.0);
    let resilience = &mut settings.resilience;
    match key {
        "enqueue.timeout.ms" => settings.enqueue_timeout = millis(),
        "batch.run.ahead.messages" => settings.batch_run_ahead = count().unwrap_or(u64::MAX),
        "close.timeout.ms" => settings.close_timeout = millis(),
        "message.id.header" => {
            settings.message_id_header = match value.as_str() {
                "auto" => MessageIdHeader::Auto,
                "" | "off" => MessageIdHeader::Off,
                _ => MessageIdHeader::Named(value.clone()),
            }
        }
        "auth.failure.timeout.ms" => settings.auth_failure_timeout = millis(),
        "health.check.interval.ms" => settings.health_check_interval = millis(),
        "partition.strategy" => settings.partition_strategy = PartitionStrategy::parse(&value),
        "event.topic.map" => settings.events.topic_map = value.clone(),
        "event.default.topic" => settings.events.default_topic = value.clone(),
        "event.key.field" => settings.events.key_field = value.clone(),
        "recovery.max" => settings.recovery_max = small_count(),
        "recovery.window.ms" => settings.recovery_window = millis(),
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
        "breaker.stall.ms" => resilience.breaker.stall = millis(),
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
        "spool.mode" => {
            resilience.spool.mode = if value == "journal" {
                SpoolMode::Journal
            } else {
                SpoolMode::Spool
            }
        }
        other => unreachable!("own setting {other} has no field"),
    }
}

pub(super) fn parse_bool(value: &str) -> Option<bool> {
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

/// One key and value as the user gave it, and where it came from (for error messages).
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) key: String,
    pub(super) value: String,
    pub(super) origin: String,
}

impl Entry {
    /// The name a problem is reported under: the key, or `KAFKA_X (key)` for the environment.
    pub(super) fn label(&self) -> String {
        if self.origin == self.key {
            self.key.clone()
        } else {
            format!("{} ({})", self.origin, self.key)
        }
    }
}
