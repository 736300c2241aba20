//! Business events: an envelope in the CloudEvents 1.0 JSON format (structured mode), so any
//! CloudEvents reader understands what kafkasender publishes, and the mapping from an event's
//! type to its topic. [`crate::Producer::publish_event`] turns an [`Event`] into a record: the
//! envelope as the value, the key from `event.key.field`, and `ce_*` headers that let a consumer
//! route without parsing the value. The JSON Schema of the envelope is `docs/event.schema.json`.
//!
//! ```
//! use kafkasender::events::{EventBuilder, TopicMap};
//!
//! let builder = EventBuilder::new("checkout-service").version("2");
//! let event = builder.event("order.placed", serde_json::json!({"order": 7, "total": 12.5}));
//! let topics = TopicMap::parse("order.*=orders,api.error=errors", "default-events").unwrap();
//! assert_eq!(topics.topic_for(&event.event_type), "orders");
//! assert!(event.to_json().starts_with(r#"{"specversion":"1.0","id":""#));
//! ```

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};

/// The CloudEvents version of the envelope.
pub const SPEC_VERSION: &str = "1.0";
/// The envelope's `datacontenttype`: the data is always JSON.
pub const DATA_CONTENT_TYPE: &str = "application/json";
/// The topic of events whose type no mapping names (`event.default.topic`).
pub const DEFAULT_TOPIC: &str = "default-events";

/// One business event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique per event (a random UUID unless set).
    pub id: String,
    /// What happened, as a dotted name: `user.registered`.
    pub event_type: String,
    /// Who says so: a service name or URI.
    pub source: String,
    /// When it happened.
    pub time: SystemTime,
    /// The payload.
    pub data: Value,
    /// The operation this event belongs to, across services (extension `correlationid`).
    pub correlation_id: String,
    /// The event that caused this one, if any (extension `causationid`).
    pub causation_id: Option<String>,
    /// The version of the event type's schema, if given (extension `version`).
    pub version: Option<String>,
}

impl Event {
    /// The envelope as one CloudEvents JSON object, attributes in a fixed order (the required
    /// ones first, as the CloudEvents specification lists them).
    pub fn to_json(&self) -> String {
        // Written by hand: serde_json's map sorts its keys.
        let text = |value: &str| Value::from(value).to_string();
        let mut json = format!(
            r#"{{"specversion":"{SPEC_VERSION}","id":{},"type":{},"source":{},"time":"{}","datacontenttype":"{DATA_CONTENT_TYPE}","data":{},"correlationid":{}"#,
            text(&self.id),
            text(&self.event_type),
            text(&self.source),
            rfc3339(self.time),
            self.data,
            text(&self.correlation_id),
        );
        if let Some(causation) = &self.causation_id {
            json += &format!(r#","causationid":{}"#, text(causation));
        }
        if let Some(version) = &self.version {
            json += &format!(r#","version":{}"#, text(version));
        }
        json.push('}');
        json
    }

    /// Reads an envelope written by [`Event::to_json`] (or another CloudEvents 1.0 writer with
    /// JSON data and a `correlationid`).
    pub fn from_json(json: &str) -> Result<Event> {
        let invalid = |why: String| {
            Error::new(
                ErrorKind::InvalidRecord,
                format!("not a kafkasender event: {why}"),
            )
        };
        let envelope: Map<String, Value> =
            serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        let text = |name: &str| -> Result<Option<String>> {
            match envelope.get(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(invalid(format!("`{name}` is {other}, not a string"))),
            }
        };
        let required = |name: &str| text(name)?.ok_or_else(|| invalid(format!("no `{name}`")));
        if required("specversion")? != SPEC_VERSION {
            return Err(invalid("`specversion` is not 1.0".into()));
        }
        Ok(Event {
            id: required("id")?,
            event_type: required("type")?,
            source: required("source")?,
            time: parse_rfc3339(&required("time")?)
                .ok_or_else(|| invalid("`time` is not an RFC 3339 UTC time".into()))?,
            data: envelope.get("data").cloned().unwrap_or(Value::Null),
            correlation_id: required("correlationid")?,
            causation_id: text("causationid")?,
            version: text("version")?,
        })
    }

    /// The same event as the cause of a new one: `causationid` is this event's id, the
    /// correlation id carries over.
    pub fn caused(&self, builder: &EventBuilder, event_type: &str, data: Value) -> Event {
        let mut next = builder.event(event_type, data);
        next.correlation_id = self.correlation_id.clone();
        next.causation_id = Some(self.id.clone());
        next
    }

    /// The value of an envelope attribute ([`KEY_ATTRIBUTES`]) or of a field of the data
    /// (`data.user.id`), as text: what `event.key.field` names for the key. `None` when it is
    /// absent or not a scalar.
    pub fn field(&self, name: &str) -> Option<String> {
        if let Some(path) = name.strip_prefix("data.") {
            let mut at = &self.data;
            for step in path.split('.') {
                at = at.get(step)?;
            }
            return match at {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            };
        }
        match name {
            "id" => Some(self.id.clone()),
            "type" => Some(self.event_type.clone()),
            "source" => Some(self.source.clone()),
            "correlationid" => Some(self.correlation_id.clone()),
            "causationid" => self.causation_id.clone(),
            "version" => self.version.clone(),
            _ => None,
        }
    }
}

/// The envelope attributes [`Event::field`] answers for (a test keeps the two in step).
pub const KEY_ATTRIBUTES: [&str; 6] = [
    "correlationid",
    "id",
    "type",
    "source",
    "causationid",
    "version",
];

/// Whether `name` is one [`Event::field`] knows: an attribute of [`KEY_ATTRIBUTES`] or `data.NAME`.
pub fn is_field_name(name: &str) -> bool {
    KEY_ATTRIBUTES.contains(&name) || name.strip_prefix("data.").is_some_and(|f| !f.is_empty())
}

/// Makes events of one source: each gets a new id and the current time, the builder's version,
/// and its correlation id (a new one per event when the builder has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBuilder {
    source: String,
    version: Option<String>,
    correlation_id: Option<String>,
}

impl EventBuilder {
    /// Events from `source`.
    pub fn new(source: impl Into<String>) -> EventBuilder {
        EventBuilder {
            source: source.into(),
            version: None,
            correlation_id: None,
        }
    }

    /// The version every event gets.
    pub fn version(mut self, version: impl Into<String>) -> EventBuilder {
        self.version = Some(version.into());
        self
    }

    /// The correlation id every event gets (faces pass the one of the current context).
    pub fn correlation_id(mut self, correlation_id: impl Into<String>) -> EventBuilder {
        self.correlation_id = Some(correlation_id.into());
        self
    }

    /// A new event of `event_type` with `data`.
    pub fn event(&self, event_type: &str, data: Value) -> Event {
        Event {
            id: new_id(),
            event_type: event_type.to_string(),
            source: self.source.clone(),
            time: SystemTime::now(),
            data,
            correlation_id: self.correlation_id.clone().unwrap_or_else(new_id),
            causation_id: None,
            version: self.version.clone(),
        }
    }
}

/// A random (version 4) UUID: ids and generated correlation ids.
pub fn new_id() -> String {
    let bits = (fastrand::u128(..) & !(0xf000 << 64) & !(0xc << 60)) | (0x4000 << 64) | (0x8 << 60);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Which topic each event type goes to: an exact type first, then the longest matching prefix
/// pattern (`user.*`), then the default topic. Written as `user.*=user-events,api.error=errors`
/// (`event.topic.map`, `KAFKA_TOPIC_MAP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMap {
    exact: HashMap<String, String>,
    /// (prefix without the `*`, topic), longest prefix first.
    prefixes: Vec<(String, String)>,
    default_topic: String,
}

impl TopicMap {
    /// No mapping: every event goes to `default_topic`.
    pub fn new(default_topic: impl Into<String>) -> TopicMap {
        TopicMap {
            exact: HashMap::new(),
            prefixes: Vec::new(),
            default_topic: default_topic.into(),
        }
    }

    /// Reads `pattern=topic` pairs separated by commas; every malformed pair is listed.
    pub fn parse(spec: &str, default_topic: &str) -> Result<TopicMap> {
        let mut map = TopicMap::new(default_topic);
        let mut problems = Vec::new();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((pattern, topic)) => {
                    if let Err(error) = map.set(pattern.trim(), topic.trim()) {
                        problems.push(error.message().to_string());
                    }
                }
                None => problems.push(format!("`{pair}` is not PATTERN=TOPIC")),
            }
        }
        if problems.is_empty() {
            Ok(map)
        } else {
            Err(Error::new(ErrorKind::Config, problems.join("; ")))
        }
    }

    /// Maps an event type (`api.error`) or a prefix pattern (`user.*`) to `topic`, replacing
    /// an earlier mapping of the same pattern.
    pub fn set(&mut self, pattern: &str, topic: &str) -> Result<()> {
        crate::record::validate_topic(topic)?;
        let wrong = |why: &str| {
            Err(Error::new(
                ErrorKind::Config,
                format!("event type pattern `{pattern}` {why}"),
            ))
        };
        match pattern.strip_suffix('*') {
            _ if pattern.is_empty() => return wrong("is empty"),
            Some(prefix) if prefix.contains('*') => return wrong("may hold `*` only at its end"),
            Some(prefix) => {
                self.prefixes.retain(|(p, _)| p != prefix);
                self.prefixes.push((prefix.to_string(), topic.to_string()));
                self.prefixes
                    .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
            }
            None if pattern.contains('*') => return wrong("may hold `*` only at its end"),
            None => {
                self.exact.insert(pattern.to_string(), topic.to_string());
            }
        }
        Ok(())
    }

    /// The topic for events of `event_type`.
    pub fn topic_for(&self, event_type: &str) -> &str {
        if let Some(topic) = self.exact.get(event_type) {
            return topic;
        }
        self.prefixes
            .iter()
            .find(|(prefix, _)| event_type.starts_with(prefix.as_str()))
            .map_or(&self.default_topic, |(_, topic)| topic)
    }
}

/// `2026-11-30T10:04:24.123Z`: RFC 3339 in UTC with milliseconds.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since.subsec_millis()
    )
}

/// Reads what [`rfc3339`] writes (fractions of any length, `Z` or `+00:00`).
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, clock) = text.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (clock, fraction) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut clock = clock.split(':').map(|p| p.parse::<u64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let nanos: u32 = format!("{:0<9}", fraction.get(..9).unwrap_or(fraction))
        .parse()
        .ok()?;
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::new(seconds, nanos))
}

// Howard Hinnant's conversions between days since 1970-01-01 and the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_envelope_round_trips_and_carries_every_attribute() {
        let builder = EventBuilder::new("svc")
            .version("3")
            .correlation_id("corr-1");
        let first = builder.event(
            "user.registered",
            json!({"user": {"id": 42}, "name": "Ada"}),
        );
        let event = first.caused(&builder, "mail.sent", json!([1, "two", null]));
        let json = event.to_json();
        let envelope: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(envelope["specversion"], "1.0");
        assert_eq!(envelope["datacontenttype"], "application/json");
        assert_eq!(envelope["correlationid"], "corr-1");
        assert_eq!(envelope["causationid"], first.id.as_str());
        assert_eq!(envelope["version"], "3");
        let back = Event::from_json(&json).unwrap();
        // The time keeps milliseconds.
        let millis = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis();
        assert_eq!(millis(back.time), millis(event.time));
        assert_eq!(
            Event {
                time: event.time,
                ..back
            },
            event
        );
        assert!(Event::from_json(r#"{"specversion":"0.3"}"#).is_err());
        assert!(Event::from_json("[]").is_err());
    }

    #[test]
    fn ids_are_version_4_uuids_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert_ne!(
            EventBuilder::new("s")
                .event("t", Value::Null)
                .correlation_id,
            EventBuilder::new("s")
                .event("t", Value::Null)
                .correlation_id
        );
    }

    #[test]
    fn exact_types_win_over_prefixes_and_longer_prefixes_over_shorter() {
        let map = TopicMap::parse(
            "user.*=users, user.admin.*=admins,user.deleted=gdpr",
            "rest",
        )
        .unwrap();
        assert_eq!(map.topic_for("user.deleted"), "gdpr");
        assert_eq!(map.topic_for("user.admin.created"), "admins");
        assert_eq!(map.topic_for("user.registered"), "users");
        assert_eq!(map.topic_for("order.placed"), "rest");
        let error = TopicMap::parse("a*b=x,nonsense,c=not a topic!", DEFAULT_TOPIC).unwrap_err();
        let listed = error.message();
        assert!(
            listed.contains("a*b")
                && listed.contains("nonsense")
                && listed.contains("not a topic!"),
            "{listed}"
        );
    }

    #[test]
    fn key_fields_come_from_the_envelope_or_the_data() {
        let event = EventBuilder::new("s")
            .correlation_id("c")
            .event("t", json!({"user": {"id": 7, "vip": true}}));
        assert_eq!(event.field("correlationid").as_deref(), Some("c"));
        assert_eq!(event.field("data.user.id").as_deref(), Some("7"));
        assert_eq!(event.field("data.user.vip").as_deref(), Some("true"));
        assert_eq!(event.field("data.user"), None);
        assert_eq!(event.field("data.missing"), None);
        assert_eq!(event.field("causationid"), None);
        // Every attribute the configuration accepts has a value on an event that has them all.
        let full = EventBuilder::new("s")
            .version("1")
            .event("t", json!({"x": 1}));
        let full = full.caused(&EventBuilder::new("s"), "u", Value::Null);
        let full = Event {
            version: Some("1".into()),
            ..full
        };
        for name in KEY_ATTRIBUTES.iter().chain(&["data.x"]) {
            assert!(is_field_name(name), "{name}");
        }
        for name in KEY_ATTRIBUTES {
            assert!(full.field(name).is_some(), "{name}");
        }
        assert!(!is_field_name("data.") && !is_field_name("colour"));
    }

    #[test]
    fn rfc3339_times_match_known_dates() {
        let at = |s: u64, ms: u64| UNIX_EPOCH + Duration::from_millis(s * 1000 + ms);
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(at(1_796_033_064, 123)), "2026-11-30T10:04:24.123Z");
        for text in [
            "2000-02-29T00:00:00.005Z",
            "2026-11-30T10:04:24.123Z",
            "2099-12-31T23:59:59.999Z",
        ] {
            assert_eq!(rfc3339(parse_rfc3339(text).unwrap()), text);
        }
        assert_eq!(
            parse_rfc3339("2026-11-30T10:04:24+00:00"),
            Some(at(1_796_033_064, 0))
        );
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
