//! OpenTelemetry for Rust programs: a `send <topic>` span per message (one per batch), and the
//! W3C `traceparent`/`tracestate` headers of the current trace in the record.
//!
//! The span is a `tracing` span (target `kafkasender`, level INFO) carrying the messaging
//! semantic conventions; a program's `tracing-opentelemetry` layer turns it into an OpenTelemetry
//! span. It lasts from `send` to the report, which adds the partition and offset, or the error.
//! The headers come from the span's context through the program's global text-map propagator
//! (`opentelemetry::global::set_text_map_propagator`), so they follow what the program
//! propagates; without a `tracing` subscriber that wants the span, a program using OpenTelemetry
//! directly still gets the headers of its current context.
//!
//! Costs nothing measurable when nobody listens: the faces (C, Go, Python, Node) install a
//! subscriber that takes no spans, and make spans with their host's own OpenTelemetry instead.

use opentelemetry::propagation::Injector;
use opentelemetry::trace::{Status, TraceContextExt};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::delivery::{DeliveryReport, Outcome};
use crate::error::Error;
use crate::record::{Header, Record};

/// The span of one send (or one batch).
pub(crate) struct SendSpan {
    span: tracing::Span,
}

/// The trace headers a send's records carry: `(name, value)` as the propagator wrote them.
#[derive(Default)]
pub(crate) struct TraceHeaders(Vec<(String, String)>);

impl SendSpan {
    /// The span of sending `records` (one, or a batch) and the headers to add to them, if anyone
    /// traces: a subscriber that takes the span, or an OpenTelemetry context current on this
    /// thread. `None` otherwise.
    pub(crate) fn start(records: &[Record<'_>]) -> Option<(SendSpan, TraceHeaders)> {
        let topic = common_topic(records);
        // Fields are evaluated only when the span is enabled, so the name costs nothing otherwise.
        let span = tracing::info_span!(
            target: "kafkasender",
            "send",
            otel.name = %topic.map_or_else(|| "send".to_string(), |topic| format!("send {topic}")),
            otel.kind = "producer",
            messaging.system = "kafka",
            messaging.operation.type = "send",
            messaging.operation.name = "send",
            messaging.destination.name = topic,
            messaging.batch.message_count = (records.len() > 1).then_some(records.len() as i64),
            messaging.kafka.message.key = single_key(records),
            messaging.destination.partition.id = Empty,
            messaging.kafka.offset = Empty,
            error.type = Empty,
        );
        // The span's own context when an OpenTelemetry layer made one, else the thread's.
        let context = Some(&span)
            .filter(|span| !span.is_disabled())
            .map(OpenTelemetrySpanExt::context)
            .filter(|context| context.has_active_span())
            .or_else(|| {
                opentelemetry::Context::map_current(|current| current.has_active_span())
                    .then(opentelemetry::Context::current)
            });
        let mut headers = TraceHeaders::default();
        match context {
            Some(context) => opentelemetry::global::get_text_map_propagator(|propagator| {
                propagator.inject_context(&context, &mut headers)
            }),
            None if span.is_disabled() => return None,
            None => {}
        }
        Some((SendSpan { span }, headers))
    }

    /// Another handle to the same span: the span ends when the last handle goes.
    pub(crate) fn handle(&self) -> SendSpan {
        SendSpan {
            span: self.span.clone(),
        }
    }

    /// Marks the span failed with `error` (a send refused at once).
    pub(crate) fn fail(self, error: &Error) {
        self.span.record("error.type", error.kind().as_str());
        self.span.set_status(Status::error(error.to_string()));
    }

    /// Ends the span of one message with its report.
    pub(crate) fn end(self, report: &DeliveryReport) {
        self.end_with(std::slice::from_ref(report));
    }

    /// Ends the span with the reports of its messages: where the one message landed, or the
    /// first error's kind (a batch's span fails when any of its messages did).
    pub(crate) fn end_with(self, reports: &[DeliveryReport]) {
        if let [report] = reports {
            if report.outcome == Outcome::Delivered {
                self.span
                    .record(
                        "messaging.destination.partition.id",
                        report.partition.to_string(),
                    )
                    .record("messaging.kafka.offset", report.offset);
            }
        }
        if let Some(error) = reports.iter().find_map(|report| report.outcome.error()) {
            self.fail(error);
        }
    }
}

/// The topic all `records` go to, if they share one.
fn common_topic<'a>(records: &[Record<'a>]) -> Option<&'a str> {
    let topic = records.first()?.topic;
    records
        .iter()
        .all(|record| record.topic == topic)
        .then_some(topic)
}

/// The key of a single record, as text, when it is text (the conventions leave binary keys out).
fn single_key<'a>(records: &[Record<'a>]) -> Option<&'a str> {
    match records {
        [record] => record.key.and_then(|key| std::str::from_utf8(key).ok()),
        _ => None,
    }
}

impl TraceHeaders {
    /// `records` with the trace headers added (replacing any of the same name they had).
    pub(crate) fn traced<'a>(&'a self, records: &[Record<'a>]) -> Vec<Record<'a>> {
        let headers: Vec<Header<'a>> = self
            .0
            .iter()
            .map(|(name, value)| Header {
                key: name,
                value: Some(value.as_bytes()),
            })
            .collect();
        records
            .iter()
            .map(|record| {
                let mut traced = record.clone();
                traced.replace_headers(&headers);
                traced
            })
            .collect()
    }
}

/// The propagator writes into it.
impl Injector for TraceHeaders {
    fn set(&mut self, name: &str, value: String) {
        self.0.retain(|(existing, _)| existing != name);
        self.0.push((name.to_string(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_is_named_only_when_every_record_shares_it() {
        let (a, b) = (Record::new("a"), Record::new("b"));
        assert_eq!(common_topic(&[a.clone(), a.clone()]), Some("a"));
        assert_eq!(common_topic(&[a.clone(), b]), None);
        assert_eq!(common_topic(&[]), None);
        assert_eq!(single_key(&[a.clone().key("k")]), Some("k"));
        assert_eq!(single_key(&[a.clone().key(&[0xff][..])]), None);
        assert_eq!(single_key(&[a.clone().key("k"), a.key("k")]), None);
    }

    #[test]
    fn trace_headers_replace_the_records_own_of_the_same_name() {
        let headers = TraceHeaders(vec![("traceparent".into(), "00-new".into())]);
        let record = Record::new("t")
            .header("traceparent", "00-old")
            .header("other", "x");
        let traced = headers.traced(std::slice::from_ref(&record));
        let headers: Vec<_> = traced[0]
            .headers
            .iter()
            .map(|h| (h.key, h.value.unwrap()))
            .collect();
        assert_eq!(
            headers,
            [("other", &b"x"[..]), ("traceparent", &b"00-new"[..])]
        );
    }
}
