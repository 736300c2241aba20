"""kafkasender's and librdkafka's log lines land in Python's logging (loggers ``kafkasender`` and
``kafkasender.librdkafka``), where a host's handlers and levels apply, instead of bypassing it."""

import logging
import time

from kafkasender import Producer


def test_librdkafka_lines_reach_python_logging(caplog):
    caplog.set_level(logging.INFO, logger="kafkasender")
    with Producer({"bootstrap.servers": "127.0.0.1:1"}) as producer:
        producer.send("logged", b"x")  # makes librdkafka connect, and fail to
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(r.name == "kafkasender.librdkafka" for r in caplog.records):
            time.sleep(0.05)
        producer.close(0)
    record = next(r for r in caplog.records if r.name == "kafkasender.librdkafka")
    assert "127.0.0.1:1" in record.getMessage()
    assert record.levelno in (logging.ERROR, logging.WARNING, logging.INFO)
    assert any(r.name == "kafkasender" for r in caplog.records), [r.name for r in caplog.records]
