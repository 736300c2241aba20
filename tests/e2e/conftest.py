"""Fixtures for end-to-end tests against a real Apache Kafka broker (scripts/kafka/).

The broker is started once per session by scripts/kafka/up.sh and stopped at the end, unless
KAFKA_BROKERS already points at one. Records are read back with Apache Kafka's own Java console
consumer (scripts/kafka/consume.sh): an independent client that shares no code with ours.
"""

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPTS = ROOT / "scripts" / "kafka"


@dataclass(frozen=True)
class Consumed:
    partition: int
    offset: int
    headers: list[tuple[str, str]]  # the producer's own, without the message id
    key: str | None
    value: str
    message_id: str | None  # the x-ks-id header kafkasender adds (with a spool, or message.id.header set)


@pytest.fixture(scope="session")
def bootstrap():
    if os.environ.get("KAFKA_BROKERS"):
        yield os.environ["KAFKA_BROKERS"]
        return
    started = subprocess.run([KAFKA_SCRIPTS / "up.sh"], check=True, capture_output=True, text=True)
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([KAFKA_SCRIPTS / "down.sh"], check=False)


@pytest.fixture
def topic():
    return f"e2e-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def kafkasender_bin():
    path = os.environ.get("KAFKASENDER_BIN", str(ROOT / "target/x86_64-unknown-linux-gnu/release/kafkasender"))
    assert Path(path).is_file(), f"build the CLI first (make build): {path} is missing"
    return path


def read_back(bootstrap: str, topic: str, expected: int, idle_ms: int = 8000,
              isolation: str = "read_uncommitted") -> list[Consumed]:
    """Reads the whole topic; asks for more than expected so that extra records (duplicates) show.
    ``isolation="read_committed"`` hides the messages of aborted (and open) transactions."""
    result = subprocess.run(
        [KAFKA_SCRIPTS / "consume.sh", bootstrap, topic, str(expected + 1000), str(idle_ms), isolation],
        capture_output=True, text=True, timeout=300,
    )
    records = []
    for line in result.stdout.splitlines():
        if not line.startswith("Partition:"):
            continue
        partition, offset, headers, key, value = line.split("\t", 4)
        headers = [] if headers == "NO_HEADERS" else [tuple(h.split(":", 1)) for h in headers.split(",")]
        ids = [v for k, v in headers if k == "x-ks-id"]
        records.append(Consumed(
            partition=int(partition.removeprefix("Partition:")),
            offset=int(offset.removeprefix("Offset:")),
            headers=[(k, v) for k, v in headers if k != "x-ks-id"],
            key=None if key == "NULL" else key,
            value=value,
            message_id=ids[0] if ids else None,
        ))
    assert records or expected == 0, f"console consumer read nothing: {result.stderr[-2000:]}"
    return records
