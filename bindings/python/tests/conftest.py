import uuid

import pytest

from kafkasender import Producer
from kafkasender.testing import MockCluster


@pytest.fixture(scope="session")
def cluster():
    return MockCluster(brokers=3)


@pytest.fixture
def topic(cluster):
    name = f"py-{uuid.uuid4().hex[:10]}"
    cluster.create_topic(name, partitions=4, replication_factor=3)
    return name


@pytest.fixture
def producer(cluster):
    with Producer({"bootstrap.servers": cluster.bootstrap_servers}) as p:
        yield p
