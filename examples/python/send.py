"""Sends with each delivery form (Future, callback, asyncio, batch), then reads the topic back.

Runs against KAFKA_BROKERS when set, otherwise against an embedded mock cluster:
    pip install ./bindings/python && python examples/python/send.py
"""

import asyncio
import os

from kafkasender import KafkaSenderError, Producer
from kafkasender.testing import MockCluster

TOPIC = "kafkasender-example-python"


def main() -> None:
    mock = None if os.environ.get("KAFKA_BROKERS") else MockCluster(brokers=1)
    brokers = os.environ.get("KAFKA_BROKERS") or mock.bootstrap_servers

    with Producer({"bootstrap.servers": brokers, "linger.ms": 5}) as producer:
        # 1. A concurrent.futures.Future of the report.
        report = producer.send(TOPIC, b"future", key="example", headers={"form": "future"}).result(timeout=30)
        print(f"future: {report.outcome} at {report.partition}/{report.offset}")

        # 2. A callback, run once with the report (from kafkasender's own thread).
        producer.send(TOPIC, "callback", key="example", on_delivery=lambda r: print(f"callback: {r.outcome}"))
        producer.flush(timeout=30)

        # 3. asyncio: awaited in the running loop, no thread per message.
        async def in_a_loop():
            reports = await asyncio.gather(*(producer.send_async(TOPIC, f"async {i}") for i in range(3)))
            print(f"asyncio: {[r.outcome for r in reports]}")

        asyncio.run(in_a_loop())

        # 4. A batch: one Future of all reports, in order.
        reports = producer.send_batch([(TOPIC, b"batch 1"), {"topic": TOPIC, "value": b"batch 2"}]).result(timeout=30)
        print(f"batch: {[r.outcome for r in reports]}")

        # Bad input is a typed exception, and nothing is sent.
        try:
            producer.send("not a topic!", b"x")
        except KafkaSenderError as error:
            print(f"rejected: {error.kind}: {error}")

    if mock is not None:
        print(f"read back {len(mock.read_topic(TOPIC))} records")


if __name__ == "__main__":
    main()
