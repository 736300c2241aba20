"""A program using the wheel from dist/ alone (make test-dist-python): sends to an embedded mock
cluster and reads back what landed. Exit status 0 when all 10 messages are there."""
import sys

from kafkasender import Producer
from kafkasender.testing import MockCluster

cluster = MockCluster(1)
cluster.create_topic("dist", 2)
with Producer({"bootstrap.servers": cluster.bootstrap_servers, "log.level": "off"}) as producer:
    for _ in range(10):
        producer.send("dist", b"from the wheel").result(timeout=30)
read = len(cluster.read_topic("dist"))
if read != 10:
    sys.exit(f"read back {read} of 10")
print("10 of 10 read back")
