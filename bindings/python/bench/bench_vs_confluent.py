"""kafkasender from Python against confluent-kafka-python (and the Rust core), same mock cluster.

One process serves librdkafka's mock cluster (3 brokers); every contender sends the same number of
100-byte values to it with the same settings (acks=all, idempotence, linger.ms=5), in alternating
runs. Prints each run, then medians and ratios: the machine is shared and noisy.

    make bench-python        (installs confluent-kafka into target/python-venv)
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import kafkasender
from kafkasender.testing import MockCluster

SETTINGS = {"acks": "all", "enable.idempotence": "true", "linger.ms": "5"}


def kafkasender_send(bootstrap, topic, count, payload):
    delivered = 0

    def on_delivery(report):
        nonlocal delivered
        delivered += report.delivered

    with kafkasender.Producer({"bootstrap.servers": bootstrap, **SETTINGS}) as p:
        started = time.perf_counter()
        for _ in range(count):
            p.send(topic, payload, on_delivery=on_delivery)
        p.flush()
        elapsed = time.perf_counter() - started
    assert delivered == count, (delivered, count)
    return count / elapsed


def kafkasender_send_batch(bootstrap, topic, count, payload, chunk=10_000):
    with kafkasender.Producer({"bootstrap.servers": bootstrap, **SETTINGS}) as p:
        started = time.perf_counter()
        futures = [p.send_batch([(topic, payload)] * min(chunk, count - i)) for i in range(0, count, chunk)]
        p.flush()
        elapsed = time.perf_counter() - started
        delivered = sum(r.delivered for f in futures for r in f.result())
    assert delivered == count, (delivered, count)
    return count / elapsed


def confluent_produce(bootstrap, topic, count, payload):
    from confluent_kafka import Producer

    delivered = 0

    def on_delivery(err, msg):
        nonlocal delivered
        delivered += err is None

    p = Producer({"bootstrap.servers": bootstrap, **SETTINGS})
    started = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                p.produce(topic, payload, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.001)  # the queue is full: serve delivery reports, then try again
        p.poll(0)
    p.flush()
    elapsed = time.perf_counter() - started
    assert delivered == count, (delivered, count)
    return count / elapsed


def rust_core(bootstrap, count, runs, cli, topic="bench-python"):
    """The core's own `send` (one `kafkasender bench-run` contender process per run), same cluster."""
    rates = []
    for _ in range(runs):
        out = subprocess.run([cli, "bench-run", "rust-send", bootstrap, topic, str(count), "100", "0"],
                             capture_output=True, text=True, check=True)
        rates += [float(line.split("\t")[2]) for line in out.stdout.splitlines() if line.startswith("result\t")]
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--cli", default="target/x86_64-unknown-linux-gnu/release/kafkasender")
    args = parser.parse_args()

    cluster = MockCluster(brokers=3)
    topic = "bench-python"
    cluster.create_topic(topic, partitions=6, replication_factor=3)
    payload = b"x" * args.size
    contenders = {
        "confluent-kafka-python produce + on_delivery + poll": confluent_produce,
        "kafkasender send + on_delivery": kafkasender_send,
        "kafkasender send_batch (10,000 per call)": kafkasender_send_batch,
    }
    rates = {name: [] for name in contenders}
    for run in range(1, args.runs + 1):
        for name, contender in contenders.items():
            rate = contender(cluster.bootstrap_servers, topic, args.count, payload)
            rates[name].append(rate)
            print(f"run {run}: {name}: {rate:,.0f} msg/s", file=sys.stderr)
    if os.path.exists(args.cli):
        rates["kafkasender Rust core send (CLI bench)"] = rust_core(cluster.bootstrap_servers, args.count,
                                                                    args.runs, args.cli)

    medians = {name: statistics.median(r) for name, r in rates.items()}
    confluent = medians["confluent-kafka-python produce + on_delivery + poll"]
    core = medians.get("kafkasender Rust core send (CLI bench)")
    print(f"\n{args.count:,} × {args.size} B, acks=all, idempotence, linger.ms=5, 3-broker mock cluster, "
          f"median of {args.runs}\n")
    print("| contender | msg/s (median) | vs confluent-kafka-python | vs Rust core |")
    print("|---|---:|---:|---:|")
    for name, median in medians.items():
        vs_core = f"{median / core:.2f}" if core else "–"
        print(f"| {name} | {median:,.0f} | {median / confluent:.2f} | {vs_core} |")


if __name__ == "__main__":
    main()
