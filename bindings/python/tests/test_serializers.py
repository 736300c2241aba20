"""Serializers are an explicit choice: without one only bytes-like values and str are taken; with
"json", "str" or a callable, values and keys become bytes as asked, tombstones stay tombstones."""

import json

import pytest

from kafkasender import Producer


def test_without_a_serializer_nothing_is_guessed(producer, topic):
    for value in ({"a": 1}, [1], 3, 2.5, object()):
        with pytest.raises(TypeError, match="value must be bytes"):
            producer.send(topic, value)


def test_json_and_str_serializers_and_a_callable_write_what_they_say(cluster, topic):
    config = {"bootstrap.servers": cluster.bootstrap_servers}
    with Producer(config, value_serializer="json", key_serializer="str") as p:
        p.send(topic, {"user": "ünï", "n": [1, 2.5, None]}, key=42).result(30)
        p.send(topic, None, key=7).result(30)  # a tombstone stays one
        p.send_batch([(topic, [True], 1), {"topic": topic, "value": "text", "key": "k"}]).result(30)
        with pytest.raises(TypeError):
            p.send(topic, {"not": {1, 2}})  # a set is not JSON: nothing sent
    with Producer(config, value_serializer=lambda v: v.to_bytes(2, "big")) as p:
        p.send(topic, 258).result(30)
        with pytest.raises(TypeError, match="value_serializer must return bytes"):
            Producer(config, value_serializer=lambda v: v).send(topic, 1)
    landed = sorted(((r["key"], r["value"]) for r in cluster.read_topic(topic)), key=repr)
    assert landed == sorted([
        (b"42", json.dumps({"user": "ünï", "n": [1, 2.5, None]}, separators=(",", ":"), ensure_ascii=False).encode()),
        (b"7", None), (b"1", b"[true]"), (b"k", b'"text"'), (None, b"\x01\x02"),
    ], key=repr)
    with pytest.raises(TypeError, match="value_serializer must be"):
        Producer(config, value_serializer="yaml")
