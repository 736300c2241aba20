"""Named producers from one TOML file: defaults, overrides, KAFKA_* variables over the file, and an
invalid file reported as one ConfigError listing every problem."""

import pytest

from kafkasender import ConfigError, Producers


def write(tmp_path, text):
    path = tmp_path / "producers.toml"
    path.write_text(text)
    return path


def test_each_named_producer_overrides_the_defaults_and_sends(cluster, topic, tmp_path, monkeypatch):
    path = write(tmp_path, f'''
        [defaults]
        bootstrap.servers = "{cluster.bootstrap_servers}"
        linger.ms = 5
        [producers.fast]
        acks = "1"
        enable.idempotence = false
        compression.type = "lz4"
        [producers.reliable]
        acks = "all"
    ''')
    monkeypatch.setenv("KAFKA_PRODUCER_FLUSH_FREQUENCY", "2ms")  # KAFKA_* still override the file
    with Producers.from_file(path) as producers:
        assert producers.names == ["fast", "reliable"]
        fast = producers.get("fast")
        assert producers.get("fast") is fast
        assert fast.send(topic, b"fast").result(30).delivered
        assert producers.get("reliable").send(topic, b"reliable").result(30).delivered
        with pytest.raises(ConfigError, match="fast, reliable"):
            producers.get("slow")
    assert fast.closed
    assert sorted(r["value"] for r in cluster.read_topic(topic)) == [b"fast", b"reliable"]


def test_an_invalid_file_is_one_error_listing_every_problem(tmp_path):
    path = write(tmp_path, '''
        colour = "blue"
        [defaults]
        bootstrap.servers = "127.0.0.1:9092"
        [producers.a]
        acks = "sometimes"
        [producers.b]
        linger.ms = "soon"
    ''')
    with pytest.raises(ConfigError) as raised:
        Producers.from_file(path)
    for expected in ["colour", "[producers.a] acks", "[producers.b] linger.ms"]:
        assert expected in str(raised.value)
    with pytest.raises(ConfigError, match="cannot read"):
        Producers.from_file(tmp_path / "missing.toml")

