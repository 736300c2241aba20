"""Reliability scenarios on a real 3-node Apache Kafka cluster (scripts/kafka/cluster.sh).

Each scenario feeds `kafkasender produce` keyed JSON lines at a fixed rate while it breaks the
cluster on a timeline, then reads the topic back with Apache Kafka's own Java console consumer
(an independent client) and counts by payload and by the `x-ks-id` header: lost, duplicated,
per-key order. The tests (test_cluster.py) assert on these counts; `make reliability` runs them
all and writes the table of docs/reliability.md.

Run alone: python3 tests/cluster/scenarios.py [--doc FILE] [NAME...]; with --doc, the table
replaces what stands between the `<!-- scenarios:begin -->` and `<!-- scenarios:end -->` lines.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "scripts" / "kafka" / "cluster.sh"
CONSUME = ROOT / "scripts" / "kafka" / "consume.sh"
KEYS = 200


def kafkasender_bin():
    return os.environ.get("KAFKASENDER_BIN", str(ROOT / "target/x86_64-unknown-linux-gnu/release/kafkasender"))


def cluster(*args):
    return subprocess.run([CLUSTER, *map(str, args)], check=True, capture_output=True, text=True).stdout.strip()


def cluster_env():
    env = {}
    for line in cluster("env").splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


def line(i):
    return json.dumps({"key": f"k{i % KEYS}", "seq": i // KEYS, "n": i})


@dataclass
class Result:
    name: str
    fed: int
    exit_code: int
    elapsed_s: float
    read_back: int = 0
    distinct_payloads: int = 0
    distinct_ids: int = 0
    order_kept: bool = True
    summary: str = ""
    notes: list = field(default_factory=list)

    @property
    def lost(self):
        return self.fed - self.distinct_payloads

    @property
    def duplicated(self):
        return self.read_back - self.distinct_payloads

    @property
    def duplicated_after_id_dedup(self):
        return self.distinct_ids - self.distinct_payloads


def produce(topic, count, rate, extra_args=(), timeline=(), env_extra=None, bootstrap=None, kill_at=None):
    """Feeds `count` lines at `rate` per second; runs each (seconds, action) of the timeline;
    kills the producer (SIGKILL) `kill_at` seconds in, if given."""
    env = {**os.environ, "KAFKA_BROKERS": bootstrap or cluster_env()["KS_CLUSTER_BOOTSTRAP"], **(env_extra or {})}
    args = [kafkasender_bin()]
    for setting in extra_args:
        args += ["-X", setting]
    args += ["produce", "--topic", topic, "--key-field", "key", "--flush-timeout", "180s"]
    started = time.monotonic()
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    stderr = []
    reader = threading.Thread(target=lambda: stderr.append(process.stderr.read().decode(errors="replace")))
    reader.start()
    if kill_at is not None:
        timeline = [*timeline, (kill_at, process.kill)]
    pending = sorted(timeline, key=lambda step: step[0])
    batch = max(1, rate // 100)
    for first in range(0, count, batch):
        now = time.monotonic() - started
        while pending and pending[0][0] <= now:
            pending.pop(0)[1]()
        due = first / rate
        if due > now:
            time.sleep(due - now)
        chunk = "".join(line(i) + "\n" for i in range(first, min(first + batch, count)))
        try:
            process.stdin.write(chunk.encode())
            process.stdin.flush()
        except BrokenPipeError:
            break  # killed on purpose
    for _, action in pending:
        action()
    try:
        process.stdin.close()
    except BrokenPipeError:
        pass
    exit_code = process.wait(timeout=600)
    reader.join()
    return exit_code, time.monotonic() - started, "".join(stderr)


def read_back(topic, expected, bootstrap=None):
    """Every record of the topic: (partition, offset, headers dict, key, value)."""
    output = subprocess.run(
        [CONSUME, bootstrap or cluster_env()["KS_CLUSTER_BOOTSTRAP"], topic, str(expected + 100_000), "15000"],
        capture_output=True, text=True, timeout=900,
    ).stdout
    records = []
    for text in output.splitlines():
        if not text.startswith("Partition:"):
            continue
        partition, offset, headers, key, value = text.split("\t", 4)
        header_map = {} if headers == "NO_HEADERS" else dict(h.split(":", 1) for h in headers.split(","))
        records.append((int(partition.removeprefix("Partition:")), int(offset.removeprefix("Offset:")),
                        header_map, key, value))
    return records


def tally(name, topic, fed, exit_code, elapsed, stderr, bootstrap=None):
    records = read_back(topic, fed, bootstrap)
    result = Result(name=name, fed=fed, exit_code=exit_code, elapsed_s=round(elapsed, 1))
    result.read_back = len(records)
    result.distinct_payloads = len({value for *_, value in records})
    result.distinct_ids = len({headers.get("x-ks-id", f"none-{i}") for i, (_, _, headers, _, _) in enumerate(records)})
    seen, last_seq = set(), defaultdict(lambda: -1)
    for partition, offset, headers, key, value in sorted(records):
        if value in seen:
            continue  # a duplicate: order is judged on first copies
        seen.add(value)
        event = json.loads(value)
        if event["seq"] <= last_seq[key]:
            result.order_kept = False
        last_seq[key] = event["seq"]
    result.summary = "\n".join(l for l in stderr.splitlines() if "│" in l or "×" in l)
    return result


def topic_name(name):
    return f"rel-{name}-{int(time.time())}"


def all_nodes_up():
    for node in (1, 2, 3):
        cluster("start", node)


# --- the scenarios ---------------------------------------------------------------------------

def leader_killed(count=100_000, rate=20_000):
    """kill -9 of the leader of partition 0 mid-stream; it restarts 8 s later."""
    topic = topic_name("leader-killed")
    cluster("create", topic)
    leader = int(cluster("leader", topic, 0))
    timeline = [(1.5, lambda: cluster("kill", leader)), (9.5, lambda: cluster("start", leader))]
    exit_code, elapsed, stderr = produce(topic, count, rate, timeline=timeline)
    all_nodes_up()
    result = tally("leader_killed", topic, count, exit_code, elapsed, stderr)
    result.notes.append(f"node {leader} (leader of partition 0) killed at 1.5 s, restarted at 9.5 s")
    return result


def two_brokers_down(name, settings=(), count=150_000, rate=5_000, down_at=5.0, down_for=20.0):
    """Two of three nodes killed for `down_for` seconds at `rate` msg/s: most partitions have no
    leader, the rest lack in-sync replicas, and the controllers lose their quorum."""
    topic = topic_name(name)
    cluster("create", topic)
    timeline = [
        (down_at, lambda: (cluster("kill", 2), cluster("kill", 3))),
        (down_at + down_for, lambda: (cluster("start", 2), cluster("start", 3))),
    ]
    shown = ", ".join(s.replace("{spool}", "a temporary directory") for s in settings) or "defaults"
    with tempfile.TemporaryDirectory() as spool:
        settings = [s.replace("{spool}", spool) for s in settings]
        exit_code, elapsed, stderr = produce(topic, count, rate, extra_args=settings, timeline=timeline)
        all_nodes_up()
        if any(s.startswith("spool.dir") for s in settings):
            # What the spool still holds goes out now, as an operator would after an incident.
            replay = subprocess.run([kafkasender_bin(), "spool", "replay", spool], capture_output=True, text=True,
                                    env={**os.environ, "KAFKA_BROKERS": cluster_env()["KS_CLUSTER_BOOTSTRAP"]})
            stderr += replay.stderr
    result = tally(name, topic, count, exit_code, elapsed, stderr)
    result.notes.append(f"nodes 2 and 3 killed at {down_at:.0f} s for {down_for:.0f} s; settings: {shown}")
    return result


def producer_killed_in_journal_mode(count=200_000, rate=20_000, kill_at=3.0):
    """kill -9 of `kafkasender produce` in journal mode mid-stream (with brokers fine), then a new
    producer on its directory (`kafkasender spool replay`). Which lines the killed producer had
    accepted is known from the topic: a line read back means every line before it was accepted
    (the CLI sends them in order), so a gap below the highest line read back is a lost line."""
    topic = topic_name("journal-killed")
    cluster("create", topic)
    with tempfile.TemporaryDirectory() as journal:
        settings = [f"spool.dir={journal}", "spool.mode=journal"]
        exit_code, elapsed, stderr = produce(topic, count, rate, extra_args=settings, kill_at=kill_at)
        left = sum(1 for _ in Path(journal).glob("spool-*.ks"))
        replay = subprocess.run([kafkasender_bin(), "spool", "replay", journal], capture_output=True, text=True,
                                env={**os.environ, "KAFKA_BROKERS": cluster_env()["KS_CLUSTER_BOOTSTRAP"]})
        stderr += replay.stderr
    records = read_back(topic, count)
    accepted = 1 + max((json.loads(value)["n"] for *_, value in records), default=-1)
    result = tally("producer_killed_journal", topic, accepted, exit_code, elapsed, stderr)
    result.notes.append(f"the producer SIGKILLed {kill_at:.0f} s in; {left} journal files left; then "
                        f"`kafkasender spool replay`; settings: spool.mode=journal, spool.dir=a temporary directory")
    return result


SCENARIOS = {
    "leader_killed": leader_killed,
    "two_down_defaults": lambda: two_brokers_down("two_down_defaults"),
    "two_down_breaker_spool": lambda: two_brokers_down(
        "two_down_breaker_spool",
        ["breaker.enabled=true", "breaker.stall.ms=5s", "breaker.timeout.ms=5s", "spool.dir={spool}"]),
    "producer_killed_journal": producer_killed_in_journal_mode,
    "two_down_short_timeout": lambda: two_brokers_down(
        "two_down_short_timeout",
        ["message.timeout.ms=10s", "breaker.enabled=true", "breaker.stall.ms=5s", "breaker.timeout.ms=5s",
         "spool.dir={spool}"]),
}


def markdown(results):
    rows = ["| scenario | fed | exit | read back | distinct | lost | duplicated | duplicates left after dropping repeated x-ks-id | per-key order | seconds |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in results:
        rows.append(f"| {r.name} | {r.fed:,} | {r.exit_code} | {r.read_back:,} | {r.distinct_payloads:,} | {r.lost:,} | "
                    f"{r.duplicated:,} | {r.duplicated_after_id_dedup:,} | {'kept' if r.order_kept else 'BROKEN'} | {r.elapsed_s} |")
    return "\n".join(rows) + "\n\n" + "\n".join(f"- {r.name}: {'; '.join(r.notes)}" for r in results) + "\n"


def splice(doc, table):
    text = Path(doc).read_text()
    begin, end = "<!-- scenarios:begin -->\n", "<!-- scenarios:end -->"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    Path(doc).write_text(f"{head}{begin}Measured {stamp} by `make reliability`:\n\n{table}{end}{tail}")


if __name__ == "__main__":
    args = sys.argv[1:]
    doc = None
    if args[:1] == ["--doc"]:
        doc, args = args[1], args[2:]
    cluster("up")
    results = []
    for name in args or SCENARIOS:
        print(f"== {name}", file=sys.stderr, flush=True)
        result = SCENARIOS[name]()
        print(result.summary, file=sys.stderr)
        print(markdown([result]), file=sys.stderr, flush=True)
        results.append(result)
    table = markdown(results)
    print(table)
    if doc:
        splice(doc, table)
