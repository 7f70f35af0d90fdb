"""The WebSocket connection: what the application calls, on the client and server side.

:class:`WebSocketConnection` adds the public API to the protocol core
(:mod:`syncws._core`), which holds the state and runs the reader thread. The
caller's threads send through the ordered write queue of :mod:`syncws._transport`
and receive from the message queue of :mod:`syncws._messages`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TypedDict, cast

from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage

from ._core import (
    ABORT_JOIN_TIMEOUT,
    DEFAULT_DISCONNECT_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MESSAGE_QUEUE_SIZE,
    ConnectionCore,
    PendingPing,
    State,
    check_timeout,
    describe,
    logger,
    on_main_thread,
    trace_logger,
)
from ._deadline import Deadline
from ._framing import encode_message
from ._options import value
from ._transport import TransportError
from .exceptions import ConnectionClosed, ConnectionClosedOK
from .types import CloseReason, Endpoint

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from types import FrameType, TracebackType

    from wsproto.events import Message

__all__ = [
    "DEFAULT_DISCONNECT_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MESSAGE_QUEUE_SIZE",
    "ConnectionOptions",
    "WebSocketConnection",
]


class ConnectionOptions(TypedDict, total=False):
    """Keyword options of a connection, shared by the client and server functions.

    They configure the :class:`WebSocketConnection` once it is open;
    ``connect_timeout``, which bounds the opening handshake, is one of
    :class:`ConnectOptions` and :class:`ServeOptions`. Every key is optional; the
    client reference gives the defaults, which come with the checks and the docs'
    tables from one definition (``syncws/_options.py``).
    """

    #: Messages that may wait for ``get_message`` before reading pauses (default 16);
    #: reading also pauses once they take ``message_queue_size * max_message_size``
    #: bytes in memory.
    message_queue_size: int
    #: The largest incoming message, in bytes (default 1 MiB; ``None``: no limit).
    max_message_size: int | None
    #: Seconds for the closing handshake (default 60).
    disconnect_timeout: float
    #: Seconds between keepalive pings (default 20; ``None``: no keepalive).
    ping_interval: float | None
    #: Seconds to wait for any sign of life after a keepalive ping (default 20;
    #: ``None``: ping_interval).
    ping_timeout: float | None
    #: ``"deflate"`` for permessage-deflate (RFC 7692) when the peer agrees; ``None``
    #: (the default) for no compression.
    compression: str | None


class _ConnectionArgs(TypedDict):
    message_queue_size: int
    max_message_size: int | None
    disconnect_timeout: float
    ping_interval: float | None
    ping_timeout: float | None


def connection_args(options: Mapping[str, Any]) -> _ConnectionArgs:
    """Pick the :class:`WebSocketConnection` keyword arguments out of ``options``."""
    return cast(
        "_ConnectionArgs", {name: value(options, name) for name in _ConnectionArgs.__annotations__}
    )


#: Close codes an application may send (RFC 6455, section 7.4).
_SENDABLE_CODES = frozenset([1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)])


def message_event(message: str | bytes | bytearray | memoryview) -> Message[Any]:
    """Make the wsproto event for a message: text for ``str``, binary for bytes-like."""
    if isinstance(message, str):
        return TextMessage(data=message)
    if isinstance(message, (bytes, bytearray, memoryview)):
        return BytesMessage(data=cast("bytes", message))
    raise TypeError(f"message must be str or bytes-like, not {type(message).__name__}")


def exit_close_code(exc_type: type[BaseException] | None) -> int:
    """Return the close code for leaving a ``with`` block, by the exception leaving it.

    1000 without one, 1001 (going away) for Ctrl-C (:exc:`KeyboardInterrupt`): the user
    leaves, nothing failed; 1011 (internal error) for any other exception.
    """
    if exc_type is None:
        return 1000
    return 1001 if issubclass(exc_type, KeyboardInterrupt) else 1011


def check_close_arguments(code: int, reason: str | None) -> None:
    """Raise ValueError for a close code that may not be sent or a reason too long."""
    if code not in _SENDABLE_CODES:
        raise ValueError(f"close code {code} may not be sent")
    if reason is not None and len(reason.encode("utf-8")) > 123:
        raise ValueError("a close reason is at most 123 bytes in UTF-8")


#: The modules whose code holds a connection's locks.
_CONNECTION_MODULES = frozenset(
    f"syncws.{name}"
    for name in (
        "_core",
        "_deflate",
        "_framing",
        "_latch",
        "_messages",
        "_readturns",
        "_transport",
        "broadcast",
        "connection",
        "notify",
    )
)


def _interrupted_inside(frame: FrameType | None) -> bool:
    """Whether ``frame`` or a frame below it on the stack runs a connection's code.

    ``frame`` is the caller of :meth:`WebSocketConnection.close`. When close() is
    called from a signal handler, the frames below the handler's are those of the
    code it interrupted, on the same thread. (The library itself never calls the
    public close() from its own code.)
    """
    while frame is not None:
        if frame.f_globals.get("__name__") in _CONNECTION_MODULES:
            return True
        frame = frame.f_back
    return False


class WebSocketConnection(ConnectionCore):
    """An open WebSocket connection, client or server side.

    Obtain one from :func:`~syncws.connect` and the other client functions rather
    than by calling this constructor, which takes a socket on which the opening
    handshake has already been completed by ``ws``.

    All methods are safe to call from any thread. Sending from several threads at
    once is allowed: each message goes out whole, never interleaved with another.
    Several threads may call :meth:`get_message` at once: each message is returned
    to exactly one of them.

    :param sock: the connected socket (plain or TLS) the handshake ran on.
    :param ws: the wsproto engine, with its opening handshake complete.
    :param path: the requested resource (path and query string).
    :param subprotocol: the negotiated subprotocol, if any.
    :param handshake_headers: the headers the peer sent in the handshake.
    :param message_queue_size: how many received messages may wait for
        :meth:`get_message` before the reader stops reading the socket; it also stops
        once they take ``message_queue_size * max_message_size`` bytes in memory.
    :param max_message_size: the largest message accepted from the peer, in bytes;
        a larger one fails the connection with code 1009.
    :param disconnect_timeout: how long :meth:`close` waits for the closing handshake.
    :param ping_interval: send a keepalive ping every this many seconds
        (``None``: no keepalive).
    :param ping_timeout: fail the connection with code 1011 when nothing arrives
        from the peer within this many seconds after a keepalive ping
        (``None``: same as ``ping_interval``).
    :param received: the bytes received after the handshake, which ``ws`` was
        already given (frames the peer sent right behind it).
    """

    # Attributes of the application's own may be set on a connection.
    __slots__ = ("__dict__",)

    # -- properties ------------------------------------------------------------------

    @property
    def is_client(self) -> bool:
        """Whether this is the client side of the connection."""
        return self._ws.client

    @property
    def is_server(self) -> bool:
        """Whether this is the server side of the connection."""
        return not self._ws.client

    @property
    def is_closed(self) -> bool:
        """Whether the connection is closing or closed: nothing more can be sent.

        Messages received before the close may still be waiting for
        :meth:`get_message`.
        """
        return self._state is not State.OPEN

    @property
    def close_reason(self) -> CloseReason | None:
        """Why the connection closed, or ``None`` while it is open.

        The code and reason of the peer's close frame when one arrived; code 1006
        (``ABNORMAL_CLOSURE``) when the connection ended without one; the code syncws
        sent when it failed the connection itself (1002 for a protocol error, 1007
        for invalid UTF-8, 1009 for a message over ``max_message_size``, 1011 for a
        keepalive timeout). While a :meth:`close` started here waits for the peer's
        answer, the code and reason that were sent.

        A :class:`~syncws.ConnectionClosed` raised by the connection carries it as
        :attr:`~syncws.ConnectionClosed.reason`, beside the close frames received and
        sent.
        """
        return self._close_record.reason

    @property
    def extensions(self) -> str:
        """The extensions negotiated in the handshake, as the browser API gives them.

        The ``Sec-WebSocket-Extensions`` value the server chose, for instance
        ``"permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"``;
        ``""`` when none was (see the compression topic).
        """
        return self._extensions

    @property
    def path(self) -> str:
        """The requested resource: the URL path with its query string."""
        return self._path

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol negotiated in the handshake, or ``None``."""
        return self._subprotocol

    @property
    def handshake_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """The headers the peer sent in the opening handshake.

        ``(name, value)`` pairs of bytes, names in lower case. On the client side
        these are the response headers other than those of the WebSocket protocol
        itself (``Upgrade``, ``Connection``, ``Sec-WebSocket-*``).
        """
        return self._handshake_headers

    @property
    def local(self) -> Endpoint | str:
        """The local end of the connection (a path string for Unix sockets)."""
        return self._local

    @property
    def remote(self) -> Endpoint | str:
        """The remote end of the connection (a path string for Unix sockets)."""
        return self._remote

    @property
    def latency(self) -> float:
        """The round trip of the last ping answered, in seconds (``0.0`` before any).

        Updated by :meth:`ping` and by keepalive pings.
        """
        return self._latency

    def __str__(self) -> str:
        return f"{'client' if self.is_client else 'server'}-{self._id}"

    def __repr__(self) -> str:
        return f"<WebSocketConnection {self} {self._state.value} {self._remote}>"

    # -- sending -----------------------------------------------------------------------

    def send_message(
        self, message: str | bytes | bytearray | memoryview, timeout: float | None = None
    ) -> None:
        """Send a message: ``str`` as a text message, bytes-like as a binary message.

        Returns once the whole message has been handed to the operating system.
        Thread-safe: messages sent from several threads at once never interleave.

        :param message: the message.
        :param timeout: how long to wait, in seconds, when the peer does not read
            (``None``: no limit, but :meth:`close` from another thread still wakes
            the call). When it passes, part of the message may be on the wire, so the
            connection is aborted (close code 1006) and unusable. The same happens
            when Ctrl-C (:exc:`KeyboardInterrupt`) interrupts the wait.
        :raises TypeError: when ``message`` is neither ``str`` nor bytes-like.
        :raises ConnectionClosed: when the connection is closing or closed.
        :raises TimeoutError: when ``timeout`` passed first.
        """
        deadline = Deadline(timeout)
        if not self._fast_send:
            self._send(message_event(message), deadline)
            return
        if not isinstance(message, (str, bytes, bytearray, memoryview)):
            message_event(message)  # Raises the TypeError.
        pieces = encode_message(message, self._ws.client)
        try:
            with self._lock:
                self._check_open()
                for piece in pieces:
                    end, written = self._transport.write(piece)
        except ConnectionClosed:
            raise
        except BaseException:
            # Interrupted (KeyboardInterrupt in the main thread) while writing: part of
            # the frame may be on the wire, so the connection cannot go on.
            self.abort("send interrupted")
            raise
        if trace_logger.isEnabledFor(logging.DEBUG):
            trace_logger.debug("%s > %s", self, describe(message))
        if not written:
            self._flush(end, deadline)

    def ping(self, payload: bytes | None = None, timeout: float | None = None) -> float:
        """Send a ping and wait for the matching pong.

        A peer may answer several pings with one pong, so a pong also completes
        every ping sent before the one it answers. The pong is taken in order with
        the messages: when this method returns, every message the peer sent before
        its pong is in the queue, ready for :meth:`get_message` (the wait includes
        any time the reader spent waiting for room in a full queue).

        :param payload: up to 125 bytes, unique among the pings in flight
            (``None``: 4 random bytes).
        :param timeout: how long to wait for the pong, in seconds (``None``: no limit).
        :returns: the round trip, in seconds.
        :raises ValueError: when a ping with this payload is already in flight, or
            the payload is longer than 125 bytes.
        :raises ConnectionClosed: when the connection is closed, or closes while
            waiting.
        :raises TimeoutError: when no pong came in time.
        """
        deadline = Deadline(timeout)
        if payload is not None:
            payload = bytes(payload)
            if len(payload) > 125:
                raise ValueError("a ping payload is at most 125 bytes")
        with self._lock:
            self._check_open()
            if payload is None:
                payload = self._new_ping_payload()
            elif payload in self._pings:
                raise ValueError(f"a ping with payload {payload!r} is already in flight")
            ping = self._pings[payload] = PendingPing(time.monotonic())
            end = self._transport.queue(self._ws.send(Ping(payload=payload)))
        # The pong must be read even if no get_message() runs.
        self._hand_to_reader()
        try:
            self._flush(end, deadline)
            if not ping.done.wait(deadline.remaining()):
                raise TimeoutError("no pong received in time")
        finally:
            with self._lock:
                if self._pings.get(payload) is ping:
                    del self._pings[payload]
        if ping.rtt is None:
            raise self._close_record.error()
        return ping.rtt

    def pong(self, payload: bytes | None = None, timeout: float | None = None) -> None:
        """Send an unsolicited pong, a one-way heartbeat; nothing is waited for.

        :param payload: up to 125 bytes (``None``: empty).
        :param timeout: as for :meth:`send_message`.
        :raises ConnectionClosed: when the connection is closing or closed.
        :raises TimeoutError: when ``timeout`` passed first.
        """
        data = b"" if payload is None else bytes(payload)
        if len(data) > 125:
            raise ValueError("a pong payload is at most 125 bytes")
        self._send(Pong(payload=data), Deadline(timeout))

    def _check_open(self) -> None:
        """Raise ConnectionClosed unless messages can still be sent (lock held)."""
        assert self._lock.locked()
        if self._state is not State.OPEN:
            raise self._close_record.error()

    def _send(self, event: Event, deadline: Deadline) -> None:
        self._flush(self.enqueue(event), deadline)

    def enqueue(self, event: Event) -> int:
        """Frame ``event`` into the write queue; return the queue offset just past it."""
        if self._fast_send and isinstance(event, (TextMessage, BytesMessage)):
            pieces = encode_message(event.data, self._ws.client)
        else:
            pieces = None
        try:
            with self._lock:
                self._check_open()
                if pieces is None:
                    end = self._transport.queue(self._ws.send(event))
                else:
                    for piece in pieces:
                        end = self._transport.queue(piece)
        except ConnectionClosed:
            raise
        except BaseException:
            # Interrupted while wsproto framed (and compressed) the message: its state
            # and the write queue may disagree, so the connection cannot go on.
            self.abort("send interrupted")
            raise
        if trace_logger.isEnabledFor(logging.DEBUG):
            trace_logger.debug("%s > %s", self, describe(event))
        return end

    def _flush(self, end: int, deadline: Deadline) -> None:
        try:
            self._transport.flush(end, deadline)
        except TimeoutError:
            self.abort("send timed out")
            # Let the reader wind down, so the caller finds the connection closed.
            self._closed.wait(ABORT_JOIN_TIMEOUT)
            raise
        except TransportError as exc:
            # The socket broke. The reader may be paused on a full message queue with
            # the peer's last messages, or its close frame, parsed: let it go on
            # without waiting for the application, so that it learns the real reason
            # and ends the connection; wait for that within this call's deadline.
            self._queue.release()
            self._hand_to_reader()
            remaining = deadline.remaining()
            wait = ABORT_JOIN_TIMEOUT if remaining is None else min(remaining, ABORT_JOIN_TIMEOUT)
            if not self._closed.wait(wait):
                self.abort("connection lost")
            raise self._close_record.error() from exc
        except BaseException:
            # Interrupted (KeyboardInterrupt in the main thread): part of the frame may
            # be on the wire and nobody waits to write the rest, so, as after a
            # timeout, the connection cannot go on. Nothing more is waited for here.
            if not self._transport.written(end):
                self.abort("send interrupted")
            raise

    # -- receiving ---------------------------------------------------------------------

    def get_message(self, timeout: float | None = None) -> str | bytes:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Messages that arrived before the connection closed are all returned before
        :class:`~syncws.ConnectionClosed` is raised.

        :param timeout: how long to wait, in seconds (``None``: no limit; ``0``:
            do not wait, for polling from a GUI loop).
        :raises TimeoutError: when no message arrived in time.
        :raises ConnectionClosed: when the connection is closed and every message
            received before has been returned.
        """
        check_timeout("timeout", timeout)
        if on_main_thread():
            return self._get_message_guarded(Deadline(timeout))
        try:
            return self._get_message(Deadline(timeout))
        finally:
            if self._reader is None and not self._turns.input_ended:
                # The caller stops reading: from now on, the reader thread must be
                # there to take the socket back after the caller window.
                self._start_reader()

    def _get_message_guarded(self, deadline: Deadline) -> str | bytes:
        """``get_message`` on the main thread, where Ctrl-C may interrupt any step.

        The main thread never reads the socket itself: an interrupt in the middle of
        a read could drop bytes already taken from the socket, or leave the
        protocol engine half-way. It waits for the reader thread's messages, and
        takes each one so that an interrupt leaves it queued (see
        :meth:`MessageQueue.get`); no step follows the take but the return.
        """
        message = self._queue.take(guard=True)
        if message is not None:
            return message
        if not self._start_reader():
            # No reader thread can start (the system is out of threads): read here
            # rather than wait for nothing.
            return self._get_message(deadline)
        self._turns.hand_to_reader()
        while True:
            message = self._queue.get(deadline.remaining(), guard=True)
            if message is not None:
                return message

    def _get_message(self, deadline: Deadline) -> str | bytes:
        while True:
            message = self._queue.take()
            if message is not None:
                return message
            if self.read_directly(deadline):
                if deadline.expired():
                    message = self._queue.take()
                    if message is None:
                        raise TimeoutError("no message received in time")
                    return message
                continue
            # Another thread reads: wait for what it queues, or for the role.
            message = self._queue.get(deadline.remaining())
            if message is not None:
                return message

    def __iter__(self) -> Iterator[str | bytes]:
        """Yield messages until the connection closes.

        The loop ends quietly on a normal close (:class:`~syncws.ConnectionClosedOK`:
        close frames with codes 1000, 1001 or none, both ways) and raises
        :class:`~syncws.ConnectionClosedError` for any other.
        """
        while True:
            try:
                yield self.get_message()
            except ConnectionClosedOK:
                return

    # -- closing -----------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the connection: the closing handshake, then the TCP connection.

        Sends a close frame, waits for the peer's, and (on the client) for the server
        to close the TCP connection, all within ``disconnect_timeout``; then the
        socket is closed and the reader thread joined. When the time runs out, the
        connection is aborted and :attr:`close_reason` becomes code 1006; this
        method does not raise in that case.

        Idempotent and callable from any thread. Threads blocked in
        :meth:`get_message`, :meth:`send_message` or :meth:`ping` wake up with
        :class:`~syncws.ConnectionClosed` (:meth:`get_message` first returns the
        messages received before the close). Messages that arrive after this call
        are discarded.

        :param code: the close code: 1000-1003, 1007-1014 or 3000-4999.
        :param reason: a short text, at most 123 bytes in UTF-8.
        :raises ValueError: for a code that may not be sent or a reason too long.
        """
        check_close_arguments(code, reason)
        if _interrupted_inside(sys._getframe(1)):
            # Called from a signal handler that interrupted this thread inside the
            # connection's own code, which may hold a lock that close() needs: close
            # on a thread of its own, and return at once.
            self._close_soon(code, reason)
            return
        self.close_within_timeout(code, reason)

    def _close_soon(self, code: int, reason: str | None) -> None:
        closer = threading.Thread(
            target=self.close_within_timeout,
            args=(code, reason),
            name=f"syncws-close-{self._id}",
            # A daemon like the reader: it ends within disconnect_timeout.
            daemon=True,
        )
        try:
            closer.start()
        except RuntimeError as exc:
            logger.warning("%s: cannot close from a signal handler now: %s", self, exc)

    def _begin_close(self, code: int, reason: str | None, deadline: Deadline) -> int | None:
        """Queue a close frame if the connection is open; return its write-queue end."""
        with self._lock:
            if self._state is not State.OPEN:
                return None
            sent = CloseReason(code, reason)
            self._timers.close_deadline = deadline.when
            end = self._transport.queue(self._ws.send(CloseConnection(code, reason)))
            self._close_record = self._close_record.sending(sent)
            self._set_state(State.CLOSING)
        logger.debug("%s: closing with %s", self, sent)
        # The reader must not wait for the application any more, and must read the
        # peer's answer even if no get_message() runs.
        self._queue.release()
        self._hand_to_reader()
        return end

    def start_close(self, code: int, reason: str | None) -> None:
        """Send a close frame without waiting for anything (a server shutting down)."""
        if self._begin_close(code, reason, Deadline(self._disconnect_timeout)) is not None:
            self._transport.try_flush()

    def close_within_timeout(self, code: int, reason: str | None) -> bool:
        """Close; return False when the closing handshake did not finish in time."""
        deadline = Deadline(self._disconnect_timeout)
        end = self._begin_close(code, reason, deadline)
        if end is not None:
            with contextlib.suppress(TimeoutError, TransportError):
                self._transport.flush(end, deadline)
        if self._reader is None and (
            self._turns.take_for_closing() or self._run_here_if_no_reader(deadline)
        ):
            # A server connection whose reader thread never started (or cannot start):
            # its loop ends the connection on this thread, within the closing deadline.
            self._run()
            return not self._close_timed_out
        reader = self._reader
        if reader is not None and threading.current_thread() is reader:
            return True
        # Without a reader thread, another thread closing runs its loop (above).
        if not self._closed.wait(deadline.remaining()):
            with self._lock:
                # Past the close frames, only the TCP close is late: not a timeout
                # of the closing handshake.
                if not self._close_record.complete:
                    self._close_timed_out = True
            self.abort("closing handshake timed out")
            if not self._closed.wait(ABORT_JOIN_TIMEOUT):  # pragma: no cover - a bug
                logger.warning("%s: reader thread did not stop", self)
        reader = self._reader  # Also one that started while this call waited.
        if reader is not None and reader is not threading.current_thread():
            reader.join(ABORT_JOIN_TIMEOUT)
        return not self._close_timed_out

    def _run_here_if_no_reader(self, deadline: Deadline) -> bool:
        """Start the reader thread to end the connection; if none can start, run its loop here.

        :returns: whether the calling thread must run the reader's loop.
        """
        if self._start_reader():
            return False
        if self._turns.take_for_closing_after_caller(deadline.remaining()):
            return True
        # A caller's read outlasted the closing deadline: wake it.
        self.abort("closing handshake timed out")
        return self._turns.take_for_closing_after_caller(ABORT_JOIN_TIMEOUT)

    def __enter__(self) -> WebSocketConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close with code 1000; 1001 for Ctrl-C, 1011 for any other exception on its way out."""
        self.close_within_timeout(exit_close_code(exc_type), None)
