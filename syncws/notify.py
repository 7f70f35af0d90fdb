"""Waking an event loop (Tkinter, Qt, ``selectors``) when a message arrives.

A GUI thread must never block, so it cannot wait in
:meth:`~syncws.WebSocketConnection.get_message`. A :class:`MessageNotifier` gives it a
file descriptor instead, one end of a socket pair: the thread that queues a message
writes a byte to the other end, so the descriptor becomes readable, and the event loop,
which watches it along with its other sources, calls the application back. There the
application takes the queued messages without waiting, with :meth:`MessageNotifier.take`.

Wake-ups are coalesced: one byte stands for any number of messages queued since the
last :meth:`~MessageNotifier.take`. The byte is written after the message is in the
queue, and :meth:`~MessageNotifier.take` reads the bytes before it takes messages, so a
message queued at any moment is either taken by a call running now or followed by a
byte that starts the next one.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

    from .connection import WebSocketConnection

from .exceptions import ConnectionClosed

__all__ = ["MessageNotifier"]


class MessageNotifier:
    """A file descriptor that becomes readable when a message waits for the application.

    Register :meth:`fileno` (or the notifier itself: it has a ``fileno()`` method) with
    the event loop, and call :meth:`take` when it reports the descriptor readable. With
    Tkinter on Unix::

        notifier = syncws.MessageNotifier(ws)
        root.createfilehandler(notifier, tkinter.READABLE, lambda *_: show(notifier.take()))

    The descriptor also becomes readable when the connection ends, so that :meth:`take`
    raises :exc:`~syncws.ConnectionClosed`. Close the notifier (or use it as a context
    manager) when done with it: that closes its two sockets. A connection has at most
    one notifier at a time; closing the connection does not close its notifier.

    :meth:`take` is meant for one thread, the event loop's; :meth:`close` may be called
    from any thread.

    :param connection: the connection whose messages to announce.
    :raises RuntimeError: when the connection has a notifier already.
    """

    def __init__(self, connection: WebSocketConnection) -> None:
        self._connection = connection
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        # Serialises _notify() and close(), so that no byte is ever written to a
        # descriptor number that close() released (and the process reused).
        self._lock = threading.Lock()
        self._closed = False
        # A byte is in the socket pair, or about to be: later messages need none.
        self._armed = False
        try:
            connection.set_message_listener(self._notify)
        except BaseException:
            self._reader.close()
            self._writer.close()
            raise

    def fileno(self) -> int:
        """Return the descriptor to watch for readability.

        :raises ValueError: when the notifier is closed.
        """
        if self._closed:
            raise ValueError("the message notifier is closed")
        return self._reader.fileno()

    def _notify(self) -> None:
        """Announce a message, or the end (on the thread that queued it); never block."""
        if self._armed:
            return
        with self._lock:
            if self._closed:
                return
            self._armed = True
            # A full socket pair is readable already: nothing is lost.
            with contextlib.suppress(BlockingIOError):
                self._writer.send(b"\0")

    def take(self, limit: int | None = None) -> list[str | bytes]:
        """Return the messages received so far, without waiting; clear the wake-up.

        Call it when the descriptor is readable (a spurious call is harmless: it
        returns an empty list). When more than ``limit`` messages wait, it returns
        ``limit`` of them and leaves the descriptor readable, so that the event loop
        gets to handle its other events before the rest.

        :param limit: the most messages to return (``None``: all of them).
        :returns: the messages, oldest first (maybe none).
        :raises ConnectionClosed: when the connection has ended and every message
            received before was returned.
        :raises ValueError: when the notifier is closed.
        """
        if self._closed:
            raise ValueError("the message notifier is closed")
        # Bytes first, the flag second (see the module's documentation).
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._reader.recv(4096):
                pass
        self._armed = False
        messages: list[str | bytes] = []
        try:
            while limit is None or len(messages) < limit:
                try:
                    messages.append(self._connection.get_message(timeout=0))
                except TimeoutError:
                    return messages
                except ConnectionClosed:
                    if not messages:
                        raise
                    self._notify()  # The next call raises.
                    return messages
            self._notify()  # More may wait.
            return messages
        finally:
            # get_message may have read the socket on this thread, which then keeps it
            # for a caller window; but this thread now waits in the event loop, not in
            # get_message: the reader thread must read (and announce) the next message.
            self._connection.read_in_background()

    def close(self) -> None:
        """Stop announcing messages and close the two sockets; idempotent.

        Unregister the descriptor from the event loop first.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._connection.set_message_listener(None)
            self._reader.close()
            self._writer.close()

    def __enter__(self) -> MessageNotifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
