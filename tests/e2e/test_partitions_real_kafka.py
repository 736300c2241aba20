"""Keys land where Apache Kafka's own Java producer puts them: 10,000 keys produced by kafkasender
to a real broker are read back, and each one's partition must be the one the Java client's
BuiltInPartitioner (murmur2) computes for it (tests/e2e/java/JavaPartitions.java, run from source
with the broker's kafka-clients jar)."""

import json
import os
import subprocess

from conftest import ROOT, read_back

KEYS = [f"user-{i}" for i in range(9_000)] + [f"客户-{i}-ünïcode" for i in range(1_000)]
PARTITIONS = 4  # what the broker of scripts/kafka/up.sh gives a topic it creates on first use


def java_partitions(keys, partitions):
    result = subprocess.run(
        ["java", "-cp", str(ROOT / ".cache" / "kafka" / "libs" / "*"), str(ROOT / "tests" / "e2e" / "java" / "JavaPartitions.java"),
         str(partitions)],
        input="\n".join(keys) + "\n", capture_output=True, text=True, timeout=120, check=True)
    return [int(line) for line in result.stdout.split()]


def test_ten_thousand_keys_land_on_the_partitions_the_java_client_picks(kafkasender_bin, bootstrap, topic):
    lines = "".join(json.dumps({"k": key}, ensure_ascii=False) + "\n" for key in KEYS)
    result = subprocess.run([kafkasender_bin, "produce", "--topic", topic, "--key-field", "k"], input=lines,
                            env={**os.environ, "KAFKA_BROKERS": bootstrap}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    records = read_back(bootstrap, topic, len(KEYS))
    assert len(records) == len(KEYS)
    assert {r.partition for r in records} == set(range(PARTITIONS)), "the topic has the expected partitions"
    landed = {r.key: r.partition for r in records}
    expected = dict(zip(KEYS, java_partitions(KEYS, PARTITIONS)))
    wrong = [(k, landed[k], expected[k]) for k in KEYS if landed[k] != expected[k]]
    assert not wrong, f"{len(wrong)} of {len(KEYS)} keys on another partition than Java's, e.g. {wrong[:3]}"
