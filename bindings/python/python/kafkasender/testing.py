"""Test helpers: ``MockCluster``, librdkafka's mock Kafka brokers in this process, and
``inject_fatal_error`` to see a producer recover.

    cluster = MockCluster(brokers=3)
    cluster.create_topic("orders", partitions=4)
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers})
    ...
    records = cluster.read_topic("orders")   # read back with a consumer of its own
"""

from ._kafkasender import MockCluster
from ._kafkasender import Producer as _NativeProducer

__all__ = ["MockCluster", "inject_fatal_error"]


def inject_fatal_error(producer: _NativeProducer, code: int = 59) -> None:
    """Makes ``producer``'s librdkafka client fail fatally, as if a broker had answered with
    ``code`` (59: UNKNOWN_PRODUCER_ID). The producer replaces the client and re-sends what it held
    (their reports have ``recovered`` set) or, past ``recovery.max``, raises FatalError from then on."""
    producer._inject_fatal_error(code)
