"""A partitioner function of the user's: called on the sending thread, its mistakes typed errors."""

import pytest

from kafkasender import InvalidRecordError


def test_a_partitioner_function_places_records_and_its_mistakes_are_typed_errors(cluster, producer):
    cluster.create_topic("py-custom", partitions=4, replication_factor=3)

    def by_length(topic, key, partition_count):
        assert topic == "py-custom" and partition_count == 4
        if key == b"boom":
            raise ValueError("no rule for boom")
        return 9 if key == b"nowhere" else len(key or b"") % partition_count

    producer.set_partitioner(by_length)
    reports = [producer.send("py-custom", key, key=key).result(30) for key in [b"a", b"bb", b"ccc", b"dddd"]]
    assert [r.partition for r in reports] == [1, 2, 3, 0]
    assert producer.send("py-custom", b"x", key=b"bb", partition=0).result(30).partition == 0
    with pytest.raises(InvalidRecordError, match="returned 9"):
        producer.send("py-custom", b"x", key=b"nowhere")
    with pytest.raises(InvalidRecordError, match="no rule for boom"):
        producer.send("py-custom", b"x", key=b"boom")
    with pytest.raises(TypeError):
        producer.set_partitioner("not callable")
