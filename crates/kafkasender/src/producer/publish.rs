//! Business events on the send path: an [`Event`] becomes a record (the CloudEvents envelope as
//! its value, its topic from the event topic map, its key from `event.key.field`, `ce_*`
//! headers), which is then sent like any other.

use std::sync::{PoisonError, RwLock};

use super::Producer;
use crate::delivery::{BatchCallback, DeliveryReport};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{Event, TopicMap, DATA_CONTENT_TYPE, SPEC_VERSION};
use crate::record::OwnedRecord;

/// The event topic map, changeable while the producer runs, and the key field.
pub(super) struct EventRouting {
    pub(super) topics: RwLock<TopicMap>,
    pub(super) key_field: String,
}

impl Producer {
    /// The record `event` is published as: value the envelope's JSON, topic from the event topic
    /// map, key the `event.key.field`, headers `ce_specversion`, `ce_id`, `ce_type`, `ce_source`,
    /// `correlation-id` and `content-type: application/json`. Fails with
    /// [`ErrorKind::InvalidRecord`] when the event lacks the key field.
    pub fn event_record(&self, event: &Event) -> Result<OwnedRecord> {
        let routing = &self.shared.events;
        let key = event.field(&routing.key_field).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidRecord,
                format!(
                    "event {} ({}) has no `{}` for its key (event.key.field)",
                    event.id, event.event_type, routing.key_field
                ),
            )
        })?;
        let topic = routing
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .topic_for(&event.event_type)
            .to_string();
        let header = |name: &str, value: &str| (name.to_string(), Some(value.as_bytes().to_vec()));
        Ok(OwnedRecord {
            topic,
            key: Some(key.into_bytes()),
            value: Some(event.to_json().into_bytes()),
            headers: vec![
                header("ce_specversion", SPEC_VERSION),
                header("ce_id", &event.id),
                header("ce_type", &event.event_type),
                header("ce_source", &event.source),
                header("correlation-id", &event.correlation_id),
                header("content-type", DATA_CONTENT_TYPE),
            ],
            partition: None,
            timestamp: None,
        })
    }

    /// Publishes one event (see [`Producer::event_record`]); reported like [`Producer::send`].
    pub fn publish_event<F>(&self, event: &Event, on_delivery: F) -> Result<()>
    where
        F: FnOnce(DeliveryReport) + Send + 'static,
    {
        self.send(&self.event_record(event)?.as_record(), on_delivery)
    }

    /// Publishes events as one batch, reported like [`Producer::send_batch`]. Nothing is sent
    /// when one of them cannot become a record.
    pub fn publish_events(&self, events: &[Event], on_delivery: BatchCallback) -> Result<()> {
        let records = events
            .iter()
            .map(|event| self.event_record(event))
            .collect::<Result<Vec<_>>>()?;
        let borrowed: Vec<_> = records.iter().map(OwnedRecord::as_record).collect();
        self.send_batch(&borrowed, on_delivery)
    }

    /// Sends events of a type (`api.error`) or a prefix pattern (`user.*`) to `topic` from now
    /// on, over what `event.topic.map` said.
    pub fn map_event_topic(&self, pattern: &str, topic: &str) -> Result<()> {
        self.shared
            .events
            .topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .set(pattern, topic)
    }
}
