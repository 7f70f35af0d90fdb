"""The WebSocket connection: one class for both the client and the server side.

A connection owns a socket, a wsproto engine and one reader thread. The reader
thread reads the socket, feeds the engine, answers pings, matches pongs, runs the
closing handshake and the keepalive timers, and hands complete messages to a
bounded queue. The caller's threads send through an ordered write queue (see
:mod:`syncws._transport`) and receive from the message queue.

Locking: ``_lock`` guards the wsproto engine, the write queue, ``_state``,
``_close_reason`` and the pending pings; it is only ever held for short, non-blocking
work. Socket waits happen outside it. Fields marked *reader* are touched only by
the reader thread.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage

from ._deadline import Deadline
from ._messages import MessageQueue
from ._transport import Transport, TransportError
from .exceptions import ConnectionClosed
from .types import CloseReason, Endpoint

if TYPE_CHECKING:
    import socket
    from collections.abc import Iterator
    from types import TracebackType

    from wsproto import WSConnection
    from wsproto.events import Message

__all__ = ["WebSocketConnection"]

logger = logging.getLogger("syncws")
#: Frame-level trace, opt in with ``logging.getLogger("syncws.trace").setLevel(logging.DEBUG)``.
trace_logger = logging.getLogger("syncws.trace")
if trace_logger.level == logging.NOTSET:
    trace_logger.setLevel(logging.INFO)

DEFAULT_MESSAGE_QUEUE_SIZE = 16
DEFAULT_MAX_MESSAGE_SIZE = 2**20
DEFAULT_CONNECT_TIMEOUT = 60.0
DEFAULT_DISCONNECT_TIMEOUT = 60.0

#: How long to wait for the reader thread once the socket was shut down under it.
_ABORT_JOIN_TIMEOUT = 5.0
#: Close codes an application may send (RFC 6455, section 7.4).
_SENDABLE_CODES = frozenset([1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)])
_NORMAL_CODES = frozenset([1000, 1001])
_ids = itertools.count(1)


class _State(enum.Enum):
    """Where the connection is in its life. wsproto keeps the protocol's own state."""

    #: Messages flow both ways.
    OPEN = "open"
    #: A close frame was sent or received, or the connection failed; the reader runs on.
    CLOSING = "closing"
    #: The reader has finished and the socket is closed.
    CLOSED = "closed"


_TRANSITIONS = {
    _State.OPEN: frozenset([_State.CLOSING, _State.CLOSED]),
    _State.CLOSING: frozenset([_State.CLOSING, _State.CLOSED]),
    _State.CLOSED: frozenset(),
}


@dataclass(eq=False)
class _Ping:
    """A ping in flight."""

    sent_at: float
    done: threading.Event = field(default_factory=threading.Event)
    #: The round trip in seconds; stays ``None`` when the connection closed first.
    rtt: float | None = None


def _check_timeout(name: str, value: float | None, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if value is None or value < 0:
        raise ValueError(f"{name} must be a number >= 0{' or None' if allow_none else ''}")


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _endpoint(sock: socket.socket, *, local: bool, is_ssl: bool) -> Endpoint | str:
    try:
        address = sock.getsockname() if local else sock.getpeername()
    except OSError:
        return ""
    if isinstance(address, tuple):
        return Endpoint(str(address[0]), int(address[1]), is_ssl)
    return os.fsdecode(address)


class WebSocketConnection:
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
        :meth:`get_message` before the reader stops reading the socket.
    :param max_message_size: the largest message accepted from the peer, in bytes;
        a larger one fails the connection with code 1009.
    :param disconnect_timeout: how long :meth:`close` waits for the closing handshake.
    :param ping_interval: send a keepalive ping every this many seconds
        (``None``: no keepalive).
    :param ping_timeout: fail the connection with code 1011 when nothing arrives
        from the peer within this many seconds after a keepalive ping
        (``None``: same as ``ping_interval``).
    """

    def __init__(
        self,
        sock: socket.socket,
        ws: WSConnection,
        *,
        path: str,
        subprotocol: str | None = None,
        handshake_headers: tuple[tuple[bytes, bytes], ...] = (),
        message_queue_size: int = DEFAULT_MESSAGE_QUEUE_SIZE,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        disconnect_timeout: float = DEFAULT_DISCONNECT_TIMEOUT,
        ping_interval: float | None = None,
        ping_timeout: float | None = None,
    ) -> None:
        if message_queue_size < 0:
            raise ValueError("message_queue_size must be >= 0")
        if max_message_size <= 0:
            raise ValueError("max_message_size must be > 0")
        _check_timeout("disconnect_timeout", disconnect_timeout, allow_none=False)
        if ping_interval is not None and ping_interval <= 0:
            raise ValueError("ping_interval must be > 0 or None")
        if ping_timeout is not None and ping_timeout <= 0:
            raise ValueError("ping_timeout must be > 0 or None")
        self._id = next(_ids)
        self._lock = threading.Lock()
        self._ws = ws
        self._transport = Transport(sock, self._lock)
        self._local = _endpoint(sock, local=True, is_ssl=self._transport.is_ssl)
        self._remote = _endpoint(sock, local=False, is_ssl=self._transport.is_ssl)
        self._path = path
        self._subprotocol = subprotocol
        self._handshake_headers = handshake_headers
        self._max_message_size = max_message_size
        self._disconnect_timeout = disconnect_timeout
        self._queue = MessageQueue(message_queue_size)
        self._closed = threading.Event()
        # Guarded by _lock.
        self._state = _State.OPEN
        self._close_reason: CloseReason | None = None
        self._sent_close: CloseReason | None = None
        self._close_deadline: float | None = None
        self._close_timed_out = False
        self._pings: dict[bytes, _Ping] = {}
        self._latency = 0.0
        # Reader only.
        self._parts: list[Any] = []
        self._size = 0
        self._input_done = False
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout if ping_timeout is not None else ping_interval
        now = time.monotonic()
        self._next_ping = None if ping_interval is None else now + ping_interval
        self._awaiting_peer_since: float | None = None
        self._keepalive_payload: bytes | None = None
        self._reader = threading.Thread(
            target=self._run,
            name=f"syncws-reader-{self._id}",
            # A daemon, so that a connection the application forgot to close never
            # keeps the interpreter from exiting. close() joins it.
            daemon=True,
        )
        logger.debug("%s: open, %s -> %s", self, self._local, self._remote)
        self._reader.start()

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
        return self._state is not _State.OPEN

    @property
    def close_reason(self) -> CloseReason | None:
        """Why the connection closed, or ``None`` while it is open.

        The code and reason of the peer's close frame when one arrived; code 1006
        (``ABNORMAL_CLOSURE``) when the connection ended without one; the code syncws
        sent when it failed the connection itself (1002 for a protocol error, 1007
        for invalid UTF-8, 1009 for a message over ``max_message_size``, 1011 for a
        keepalive timeout). While a :meth:`close` started here waits for the peer's
        answer, the code and reason that were sent.
        """
        return self._close_reason or self._sent_close

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
            connection is aborted (close code 1006) and unusable.
        :raises TypeError: when ``message`` is neither ``str`` nor bytes-like.
        :raises ConnectionClosed: when the connection is closing or closed.
        :raises TimeoutError: when ``timeout`` passed first.
        """
        event: Message[Any]
        if isinstance(message, str):
            event = TextMessage(data=message)
        elif isinstance(message, (bytes, bytearray, memoryview)):
            event = BytesMessage(data=cast("bytes", message))
        else:
            raise TypeError(f"message must be str or bytes-like, not {type(message).__name__}")
        self._send(event, Deadline(timeout))

    def ping(self, payload: bytes | None = None, timeout: float | None = None) -> float:
        """Send a ping and wait for the matching pong.

        A peer may answer several pings with one pong, so a pong also completes
        every ping sent before the one it answers.

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
            ping = self._pings[payload] = _Ping(time.monotonic())
            end = self._transport.queue(self._ws.send(Ping(payload=payload)))
        try:
            self._flush(end, deadline)
            if not ping.done.wait(deadline.remaining()):
                raise TimeoutError("no pong received in time")
        finally:
            with self._lock:
                if self._pings.get(payload) is ping:
                    del self._pings[payload]
        if ping.rtt is None:
            raise ConnectionClosed(self._reason())
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

    def _new_ping_payload(self) -> bytes:
        while True:
            payload = os.urandom(4)
            if payload not in self._pings:
                return payload

    def _check_open(self) -> None:
        """Raise ConnectionClosed unless messages can still be sent (lock held)."""
        if self._state is not _State.OPEN or self._ws.state is not ConnectionState.OPEN:
            raise ConnectionClosed(self._reason())

    def _reason(self) -> CloseReason:
        return self._close_reason or self._sent_close or CloseReason(1006, None)

    def _send(self, event: Event, deadline: Deadline) -> None:
        with self._lock:
            self._check_open()
            end = self._transport.queue(self._ws.send(event))
        if trace_logger.isEnabledFor(logging.DEBUG):
            trace_logger.debug("%s > %s", self, _describe(event))
        self._flush(end, deadline)

    def _flush(self, end: int, deadline: Deadline) -> None:
        try:
            self._transport.flush(end, deadline)
        except TimeoutError:
            self._abort("send timed out")
            raise
        except TransportError as exc:
            # Wait briefly for the reader to learn why, so the reason is the real one.
            self._closed.wait(self._disconnect_timeout)
            raise ConnectionClosed(self._reason()) from exc

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
        _check_timeout("timeout", timeout)
        return self._queue.get(timeout)

    def __iter__(self) -> Iterator[str | bytes]:
        """Yield messages until the connection closes.

        The loop ends quietly on a normal close (codes 1000 and 1001) and raises
        :class:`~syncws.ConnectionClosed` for any other.
        """
        while True:
            try:
                yield self._queue.get(None)
            except ConnectionClosed as exc:
                if exc.reason.code in _NORMAL_CODES:
                    return
                raise

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
        if code not in _SENDABLE_CODES:
            raise ValueError(f"close code {code} may not be sent")
        if reason is not None and len(reason.encode("utf-8")) > 123:
            raise ValueError("a close reason is at most 123 bytes in UTF-8")
        self._close(code, reason)

    def _close(self, code: int, reason: str | None) -> bool:
        """Close; return False when the closing handshake did not finish in time."""
        deadline = Deadline(self._disconnect_timeout)
        end = None
        with self._lock:
            if self._state is _State.OPEN and self._ws.state is ConnectionState.OPEN:
                self._sent_close = CloseReason(code, reason)
                self._close_deadline = deadline.when
                end = self._transport.queue(self._ws.send(CloseConnection(code, reason)))
                self._set_state(_State.CLOSING)
        if end is not None:
            logger.debug("%s: closing with %s", self, self._sent_close)
            # The reader must not wait for the application any more.
            self._queue.release()
            with contextlib.suppress(TimeoutError, TransportError):
                self._transport.flush(end, deadline)
        if threading.current_thread() is self._reader:
            return True
        self._reader.join(deadline.remaining())
        if self._reader.is_alive():
            with self._lock:
                self._close_timed_out = True
            self._abort("closing handshake timed out")
            self._reader.join(_ABORT_JOIN_TIMEOUT)
            if self._reader.is_alive():  # pragma: no cover - would be a bug
                logger.warning("%s: reader thread did not stop", self)
        return not self._close_timed_out

    def _abort(self, why: str | None) -> None:
        """Give up on the connection now: no closing handshake (code 1006)."""
        with self._lock:
            if self._close_reason is None:
                self._close_reason = CloseReason(1006, why)
            self._set_state(_State.CLOSING)
        logger.debug("%s: aborting (%s)", self, why)
        self._queue.release()
        self._transport.abort()

    def __enter__(self) -> WebSocketConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close with code 1000, or 1011 when an exception is on its way out."""
        self._close(1000 if exc_type is None else 1011, None)

    def _set_state(self, state: _State) -> None:
        """Change ``_state``; the one place where it changes (lock held)."""
        if state not in _TRANSITIONS[self._state]:
            if state is self._state:
                return
            raise RuntimeError(f"invalid transition {self._state} -> {state}")
        self._state = state

    # -- the reader thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._handle(None)
            while not self._input_done:
                pending = self._transport.try_flush()
                data = self._transport.receive(self._next_timer(), want_write=pending)
                if data is None:
                    self._on_timer()
                elif data:
                    self._awaiting_peer_since = None
                    self._handle(data)
                else:
                    return
            self._linger()
        except Exception:
            logger.exception("%s: reader thread failed", self)
            with self._lock:
                if self._close_reason is None:
                    self._close_reason = CloseReason(1011, "internal error")
        finally:
            self._finish()

    def _handle(self, data: bytes | None) -> None:
        """Feed received bytes to wsproto and act on the events."""
        with self._lock:
            if data is not None:
                self._ws.receive_data(data)
            events = list(self._ws.events())
        tracing = trace_logger.isEnabledFor(logging.DEBUG)
        for event in events:
            if self._input_done:
                return
            if tracing:
                trace_logger.debug("%s < %s", self, _describe(event))
            if isinstance(event, (TextMessage, BytesMessage)):
                self._on_data(event)
            elif isinstance(event, Ping):
                with self._lock:
                    if self._ws.state is ConnectionState.OPEN:
                        self._transport.queue(self._ws.send(event.response()))
            elif isinstance(event, Pong):
                self._on_pong(event.payload)
            elif isinstance(event, CloseConnection):
                self._on_close_frame(event)

    def _on_data(self, event: Message[Any]) -> None:
        data = event.data
        self._size += len(data) if isinstance(data, bytes) else _utf8_size(data)
        if self._size > self._max_message_size:
            self._parts.clear()
            self._fail(1009, f"message larger than {self._max_message_size} bytes")
            return
        if not event.message_finished:
            self._parts.append(data)
            return
        if self._parts:
            self._parts.append(data)
            data = "".join(self._parts) if isinstance(data, str) else b"".join(self._parts)
            self._parts.clear()
        self._size = 0
        if self._state is not _State.OPEN:
            logger.debug("%s: message discarded, the connection is closing", self)
            return
        if self._queue.put(data) and self._awaiting_peer_since is not None:
            # The reader was paused by a full queue: the peer's silence while we were
            # not reading proves nothing, so keepalive starts counting again now.
            self._awaiting_peer_since = time.monotonic()

    def _on_pong(self, payload: bytes) -> None:
        with self._lock:
            if payload not in self._pings:
                return
            now = time.monotonic()
            for key in list(self._pings):
                ping = self._pings.pop(key)
                ping.rtt = now - ping.sent_at
                ping.done.set()
                if key == payload:
                    self._latency = ping.rtt
                    return

    def _on_close_frame(self, event: CloseConnection) -> None:
        with self._lock:
            state = self._ws.state
            if state is ConnectionState.REMOTE_CLOSING or state is ConnectionState.CLOSED:
                if self._close_reason is None:
                    self._close_reason = CloseReason(event.code, event.reason or None)
                if state is ConnectionState.REMOTE_CLOSING:
                    self._transport.queue(self._ws.send(event.response()))
                self._set_state(_State.CLOSING)
                self._input_done = True
                logger.debug("%s: close frame received: %s", self, self._close_reason)
                return
        # wsproto reports a protocol error in the peer's data as a CloseConnection
        # event without leaving its state: fail the connection with that code.
        self._fail(event.code, event.reason or None)

    def _fail(self, code: int, reason: str | None) -> None:
        """Fail the connection: send a close frame with ``code``, stop parsing input."""
        with self._lock:
            if self._close_reason is None:
                self._close_reason = CloseReason(code, reason)
            if self._ws.state is ConnectionState.OPEN:
                self._transport.queue(self._ws.send(CloseConnection(code, reason)))
            self._set_state(_State.CLOSING)
        self._input_done = True
        logger.debug("%s: failing the connection: %s", self, self._close_reason)

    def _next_timer(self) -> float | None:
        """Seconds until the next keepalive or closing deadline, ``None`` for none."""
        times = [self._close_deadline, self._next_ping]
        if self._awaiting_peer_since is not None and self._ping_timeout is not None:
            times.append(self._awaiting_peer_since + self._ping_timeout)
        soonest = min((t for t in times if t is not None), default=None)
        return None if soonest is None else max(0.0, soonest - time.monotonic())

    def _on_timer(self) -> None:
        now = time.monotonic()
        if self._close_deadline is not None and now >= self._close_deadline:
            self._abort("closing handshake timed out")
            with self._lock:
                self._close_timed_out = True
            return
        if (
            self._awaiting_peer_since is not None
            and self._ping_timeout is not None
            and now >= self._awaiting_peer_since + self._ping_timeout
        ):
            self._fail(1011, "keepalive ping timeout")
            return
        if (
            self._next_ping is not None
            and self._ping_interval is not None
            and now >= self._next_ping
        ):
            self._next_ping = now + self._ping_interval
            with self._lock:
                if self._state is not _State.OPEN:
                    return
                # An unanswered keepalive ping gives way to the next one, so that a
                # peer that never answers pings cannot grow the table.
                if self._keepalive_payload is not None:
                    self._pings.pop(self._keepalive_payload, None)
                payload = self._keepalive_payload = self._new_ping_payload()
                self._pings[payload] = _Ping(now)
                self._transport.queue(self._ws.send(Ping(payload=payload)))
            if self._awaiting_peer_since is None:
                self._awaiting_peer_since = now

    def _linger(self) -> None:
        """After the close frames: write ours, end TCP (server first), await EOF."""
        with self._lock:
            if self._close_deadline is None:
                self._close_deadline = time.monotonic() + self._disconnect_timeout
            deadline = Deadline.at(self._close_deadline)
            end = self._transport.queue(b"")
        try:
            self._transport.flush(end, deadline)
        except (TimeoutError, TransportError):
            return
        if self.is_server:
            # RFC 6455, section 7.1.1: the server closes the TCP connection first.
            self._transport.shutdown_write()
        while True:
            data = self._transport.receive(deadline.remaining())
            if data == b"" or (data is None and deadline.expired()):
                return

    def _finish(self) -> None:
        """Last act of the reader: mark the connection closed and wake everyone."""
        with self._lock:
            if self._close_reason is None:
                self._close_reason = CloseReason(1006, None)
            self._set_state(_State.CLOSED)
            pings = list(self._pings.values())
            self._pings.clear()
            reason = self._close_reason
        for ping in pings:
            ping.done.set()
        self._queue.end(reason)
        self._transport.close(self._disconnect_timeout)
        self._closed.set()
        logger.debug("%s: closed: %s", self, reason)


def _describe(event: Event) -> str:
    """Summarise a wsproto event in one line, for the frame trace."""
    if isinstance(event, (TextMessage, BytesMessage)):
        kind = "TEXT" if isinstance(event, TextMessage) else "BINARY"
        return f"{kind} {len(event.data)} ({'fin' if event.message_finished else 'more'})"
    if isinstance(event, (Ping, Pong)):
        return f"{type(event).__name__.upper()} {event.payload!r}"
    if isinstance(event, CloseConnection):
        return f"CLOSE {event.code} {event.reason!r}"
    return type(event).__name__
