"""The exceptions of kafkasender: one ``KafkaSenderError`` subclass per core error kind.

Every exception carries ``.kind`` (the core's stable name, e.g. ``"queue_full"``), ``.retriable``
(whether the same send may succeed later) and ``.code`` (librdkafka's error code, or None).
"""

from typing import Any, Dict, Optional, Type


class KafkaSenderError(Exception):
    """Base class of every kafkasender error."""

    kind: str = "internal"
    #: Every report of the batch, when ``send_batch(..., raise_on_failure=True)`` raised this: a
    #: list, or a ``DeliveryReports`` with ``columns=True``.
    reports: Optional[Any] = None

    def __init__(self, message: str, kind: Optional[str] = None, retriable: bool = False,
                 code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind
        self.retriable = retriable
        self.code = code

    def __reduce__(self):
        return (type(self), (self.message, self.kind, self.retriable, self.code))


class ConfigError(KafkaSenderError):
    """A configuration key or value is invalid, unknown, or conflicts with another."""
    kind = "config"


class InvalidRecordError(KafkaSenderError):
    """The message is unusable (bad topic name, negative partition); nothing was sent."""
    kind = "invalid_record"


class MessageTooLargeError(KafkaSenderError):
    """The message exceeds message.max.bytes (locally or at the broker)."""
    kind = "message_too_large"


class QueueFullError(KafkaSenderError):
    """The local queue stayed full for longer than enqueue.timeout.ms."""
    kind = "queue_full"


class KafkaTimeoutError(KafkaSenderError):
    """A timeout passed: delivery (message.timeout.ms), flush, or a wait."""
    kind = "timeout"


class ProducerClosedError(KafkaSenderError):
    """The producer is closed (or was made in another process before a fork)."""
    kind = "closed"


class BrokerTransportError(KafkaSenderError):
    """Brokers could not be reached or the connection failed."""
    kind = "broker_transport"


class AuthenticationError(KafkaSenderError):
    """SASL or TLS authentication failed."""
    kind = "authentication"


class AuthorizationError(KafkaSenderError):
    """The principal may not write to the topic or cluster."""
    kind = "authorization"


class UnknownTopicOrPartitionError(KafkaSenderError):
    """The topic or partition does not exist."""
    kind = "unknown_topic_or_partition"


class FatalError(KafkaSenderError):
    """The producer hit an unrecoverable error; make a new one."""
    kind = "fatal"


class BrokerError(KafkaSenderError):
    """Another error reported by a broker; see .retriable."""
    kind = "broker"


class InternalError(KafkaSenderError):
    """A bug or unexpected state inside kafkasender or librdkafka."""
    kind = "internal"


class RateLimitedError(KafkaSenderError):
    """The rate limit had no token within enqueue.timeout.ms; nothing was sent."""
    kind = "rate_limited"


class CircuitOpenError(KafkaSenderError):
    """The circuit breaker is open and no spool is configured; nothing was sent."""
    kind = "circuit_open"


class SpoolError(KafkaSenderError):
    """The spool could not take the message: full (spool.max.bytes) or a disk error."""
    kind = "spool"


class TransactionError(KafkaSenderError):
    """A transaction call out of turn (a send outside a transaction, a commit without a begin), or a
    message of an aborted transaction (``retriable``: send it again in a new transaction)."""
    kind = "transaction"


_BY_KIND: Dict[str, Type[KafkaSenderError]] = {
    cls.kind: cls
    for cls in (ConfigError, InvalidRecordError, MessageTooLargeError, QueueFullError, KafkaTimeoutError,
                ProducerClosedError, BrokerTransportError, AuthenticationError, AuthorizationError,
                UnknownTopicOrPartitionError, FatalError, BrokerError, InternalError, RateLimitedError,
                CircuitOpenError, SpoolError, TransactionError)
}
