"""The bounded queue between the reader thread and the callers of ``get_message``."""

from __future__ import annotations

import functools
import itertools
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .exceptions import ConnectionClosed

if TYPE_CHECKING:
    from ._streams import StreamHead

__all__ = ["MessageQueue"]

#: The end of the stream, as an item of the queue.
_END = object()
#: A wake-up call for a thread waiting in :meth:`MessageQueue.get`: the reading turn is free.
_WAKE = object()
#: Never returned by the queue: the sentinel that lets ``iter()`` call ``get`` once.
_NEVER = object()


def stored_size(message: str | bytes | StreamHead) -> int:
    """Return the bytes ``message`` occupies in memory, without the object's header.

    A ``str`` is stored with 1, 2 or 4 bytes per character, by its widest character
    (PEP 393): a text message of *n* UTF-8 bytes may take up to *4n* bytes once decoded.
    """
    if not isinstance(message, str):
        # bytes, or a stream's head (._streams), whose chunks count in a queue of their own.
        return len(message) if isinstance(message, bytes) else 0
    if message.isascii():
        return len(message)
    # The header of a non-ASCII str is 72-80 bytes, depending on the Python version.
    return max(len(message), sys.getsizeof(message) - 80)


class MessageQueue:
    r"""Complete messages waiting for :meth:`~syncws.WebSocketConnection.get_message`.

    The thread whose turn it is to read :meth:`put`\\ s; any number of threads :meth:`get`;
    each message goes to exactly one of them, in the order received. When the queue
    holds ``maxsize`` messages, or messages of ``max_bytes`` bytes in all (counted as
    stored in memory: see :func:`stored_size`), :meth:`put` blocks, so the reader
    thread stops reading the socket and TCP flow control pushes back on the peer. A
    message larger than ``max_bytes`` on its own still enters an empty queue. A caller
    of ``get_message`` that reads the socket itself only does so when the queue is
    empty, and puts without blocking: the queue then holds at most the messages of
    one read beyond the bounds.

    Taking a message is safe from asynchronous exceptions (:exc:`KeyboardInterrupt`
    raised by a signal handler in the main thread) when ``guard`` is set: see
    :meth:`get`.

    :meth:`release` makes :meth:`put` stop blocking for good (the connection is
    closing and must not wait for the application). :meth:`end` marks the end of
    the stream: :meth:`get` returns what is left, then raises
    :class:`~syncws.ConnectionClosed`.
    """

    def __init__(self, maxsize: int, max_bytes: int) -> None:
        self._maxsize = max(1, maxsize)
        self._max_bytes = max_bytes
        # Messages travel through a SimpleQueue, whose C implementation is the
        # cheapest hand-off to a waiting get(). The end of the stream is a sentinel
        # in it, behind the last message (only the thread whose turn it is to read puts and
        # ends). Wake-up tokens for threads waiting in get() travel the same way.
        # The bound costs nothing until the queue is full: only then does put()
        # leave a held lock in _room and wait on it, and get() release it.
        self._items: queue.SimpleQueue[str | bytes | object] = queue.SimpleQueue()
        # Messages a guarded get() moved out of _items, oldest first: every get()
        # takes from here first (see _pull). Usually empty. (Lists, not deques: they
        # stay short, and an empty deque costs 600 bytes per connection.)
        self._front: list[str | bytes | object] = []
        # The putter's own account of the bytes queued (only the putter touches
        # these): the stored sizes of the messages it put that may still be queued,
        # oldest first, and their sum. Getters never update them: since messages
        # leave in order, the putter forgets the oldest sizes until there are no
        # more of them than items in the queue (wake-up tokens count as items,
        # which errs on the safe side).
        self._sizes: list[int] = []
        self._held = 0
        self._mutex = threading.Lock()  # guards _room, _released and _end
        self._room: threading.Lock | None = None
        self._released = False
        # Makes the exception that get() raises at the end of the stream.
        self._end: Callable[[], ConnectionClosed] | None = None
        # Called after each put() and at the end (a MessageNotifier's), or None.
        self._listener: Callable[[], None] | None = None

    def put(self, message: str | bytes | StreamHead, block: bool = True) -> float:
        """Append a message, first waiting while the queue is full if ``block`` is set.

        :returns: how long the call waited, in seconds (the reader's pause).
        """
        if type(message) is bytes or (type(message) is str and message.isascii()):
            size = len(message)
        else:
            size = stored_size(message)
        waited = 0.0
        if not self._items.qsize() and not self._front:
            # The common case, an empty queue: nothing to wait for, nothing held.
            if self._sizes:
                self._sizes.clear()
                self._held = 0
        elif self._full(size) and block and not self._released:
            start = time.monotonic()
            while True:
                with self._mutex:
                    room = self._room = threading.Lock()
                    room.acquire()
                    # Checked again with the lock in place: a get() that took a
                    # message before it saw the lock has made room already.
                    if not self._full(size) or self._released:
                        self._room = None
                        break
                room.acquire()  # Released by the next get(), release() or end().
            waited = time.monotonic() - start
        self._sizes.append(size)
        self._held += size
        self._items.put(message)
        if self._listener is not None:
            self._listener()
        return waited

    def _full(self, size: int) -> bool:
        """Whether a message of ``size`` stored bytes must wait for room (putter only)."""
        count = self._items.qsize() + len(self._front)
        sizes = self._sizes
        if count >= self._maxsize:
            return True
        if count == 0:
            return False  # Whatever its size, an item enters an empty queue.
        if self._held + size <= self._max_bytes and len(sizes) <= 2 * self._maxsize:
            return False  # _held only ever overestimates: no need to forget sizes yet.
        if len(sizes) > count:
            forget = len(sizes) - count
            self._held -= sum(sizes[:forget])
            del sizes[:forget]
        return self._held + size > self._max_bytes

    def get(self, timeout: float | None, guard: bool = False) -> str | bytes | StreamHead | None:
        """Remove and return the oldest message; ``None`` after a :meth:`wake`.

        :param guard: take the message so that an asynchronous exception raised at
            any point (a signal handler's :exc:`KeyboardInterrupt` in the main
            thread) leaves it in the queue, never half taken (see :meth:`_pull`).
        :raises TimeoutError: when nothing arrives within ``timeout`` seconds
            (``0`` does not wait at all).
        :raises ConnectionClosed: when the stream ended and nothing is left.
        """
        block = timeout is None or timeout > 0
        if self._front or guard:
            return self._get_front(block, timeout, guard)
        try:
            item = self._items.get(block, timeout)
        except queue.Empty:
            raise TimeoutError("no message received in time") from None
        return self._took(item)

    def take(self, guard: bool = False) -> str | bytes | StreamHead | None:
        """Remove and return the oldest message if there is one, else ``None``; never waits.

        :param guard: as for :meth:`get`.
        :raises ConnectionClosed: when the stream ended and nothing is left.
        """
        while True:
            if not self._front and self._items.empty():
                return None
            try:
                message = self.get(0, guard)
            except TimeoutError:  # Another thread took it.
                return None
            if message is not None:
                return message

    def _get_front(
        self, block: bool, timeout: float | None, guard: bool
    ) -> str | bytes | StreamHead | None:
        """Take the oldest item through ``_front`` (see :meth:`get`)."""
        front = self._front
        while True:
            if front:
                # Read and removed in one step: no call between the two, so neither
                # a signal handler nor another thread runs in between (CPython
                # checks for both only at calls and backward jumps).
                item = front[0]
                del front[0]
                if item is _END:
                    self._items.put(_END)  # For the other threads waiting.
                    assert self._end is not None
                    raise self._end()
                return None if item is _WAKE else item  # type: ignore[return-value]
            if not guard:
                return self.get(timeout if block else 0)
            try:
                self._pull(block, timeout)
            except queue.Empty:
                raise TimeoutError("no message received in time") from None
            if self._room is not None:
                self._make_room()  # If interrupted, the message waits in _front.

    def _pull(self, block: bool, timeout: float | None) -> None:
        """Move the oldest item of ``_items`` to ``_front`` without a gap in between.

        A plain ``item = self._items.get()`` can lose the item: CPython runs pending
        signal handlers right after a call returns, so a :exc:`KeyboardInterrupt`
        raised there discards the value the call returned. Here the whole move
        happens inside C code (``deque.extend`` drawing from an iterator that calls
        ``get`` once), where no signal handler runs: the item is either still in
        ``_items`` or already in ``_front``. A signal that arrives while ``get``
        waits interrupts the wait itself, before anything is taken.

        :raises queue.Empty: when nothing arrived in time.
        """
        take = functools.partial(self._items.get, block, timeout)
        self._front.extend(itertools.islice(iter(take, _NEVER), 1))

    @property
    def released(self) -> bool:
        """Whether :meth:`put` never blocks any more (:meth:`release` or :meth:`end`)."""
        return self._released

    def has_items(self) -> bool:
        """Whether a message, a wake-up token or the end waits in the queue."""
        return bool(self._front) or not self._items.empty()

    def wake(self) -> None:
        """Wake one thread waiting in :meth:`get` (which returns ``None``)."""
        self._items.put(_WAKE)

    def _took(self, item: object) -> str | bytes | StreamHead | None:
        if item is _END:
            self._items.put(_END)  # For the other threads waiting, and the next call.
            assert self._end is not None
            raise self._end()
        if self._room is not None:
            self._make_room()
        return None if item is _WAKE else item  # type: ignore[return-value]

    def wait_until(self, done: Callable[[], bool]) -> None:
        """Wait (the putter only) until ``done()`` holds or the queue is released.

        Woken by every :meth:`get` and by :meth:`wake_putter`, :meth:`release` and
        :meth:`end`; ``done`` is checked again each time.
        """
        while not done() and not self._released:
            with self._mutex:
                room = self._room = threading.Lock()
                room.acquire()
                if done() or self._released:
                    self._room = None
                    return
            room.acquire()

    def wake_putter(self) -> None:
        """Wake the putter waiting in :meth:`put` or :meth:`wait_until`, if it waits."""
        self._make_room()

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

    def end(self, closed: Callable[[], ConnectionClosed]) -> None:
        """Mark the end of the stream: no more messages will be put.

        Called by the thread whose turn it is to read, after its last :meth:`put`.

        :param closed: makes the exception that :meth:`get` raises once nothing is
            left (a new one for each call).
        """
        with self._mutex:
            if self._end is not None:
                return
            self._end = closed
            self._released = True
        self._make_room()
        self._items.put(_END)
        if self._listener is not None:
            self._listener()

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        """Have ``listener`` called after each message is put and at the end.

        It is called on the thread that puts, which may be a caller reading: it must
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
