"""The bounded queue between the reader thread and the callers of ``get_message``."""

from __future__ import annotations

import queue
import threading
import time

from .exceptions import ConnectionClosed
from .types import CloseReason

__all__ = ["MessageQueue"]

#: The end of the stream, as an item of the queue.
_END = object()
#: A wake-up call for a thread waiting in :meth:`MessageQueue.get`: the read role is free.
_WAKE = object()


class MessageQueue:
    r"""Complete messages waiting for :meth:`~syncws.WebSocketConnection.get_message`.

    The holder of the read role :meth:`put`\\ s; any number of threads :meth:`get`;
    each message goes to exactly one of them, in the order received. When the queue
    holds ``maxsize`` messages, :meth:`put` blocks, so the reader thread stops reading
    the socket and TCP flow control pushes back on the peer. A caller of
    ``get_message`` that reads the socket itself only does so when the queue is
    empty, and puts without blocking: the queue then holds at most the messages of
    one read beyond ``maxsize``.

    :meth:`release` makes :meth:`put` stop blocking for good (the connection is
    closing and must not wait for the application). :meth:`end` marks the end of
    the stream: :meth:`get` returns what is left, then raises
    :class:`~syncws.ConnectionClosed`.
    """

    def __init__(self, maxsize: int) -> None:
        self._maxsize = max(1, maxsize)
        # Messages travel through a SimpleQueue, whose C implementation is the
        # cheapest hand-off to a waiting get(). The end of the stream is a sentinel
        # in it, behind the last message (only the holder of the read role puts and
        # ends). Wake-up tokens for threads waiting in get() travel the same way.
        # The bound costs nothing until the queue is full: only then does put()
        # raise a flag and wait, and get() notify it.
        self._items: queue.SimpleQueue[str | bytes | object] = queue.SimpleQueue()
        self._not_full = threading.Condition(threading.Lock())
        self._put_waiting = False
        self._released = False
        self._end: CloseReason | None = None

    def put(self, message: str | bytes, block: bool = True) -> float:
        """Append a message, first waiting while the queue is full if ``block`` is set.

        :returns: how long the call waited, in seconds (the reader's pause).
        """
        waited = 0.0
        if block and self._items.qsize() >= self._maxsize and not self._released:
            start = time.monotonic()
            with self._not_full:
                self._put_waiting = True
                # Checked again after raising the flag: a get() that took a message
                # before it saw the flag has made room already.
                while self._items.qsize() >= self._maxsize and not self._released:
                    self._not_full.wait()
                self._put_waiting = False
            waited = time.monotonic() - start
        self._items.put(message)
        return waited

    def get(self, timeout: float | None) -> str | bytes | None:
        """Remove and return the oldest message; ``None`` after a :meth:`wake`.

        :raises TimeoutError: when nothing arrives within ``timeout`` seconds
            (``0`` does not wait at all).
        :raises ConnectionClosed: when the stream ended and nothing is left.
        """
        try:
            if timeout is not None and timeout <= 0:
                item = self._items.get(block=False)
            else:
                item = self._items.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no message received in time") from None
        return self._took(item)

    def take(self) -> str | bytes | None:
        """Remove and return the oldest message if there is one, else ``None``; never waits.

        :raises ConnectionClosed: when the stream ended and nothing is left.
        """
        while True:
            if self._items.empty():
                return None
            try:
                item = self._items.get(block=False)
            except queue.Empty:  # Another thread took it.
                return None
            message = self._took(item)
            if message is not None:
                return message

    def has_items(self) -> bool:
        """Whether a message, a wake-up token or the end waits in the queue."""
        return not self._items.empty()

    def wake(self) -> None:
        """Wake one thread waiting in :meth:`get` (which returns ``None``)."""
        self._items.put(_WAKE)

    def _took(self, item: object) -> str | bytes | None:
        if item is _END:
            self._items.put(_END)  # For the other threads waiting, and the next call.
            assert self._end is not None
            raise ConnectionClosed(self._end)
        if self._put_waiting:
            with self._not_full:
                self._not_full.notify()
        return None if item is _WAKE else item  # type: ignore[return-value]

    def release(self) -> None:
        """Stop :meth:`put` from ever blocking again."""
        with self._not_full:
            self._released = True
            self._not_full.notify_all()

    def end(self, reason: CloseReason) -> None:
        """Mark the end of the stream: no more messages will be put.

        Called by the holder of the read role, after its last :meth:`put`.
        """
        with self._not_full:
            if self._end is not None:
                return
            self._end = reason
            self._released = True
            self._not_full.notify_all()
        self._items.put(_END)
