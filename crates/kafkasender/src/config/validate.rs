//! Checks that need more than one value: combinations of keys, resilience settings that would do
//! nothing or contradict each other, and librdkafka's own verdict on a property.

use std::collections::BTreeMap;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaConfRes;

use super::parse::Entry;
use super::settings::*;
use crate::error::ConfigProblem;
use crate::record::validate_topic;

/// Checks rules that involve more than one key.
pub(super) fn check_combinations(
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
    check_events(&settings.events, &label, problems);
    if let Some(id) = properties.get("transactional.id") {
        check_transactional(id, properties, settings, given, &label, problems);
    }
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

/// The event topic map parses, its default topic is a topic, and the key field is one an event has.
fn check_events(
    events: &EventSettings,
    label: &impl Fn(&str) -> String,
    problems: &mut Vec<ConfigProblem>,
) {
    if let Err(error) = validate_topic(&events.default_topic) {
        problems.push(ConfigProblem {
            key: label("event.default.topic"),
            message: error.message().to_string(),
        });
    } else if let Err(error) =
        crate::events::TopicMap::parse(&events.topic_map, &events.default_topic)
    {
        problems.push(ConfigProblem {
            key: label("event.topic.map"),
            message: error.message().to_string(),
        });
    }
    let key_field = events.key_field.as_str();
    if !crate::events::is_field_name(key_field) {
        problems.push(ConfigProblem {
            key: label("event.key.field"),
            message: format!(
                "`{key_field}` is not an envelope attribute ({}) nor a data field (`data.NAME`)",
                crate::events::KEY_ATTRIBUTES.join(", ")
            ),
        });
    }
}

/// A transaction's messages commit or abort together: a stage that takes one message elsewhere on
/// its own (a client re-send, the dead-letter topic, the spool) would break that.
fn check_transactional(
    id: &str,
    properties: &BTreeMap<String, String>,
    settings: &Settings,
    given: &BTreeMap<String, Entry>,
    label: &impl Fn(&str) -> String,
    problems: &mut Vec<ConfigProblem>,
) {
    let mut problem = |key: &str, message: &str| {
        problems.push(ConfigProblem {
            key: label(key),
            message: message.into(),
        })
    };
    if id.trim().is_empty() {
        problem("transactional.id", "must not be empty");
    }
    if properties.get("enable.idempotence").map(String::as_str) == Some("false") {
        problem(
            "enable.idempotence",
            "false conflicts with transactional.id: a transactional producer is idempotent",
        );
    }
    let resilience = &settings.resilience;
    let alone = "cannot be combined with transactional.id: a transaction's messages commit or \
                 abort together, so none goes elsewhere on its own; an aborted transaction is \
                 reported to the caller, who sends it again";
    if resilience.spool.dir.is_some() {
        problem("spool.dir", alone);
    }
    if resilience.dlq_topic.is_some() {
        problem("dlq.topic", alone);
    }
    if resilience.retry.max > 0 && given.contains_key("retry.max") {
        problem("retry.max", alone);
    }
}

/// Resilience keys that would silently do nothing, and values that contradict each other.
pub(super) fn check_resilience(
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

/// Asks librdkafka whether it knows the property and accepts the value.
pub(super) fn check_with_librdkafka(key: &str, value: &str) -> std::result::Result<(), String> {
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
