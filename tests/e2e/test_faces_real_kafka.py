"""The Python and Node packages against a real Apache Kafka broker, read back by Kafka's own Java
console consumer: count, no duplicates, per-key order, headers."""

import json
import os
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import ROOT, read_back

MESSAGES = 2_000
KEYS = 20
PYTHON = ROOT / "target" / "python-venv" / "bin" / "python"
NODE_PACKAGE = ROOT / "bindings" / "node"


def check_landed(bootstrap, topic, face):
    records = read_back(bootstrap, topic, MESSAGES)
    assert len(records) == MESSAGES, f"{len(records)} records read back"
    ns = [json.loads(r.value)["n"] for r in records]
    assert len(set(ns)) == MESSAGES, "no duplicates"
    by_key = defaultdict(list)
    partitions = defaultdict(set)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key[r.key].append(json.loads(r.value)["n"])
        partitions[r.key].add(r.partition)
        assert r.headers == [("face", face)]
    assert all(v == sorted(v) for v in by_key.values()), "per-key order"
    assert all(len(p) == 1 for p in partitions.values()), "one partition per key"


def test_python_package_delivers_to_real_kafka(bootstrap, topic):
    if not PYTHON.exists():
        pytest.skip("make test-python first (it installs the package into target/python-venv)")
    script = f"""
import json, kafkasender
with kafkasender.Producer({{"bootstrap.servers": {bootstrap!r}}}) as p:
    futures = [p.send({topic!r}, json.dumps({{"n": i}}), key=f"k{{i % {KEYS}}}", headers={{"face": "python"}})
               for i in range({MESSAGES})]
    p.flush(120)
    assert all(f.result().delivered for f in futures)
"""
    result = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    check_landed(bootstrap, topic, "python")


def test_node_package_delivers_to_real_kafka(bootstrap, topic):
    if not any(NODE_PACKAGE.glob("*.node")):
        pytest.skip("make test-node first (it builds the addon)")
    script = f"""
const {{ Producer }} = require({json.dumps(str(NODE_PACKAGE))})
const p = new Producer({{ 'bootstrap.servers': {json.dumps(bootstrap)} }})
Promise.all(Array.from({{ length: {MESSAGES} }}, (_, i) =>
  p.send({{ topic: {json.dumps(topic)}, value: JSON.stringify({{ n: i }}), key: 'k' + (i % {KEYS}), headers: {{ face: 'node' }} }})))
  .then((reports) => {{ if (!reports.every((r) => r.outcome === 'delivered')) process.exit(1); return p.close() }})
"""
    result = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "KAFKA_LOG_LEVEL": "warn"})
    assert result.returncode == 0, result.stderr[-3000:]
    check_landed(bootstrap, topic, "node")
