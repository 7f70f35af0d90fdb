"""The WebSocket connection: what the application calls, on the client and server side.

:class:`WebSocketConnection` is the public face of a connection. It holds the parts
that do the work, each in a module of its own (see the design page of the docs):

* the protocol state (:mod:`syncws._protocol`): wsproto and the fast frame path, the
  lifecycle, the close reason, the pings, under the connection lock;
* the transport (:mod:`syncws._transport`): the socket and its ordered write queue;
* the message queue (:mod:`syncws._messages`): received messages, bounded;
* the reader (:mod:`syncws._reader`): reads the socket on its thread or a caller's,
  acts on what arrives, and ends the connection.

Sending happens on the caller's thread, straight into the write queue; receiving
takes messages from the message queue, reading the socket first when it is the
caller's turn.

Lock order. A thread that holds one of these locks takes only those below it:

1. the server's locks (``WebSocketServer``'s and its ``HandlerThreads``', never held
   together): no connection method is called with either held;
2. the connection lock (:attr:`Protocol.lock <syncws._protocol.Protocol.lock>`, also the
   :class:`~syncws._transport.Transport`'s condition and the protocol's ``turn_free``);
3. the TLS socket's lock (``Transport``: writing under the connection lock may send at
   once) and the pings' events (set when a pong is matched).

The message queue's lock (then the lock of a :class:`~syncws.notify.MessageNotifier`
listening to it), the reading turns' lock (:mod:`syncws._readturns`), the ``ended``
latch's, the reader starter's (:mod:`syncws._starter`) and a stream head's and its
chunks' (:mod:`syncws._streams`) are never held together with the connection lock:
they are taken with no other lock of the connection held.
No thread is started and no application callback runs while any of these locks is
held. Methods documented "(lock held)" expect the connection lock held; the state
changes assert it.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from typing import TYPE_CHECKING

from wsproto import WSConnection
from wsproto.connection import Connection
from wsproto.events import Event, Pong

from ._closing import check_close_arguments, close_in_background, exit_close_code
from ._deadline import Deadline, check_timeout
from ._messages import MessageQueue
from ._options import (
    DEFAULT_DISCONNECT_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MESSAGE_QUEUE_SIZE,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    UNLIMITED,
    ConnectionOptions,
    check_options,
    connection_args,
)
from ._protocol import Protocol, State
from ._reader import Reader
from ._receiver import Receiver
from ._sender import Sender, control_payload
from ._signals import interrupted_inside, on_main_thread
from ._streams import MessageStream, convert
from ._timers import Timers
from ._transport import Transport, endpoint
from ._wsproto import negotiated_extensions
from .exceptions import ConnectionClosedOK
from .types import CloseReason, Endpoint

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Iterable, Iterator
    from types import TracebackType

    from ._transport import Progress

__all__ = [
    "DEFAULT_DISCONNECT_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MESSAGE_QUEUE_SIZE",
    "ConnectionOptions",
    "MessageStream",
    "WebSocketConnection",
    "connection_args",
]

logger = logging.getLogger("syncws")
_ids = itertools.count(1)


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
    :param ws: the wsproto engine, with its opening handshake complete: a
        :class:`~wsproto.WSConnection`, or the :class:`~wsproto.connection.Connection`
        of a handshake done without it.
    :param path: the requested resource (path and query string).
    :param subprotocol: the negotiated subprotocol, if any.
    :param handshake_headers: the headers the peer sent in the handshake.
    :param message_queue_size: how many received messages may wait for
        :meth:`get_message` before the reader stops reading the socket; it also stops
        once they take ``message_queue_size * max_message_size`` bytes in memory.
    :param max_message_size: the largest message :meth:`get_message` takes, in bytes
        (code 1009 beyond); :meth:`get_message_stream` reads larger ones in chunks.
    :param disconnect_timeout: how long :meth:`close` waits for the closing handshake.
    :param ping_interval: send a keepalive ping every this many seconds
        (``None``: no keepalive).
    :param ping_timeout: fail the connection with code 1011 when nothing arrives
        from the peer within this many seconds after a keepalive ping
        (``None``: same as ``ping_interval``).
    :param received: the bytes received after the handshake, which ``ws`` was
        already given (frames the peer sent right behind it).
    """

    __slots__ = (
        # Attributes of the application's own may be set on a connection.
        "__dict__",
        "__weakref__",
        "_disconnect_timeout",
        "_extensions",
        "_handshake_headers",
        "_id",
        "_local",
        "_name",
        "_path",
        "_protocol",
        "_reader",
        "_receiver",
        "_remote",
        "_sender",
        "_subprotocol",
        "_transport",
    )

    def __init__(
        self,
        sock: socket.socket,
        ws: WSConnection | Connection,
        *,
        path: str,
        subprotocol: str | None = None,
        handshake_headers: tuple[tuple[bytes, bytes], ...] = (),
        message_queue_size: int = DEFAULT_MESSAGE_QUEUE_SIZE,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        disconnect_timeout: float = DEFAULT_DISCONNECT_TIMEOUT,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
        received: bytes = b"",
        reader_on_demand: bool = False,
    ) -> None:
        check_options(
            {
                "message_queue_size": message_queue_size,
                "max_message_size": max_message_size,
                "disconnect_timeout": disconnect_timeout,
                "ping_interval": ping_interval,
                "ping_timeout": ping_timeout,
            },
            "connection",
        )
        if max_message_size is None:
            max_message_size = UNLIMITED
        engine = ws.connection if isinstance(ws, WSConnection) else ws
        if engine is None:
            raise ValueError("the opening handshake of ws is not complete")
        self._id = next(_ids)
        self._name = f"{'client' if engine.client else 'server'}-{self._id}"
        lock = threading.Lock()
        self._transport = Transport(sock, lock)
        self._local = endpoint(sock, local=True, is_ssl=self._transport.is_ssl)
        self._remote = endpoint(sock, local=False, is_ssl=self._transport.is_ssl)
        self._path = path
        self._subprotocol = subprotocol
        self._handshake_headers = handshake_headers
        self._disconnect_timeout = disconnect_timeout
        extensions = negotiated_extensions(engine)
        self._extensions = extensions or ""
        # The engine of the open connection; the handshake engine is not kept.
        self._protocol = Protocol(
            self._name,
            engine,
            lock,
            self._transport.queue,
            max_message_size=max_message_size,
            timers=Timers(ping_interval, ping_timeout, time.monotonic()),
            fast=extensions == "",
            received=received,
        )
        queue = MessageQueue(message_queue_size, max(1, message_queue_size) * max_message_size)
        # A server connection's reader thread starts on demand: a caller may read first.
        self._reader = Reader(
            self._id,
            self._protocol,
            self._transport,
            queue,
            disconnect_timeout=disconnect_timeout,
            on_demand=reader_on_demand,
        )
        self._receiver = Receiver(self._reader)
        self._sender = Sender(self._name, self._protocol, self._transport, self._reader)
        logger.debug("%s: open, %s -> %s", self, self._local, self._remote)
        if reader_on_demand:
            self._reader.schedule_start()
        else:
            # A client's reader thread starts with the connection. A thread that cannot
            # start here fails the opening of the connection (RuntimeError).
            self._reader.start_now()

    # -- properties ------------------------------------------------------------------

    @property
    def is_client(self) -> bool:
        """Whether this is the client side of the connection."""
        return self._protocol.is_client

    @property
    def is_server(self) -> bool:
        """Whether this is the server side of the connection."""
        return not self._protocol.is_client

    @property
    def is_closed(self) -> bool:
        """Whether the connection is closing or closed: nothing more can be sent.

        Messages received before the close may still be waiting for
        :meth:`get_message`.
        """
        return self._protocol.state is not State.OPEN

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
        return self._protocol.close_record.reason

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
        return self._protocol.latency

    def __str__(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<WebSocketConnection {self} {self._protocol.state.value} {self._remote}>"

    # -- sending -----------------------------------------------------------------------

    def send_message(
        self,
        message: str
        | bytes
        | bytearray
        | memoryview
        | Iterable[str | bytes | bytearray | memoryview],
        timeout: float | None = None,
    ) -> None:
        """Send a message: ``str`` as a text message, bytes-like as a binary message.

        Any other iterable (a list, a generator) of ``str`` or of bytes-like chunks is
        sent as one message in fragments, a frame per chunk (see :doc:`/topics/streaming`):
        other threads' messages wait for it; an error once its first frame is sent
        (the iterable's too) fails the connection with code 1011. An empty iterable
        sends nothing.

        Returns once the whole message has been handed to the operating system.
        Thread-safe: messages sent from several threads at once never interleave.

        :param message: the message, or its chunks.
        :param timeout: how long the whole call may take, in seconds, including the
            iterable's time and any wait for another thread's message in fragments
            (``None``: no limit, but :meth:`close` from another thread still wakes
            the call). When it passes while the peer does not read, part of the
            message may be on the wire, so the connection is aborted (close code
            1006) and unusable. The same happens when Ctrl-C
            (:exc:`KeyboardInterrupt`) interrupts the wait.
        :raises TypeError: when ``message`` is neither ``str``, bytes-like nor an
            iterable of either (a mapping or a set is refused too).
        :raises ConnectionClosed: when the connection is closing or closed.
        :raises TimeoutError: when ``timeout`` passed first.
        """
        self._sender.send_message(message, Deadline(timeout))

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
        return self._sender.ping(control_payload(payload, "ping"), deadline)

    def pong(self, payload: bytes | None = None, timeout: float | None = None) -> None:
        """Send an unsolicited pong, a one-way heartbeat; nothing is waited for.

        :param payload: up to 125 bytes (``None``: empty).
        :param timeout: as for :meth:`send_message`.
        :raises ConnectionClosed: when the connection is closing or closed.
        :raises TimeoutError: when ``timeout`` passed first.
        """
        data = control_payload(payload, "pong") or b""
        self._sender.send_control(Pong(payload=data), Deadline(timeout))

    def enqueue(self, event: Event) -> int | None:
        """Frame ``event`` into the write queue; return the queue offset just past it.

        ``None`` for a message while one is being sent in fragments: try again later.
        Part of the interface for syncws's own tools (see below); not public API.
        """
        return self._sender.enqueue(event)

    # -- receiving ---------------------------------------------------------------------

    def get_message(self, timeout: float | None = None, decode: bool | None = None) -> str | bytes:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Messages that arrived before the connection closed are all returned before
        :class:`~syncws.ConnectionClosed` is raised. A message larger than
        ``max_message_size`` fails the connection with code 1009 here: only
        :meth:`get_message_stream` reads one.

        :param timeout: how long to wait, in seconds (``None``: no limit; ``0``:
            do not wait, for polling from a GUI loop).
        :param decode: ``False`` returns a text message as UTF-8 ``bytes``, ``True`` a
            binary message as ``str`` (:exc:`UnicodeDecodeError` if it is not UTF-8);
            ``None``: by the message's type.
        :raises TimeoutError: when no message arrived in time.
        :raises ConnectionClosed: when the connection is closed and every message
            received before has been returned.
        """
        check_timeout("timeout", timeout)
        message = self._receiver.message(Deadline(timeout), on_main_thread())
        return message if decode is None else convert(message, decode)

    def get_message_stream(
        self, timeout: float | None = None, decode: bool | None = None
    ) -> MessageStream:
        """Return the next message as a :class:`~syncws.MessageStream` of chunks.

        The way to read a message of any size, even over ``max_message_size``,
        in bounded memory (see :doc:`/topics/streaming`): each chunk is handed over
        as it arrives. A message within ``max_message_size`` comes as one chunk.
        Read the stream to its end, or close it, before the next message.

        :param timeout: how long to wait for the message's start, and then for each
            chunk, in seconds (``None``: no limit).
        :param decode: as for :meth:`get_message`, per chunk.
        :raises TimeoutError: when no message started in time.
        :raises ConnectionClosed: as for :meth:`get_message`.
        """
        check_timeout("timeout", timeout)
        return self._receiver.stream(Deadline(timeout), on_main_thread(), timeout, decode)

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
        if interrupted_inside(sys._getframe(1)):
            # Called from a signal handler that interrupted this thread inside the
            # connection's own code, which may hold a lock that close() needs: close
            # on a thread of its own, and return at once.
            close_in_background(self.close_within_timeout, code, reason, f"close-{self._id}")
            return
        self.close_within_timeout(code, reason)

    # -- the interface for syncws's own tools ------------------------------------------
    #
    # broadcast, notify, the server and syncws.testing use a connection through these
    # methods (and enqueue) and nothing else of its insides. They are not public API:
    # the API reference leaves them out, and they may change in any release.

    def abort(self, why: str | None) -> None:
        """Give up on the connection now: no closing handshake (code 1006).

        :param why: the reason recorded in :attr:`close_reason` (with code 1006), unless
            the connection had a reason already.
        """
        self._reader.abort(why)

    def progress(self, end: int) -> Progress:
        """Write what the socket takes now, without waiting, up to offset ``end``.

        :param end: a write-queue offset returned by ``enqueue``.
        :returns: whether the bytes up to ``end`` are written, the socket is full,
            another thread is writing, or the connection failed.
        """
        return self._transport.progress(end)

    @property
    def socket_fileno(self) -> int:
        """The socket's file descriptor, to wait until it can be written (never read it)."""
        return self._transport.fileno

    def read_in_background(self) -> None:
        """Let the reader thread read now, even if a caller of ``get_message`` just read."""
        self._reader.hand_over()

    def set_message_listener(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener()`` each time a message is queued (``None``: stop).

        The listener runs on the thread that queues the message, with
        the queue's lock held: it must only wake another thread.

        :raises RuntimeError: when another listener is set already.
        """
        self._reader.queue.set_listener(listener)

    @property
    def has_ended(self) -> bool:
        """Whether the socket is closed and the reader done (not yet while closing)."""
        return self._reader.ended.is_set()

    @property
    def reader_thread(self) -> threading.Thread | None:
        """The connection's reader thread, once started (``None`` before)."""
        return self._reader.thread

    def start_close(self, code: int, reason: str | None) -> None:
        """Send a close frame without waiting for anything (a server shutting down)."""
        self._sender.start_close(code, reason, self._disconnect_timeout)

    def close_within_timeout(self, code: int, reason: str | None) -> bool:
        """Close; return False when the closing handshake did not finish in time."""
        return self._sender.close(code, reason, self._disconnect_timeout)

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
