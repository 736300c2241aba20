//! OpenTelemetry, read back from a mock cluster: the send span a `tracing-opentelemetry` layer
//! exports, and the `traceparent` header a consumer finds, which continues the sender's trace.

use std::time::Duration;

use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

use kafkasender::testing::{read_topic, ConsumedRecord, MockCluster};
use kafkasender::{Producer, Record};

mod common;
use common::Reports;

const TIMEOUT: Duration = Duration::from_secs(30);

struct Traced {
    cluster: MockCluster,
    producer: Producer,
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
}

fn traced() -> Traced {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("traced", 2, 1).unwrap();
    let producer = Producer::new(cluster.config().build().unwrap()).unwrap();
    Traced {
        cluster,
        producer,
        exporter,
        provider,
    }
}

fn header<'a>(record: &'a ConsumedRecord, name: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| std::str::from_utf8(value.as_deref()?).ok())
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn traceparent_of(span: &SpanData) -> String {
    let context = &span.span_context;
    format!("00-{}-{}-01", context.trace_id(), context.span_id())
}

#[test]
fn a_send_span_continues_the_callers_trace_to_the_consumer() {
    let t = traced();
    let layer = tracing_opentelemetry::layer().with_tracer(t.provider.tracer("test"));
    let subscriber = tracing_subscriber::registry().with(layer);
    let reports = Reports::default();
    tracing::subscriber::with_default(subscriber, || {
        let _request = tracing::info_span!("request").entered();
        let record = Record::new("traced")
            .key("k")
            .value("v")
            .header("traceparent", "00-stale");
        t.producer.send(&record, reports.callback()).unwrap();
        let batch = [
            Record::new("traced").value("1"),
            Record::new("traced").value("2"),
        ];
        t.producer.send_batch(&batch, Box::new(|_| ())).unwrap();
    });
    let report = reports.wait_for(1, TIMEOUT).remove(0);
    assert!(report.is_delivered(), "{report:?}");
    t.producer.flush(TIMEOUT).unwrap();

    let spans = t.exporter.get_finished_spans().unwrap();
    let request = spans
        .iter()
        .find(|s| s.name == "request")
        .expect("request span");
    let sends: Vec<&SpanData> = spans.iter().filter(|s| s.name == "send traced").collect();
    assert_eq!(sends.len(), 2, "{spans:#?}");
    let (one, batch) = if attribute(sends[0], "messaging.batch.message_count").is_some() {
        (sends[1], sends[0])
    } else {
        (sends[0], sends[1])
    };
    for send in [one, batch] {
        assert_eq!(send.span_kind, SpanKind::Producer);
        assert_eq!(send.parent_span_id, request.span_context.span_id());
        assert_eq!(
            send.span_context.trace_id(),
            request.span_context.trace_id()
        );
        assert_eq!(send.status, Status::Unset);
        assert_eq!(attribute(send, "messaging.system"), Some(&"kafka".into()));
        assert_eq!(
            attribute(send, "messaging.destination.name"),
            Some(&"traced".into())
        );
        assert_eq!(
            attribute(send, "messaging.operation.type"),
            Some(&"send".into())
        );
    }
    assert_eq!(
        attribute(one, "messaging.kafka.message.key"),
        Some(&"k".into())
    );
    assert_eq!(
        attribute(one, "messaging.destination.partition.id"),
        Some(&report.partition.to_string().into())
    );
    assert_eq!(
        attribute(one, "messaging.kafka.offset"),
        Some(&report.offset.into())
    );
    assert_eq!(
        attribute(batch, "messaging.batch.message_count"),
        Some(&2i64.into())
    );

    let landed = read_topic(t.cluster.bootstrap_servers(), "traced", TIMEOUT).unwrap();
    assert_eq!(landed.len(), 3);
    for record in &landed {
        let parents: Vec<_> = record
            .headers
            .iter()
            .filter(|(k, _)| k == "traceparent")
            .collect();
        assert_eq!(
            parents.len(),
            1,
            "the caller's stale traceparent is replaced"
        );
        let expected = if record.key.is_some() { one } else { batch };
        assert_eq!(
            header(record, "traceparent"),
            Some(traceparent_of(expected).as_str())
        );
    }
}

#[test]
fn a_program_using_opentelemetry_without_tracing_gets_its_context_in_the_headers() {
    let t = traced();
    let span = t.provider.tracer("raw").start("handle order");
    let expected = format!(
        "00-{}-{}-01",
        span.span_context().trace_id(),
        span.span_context().span_id()
    );
    let reports = Reports::default();
    {
        let _current = Context::current_with_span(span).attach();
        t.producer
            .send(&Record::new("traced").value("v"), reports.callback())
            .unwrap();
    }
    assert!(reports.wait_for(1, TIMEOUT)[0].is_delivered());
    let landed = read_topic(t.cluster.bootstrap_servers(), "traced", TIMEOUT).unwrap();
    assert_eq!(header(&landed[0], "traceparent"), Some(expected.as_str()));
}

#[test]
fn a_refused_send_fails_its_span() {
    let t = traced();
    let layer = tracing_opentelemetry::layer().with_tracer(t.provider.tracer("test"));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let refused = t.producer.send(&Record::new("bad topic name!"), |_| ());
        assert!(refused.is_err());
    });
    let spans = t.exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert!(
        matches!(spans[0].status, Status::Error { .. }),
        "{:?}",
        spans[0].status
    );
    assert_eq!(
        attribute(&spans[0], "error.type"),
        Some(&"invalid_record".into())
    );
}
