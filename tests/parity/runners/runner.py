"""The Python face's runner of tests/parity scenarios: steps on stdin, one outcome line per send
on stdout (the protocol is described in tests/parity/run.py)."""

import sys
import time

import kafkasender
from kafkasender.testing import MockCluster


def main():
    cluster, config, producer, outcomes = None, {}, None, []

    def record(index):
        def on_delivery(report):
            error = report.error.kind if report.error else "-"
            outcomes[index] = f"{report.outcome}\t{error}\t{report.partition}"
        return on_delivery

    for line in sys.stdin.read().splitlines():
        step, *field = line.split("\t")
        if step == "brokers":
            cluster = MockCluster(brokers=int(field[0])) if int(field[0]) > 0 else None
        elif step == "topic":
            cluster.create_topic(field[0], int(field[1]))
        elif step == "config":
            config[field[0]] = field[1]
        elif step == "start":
            mock = {"bootstrap.servers": cluster.bootstrap_servers} if cluster else {}
            producer = kafkasender.Producer({**mock, **config})
        elif step == "send":
            topic, key, value, size, partition, headers = field
            none = lambda s: None if s == "-" else s  # noqa: E731
            outcomes.append("unreported\t-\t-1")
            try:
                producer.send(topic, "x" * int(size) if int(size) else none(value), key=none(key),
                              headers=dict(h.split("=", 1) for h in headers.split(",")) if headers != "-" else None,
                              partition=None if partition == "-" else int(partition),
                              on_delivery=record(len(outcomes) - 1))
            except kafkasender.KafkaSenderError as error:
                outcomes[-1] = f"refused\t{error.kind}\t-1"
        elif step == "flush":
            try:
                producer.flush(timeout=int(field[0]) / 1000)
            except kafkasender.KafkaSenderError:
                pass
        elif step == "close":
            producer.close(timeout=int(field[0]) / 1000)
        elif step == "down":
            cluster.broker_down(int(field[0]))
        elif step == "up":
            cluster.broker_up(int(field[0]))
        elif step == "errors":
            cluster.push_request_errors(field[0], [int(code) for code in field[1].split(",")])
        elif step == "sleep":
            time.sleep(int(field[0]) / 1000)
        else:
            sys.exit(f"unknown step {step!r}")
    if producer is not None:
        producer.close(timeout=10)  # every report is in once close returns
    for index, outcome in enumerate(outcomes):
        print(f"{index}\t{outcome}")


if __name__ == "__main__":
    main()
