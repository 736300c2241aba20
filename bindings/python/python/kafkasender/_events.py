"""Business events: ``EventBuilder`` makes CloudEvents envelopes (``Event``), ``correlation``
sets the correlation id of the current context (a ``contextvars`` variable, so it follows
threads' and asyncio tasks' own contexts), and ``Producer.publish_event`` sends them."""

import contextlib
import contextvars
import json
from typing import Any, Iterator, Optional

from ._kafkasender import Event

_correlation_id: "contextvars.ContextVar[Optional[str]]" = contextvars.ContextVar(
    "kafkasender_correlation_id", default=None)


def current_correlation_id() -> Optional[str]:
    """The correlation id set by the innermost ``correlation(...)`` of this context, if any."""
    return _correlation_id.get()


@contextlib.contextmanager
def correlation(correlation_id: str) -> Iterator[str]:
    """``with correlation("req-42"): ...``: events made inside get this correlation id (unless
    the builder or the call names one)."""
    token = _correlation_id.set(correlation_id)
    try:
        yield correlation_id
    finally:
        _correlation_id.reset(token)


class EventBuilder:
    """Makes events of one ``source``: ``EventBuilder("checkout", version="2")``. Each event gets
    a new id, the current time, and a correlation id: the one passed to ``event``, else the
    builder's, else the current context's (``correlation``), else a new one."""

    def __init__(self, source: str, *, version: Optional[str] = None,
                 correlation_id: Optional[str] = None) -> None:
        self.source = source
        self.version = version
        self.correlation_id = correlation_id

    def event(self, type: str, data: Any, *, correlation_id: Optional[str] = None,
              causation_id: Optional[str] = None) -> Event:
        """An event of ``type`` whose data is ``data`` as JSON (dicts, lists, str, numbers, bool,
        None; anything else raises ``TypeError``: nothing is guessed)."""
        return Event(type, json.dumps(data, ensure_ascii=False, allow_nan=False), source=self.source,
                     correlation_id=correlation_id or self.correlation_id or _correlation_id.get(),
                     causation_id=causation_id, version=self.version)

    def caused_by(self, cause: Event, type: str, data: Any) -> Event:
        """An event that ``cause`` led to: its correlation id carries over, its causation id is
        ``cause.id``."""
        return self.event(type, data, correlation_id=cause.correlation_id, causation_id=cause.id)
