"""OpenTelemetry through Python's own API, when ``opentelemetry-api`` is installed (it is not a
dependency) and the program has set a tracer provider: a ``send <topic>`` PRODUCER span per
message (one per ``send_batch``) with the messaging semantic conventions, lasting until the report,
and the W3C ``traceparent``/``tracestate`` headers of its context, written by the program's
global propagator. The native ``send`` calls ``start`` and the dispatcher ``end``; nothing here
runs while no tracer provider is set."""

from typing import Any, List, Optional, Tuple

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # no OpenTelemetry: the native side never calls in
    trace = None

from ._kafkasender import DeliveryReport, __version__


def start(topic: Optional[str], key: Optional[str], count: int) -> Tuple[Any, List[Tuple[str, bytes]]]:
    """The span of sending ``count`` records to ``topic`` (None: several topics), and the trace
    headers to add to each record."""
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
    }
    if topic is not None:
        attributes["messaging.destination.name"] = topic
    if key is not None:
        attributes["messaging.kafka.message.key"] = key
    if count > 1:
        attributes["messaging.batch.message_count"] = count
    span = trace.get_tracer("kafkasender", __version__).start_span(
        f"send {topic}" if topic is not None else "send", kind=SpanKind.PRODUCER, attributes=attributes)
    carrier: dict = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return span, [(name, value.encode()) for name, value in carrier.items()]


def end(span: Any, result: Any) -> None:
    """Ends ``span`` with its report (or a batch's list of reports): where the one message
    landed, or the first error's kind."""
    # One report, or a batch's: a list, or a DeliveryReports (columns=True), which indexes alike.
    reports = [result] if isinstance(result, DeliveryReport) else result
    if len(reports) == 1 and reports[0].outcome == "delivered":
        span.set_attribute("messaging.destination.partition.id", str(reports[0].partition))
        span.set_attribute("messaging.kafka.offset", reports[0].offset)
    error = next((r.error for r in reports if r.error is not None), None)
    if error is not None:
        span.set_attribute("error.type", error.kind)
        span.set_status(Status(StatusCode.ERROR, str(error)))
    span.end()


def fail(span: Any, error: BaseException) -> None:
    """Ends ``span`` of a send refused at once."""
    span.set_attribute("error.type", getattr(error, "kind", None) or type(error).__name__)
    span.set_status(Status(StatusCode.ERROR, str(error)))
    span.end()
