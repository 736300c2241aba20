//! Business events through a producer, read back from a mock cluster: each event lands on the
//! topic its type maps to, with its key, the CloudEvents headers and the envelope as the value.

use std::collections::HashMap;
use std::time::Duration;

use kafkasender::events::{Event, EventBuilder};
use kafkasender::testing::{read_topic, MockCluster};
use kafkasender::{Config, ErrorKind, Producer};
use serde_json::json;

mod common;
use common::Reports;

const TIMEOUT: Duration = Duration::from_secs(60);

fn headers(record: &kafkasender::testing::ConsumedRecord) -> HashMap<String, String> {
    record
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8(v.clone().unwrap()).unwrap()))
        .collect()
}

#[test]
fn events_land_on_their_mapped_topics_with_key_headers_and_envelope() {
    let cluster = MockCluster::new(1).unwrap();
    for topic in [
        "user-events",
        "admin-events",
        "error-events",
        "default-events",
    ] {
        cluster.create_topic(topic, 2, 1).unwrap();
    }
    let config = cluster
        .config()
        .set(
            "event.topic.map",
            "user.*=user-events,api.error=error-events",
        )
        .build()
        .unwrap();
    let producer = Producer::new(config).unwrap();
    producer
        .map_event_topic("user.admin.*", "admin-events")
        .unwrap();
    let builder = EventBuilder::new("test-service")
        .version("1")
        .correlation_id("corr-7");
    let events = [
        builder.event("user.registered", json!({"user": {"id": 1}})),
        builder.event("user.admin.granted", json!({"user": {"id": 2}})),
        builder.event("api.error", json!({"status": 503})),
        builder.event("order.placed", json!({"total": 12.5})),
    ];
    let reports = Reports::default();
    producer
        .publish_event(&events[0], reports.callback())
        .unwrap();
    producer
        .publish_events(
            &events[1..],
            Box::new({
                let reports = reports.clone();
                move |batch| {
                    for report in batch {
                        (reports.callback())(report);
                    }
                }
            }),
        )
        .unwrap();
    let delivered = reports.wait_for(4, TIMEOUT);
    assert!(delivered.iter().all(|r| r.is_delivered()), "{delivered:?}");
    producer.close(TIMEOUT);

    for (event, topic) in events.iter().zip([
        "user-events",
        "admin-events",
        "error-events",
        "default-events",
    ]) {
        let read = read_topic(cluster.bootstrap_servers(), topic, TIMEOUT).unwrap();
        assert_eq!(read.len(), 1, "{topic}");
        let record = &read[0];
        assert_eq!(
            record.key.as_deref(),
            Some(&b"corr-7"[..]),
            "the correlation id is the key"
        );
        let back = Event::from_json(std::str::from_utf8(record.value.as_deref().unwrap()).unwrap())
            .unwrap();
        assert_eq!(back.id, event.id);
        assert_eq!(back.data, event.data);
        let headers = headers(record);
        assert_eq!(headers["ce_specversion"], "1.0");
        assert_eq!(headers["ce_id"], event.id);
        assert_eq!(headers["ce_type"], event.event_type);
        assert_eq!(headers["ce_source"], "test-service");
        assert_eq!(headers["correlation-id"], "corr-7");
        assert_eq!(headers["content-type"], "application/json");
    }
}

#[test]
fn the_key_can_come_from_the_data_and_an_event_without_it_is_refused() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("default-events", 1, 1).unwrap();
    let config = cluster
        .config()
        .set("event.key.field", "data.user.id")
        .build()
        .unwrap();
    let producer = Producer::new(config).unwrap();
    let builder = EventBuilder::new("s");
    let record = producer
        .event_record(&builder.event("user.seen", json!({"user": {"id": 42}})))
        .unwrap();
    assert_eq!(record.key.as_deref(), Some(&b"42"[..]));
    assert_eq!(record.topic, "default-events");
    let error = producer
        .publish_event(&builder.event("user.seen", json!({"user": {}})), |_| {
            panic!("refused events are not reported")
        })
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRecord, "{error}");
    assert!(error.message().contains("data.user.id"), "{error}");
}

#[test]
fn a_bad_topic_map_or_key_field_is_listed_with_every_other_problem() {
    let error = Config::builder()
        .brokers("127.0.0.1:9092")
        .set("event.topic.map", "user.*=users,oops,a*b=c")
        .set("event.key.field", "nonsense")
        .set("event.default.topic", "no spaces allowed")
        .build()
        .unwrap_err();
    let text = error.to_string();
    for expected in ["event.key.field", "event.default.topic", "nonsense"] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    let error = Config::builder()
        .brokers("127.0.0.1:9092")
        .set("event.topic.map", "user.*=users,oops,a*b=c")
        .build()
        .unwrap_err();
    assert!(
        error.to_string().contains("oops") && error.to_string().contains("a*b"),
        "{error}"
    );
}
