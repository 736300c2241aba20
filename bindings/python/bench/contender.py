"""Python contenders for `kafkasender bench --external NAME=PROGRAM`, under the rules at the top of
crates/kafkasender-cli/src/bench.rs (warm producer, distinct 16-byte keys, the broker in another
process, the clock from the first send to the last report):

- ``py-send``: kafkasender ``send(on_delivery=…)``;
- ``py-send-batch``: kafkasender ``send_batch`` of 10,000 records a call;
- ``py-send-batch-columns``: the same with ``columns=True``: each batch's reports as one
  ``DeliveryReports``, its latencies taken as one list;
- ``confluent-python``: confluent-kafka-python ``produce(on_delivery=…)`` with ``poll(0)`` after
  each and ``poll`` on a full queue, its documented pattern, with kafkasender's default settings.

Usage: contender.py NAME BOOTSTRAP TOPIC COUNT SIZE RATE   (RATE 0: as fast as it goes)
Prints: result<TAB>NAME<TAB>MSG_PER_S<TAB>P50_MS<TAB>P99_MS<TAB>PEAK_RSS_KB<TAB>CPU_SECONDS
"""

import resource
import sys
import time

BATCH = 10_000


def keys(count):
    return [i.to_bytes(8, "big") + b"ks-bench" for i in range(count)]


def paced(count, rate, step=1):
    """Yields 0, step, 2·step, … below count, sleeping to hold `rate` messages per second (0: no pacing)."""
    started = time.perf_counter()
    for i in range(0, count, step):
        if rate:
            wait = started + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        yield i


def kafkasender_contender(batched, columns=False):
    def run(bootstrap, topic, count, payload, rate):
        import kafkasender

        latencies = []
        record = latencies.append
        on_delivery = lambda report: record(report.latency if report.delivered else None)  # noqa: E731
        with kafkasender.Producer({"bootstrap.servers": bootstrap}) as p:
            p.send(topic, payload, key=b"warm-up", on_delivery=lambda r: None)
            p.flush()
            ks = keys(count)
            started = time.perf_counter()
            if batched:
                size = max(int(rate) // 1000, 1) if rate else BATCH  # at a fixed rate, a batch per millisecond
                # Each batch's reports are read as it completes, and not kept (nor does any other
                # contender keep its reports).
                def take(future):
                    reports = future.result()
                    if columns and not reports.lost:
                        latencies.extend(reports.latencies)
                        return
                    for r in reports:
                        on_delivery(r)
                        if not r.delivered:
                            print(f"not delivered: {r.error!r}", file=sys.stderr)
                for i in paced(count, rate, size):
                    p.send_batch([(topic, payload, k) for k in ks[i:i + size]],
                                 columns=columns).add_done_callback(take)
                p.flush()
            else:
                for i in paced(count, rate):
                    p.send(topic, payload, key=ks[i], on_delivery=on_delivery)
                p.flush()
            finished = time.perf_counter()
        return started, finished, latencies
    return run


def confluent_contender(bootstrap, topic, count, payload, rate):
    import confluent_kafka

    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                                  "linger.ms": 5, "partitioner": "murmur2_random", "message.timeout.ms": 0})
    latencies = []

    def on_delivery(err, msg):
        latencies.append(None if err else msg.latency())

    p.produce(topic, payload, key=b"warm-up", on_delivery=on_delivery)
    p.flush()
    latencies.clear()
    ks = keys(count)
    started = time.perf_counter()
    for i in paced(count, rate):
        while True:
            try:
                p.produce(topic, payload, key=ks[i], on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.001)  # backpressure, as kafkasender's send waits
        p.poll(0)
    p.flush()
    return started, time.perf_counter(), latencies


CONTENDERS = {
    "py-send": kafkasender_contender(batched=False),
    "py-send-batch": kafkasender_contender(batched=True),
    "py-send-batch-columns": kafkasender_contender(batched=True, columns=True),
    "confluent-python": confluent_contender,
}


def main():
    name, bootstrap, topic, count, size, rate = sys.argv[1:7]
    count, rate = int(count), float(rate)
    started, finished, latencies = CONTENDERS[name](bootstrap, topic, count, b"x" * int(size), rate)
    if len(latencies) != count or None in latencies:
        sys.exit(f"{sum(x is not None for x in latencies)} of {count} delivered")
    latencies.sort()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"result\t{name}\t{count / (finished - started):.0f}\t{latencies[count // 2] * 1e3:.3f}\t"
          f"{latencies[count * 99 // 100] * 1e3:.3f}\t{usage.ru_maxrss}\t{usage.ru_utime + usage.ru_stime:.3f}")


if __name__ == "__main__":
    main()
