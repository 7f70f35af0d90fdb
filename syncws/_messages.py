"""The bounded queue between the reader thread and the callers of ``get_message``."""

from __future__ import annotations

import threading
import time
from collections import deque

from .exceptions import ConnectionClosed
from .types import CloseReason

__all__ = ["MessageQueue"]


class MessageQueue:
    r"""Complete messages waiting for :meth:`~syncws.WebSocketConnection.get_message`.

    The reader thread :meth:`put`\\ s; any number of threads :meth:`get`; each message
    goes to exactly one of them, in the order received. When the queue holds
    ``maxsize`` messages, :meth:`put` blocks, so the reader stops reading the socket
    and TCP flow control pushes back on the peer.

    :meth:`release` makes :meth:`put` stop blocking for good (the connection is
    closing and must not wait for the application). :meth:`end` marks the end of
    the stream: :meth:`get` returns what is left, then raises
    :class:`~syncws.ConnectionClosed`.
    """

    def __init__(self, maxsize: int) -> None:
        self._maxsize = max(1, maxsize)
        lock = threading.Lock()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)
        self._items: deque[str | bytes] = deque()
        self._released = False
        self._end: CloseReason | None = None

    def put(self, message: str | bytes) -> float:
        """Append a message, first waiting while the queue is full.

        :returns: how long the call waited, in seconds (the reader's pause).
        """
        with self._not_full:
            waited = 0.0
            if len(self._items) >= self._maxsize and not self._released:
                start = time.monotonic()
                while len(self._items) >= self._maxsize and not self._released:
                    self._not_full.wait()
                waited = time.monotonic() - start
            self._items.append(message)
            self._not_empty.notify()
            return waited

    def get(self, timeout: float | None) -> str | bytes:
        """Remove and return the oldest message.

        :raises TimeoutError: when nothing arrives within ``timeout`` seconds
            (``0`` does not wait at all).
        :raises ConnectionClosed: when the stream ended and nothing is left.
        """
        with self._not_empty:
            if not self._items:
                deadline = None if timeout is None else time.monotonic() + timeout
                while not self._items:
                    if self._end is not None:
                        raise ConnectionClosed(self._end)
                    if deadline is None:
                        self._not_empty.wait()
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError("no message received in time")
                    self._not_empty.wait(remaining)
            message = self._items.popleft()
            self._not_full.notify()
            return message

    def release(self) -> None:
        """Stop :meth:`put` from ever blocking again."""
        with self._not_full:
            self._released = True
            self._not_full.notify_all()

    def end(self, reason: CloseReason) -> None:
        """Mark the end of the stream: no more messages will be put."""
        with self._not_empty:
            if self._end is None:
                self._end = reason
            self._released = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
