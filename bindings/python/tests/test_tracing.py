"""OpenTelemetry through Python's own API: a PRODUCER span per send (one per batch) with the
messaging conventions, and a ``traceparent`` a consumer reads back that continues the sender's
trace. Each case runs in a fresh interpreter, because OpenTelemetry lets a process set its tracer
provider only once."""

import json
import subprocess
import sys
import textwrap

SETUP = """
import json
from kafkasender import Producer
from kafkasender.testing import MockCluster

cluster = MockCluster(brokers=1)
cluster.create_topic("traced", partitions=2)
producer = Producer({"bootstrap.servers": cluster.bootstrap_servers})

def trace_headers():
    # each record's traceparent header values, as text
    return [[v.decode() for k, v in r["headers"] if k == "traceparent"] for r in cluster.read_topic("traced")]
"""

TRACED = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
"""


def run(script: str) -> dict:
    """Runs ``script`` after SETUP and returns what it printed as JSON."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(SETUP) + textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def traceparent(span: dict) -> str:
    return f"00-{span['trace_id']}-{span['span_id']}-{span['flags']}"


def test_a_send_span_continues_the_callers_trace_to_the_consumer():
    seen = run(TRACED + """
tracer = trace.get_tracer("test")
with tracer.start_as_current_span("request") as request:
    report = producer.send("traced", b"v", key=b"k", headers={"traceparent": b"00-stale"}).result(30)
    producer.send_batch([("traced", b"1"), ("traced", b"2")]).result(30)
    producer.send_batch([("traced", b"3"), ("traced", b"4"), ("traced", b"5")], columns=True).result(30)
producer.close()

def described(span):
    return {"name": span.name, "kind": span.kind.name, "trace_id": format(span.context.trace_id, "032x"),
            "span_id": format(span.context.span_id, "016x"), "flags": format(span.context.trace_flags, "02x"),
            "parent": format(span.parent.span_id, "016x") if span.parent else None,
            "attributes": dict(span.attributes), "status": span.status.status_code.name}
spans = [described(s) for s in exporter.get_finished_spans()]
print(json.dumps({"spans": spans, "partition": report.partition, "offset": report.offset,
                  "traceparents": trace_headers()}, default=repr))
""")
    spans = {(s["name"], s["attributes"].get("messaging.batch.message_count")): s for s in seen["spans"]}
    request = spans[("request", None)]
    one, batch = spans[("send traced", None)], spans[("send traced", 2)]
    columns = spans[("send traced", 3)]  # ended through a DeliveryReports, not a list
    for send in (one, batch, columns):
        assert send["kind"] == "PRODUCER"
        assert send["parent"] == request["span_id"]
        assert send["trace_id"] == request["trace_id"]
        assert send["status"] == "UNSET"
        assert send["attributes"]["messaging.system"] == "kafka"
        assert send["attributes"]["messaging.destination.name"] == "traced"
        assert send["attributes"]["messaging.operation.type"] == "send"
    assert one["attributes"]["messaging.kafka.message.key"] == "k"
    assert one["attributes"]["messaging.destination.partition.id"] == str(seen["partition"])
    assert one["attributes"]["messaging.kafka.offset"] == seen["offset"]
    # The caller's stale traceparent is replaced, not repeated.
    assert sorted(seen["traceparents"]) == sorted([[traceparent(one)]] + [[traceparent(batch)]] * 2
                                                  + [[traceparent(columns)]] * 3)


def test_a_refused_send_fails_its_span():
    seen = run(TRACED + """
try:
    producer.send("bad topic name!", b"v")
except Exception as error:
    kind = error.kind
[span] = exporter.get_finished_spans()
print(json.dumps({"kind": kind, "status": span.status.status_code.name,
                  "error_type": span.attributes["error.type"]}))
""")
    assert seen == {"kind": "invalid_record", "status": "ERROR", "error_type": "invalid_record"}


def test_without_a_tracer_provider_nothing_is_added_until_the_program_sets_one():
    seen = run("""
import sys
producer.send("traced", b"v").result(30)
producer.send_batch([("traced", b"w")]).result(30)
imported = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
""" + TRACED + """
producer.send("traced", b"x").result(30)
print(json.dumps({"traceparents": trace_headers(), "imported": imported,
                  "spans": [s.name for s in exporter.get_finished_spans()]}))
""")
    # OpenTelemetry is installed here, but a program that has not imported it pays nothing for
    # it; once the program imports it and sets a provider, sends are traced.
    assert seen["imported"] == [] and seen["spans"] == ["send traced"]
    assert sorted(len(t) for t in seen["traceparents"]) == [0, 0, 1]  # two partitions: any order
