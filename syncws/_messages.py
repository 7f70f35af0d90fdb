"""The bounded queue between the reader thread and the callers of ``get_message``."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

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
        # leave a held lock in _room and wait on it, and get() release it.
        self._items: queue.SimpleQueue[str | bytes | object] = queue.SimpleQueue()
        self._mutex = threading.Lock()  # guards _room, _released and _end
        self._room: threading.Lock | None = None
        self._released = False
        self._end: CloseReason | None = None
        # Called after each put() and at the end (a MessageNotifier's), or None.
        self._listener: Callable[[], None] | None = None

    def put(self, message: str | bytes, block: bool = True) -> float:
        """Append a message, first waiting while the queue is full if ``block`` is set.

        :returns: how long the call waited, in seconds (the reader's pause).
        """
        waited = 0.0
        if block and self._items.qsize() >= self._maxsize and not self._released:
            start = time.monotonic()
            while True:
                with self._mutex:
                    room = self._room = threading.Lock()
                    room.acquire()
                    # Checked again with the lock in place: a get() that took a
                    # message before it saw the lock has made room already.
                    if self._items.qsize() < self._maxsize or self._released:
                        self._room = None
                        break
                room.acquire()  # Released by the next get(), release() or end().
            waited = time.monotonic() - start
        self._items.put(message)
        if self._listener is not None:
            self._listener()
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
        if self._room is not None:
            self._make_room()
        return None if item is _WAKE else item  # type: ignore[return-value]

    def _make_room(self) -> None:
        """Wake a put() waiting for room."""
        with self._mutex:
            room, self._room = self._room, None
        if room is not None:
            room.release()

    def release(self) -> None:
        """Stop :meth:`put` from ever blocking again."""
        with self._mutex:
            self._released = True
        self._make_room()

    def end(self, reason: CloseReason) -> None:
        """Mark the end of the stream: no more messages will be put.

        Called by the holder of the read role, after its last :meth:`put`.
        """
        with self._mutex:
            if self._end is not None:
                return
            self._end = reason
            self._released = True
        self._make_room()
        self._items.put(_END)
        if self._listener is not None:
            self._listener()

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        """Have ``listener`` called after each message is put and at the end.

        It is called on the thread that puts, which may hold the read role: it must
        not block. ``None`` removes it. If something waits in the queue already, the
        new listener is called at once.

        :raises RuntimeError: when another listener is set already.
        """
        with self._mutex:
            if listener is not None and self._listener is not None:
                raise RuntimeError("the connection has a message notifier already")
            self._listener = listener
        if listener is not None and self.has_items():
            listener()
