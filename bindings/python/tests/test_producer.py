"""The Python face against librdkafka's mock cluster; every delivery claim is read back."""

import asyncio
import gc
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from concurrent.futures import Future
from pathlib import Path

import pytest

import kafkasender
from kafkasender import (CircuitOpenError, ConfigError, DeliveryReport, DeliveryReports, InvalidRecordError,
                         KafkaSenderError, KafkaTimeoutError, MessageTooLargeError, Producer, ProducerClosedError,
                         RateLimitedError)
from kafkasender.testing import MockCluster


def values(records):
    return [r["value"] for r in records]


def test_futures_and_callbacks_report_what_a_consumer_reads_back(cluster, producer, topic):
    seen = []
    futures = [producer.send(topic, f"v-{i}", key=f"k-{i % 5}", headers={"n": str(i)}) for i in range(300)]
    called_back = [producer.send(topic, "cb", on_delivery=seen.append) for _ in range(100)]
    assert called_back == [None] * 100, "a callback instead of a Future"
    producer.flush(30)
    reports = [f.result(timeout=0) for f in futures]
    assert all(isinstance(r, DeliveryReport) and r.delivered and r.outcome == "delivered" for r in reports)
    assert len(seen) == 100 and all(isinstance(r, DeliveryReport) and r.delivered for r in seen)
    assert all(r.error is None and r.attempts == 1 and r.latency > 0 and r.topic == topic for r in reports)

    read = cluster.read_topic(topic)
    assert len(read) == 400
    by_offset = {(r["partition"], r["offset"]): r for r in read}
    for i, report in enumerate(reports):
        record = by_offset[(report.partition, report.offset)]
        assert record["value"] == f"v-{i}".encode()
        assert record["key"] == report.key == f"k-{i % 5}".encode()
        assert record["headers"] == [("n", str(i).encode())]


def test_every_accepted_argument_type_lands_as_bytes(cluster, producer, topic):
    sends = [
        (b"bytes", None, None),
        (bytearray(b"bytearray"), bytearray(b"k1"), [("h", b"1"), ("h", b"2")]),
        (memoryview(b"memoryview"), memoryview(b"k2"), {"h": memoryview(b"m")}),
        ("strüng", "kéy", {"h": "värde", "null": None}),
        (None, b"tombstone", None),
    ]
    for value, key, headers in sends:
        producer.send(topic, value, key=key, headers=headers, partition=0, timestamp=1_700_000_000_000)
    producer.flush(30)
    read = cluster.read_topic(topic)
    assert values(read) == [b"bytes", b"bytearray", b"memoryview", "strüng".encode(), None]
    assert [r["key"] for r in read] == [None, b"k1", b"k2", "kéy".encode(), b"tombstone"]
    assert read[1]["headers"] == [("h", b"1"), ("h", b"2")]
    assert read[3]["headers"] == [("h", "värde".encode()), ("null", None)]
    assert all(r["timestamp"] == 1_700_000_000_000 and r["partition"] == 0 for r in read)


@pytest.mark.parametrize("kwargs, named", [
    ({"value": 123}, "value"),
    ({"value": b"v", "key": 1.5}, "key"),
    ({"value": b"v", "headers": 5}, "headers"),
    ({"value": b"v", "headers": [("k",)]}, "pair"),
    ({"value": b"v", "headers": {1: b"v"}}, "header keys"),
    ({"value": b"v", "partition": "1"}, "partition"),
    ({"value": b"v", "timestamp": True}, "timestamp"),
    ({"value": b"v", "on_delivery": 5}, "on_delivery"),
])
def test_wrong_argument_types_raise_type_error_naming_the_argument(producer, topic, kwargs, named):
    with pytest.raises(TypeError, match=named):
        producer.send(topic, **kwargs)
    with pytest.raises(TypeError, match="topic"):
        producer.send(b"bytes-topic", b"v")
    with pytest.raises(TypeError, match="config"):
        Producer(["not", "a", "dict"])
    with pytest.raises(TypeError, match="records"):
        producer.send_batch(5)


def test_every_error_kind_has_its_class_and_the_reachable_ones_are_raised(cluster, topic):
    assert set(kafkasender.errors._BY_KIND) == {
        "config", "invalid_record", "message_too_large", "queue_full", "timeout", "closed", "broker_transport",
        "authentication", "authorization", "unknown_topic_or_partition", "fatal", "broker", "internal",
        "rate_limited", "circuit_open", "spool", "transaction"}
    assert all(issubclass(c, KafkaSenderError) for c in kafkasender.errors._BY_KIND.values())

    with pytest.raises(ConfigError) as config_error:
        Producer({"bootstrap.servers": cluster.bootstrap_servers, "no.such.key": 1, "linger.ms": "soon"})
    assert config_error.value.kind == "config" and not config_error.value.retriable
    assert "no.such.key" in str(config_error.value) and "linger.ms" in str(config_error.value)

    with Producer(bootstrap_servers=cluster.bootstrap_servers, message_max_bytes=1000,
                  ratelimit_messages_per_second=1, ratelimit_burst=1, enqueue_timeout_ms=50) as p:
        with pytest.raises(InvalidRecordError):
            p.send("bad topic!", b"v")
        with pytest.raises(MessageTooLargeError):
            p.send(topic, b"x" * 2000)
        p.send(topic, b"first")
        with pytest.raises(RateLimitedError) as limited:
            p.send(topic, b"second")
        assert limited.value.retriable
        p.close()
        with pytest.raises(ProducerClosedError):
            p.send(topic, b"late")
    assert values(cluster.read_topic(topic)) == [b"first"]


def test_an_undeliverable_message_fails_its_future_and_an_open_breaker_refuses(tmp_path):
    down = MockCluster(brokers=1)
    down.create_topic("t", 1, 1)
    down.broker_down(1)
    config = {"bootstrap.servers": down.bootstrap_servers, "message.timeout.ms": 300, "retry.max": 0}
    with Producer(config) as p:
        with pytest.raises(KafkaTimeoutError) as timed_out:
            p.send("t", b"lost").result(timeout=30)
        assert timed_out.value.retriable and timed_out.value.code is not None

    breaker = {**config, "breaker.enabled": True, "breaker.timeout.ms": "1h", "breaker.consecutive.failures": 1}
    with Producer(breaker) as p:
        # The breaker opens on its own thread (a failure, or librdkafka's "all brokers down"),
        # so it may open between any two calls here: the loop ends on the refusal itself.
        deadline, refused = time.monotonic() + 30, None
        while refused is None and time.monotonic() < deadline:
            try:
                p.send("t", b"fails")
            except CircuitOpenError as error:
                refused = error
            time.sleep(0.1)
        assert refused is not None and refused.kind == "circuit_open"
        assert p.metrics()["breaker_state"] == 1  # 1: open
        with pytest.raises(CircuitOpenError):
            p.send("t", b"refused")
        assert p.health()["status"] == "unhealthy"

    with Producer(breaker, spool_dir=str(tmp_path)) as p:
        report = p.send("t", b"kept").result(timeout=30)
        assert report.outcome == "spooled" and not report.delivered
        assert report.destination.startswith(str(tmp_path))
        assert isinstance(report.error, (KafkaTimeoutError, CircuitOpenError))
    down.broker_up(1)
    with Producer({"bootstrap.servers": down.bootstrap_servers, "spool.dir": str(tmp_path)}) as p:
        deadline = time.monotonic() + 30
        while p.metrics()["replayed"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)  # the new producer replays the spool it finds by itself
        p.flush(30)
        assert p.metrics()["replayed"] == 1
    assert values(down.read_topic("t")) == [b"kept"]


def test_sends_complete_queued_reports_in_order_and_a_callback_that_sends_or_closes_loses_none(cluster, topic):
    # Reports are completed by the dispatcher thread or by a later send on the caller's thread:
    # either way once each, in order, and never inside a callback that sends.
    completed, inside = [], []

    def on_delivery(report):
        assert not inside, "a callback ran inside another callback"
        inside.append(report)
        completed.append(int(report.key))
        if int(report.key) % 100 == 0:  # a callback that sends
            p.send(topic, b"from-callback", key=b"x", partition=1, on_delivery=lambda r: completed.append(-1))
        inside.pop()

    with Producer({"bootstrap.servers": cluster.bootstrap_servers}) as p:
        for i in range(5000):
            p.send(topic, b"v", key=str(i).encode(), partition=0, on_delivery=on_delivery)
        p.flush(30)
        closing, sent = [], []
        # A callback closes the producer; what is still queued completes all the same. Only once
        # every send is made: a report can complete inside a later send on this thread, and a
        # close there would refuse the sends after it.
        for i in range(5000, 5200):
            p.send(topic, b"v", key=str(i).encode(), partition=0,
                   on_delivery=lambda r: (completed.append(int(r.key)),
                                          sent and not closing and closing.append(p.close())))
        sent.append(True)
    in_order = [n for n in completed if n >= 0]
    assert in_order == list(range(5200)), "each report once, in send order"
    assert completed.count(-1) == 50
    assert len(cluster.read_topic(topic)) == 5250


def test_a_send_completes_the_reports_queued_before_it_on_its_own_thread(producer, topic):
    threads = []
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(5)  # the dispatcher thread gets the GIL only when this thread lets go
    try:
        producer.send(topic, b"first", on_delivery=lambda r: threads.append(threading.get_ident()))
        deadline = time.monotonic() + 30
        while producer.metrics()["delivered"] < 1 and time.monotonic() < deadline:
            pass  # holds the GIL: the report waits in the queue
        queued = time.monotonic() + 0.05  # counted just before it is queued
        while time.monotonic() < queued:
            pass
        producer.send(topic, b"second")
    finally:
        sys.setswitchinterval(old_interval)
    producer.flush(30)
    assert threads == [threading.get_ident()]


def test_a_raising_callback_is_counted_and_later_results_still_arrive(producer, topic):
    def explode(report):
        raise ValueError("boom")

    unraisable = []
    old_hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        producer.send(topic, b"a", on_delivery=explode)
        producer.flush(30)
    finally:
        sys.unraisablehook = old_hook
    assert producer.metrics()["callback_errors"] == 1
    assert unraisable and isinstance(unraisable[0].exc_value, ValueError)
    assert producer.send(topic, b"b").result(timeout=30).delivered


def test_a_thousand_concurrent_send_async_in_one_loop(cluster, topic):
    async def main():
        async with Producer(bootstrap_servers=cluster.bootstrap_servers) as p:
            reports = await asyncio.gather(*(p.send_async(topic, f"{i}", key=str(i % 10)) for i in range(1000)))
            batch = await p.send_batch_async([(topic, b"batched")])
            return reports + batch

    reports = asyncio.run(main())
    assert len(reports) == 1001 and all(r.delivered for r in reports)
    assert sorted(values(cluster.read_topic(topic))) == sorted([f"{i}".encode() for i in range(1000)] + [b"batched"])


def test_a_program_that_never_awaits_never_imports_asyncio(cluster, topic):
    # asyncio's import is about 9 MB of RSS and 50 ms: only the async methods import it.
    program = (
        "import sys, kafkasender\n"
        f"with kafkasender.Producer(bootstrap_servers={cluster.bootstrap_servers!r}) as p:\n"
        f"    assert p.send({topic!r}, b'v').result(timeout=30).delivered\n"
        "sys.exit('asyncio' in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=120)


def test_send_batch_reports_in_order_and_puts_rejected_records_in_their_place(cluster, producer, topic):
    records = [(topic, f"t-{i}".encode(), f"k-{i}".encode() if i % 3 else None) for i in range(500)]
    records.insert(250, {"topic": "bad topic!", "value": b"x"})
    records.append({"topic": topic, "value": "d", "key": "k", "headers": [("h", b"1")], "partition": 1})
    reports = producer.send_batch(records).result(timeout=60)
    assert len(reports) == 502
    # Each report names its own record's topic and key (a batch's reports share one buffer of keys).
    names = [(r[0], r[2]) for r in records[:250]] + [("bad topic!", None)] + [(r[0], r[2]) for r in records[251:501]]
    assert [(r.topic, r.key) for r in reports] == names + [(topic, b"k")]
    assert reports[250].outcome == "failed" and isinstance(reports[250].error, InvalidRecordError)
    assert all(r.delivered for i, r in enumerate(reports) if i != 250)
    assert reports[-1].partition == 1 and reports[-1].key == b"k"
    assert len(cluster.read_topic(topic)) == 501

    failed = producer.send_batch([(topic, b"ok"), ("bad topic!", b"x")], raise_on_failure=True).exception(timeout=60)
    assert isinstance(failed, InvalidRecordError) and [r.outcome for r in failed.reports] == ["delivered", "failed"]
    assert producer.send_batch([(topic, b"ok")], raise_on_failure=True).result(timeout=60)[0].delivered


def test_send_batch_with_columns_reports_as_one_object_that_agrees_with_the_list(cluster, producer, topic):
    records = [(topic, f"c-{i}".encode(), f"k-{i % 7}") for i in range(300)]
    records.insert(100, ("bad topic!", b"x"))
    reports = producer.send_batch(records, columns=True).result(timeout=60)
    assert isinstance(reports, DeliveryReports) and len(reports) == 301
    assert reports.lost == [100] and isinstance(reports[100].error, InvalidRecordError)
    assert reports.outcomes == ["failed" if i == 100 else "delivered" for i in range(301)]
    # Each column says what the message's own report says, in the order sent.
    one_by_one = list(reports)
    assert [r.partition for r in one_by_one] == reports.partitions
    assert [r.offset for r in one_by_one] == reports.offsets
    assert [r.latency for r in one_by_one] == reports.latencies
    assert reports[-1].key == records[-1][2].encode() and reports[-301].key == records[0][2].encode()
    with pytest.raises(IndexError):
        reports[301]
    assert all(latency > 0 for i, latency in enumerate(reports.latencies) if i != 100)
    # Read back: every delivered message at the partition and offset its column names.
    landed = {(m["partition"], m["offset"]): m["value"] for m in cluster.read_topic(topic)}
    expected = {(p, o): records[i][1] for i, (p, o) in enumerate(zip(reports.partitions, reports.offsets)) if i != 100}
    assert landed == expected

    failed = producer.send_batch([(topic, b"ok"), ("bad topic!", b"x")], raise_on_failure=True,
                                 columns=True).exception(timeout=60)
    assert isinstance(failed, InvalidRecordError) and isinstance(failed.reports, DeliveryReports)
    assert failed.reports.outcomes == ["delivered", "failed"]
    assert repr(failed.reports) == "DeliveryReports(2 reports, 1 lost)"


def test_close_in_flight_resolves_every_future_exactly_once():
    down = MockCluster(brokers=1)
    down.broker_down(1)
    calls = []
    p = Producer(bootstrap_servers=down.bootstrap_servers)
    futures = [p.send("t", b"x") for _ in range(100)]
    for _ in range(100):
        p.send("t", b"x", on_delivery=calls.append)
    assert p.close(timeout=0.2) == 200
    assert all(f.done() for f in futures) and len(calls) == 100
    assert all(isinstance(r.error, ProducerClosedError) for r in calls)
    assert all(isinstance(f.exception(), ProducerClosedError) for f in futures)
    assert p.close() == 0, "closing again does nothing"


def test_eight_threads_share_one_producer(cluster, producer, topic):
    def work(t):
        for i in range(500):
            producer.send(topic, f"{t}-{i}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    producer.flush(60)
    assert len(set(values(cluster.read_topic(topic)))) == 4000


def test_interpreter_exit_without_close_delivers_and_exits_zero(cluster, topic):
    script = (
        "import kafkasender, sys\n"
        f"p = kafkasender.Producer(bootstrap_servers={cluster.bootstrap_servers!r})\n"
        f"for i in range(100): p.send({topic!r}, str(i))\n"
        "sys.exit(0)  # no flush, no close\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(cluster.read_topic(topic)) == 100


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_producer_used_in_a_forked_child_raises_instead_of_hanging(producer, topic):
    producer.send(topic, b"parent").result(timeout=30)
    pid = os.fork()
    if pid == 0:
        try:
            producer.send(topic, b"child")
            os._exit(1)
        except ProducerClosedError as error:
            os._exit(0 if "fork" in str(error) else 2)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert producer.send(topic, b"parent again").result(timeout=30).delivered


PARITY = Path(__file__).resolve().parents[3] / "tests" / "parity"


def test_metrics_and_error_kinds_are_the_cores_lists(producer):
    names = (PARITY / "metrics.txt").read_text().split()
    assert list(producer.metrics()) == names + ["callback_errors"]
    kinds = [line.split()[1] for line in (PARITY / "error_kinds.txt").read_text().splitlines()]
    assert sorted(kafkasender.errors._BY_KIND) == sorted(kinds)


def test_metrics_health_and_prometheus_describe_the_producer(producer, topic):
    for _ in range(10):
        producer.send(topic, b"0123456789")
    producer.flush(30)
    m = producer.metrics()
    assert (m["sent"], m["delivered"], m["failed"], m["bytes_sent"], m["in_flight"]) == (10, 10, 0, 100, 0)
    assert m["latency_p99_seconds"] >= m["latency_p50_seconds"] > 0 and m["breaker_state"] == 0
    assert isinstance(m["sent"], int) and isinstance(m["latency_p50_seconds"], float)
    assert 'kafkasender_messages_delivered_total{client_id="kafkasender"} 10' in producer.metrics_prometheus()
    assert producer.health() == {"status": "healthy", "reasons": []}


def test_from_env_reads_kafka_variables(cluster, topic, monkeypatch):
    monkeypatch.setenv("KAFKA_BROKERS", cluster.bootstrap_servers)
    monkeypatch.setenv("KAFKA_PRODUCER_FLUSH_FREQUENCY", "1ms")
    with Producer.from_env() as p:
        assert isinstance(p, Producer)
        assert asyncio.run(p.send_async(topic, b"env")).delivered


def test_a_hundred_thousand_sends_leak_no_python_objects(producer, topic):
    def burst(n):
        for i in range(n):
            producer.send(topic, b"x" * 100, key=b"k")
        producer.flush(60)

    burst(10_000)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    burst(100_000)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 1_000_000, f"{grown} bytes of Python objects left after 100,000 sends"
    assert isinstance(producer.send(topic, b"x"), Future)


def test_a_future_completed_while_another_thread_added_a_callback_still_calls_it_once():
    # kafkasender completes a future nobody has touched by setting its fields; the GIL can pass to
    # another thread between those steps, which may make the lock and add a callback meanwhile.
    # Then the completion finishes late (_finish_late): every callback runs once, waiters wake.
    import concurrent.futures
    from kafkasender._future import DeliveryFuture

    future = DeliveryFuture()
    called = []
    future.add_done_callback(called.append)  # sees it pending: appended, and the lock made
    waiting = threading.Thread(target=concurrent.futures.wait, args=([future],))
    waiting.start()
    future._result, future._state = "report", "FINISHED"  # the fields, as the fast path sets them
    future._finish_late()
    waiting.join(timeout=5)
    assert called == [future] and not waiting.is_alive() and future.result(timeout=0) == "report"
    future.add_done_callback(called.append)  # added once finished: called at once, and only then
    assert called == [future, future]
    assert not DeliveryFuture().cancel(), "a sent message cannot be taken back, even before its report"


def test_send_futures_are_concurrent_futures_whether_waited_on_before_or_after_delivery(producer, topic):
    import concurrent.futures

    waited = [producer.send(topic, f"w-{i}") for i in range(50)]
    done, not_done = concurrent.futures.wait(waited, timeout=30)
    assert not not_done and all(f.result().delivered for f in done)

    later = [producer.send(topic, f"l-{i}") for i in range(50)]
    producer.flush(30)  # completed with nobody waiting: no lock was ever made
    assert all(isinstance(f, Future) and f.done() and not f.running() for f in later)
    called = []
    later[0].add_done_callback(called.append)
    assert called == [later[0]]
    assert all(f.result(timeout=0).delivered and f.exception() is None for f in later)
    assert not later[0].cancel(), "a sent message cannot be taken back"
