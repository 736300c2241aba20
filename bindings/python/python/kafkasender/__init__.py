"""kafkasender: one resilient Apache Kafka producer, shared by Rust, C, Go, Python and Node.

Every send ends in exactly one ``DeliveryReport``: delivered, dead-lettered, spooled, or failed with
a typed ``KafkaSenderError``. Results reach Python in batches, from a thread of kafkasender's own;
the GIL is released whenever a call waits.

Create producers after ``fork()``: librdkafka's threads do not survive it, and a producer used in a
forked child raises ``ProducerClosedError``. An open producer is closed at interpreter exit (with its
``close.timeout.ms``), so nothing in flight is lost silently.
"""

import atexit
import os
import weakref
from typing import Any, Iterable, List, Optional, Union

from . import errors
from ._events import EventBuilder, correlation, current_correlation_id
from ._kafkasender import DeliveryReport, DeliveryReports, Event, __version__, librdkafka_version
from ._kafkasender import Producer as _NativeProducer
from ._kafkasender import producer_names as _producer_names
from .errors import (AuthenticationError, AuthorizationError, BrokerError, BrokerTransportError,
                     CircuitOpenError, ConfigError, FatalError, InternalError, InvalidRecordError,
                     KafkaSenderError, KafkaTimeoutError, MessageTooLargeError, ProducerClosedError,
                     QueueFullError, RateLimitedError, SpoolError, TransactionError,
                     UnknownTopicOrPartitionError)

__all__ = [
    "Producer", "DeliveryReport", "DeliveryReports", "KafkaSenderError", "ConfigError", "InvalidRecordError",
    "MessageTooLargeError", "QueueFullError", "KafkaTimeoutError", "ProducerClosedError",
    "BrokerTransportError", "AuthenticationError", "AuthorizationError", "UnknownTopicOrPartitionError",
    "FatalError", "BrokerError", "InternalError", "RateLimitedError", "CircuitOpenError", "SpoolError", "TransactionError",
    "Transaction", "Producers", "Event", "EventBuilder", "correlation", "current_correlation_id", "errors",
    "__version__", "librdkafka_version",
]

_open_producers: "weakref.WeakSet[Producer]" = weakref.WeakSet()


# asyncio is imported on first use, not with this module: whoever awaits has it loaded already,
# and a program that never awaits saves its import (about 9 MB of RSS and 50 ms).
def _awaitable(future: Any) -> Any:
    """``future`` (a ``concurrent.futures.Future``) as an awaitable of the running event loop."""
    import asyncio
    return asyncio.wrap_future(future)


def _in_worker_thread(call: Any, *args: Any) -> Any:
    """``call(*args)`` in the running event loop's default executor, awaitable."""
    import asyncio
    return asyncio.get_running_loop().run_in_executor(None, call, *args)


class Producer(_NativeProducer):
    """A Kafka producer: ``Producer(config=None, **options)``.

    ``config`` maps kafkasender settings and librdkafka properties (``"bootstrap.servers"``,
    ``"linger.ms"``, ``"dlq.topic"``…) to str, int, float or bool values; keyword options are the
    same keys with ``_`` for ``.`` (``linger_ms=5``). Use it as a context manager (``with`` or
    ``async with``) or call ``close()``.
    """

    def __init__(self, config: Optional[dict] = None, **options: Any) -> None:
        _open_producers.add(self)

    @classmethod
    def from_env(cls) -> "Producer":
        """A producer configured from ``KAFKA_*`` environment variables (``KAFKA_BROKERS``, …)."""
        return cls(_env=True)

    async def send_async(self, topic: str, value: Any, *, key: Any = None, headers: Any = None,
                         partition: Optional[int] = None, timestamp: Optional[int] = None) -> DeliveryReport:
        """Sends a message and awaits its report in the running event loop (resolved with
        ``loop.call_soon_threadsafe``: no thread per message)."""
        future = self.send(topic, value, key=key, headers=headers, partition=partition, timestamp=timestamp)
        return await _awaitable(future)

    def publish_event(self, event: Event, *, on_delivery: Any = None) -> Any:
        """Publishes a business event: the CloudEvents envelope as the value, to the topic its
        type maps to (``event.topic.map``, ``map_event_topic``), keyed by ``event.key.field``,
        with ``ce_*``, ``correlation-id`` and ``content-type`` headers. Returns and reports like
        ``send``."""
        topic, key, value, headers = self._event_record(event)
        return self.send(topic, value, key=key, headers=headers, on_delivery=on_delivery, _serialized=True)

    def publish_events(self, events: Iterable[Event], raise_on_failure: bool = False) -> Any:
        """Publishes events as one batch; returns and reports like ``send_batch``. Nothing is sent
        when one of them cannot become a record (for example it lacks the key field)."""
        records = []
        for event in events:
            topic, key, value, headers = self._event_record(event)
            records.append({"topic": topic, "value": value, "key": key, "headers": headers})
        return self.send_batch(records, raise_on_failure=raise_on_failure, _serialized=True)

    async def publish_event_async(self, event: Event) -> DeliveryReport:
        """``publish_event`` awaited in the running event loop."""
        return await _awaitable(self.publish_event(event))

    async def send_batch_async(self, records: Iterable[Any], raise_on_failure: bool = False,
                               columns: bool = False) -> Union[List[DeliveryReport], DeliveryReports]:
        """``send_batch`` awaited in the running event loop."""
        return await _awaitable(
            self.send_batch(records, raise_on_failure=raise_on_failure, columns=columns))

    async def flush_async(self, timeout: Optional[float] = None) -> None:
        """``flush`` in a worker thread, so the event loop keeps running."""
        await _in_worker_thread(self.flush, timeout)

    async def close_async(self, timeout: Optional[float] = None) -> int:
        """``close`` in a worker thread, so the event loop keeps running."""
        return await _in_worker_thread(self.close, timeout)

    def transaction(self, timeout: Optional[float] = None) -> "Transaction":
        """A transaction as a context manager: ``with producer.transaction(): ...`` (or
        ``async with``) begins one, commits it when the block ends normally and aborts it when the
        block raises. ``timeout`` bounds the commit or abort (seconds; None: no limit)."""
        return Transaction(self, timeout)

    async def commit_transaction_async(self, timeout: Optional[float] = None) -> None:
        """``commit_transaction`` in a worker thread, so the event loop keeps running."""
        await _in_worker_thread(self.commit_transaction, timeout)

    async def abort_transaction_async(self, timeout: Optional[float] = None) -> None:
        """``abort_transaction`` in a worker thread, so the event loop keeps running."""
        await _in_worker_thread(self.abort_transaction, timeout)

    async def __aenter__(self) -> "Producer":
        return self

    async def __aexit__(self, *exc_info: Any) -> bool:
        await self.close_async()
        return False


class Producers:
    """Named producers from one TOML file (``[defaults]`` and ``[producers.NAME]`` tables;
    ``KAFKA_*`` variables still override): ``Producers.from_file(path)`` checks every producer it
    names and raises one ``ConfigError`` listing every problem; ``get(name)`` makes that producer
    once. Closes them all as a context manager (``with`` or ``async with``) or with ``close()``."""

    def __init__(self, path: Any) -> None:
        self._path = os.fspath(path)
        self.names: List[str] = _producer_names(self._path)
        self._open: "dict[str, Producer]" = {}

    @classmethod
    def from_file(cls, path: Any) -> "Producers":
        return cls(path)

    def get(self, name: str) -> Producer:
        """The producer ``name`` (the same one on every call until ``close``); a ConfigError
        for a name the file does not have."""
        if name not in self._open:
            self._open[name] = Producer(_named=(self._path, name))
        return self._open[name]

    def close(self, timeout: Optional[float] = None) -> None:
        """Closes every producer ``get`` made."""
        open_producers, self._open = list(self._open.values()), {}
        for producer in open_producers:
            producer.close(timeout)

    def __enter__(self) -> "Producers":
        return self

    def __exit__(self, *exc_info: Any) -> bool:
        self.close()
        return False

    async def __aenter__(self) -> "Producers":
        return self

    async def __aexit__(self, *exc_info: Any) -> bool:
        await _in_worker_thread(self.close)
        return False


class Transaction:
    """What ``Producer.transaction()`` returns: begins on entering, commits on a normal exit,
    aborts when the block raises (the exception goes on). Usable with ``with`` and ``async with``."""

    def __init__(self, producer: Producer, timeout: Optional[float]) -> None:
        self._producer = producer
        self._timeout = timeout

    def __enter__(self) -> Producer:
        self._producer.begin_transaction()
        return self._producer

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            self._producer.commit_transaction(self._timeout)
        else:
            self._producer.abort_transaction(self._timeout)
        return False

    async def __aenter__(self) -> Producer:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            await self._producer.commit_transaction_async(self._timeout)
        else:
            await self._producer.abort_transaction_async(self._timeout)
        return False


@atexit.register
def _close_open_producers() -> None:
    # Interpreter exit with an open producer: deliver what is in flight (bounded by each
    # producer's close.timeout.ms) instead of losing it.
    for producer in list(_open_producers):
        try:
            if not producer.closed:
                producer.close()
        except KafkaSenderError:
            pass
