"""`kafkasender produce` and `kafkasender demo` against a real Apache Kafka broker."""

import json
import os
import subprocess
import time
from collections import defaultdict

from conftest import read_back

MESSAGES = 10_000
USERS = 100


def produce(kafkasender_bin, bootstrap, args, stdin):
    env = {**os.environ, "KAFKA_BROKERS": bootstrap}
    return subprocess.run([kafkasender_bin, "produce", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=300)


def test_ten_thousand_keyed_messages_with_headers_land_once_each_in_key_order(kafkasender_bin, bootstrap, topic):
    lines = [json.dumps({"id": i, "user": f"user-{i % USERS}", "seq": i // USERS}) for i in range(MESSAGES)]
    result = produce(kafkasender_bin, bootstrap,
                     ["--topic", topic, "--key-field", "user", "--header", "source=e2e", "--header", "suite=cli"],
                     "\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    assert "10,000" in result.stderr

    records = read_back(bootstrap, topic, MESSAGES)
    assert len(records) == MESSAGES, "count read back"
    events = [json.loads(r.value) for r in records]
    assert len({e["id"] for e in events}) == MESSAGES, "no duplicates, nothing lost"

    partitions_of_key = defaultdict(set)
    seq_by_key = defaultdict(list)
    for record, event in sorted(zip(records, events), key=lambda pair: (pair[0].partition, pair[0].offset)):
        assert record.key == event["user"], "the key is the --key-field value"
        assert record.headers == [("source", "e2e"), ("suite", "cli")]
        partitions_of_key[record.key].add(record.partition)
        seq_by_key[record.key].append(event["seq"])
    assert all(len(p) == 1 for p in partitions_of_key.values()), "one partition per key"
    assert all(seqs == sorted(seqs) for seqs in seq_by_key.values()), "per-key order kept"
    assert len({p for ps in partitions_of_key.values() for p in ps}) > 1, "keys spread over partitions"


def test_lines_that_cannot_be_sent_are_reported_and_fail_the_run_but_the_rest_lands(kafkasender_bin, bootstrap, topic):
    lines = ['{"user": "a", "n": 1}', "not json", '{"n": 2}', '{"user": "b", "n": 3}']
    result = produce(kafkasender_bin, bootstrap, ["--topic", topic, "--key-field", "user"], "\n".join(lines))
    assert result.returncode == 1
    assert "stdin:2: not JSON" in result.stderr
    assert 'stdin:3: no field "user"' in result.stderr

    records = read_back(bootstrap, topic, 2, idle_ms=5000)
    assert sorted((r.key, json.loads(r.value)["n"]) for r in records) == [("a", 1), ("b", 3)]


def test_demo_against_real_kafka_reads_back_everything_it_sent(kafkasender_bin, bootstrap):
    env = {**os.environ, "KAFKA_BROKERS": bootstrap}
    result = subprocess.run([kafkasender_bin, "demo", "--count", "3000", "--rate", "0"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    verdict = next(line for line in result.stdout.splitlines() if "read back == sent" in line)
    assert verdict.split("│")[2].strip() == "yes", result.stdout


def test_what_could_not_be_delivered_is_spooled_inspected_and_replayed_to_real_kafka(
        kafkasender_bin, tmp_path, bootstrap, topic):
    spool = tmp_path / "spool"
    lines = [f'{{"user": "u{i % 3}", "n": {i}}}' for i in range(50)]
    # Nothing listens on port 1: every message times out and goes to the spool instead of being lost.
    outage = produce(kafkasender_bin, "127.0.0.1:1",
                     ["-X", "message.timeout.ms=500", "-X", "retry.max=1", "-X", "retry.backoff.base.ms=50ms",
                      "-X", f"spool.dir={spool}", "--topic", topic, "--key-field", "user", "--header", "origin=e2e"],
                     "\n".join(lines))
    assert outage.returncode == 1, "not delivered is a failed run, even when nothing is lost"
    spooled_row = next(line for line in outage.stderr.splitlines() if "│ spooled" in line)
    assert spooled_row.split("│")[2].strip() == "50", outage.stderr

    inspected = subprocess.run([kafkasender_bin, "spool", "inspect", str(spool)], capture_output=True, text=True)
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr
    assert f"topic {topic}: 50" in inspected.stdout
    assert "reason timeout: 50" in inspected.stdout

    env = {**os.environ, "KAFKA_BROKERS": bootstrap}
    replayed = subprocess.run([kafkasender_bin, "spool", "replay", str(spool)], env=env,
                              capture_output=True, text=True, timeout=300)
    assert replayed.returncode == 0, replayed.stderr
    assert "no spool files" in subprocess.run([kafkasender_bin, "spool", "inspect", str(spool)],
                                              capture_output=True, text=True).stdout

    records = read_back(bootstrap, topic, 50, idle_ms=5000)
    assert sorted(json.loads(r.value)["n"] for r in records) == list(range(50)), "each exactly once"
    assert all(r.headers == [("origin", "e2e")] for r in records)
    by_key = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key[r.key].append(json.loads(r.value)["n"])
    assert all(ns == sorted(ns) for ns in by_key.values()), "per-key order survives the spool"


def test_a_journal_producer_killed_mid_stream_is_replayed_without_a_loss_or_a_copy(
        kafkasender_bin, tmp_path, bootstrap, topic):
    """kill -9 mid-stream leaves messages in flight, and reported ones not yet listed beside the
    journal: the replay finds those in the topic by their x-ks-id and sends only the rest."""
    journal, rate, count = tmp_path / "journal", 50_000, 200_000
    env = {**os.environ, "KAFKA_BROKERS": bootstrap}
    producer = subprocess.Popen(
        [kafkasender_bin, "-X", f"spool.dir={journal}", "-X", "spool.mode=journal", "produce", "--topic", topic,
         "--key-field", "user"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    started = time.monotonic()
    for first in range(0, count, rate // 100):
        if time.monotonic() - started >= 1.5:
            break
        time.sleep(max(0.0, first / rate - (time.monotonic() - started)))
        chunk = "".join(f'{{"user": "u{i % USERS}", "n": {i}}}\n' for i in range(first, first + rate // 100))
        producer.stdin.write(chunk.encode())
        producer.stdin.flush()
    producer.kill()
    producer.wait()

    replayed = subprocess.run([kafkasender_bin, "spool", "replay", str(journal)], env=env,
                              capture_output=True, text=True, timeout=300)
    assert replayed.returncode == 0, replayed.stderr
    found = next(line for line in replayed.stderr.splitlines() if "found in the topic already" in line)
    assert int(found.split("│")[2].strip().replace(",", "")) > 0, replayed.stderr

    ns = [json.loads(r.value)["n"] for r in read_back(bootstrap, topic, count)]
    accepted = max(ns) + 1  # the CLI sends in order: a line read back means all before it were accepted
    assert sorted(set(ns)) == list(range(accepted)), "nothing accepted is lost"
    assert len(ns) == accepted, f"{len(ns) - accepted} copies\n{replayed.stderr}"


def test_health_exits_0_against_a_live_broker_and_1_with_the_reason_against_none(kafkasender_bin, bootstrap):
    def health(brokers):
        env = {**os.environ, "KAFKA_BROKERS": brokers}
        return subprocess.run([kafkasender_bin, "health", "--timeout", "3s", "--json"], env=env,
                              capture_output=True, text=True, timeout=60)

    live = health(bootstrap)
    assert live.returncode == 0, live.stdout + live.stderr
    assert json.loads(live.stdout) == {"status": "healthy", "reasons": []}
    dead = health("127.0.0.1:1")
    assert dead.returncode == 1, dead.stdout + dead.stderr
    verdict = json.loads(dead.stdout)
    assert verdict["status"] == "unhealthy"
    assert any(r.startswith("no broker reachable") and "127.0.0.1:1" in r for r in verdict["reasons"]), verdict


def test_publish_sends_one_cloudevent_to_the_topic_its_type_maps_to(kafkasender_bin, bootstrap, topic):
    env = {**os.environ, "KAFKA_BROKERS": bootstrap, "KAFKA_TOPIC_MAP": f"user.*={topic}"}
    result = subprocess.run([kafkasender_bin, "publish", "--type", "user.registered", "--data", '{"user": 7}',
                             "--source", "e2e", "--correlation-id", "req-1"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"(user.registered) to {topic} [" in result.stdout
    [record] = read_back(bootstrap, topic, 1, idle_ms=5000)
    envelope = json.loads(record.value)
    assert (envelope["type"], envelope["source"], envelope["data"], envelope["correlationid"]) == \
        ("user.registered", "e2e", {"user": 7}, "req-1")
    assert record.key == "req-1"
    assert ("ce_type", "user.registered") in record.headers and ("correlation-id", "req-1") in record.headers
    bad = subprocess.run([kafkasender_bin, "publish", "--type", "x", "--data", "{not json"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--data is not JSON" in bad.stderr
