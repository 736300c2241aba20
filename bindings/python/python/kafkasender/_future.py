"""The Future that ``Producer.send`` returns.

A ``concurrent.futures.Future`` in every respect (``result``, ``add_done_callback``,
``asyncio.wrap_future``, ``concurrent.futures.wait``), but its lock and lists are made only when
somebody waits on it or adds a callback. A plain Future makes a ``threading.Condition`` per
message, which costs more than the send itself; most results are only ever read after ``flush()``
or through ``on_delivery``, and then kafkasender completes the future without taking any lock.
"""

import threading
from concurrent.futures import Future
from concurrent.futures._base import PENDING


class DeliveryFuture(Future):
    def __init__(self) -> None:  # no super().__init__(): that makes the Condition now
        self._state = PENDING
        self._result = None
        self._exception = None

    # `setdefault` is one atomic step under the GIL, so two threads asking at once share one object.
    @property
    def _condition(self) -> threading.Condition:
        found = self.__dict__.get("_lazy_condition")
        return found if found is not None else self.__dict__.setdefault("_lazy_condition", threading.Condition())

    @property
    def _waiters(self) -> list:
        found = self.__dict__.get("_lazy_waiters")
        return found if found is not None else self.__dict__.setdefault("_lazy_waiters", [])

    @property
    def _done_callbacks(self) -> list:
        found = self.__dict__.get("_lazy_done_callbacks")
        return found if found is not None else self.__dict__.setdefault("_lazy_done_callbacks", [])

    def cancel(self) -> bool:
        """A sent message cannot be taken back: always False (its report still comes)."""
        return False

    def _finish_late(self) -> None:
        """What ``set_result`` does after setting the state, for a future kafkasender completed
        by setting its fields while another thread made its lock (to wait on it, or to add a
        callback that found it pending)."""
        with self._condition:
            for waiter in self._waiters:
                if self._exception is None:
                    waiter.add_result(self)
                else:
                    waiter.add_exception(self)
            self._condition.notify_all()
        self._invoke_callbacks()
