"""Business events from Python: the envelope read back from a mock cluster (and valid against
docs/event.schema.json), topic mapping, keys, headers, and the correlation id of the current
context (contextvars: each asyncio task and thread keeps its own)."""

import asyncio
import json
import uuid
from pathlib import Path

import jsonschema
import pytest

from kafkasender import Event, EventBuilder, InvalidRecordError, Producer, correlation, current_correlation_id
from kafkasender.testing import MockCluster

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "event.schema.json").read_text())


@pytest.fixture
def topics(cluster):
    suffix = uuid.uuid4().hex[:8]
    names = {"user": f"users-{suffix}", "error": f"errors-{suffix}", "default": f"default-{suffix}"}
    for name in names.values():
        cluster.create_topic(name, partitions=2, replication_factor=3)
    return names


def test_published_events_land_where_their_type_maps_with_key_headers_and_a_valid_envelope(cluster, topics):
    config = {"bootstrap.servers": cluster.bootstrap_servers, "event.default.topic": topics["default"],
              "event.topic.map": f"user.*={topics['user']}"}
    builder = EventBuilder("py-test", version="2")
    with Producer(config) as producer:
        producer.map_event_topic("api.error", topics["error"])
        with correlation("req-42"):
            registered = builder.event("user.registered", {"user": {"id": 7}, "name": "Ada"})
        failed = builder.caused_by(registered, "api.error", {"status": 503})
        other = builder.event("order.placed", [1, 2.5, None, "ünïcode"])
        assert producer.publish_event(registered).result(30).delivered
        reports = producer.publish_events([failed, other], raise_on_failure=True).result(30)
        assert [r.topic for r in reports] == [topics["error"], topics["default"]]

    for event, topic in [(registered, topics["user"]), (failed, topics["error"]), (other, topics["default"])]:
        [record] = cluster.read_topic(topic)
        envelope = json.loads(record["value"])
        jsonschema.validate(envelope, SCHEMA)
        assert envelope["data"] == event.data and envelope["id"] == event.id
        assert record["key"] == event.correlation_id.encode()
        headers = {k: v.decode() for k, v in record["headers"]}
        assert headers == {"ce_specversion": "1.0", "ce_id": event.id, "ce_type": event.type, "ce_source": "py-test",
                           "correlation-id": event.correlation_id, "content-type": "application/json"}
        assert Event.from_json(record["value"].decode()).to_json() == event.to_json()
    assert registered.correlation_id == failed.correlation_id == "req-42"
    assert failed.causation_id == registered.id and registered.version == "2"
    assert other.correlation_id != "req-42" and len(other.correlation_id) == 36  # a new one


def test_each_asyncio_task_keeps_its_own_correlation_id():
    builder = EventBuilder("py-test")

    async def handle(request_id):
        with correlation(request_id):
            await asyncio.sleep(0.01)  # the other tasks run meanwhile
            return builder.event("request.handled", {}).correlation_id

    async def main():
        return await asyncio.gather(*(handle(f"req-{i}") for i in range(5)))

    assert asyncio.run(main()) == [f"req-{i}" for i in range(5)]
    assert current_correlation_id() is None


def test_data_that_is_not_json_and_events_without_their_key_field_are_refused(cluster, topics):
    builder = EventBuilder("py-test")
    with pytest.raises(TypeError):
        builder.event("x.y", {"when": object()})
    with pytest.raises(ValueError):
        builder.event("x.y", float("nan"))
    config = {"bootstrap.servers": cluster.bootstrap_servers, "event.key.field": "data.user.id",
              "event.default.topic": topics["default"]}
    with Producer(config) as producer:
        with pytest.raises(InvalidRecordError, match="data.user.id"):
            producer.publish_event(builder.event("user.seen", {"user": {}}))
        assert producer.publish_event(builder.event("user.seen", {"user": {"id": 9}})).result(30).delivered
    [record] = cluster.read_topic(topics["default"])
    assert record["key"] == b"9"


def test_an_idle_producer_turns_unhealthy_when_every_broker_goes_and_healthy_when_they_return():
    cluster = MockCluster(brokers=3)
    topic = "idle-health"
    cluster.create_topic(topic, partitions=3, replication_factor=3)
    config = {"bootstrap.servers": cluster.bootstrap_servers, "health.check.interval.ms": 300,
              "statistics.interval.ms": 100}
    with Producer(config) as producer:
        assert producer.send(topic, b"before").result(30).delivered
        assert wait_for_health(producer, "healthy", 10)["status"] == "healthy"
        for broker in (1, 2, 3):
            cluster.broker_down(broker)
        cluster.push_request_errors("metadata", [-195] * 3)  # drops a connection the mock kept open
        health = wait_for_health(producer, "unhealthy", 10)
        assert health["status"] == "unhealthy", health
        reason = next(r for r in health["reasons"] if r.startswith("no broker reachable"))
        assert any(f"{address}/" in reason for address in cluster.bootstrap_servers.split(",")), reason
        for broker in (1, 2, 3):
            cluster.broker_up(broker)
        assert wait_for_health(producer, "healthy", 20)["status"] == "healthy"


def wait_for_health(producer, status, limit):
    import time
    deadline = time.monotonic() + limit
    while True:
        health = producer.health()
        if health["status"] == status or time.monotonic() > deadline:
            return health
        time.sleep(0.05)
