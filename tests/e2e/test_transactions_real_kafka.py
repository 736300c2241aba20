"""Transactions from every face against a real Apache Kafka broker (librdkafka's mock cluster does
not hide aborted messages). Each face runs one scenario: 20 transactions of 20 keyed messages
over two topics, the even ones committed and the odd ones aborted after their messages reached
the log (a flush first: an abort also purges what was never sent), interleaved; it checks its own
reports (committed: delivered; aborted: a retriable transaction error). Kafka's own console
consumer then reads both topics: read_committed must see exactly the committed messages, once
each, in order per key; read_uncommitted sees the aborted ones too (so the check can fail)."""

import json
import os
import shutil
import subprocess
import uuid
from collections import defaultdict

import pytest

from conftest import ROOT, read_back

TRANSACTIONS, PER_TRANSACTION = 20, 20
PYTHON = ROOT / "target" / "python-venv" / "bin" / "python"
NODE_PACKAGE = ROOT / "bindings" / "node"
C_SCENARIO = ROOT / "target" / "c" / "transaction_scenario"


def expected(mark):
    """The values the scenario sends to each topic with `mark` ("c" committed, "a" aborted)."""
    by_topic = ([], [])
    for n in range(TRANSACTIONS):
        if (n % 2 == 0) == (mark == "c"):
            for i in range(PER_TRANSACTION):
                by_topic[i % 2].append(f"{mark}-{n}-{i}")
    return by_topic


def check_visibility(bootstrap, topics):
    committed, aborted = expected("c"), expected("a")
    for topic, wanted, hidden in zip(topics, committed, aborted):
        records = read_back(bootstrap, topic, len(wanted) + len(hidden), isolation="read_committed")
        values = [r.value for r in records]
        assert sorted(values) == sorted(wanted), f"{topic}: read_committed saw {len(values)} of {len(wanted)}"
        by_key = defaultdict(list)
        for r in sorted(records, key=lambda r: (r.partition, r.offset)):
            by_key[r.key].append(tuple(int(x) for x in r.value.split("-")[1:]))
        assert all(v == sorted(v) for v in by_key.values()), "per-key order"
        everything = [r.value for r in read_back(bootstrap, topic, len(wanted) + len(hidden))]
        assert sorted(everything) == sorted(wanted + hidden), "read_uncommitted sees the aborted ones too"


def scenario_topics():
    run = uuid.uuid4().hex[:10]
    return [f"tx-a-{run}", f"tx-b-{run}"], f"tx-{run}"


PYTHON_SCENARIO = """
import sys, kafkasender
bootstrap, topic_a, topic_b, tid = sys.argv[1:5]
with kafkasender.Producer({"bootstrap.servers": bootstrap, "transactional.id": tid}) as p:
    for n in range(%(transactions)d):
        commit = n %% 2 == 0
        futures = []
        try:
            with p.transaction(60):
                for i in range(%(per)d):
                    value = f"{'c' if commit else 'a'}-{n}-{i}"
                    futures.append(p.send(topic_a if i %% 2 == 0 else topic_b, value, key=f"k{i %% 4}"))
                if not commit:
                    p.flush(60)  # written to the log first, so only the abort hides them
                    raise LookupError("abort this one")
        except LookupError:
            pass
        for f in futures:
            if commit:
                assert f.result(0).delivered
            else:
                e = f.exception(0)
                assert isinstance(e, kafkasender.TransactionError) and e.retriable, e
""" % {"transactions": TRANSACTIONS, "per": PER_TRANSACTION}

NODE_SCENARIO = """
const { Producer } = require(process.argv[1])
const [bootstrap, topicA, topicB, tid] = process.argv.slice(2)
async function main() {
  const p = new Producer({ 'bootstrap.servers': bootstrap, 'transactional.id': tid })
  for (let n = 0; n < %(transactions)d; n++) {
    const commit = n %% 2 === 0
    let sends = []
    try {
      await p.transaction(async (tx) => {
        sends = Array.from({ length: %(per)d }, (_, i) => tx.send({
          topic: i %% 2 === 0 ? topicA : topicB, key: `k${i %% 4}`, value: `${commit ? 'c' : 'a'}-${n}-${i}` }))
        sends.forEach((s) => s.catch(() => {}))
        if (!commit) {
          await tx.flush() // written to the log first, so only the abort hides them
          throw new RangeError('abort this one')
        }
      }, 60000)
    } catch (e) { if (!(e instanceof RangeError)) throw e }
    for (const o of await Promise.allSettled(sends)) {
      const ok = commit ? o.status === 'fulfilled' && o.value.outcome === 'delivered'
        : o.status === 'rejected' && o.reason.code === 'transaction' && o.reason.retriable
      if (!ok) throw new Error(`transaction ${n}: ${JSON.stringify(o)}`)
    }
  }
  await p.close()
}
main().catch((e) => { console.error(e); process.exit(1) })
""" % {"transactions": TRANSACTIONS, "per": PER_TRANSACTION}


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]


def test_python_transactions_on_real_kafka(bootstrap):
    if not PYTHON.exists():
        pytest.skip("make test-python first (it installs the package into target/python-venv)")
    topics, tid = scenario_topics()
    run([PYTHON, "-c", PYTHON_SCENARIO, bootstrap, *topics, tid])
    check_visibility(bootstrap, topics)


def test_node_transactions_on_real_kafka(bootstrap):
    if not any(NODE_PACKAGE.glob("*.node")):
        pytest.skip("make test-node first (it builds the addon)")
    topics, tid = scenario_topics()
    run(["node", "-e", NODE_SCENARIO, str(NODE_PACKAGE), bootstrap, *topics, tid],
        env={**os.environ, "KAFKA_LOG_LEVEL": "warn"})
    check_visibility(bootstrap, topics)


def test_go_transactions_on_real_kafka(bootstrap):
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain")
    topics, tid = scenario_topics()
    env = {**os.environ, "KAFKASENDER_SCENARIO_BROKERS": bootstrap,
           "KAFKASENDER_SCENARIO_TOPICS": ",".join(topics), "KAFKASENDER_SCENARIO_ID": tid}
    run(["go", "test", "-count=1", "-run", "TestTransactionScenarioOnARealBroker", "."],
        cwd=ROOT / "bindings" / "go", env=env)
    check_visibility(bootstrap, topics)


def test_c_transactions_on_real_kafka(bootstrap):
    assert C_SCENARIO.exists(), "make test-e2e builds target/c/transaction_scenario"
    topics, tid = scenario_topics()
    run([C_SCENARIO, bootstrap, *topics, tid])
    check_visibility(bootstrap, topics)


def test_cli_commits_every_n_lines(bootstrap, kafkasender_bin, tmp_path):
    topic = f"tx-cli-{uuid.uuid4().hex[:10]}"
    lines = [json.dumps({"n": i, "user": f"u{i % 7}"}) for i in range(1_000)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [kafkasender_bin, "produce", "--topic", topic, "--key-field", "user",
         "--transactional-id", f"cli-{topic}", "--transaction-size", "64", str(tmp_path / "in.jsonl")],
        env={**os.environ, "KAFKA_BROKERS": bootstrap}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    records = read_back(bootstrap, topic, len(lines), isolation="read_committed")
    assert sorted(json.loads(r.value)["n"] for r in records) == list(range(1_000))
