"""Test helpers: ``MockCluster``, librdkafka's mock Kafka brokers in this process.

    cluster = MockCluster(brokers=3)
    cluster.create_topic("orders", partitions=4)
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers})
    ...
    records = cluster.read_topic("orders")   # read back with a consumer of its own
"""

from ._kafkasender import MockCluster

__all__ = ["MockCluster"]
