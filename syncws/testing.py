"""Helpers for testing code that uses syncws, with pytest or any other test runner.

* :func:`connection_pair`: a connected client and server connection over a
  :func:`socket.socketpair`, with no network and no server: for unit tests of code
  that takes a :class:`~syncws.WebSocketConnection`.
* :class:`RecordingHandler`: a server handler that records every message and close
  reason, optionally answers, and lets a test wait for them without sleeping.
* :class:`ServerThread`: a :class:`~syncws.WebSocketServer` on a free loopback port,
  serving in a background thread, that checks on :meth:`~ServerThread.stop` that every
  thread it started has ended.
* :func:`echo`: a handler that sends every message back.
* :class:`ServerFactory` and :class:`ConnectionFactory`: what the ``ws_server`` and
  ``ws_connect`` fixtures are, usable without pytest too.

This module does not import pytest; the pytest fixtures built on it are in
:mod:`syncws.pytest_plugin`. Everything made here defaults to
:data:`TEST_TIMEOUT` for ``connect_timeout`` and ``disconnect_timeout``, so that a
test that goes wrong fails within seconds instead of the library's default minute.
"""

from __future__ import annotations

import socket
import ssl
import threading
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple, TypeVar, cast

from ._deadline import Deadline
from ._options import check_options
from .client import ConnectOptions, connect, wrap_client_socket
from .connection import ConnectionOptions, WebSocketConnection
from .exceptions import ConnectionClosed, HandshakeError
from .request import (
    Handler,
    ServeOptions,
    WebSocketRequest,
    receive_request,
)
from .server import WebSocketServer
from .types import CloseReason

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "TEST_TIMEOUT",
    "ConnectionFactory",
    "ConnectionPair",
    "RecordingHandler",
    "ServerFactory",
    "ServerThread",
    "connection_pair",
    "echo",
]

#: Seconds: the default ``connect_timeout`` and ``disconnect_timeout`` of everything
#: made by this module and by the pytest fixtures, and the default of every wait.
TEST_TIMEOUT = 10.0
#: Seconds a stopped :class:`ServerThread` waits for its threads, after the shutdown.
THREAD_JOIN_TIMEOUT = 2.0

_T = TypeVar("_T")
#: What a reply callback of :class:`RecordingHandler` gets and may return.
Reply = Callable[[str | bytes], str | bytes | None]


# ------------------------------------------------------------------ connection pairs


class ConnectionPair(NamedTuple):
    """The two ends of one connection, as returned by :func:`connection_pair`.

    A tuple, ``(client, server)``, and a context manager that closes both on exit.
    """

    #: The client side (:attr:`~syncws.WebSocketConnection.is_client` is true).
    client: WebSocketConnection
    #: The server side.
    server: WebSocketConnection

    def close(self) -> None:
        """Close both ends: the client first (code 1000), then the server.

        Idempotent, as :meth:`~syncws.WebSocketConnection.close`; every thread of both
        connections has ended when it returns.
        """
        self.client.close()
        self.server.close()

    def __enter__(self) -> ConnectionPair:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close both ends (see :meth:`close`)."""
        self.close()


def connection_pair(
    *,
    path: str = "/",
    subprotocol: str | None = None,
    connect_timeout: float = TEST_TIMEOUT,
    client_options: ConnectOptions | None = None,
    server_options: ConnectionOptions | None = None,
    **options: Unpack[ConnectionOptions],
) -> ConnectionPair:
    """Connect a client and a server connection over a :func:`socket.socketpair`.

    Both opening handshakes run for real, the server's in a helper thread
    (``syncws-testing-handshake``) that has ended when this function returns; no port
    is opened and no handler runs. Use the pair as a context manager, which closes
    both ends on exit, or close both yourself::

        with connection_pair(max_message_size=1024) as (client, server):
            client.send_message("hello")
            assert server.get_message(timeout=5) == "hello"

    Each connection has a reader thread, as a client connection does; once both are
    closed, none of their threads is left.

    :param path: the resource the client asks for (the server's
        :attr:`~syncws.WebSocketConnection.path`).
    :param subprotocol: when given, the client offers it (unless ``client_options``
        gives ``subprotocols``) and the server accepts it.
    :param connect_timeout: seconds for the opening handshake of each side.
    :param client_options: options for the client side only, on top of ``options``:
        any of :class:`~syncws.ConnectOptions`, e.g. ``extra_headers``.
    :param server_options: options for the server side only, on top of ``options``
        (``connect_timeout`` is accepted there too).
    :param options: :class:`~syncws.ConnectionOptions` for both sides:
        ``message_queue_size``, ``max_message_size``, ``disconnect_timeout``,
        ``ping_interval``, ``ping_timeout`` and ``compression`` (permessage-deflate is
        used when both sides ask for it). ``disconnect_timeout`` defaults to
        :data:`TEST_TIMEOUT`.
    :raises TypeError: for an unknown option.
    :raises ValueError: for a bad option value.
    :raises HandshakeError: when a handshake fails.
    """
    check_options(options, "connection")
    shared: ConnectionOptions = {"disconnect_timeout": TEST_TIMEOUT, **options}
    client_args: ConnectOptions = {
        **shared,
        "connect_timeout": connect_timeout,
        **(client_options or {}),
    }
    if subprotocol is not None:
        client_args.setdefault("subprotocols", [subprotocol])
    # The server side takes ServeOptions, of which it uses the connection options
    # and connect_timeout.
    server_args = cast(
        "ServeOptions",
        {**shared, "connect_timeout": connect_timeout, **(server_options or {})},
    )
    check_options(client_args, "client")
    check_options(server_args, "handshake")
    client_sock, server_sock = socket.socketpair()
    handshake = _ServerHandshake(server_sock, subprotocol, server_args)
    try:
        # Closes client_sock if it fails; the server's side then sees the end of input.
        client = wrap_client_socket(client_sock, "localhost", path, **client_args)
    except BaseException:
        handshake.discard()
        raise
    try:
        server = handshake.result()
    except BaseException:
        client.close()
        raise
    return ConnectionPair(client, server)


class _ServerHandshake:
    """The server's side of :func:`connection_pair`'s handshake, in a thread of its own."""

    def __init__(self, sock: socket.socket, subprotocol: str | None, options: ServeOptions) -> None:
        self._sock = sock
        self._subprotocol = subprotocol
        self._options = options
        self._connection: WebSocketConnection | None = None
        self._error: BaseException | None = None
        # Not a daemon: it ends within connect_timeout, and is joined before returning.
        self._thread = threading.Thread(target=self._run, name="syncws-testing-handshake")
        self._thread.start()

    def _run(self) -> None:
        try:
            self._connection = self._accept()
        except BaseException as exc:
            self._error = exc

    def _accept(self) -> WebSocketConnection:
        timeout = self._options.get("connect_timeout", TEST_TIMEOUT)
        try:
            received = receive_request(self._sock, Deadline(timeout))
        except BaseException:
            self._sock.close()
            raise
        if received is None:
            self._sock.close()
            raise HandshakeError("no valid opening handshake from the client")
        request = WebSocketRequest(self._sock, *received, self._options)
        offered = self._subprotocol in request.proposed_subprotocols
        return request.accept(self._subprotocol if offered else None)

    def _join(self) -> None:
        # Every step of the handshake is bounded by connect_timeout: reading the
        # request, then sending the response.
        timeout = self._options.get("connect_timeout", TEST_TIMEOUT)
        self._thread.join(2 * timeout + THREAD_JOIN_TIMEOUT)
        if self._thread.is_alive():  # pragma: no cover - a bug
            raise RuntimeError("the server's handshake thread did not end")

    def result(self) -> WebSocketConnection:
        """Wait for the handshake; return the server connection or raise its error."""
        self._join()
        if self._error is not None:
            raise self._error
        assert self._connection is not None
        return self._connection

    def discard(self) -> None:
        """Wait for the thread after the client's side failed; close what it made."""
        self._join()
        if self._connection is not None:
            self._connection.close()


# ------------------------------------------------------------------------ handlers


def echo(request: WebSocketRequest) -> None:
    """Accept, then send every message back until the client closes (a handler)."""
    try:
        ws = request.accept()
    except OSError:
        return  # The client went away before the end of the handshake.
    for message in ws:
        ws.send_message(message)


class RecordingHandler:
    """A server handler that records what clients send, for assertions.

    It accepts every request (with ``subprotocol`` when the client offers it), records
    each message, and the close reason once the connection has closed. With
    ``echo=True`` it sends each message back; with ``reply``, it sends back what
    ``reply(message)`` returns, unless that is ``None``. Use one instance for one
    server; it serves any number of clients at once.

    The recorded lists are snapshots, safe to read from any thread; the ``wait_for_*``
    methods wait (without polling) until enough has been recorded::

        handler = RecordingHandler(echo=True)
        url = ws_server(handler)
        with syncws.connect(url) as ws:
            ws.send_message("hi")
            assert ws.get_message(timeout=5) == "hi"
        assert handler.wait_closed()[0].code == 1000

    :param echo: send every message back.
    :param reply: called with each message, in the handler's thread; what it returns,
        if not ``None``, is sent back. An exception fails the connection (code 1011)
        and is logged by the server (and reported by the ``ws_server`` fixture).
    :param subprotocol: the subprotocol to accept when a client offers it.
    :raises ValueError: when both ``echo`` and ``reply`` are given.
    """

    def __init__(
        self,
        *,
        echo: bool = False,
        reply: Reply | None = None,
        subprotocol: str | None = None,
    ) -> None:
        if echo and reply is not None:
            raise ValueError("give echo=True or a reply function, not both")
        self._reply: Reply | None = (lambda message: message) if echo else reply
        self._subprotocol = subprotocol
        self._changed = threading.Condition()
        # Guarded by _changed.
        self._connections: list[WebSocketConnection] = []
        self._messages: list[str | bytes] = []
        self._close_reasons: list[CloseReason] = []

    def __call__(self, request: WebSocketRequest) -> None:
        """Serve one client (called by the server, in the client's thread)."""
        offered = self._subprotocol in request.proposed_subprotocols
        try:
            ws = request.accept(self._subprotocol if offered else None)
        except OSError:
            return  # The client went away before the end of the handshake.
        self._record(self._connections, ws)
        failed = True
        try:
            for message in ws:
                self._record(self._messages, message)
                answer = None if self._reply is None else self._reply(message)
                if answer is not None:
                    ws.send_message(answer)
            failed = False
        except ConnectionClosed:
            failed = False
        finally:
            # Close here rather than leave it to the server, to know the reason.
            ws.close(1011 if failed else 1000)
            reason = ws.close_reason
            assert reason is not None  # The connection is closed.
            self._record(self._close_reasons, reason)

    def _record(self, into: list[_T], item: _T) -> None:
        with self._changed:
            into.append(item)
            self._changed.notify_all()

    @property
    def connections(self) -> list[WebSocketConnection]:
        """The server side of every connection accepted so far, in order."""
        with self._changed:
            return list(self._connections)

    @property
    def messages(self) -> list[str | bytes]:
        """Every message received so far, from all connections, in arrival order."""
        with self._changed:
            return list(self._messages)

    @property
    def close_reasons(self) -> list[CloseReason]:
        """The close reason of every connection that has closed, in closing order."""
        with self._changed:
            return list(self._close_reasons)

    def _wait(self, items: list[_T], count: int, what: str, timeout: float) -> list[_T]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(items) >= count, timeout):
                raise TimeoutError(
                    f"{len(items)} of {count} {what} after {timeout}s: {items!r}"[:500]
                )
            return list(items)

    def wait_for_connections(
        self, count: int = 1, timeout: float = TEST_TIMEOUT
    ) -> list[WebSocketConnection]:
        """Wait until ``count`` connections were accepted; return :attr:`connections`.

        :raises TimeoutError: when fewer were accepted within ``timeout`` seconds.
        """
        return self._wait(self._connections, count, "connections", timeout)

    def wait_for_messages(self, count: int, timeout: float = TEST_TIMEOUT) -> list[str | bytes]:
        """Wait until ``count`` messages were received; return :attr:`messages`.

        :raises TimeoutError: when fewer arrived within ``timeout`` seconds.
        """
        return self._wait(self._messages, count, "messages", timeout)

    def wait_closed(self, count: int = 1, timeout: float = TEST_TIMEOUT) -> list[CloseReason]:
        """Wait until ``count`` connections have closed; return :attr:`close_reasons`.

        :raises TimeoutError: when fewer closed within ``timeout`` seconds.
        """
        return self._wait(self._close_reasons, count, "closed connections", timeout)


# -------------------------------------------------------------------------- servers


class ServerThread:
    """A :class:`~syncws.WebSocketServer` serving in a background thread, for a test.

    The server listens as soon as this object is made (on a free port by default), so
    :attr:`url` is known at once; :meth:`start` serves, :meth:`stop` shuts down and
    checks that nothing the server started is still running. As a context manager, it
    starts on entry and stops on exit::

        with ServerThread(RecordingHandler(echo=True)) as server:
            with syncws.connect(server.url) as ws:
                ...

    Exceptions the handler raised (other than :exc:`~syncws.ConnectionClosed`) are
    collected in :attr:`errors`; the server still logs them and closes the
    connection with code 1011, as usual.

    :param handler: the server's handler.
    :param host: the address to listen on.
    :param port: the TCP port; ``0`` picks a free one.
    :param ssl_context: for TLS (``wss://`` URLs): a server-side :class:`ssl.SSLContext`.
    :param options: see :class:`~syncws.ServeOptions`; ``connect_timeout`` and
        ``disconnect_timeout`` default to :data:`TEST_TIMEOUT`.
    """

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        **options: Unpack[ServeOptions],
    ) -> None:
        self._handler = handler
        self._lock = threading.Lock()
        #: Exceptions the handler raised, in order (a test may clear it).
        self.errors: list[Exception] = []
        # Guarded by _lock: what the server started for its clients.
        self._handler_threads: list[threading.Thread] = []
        self._accepted: list[WebSocketConnection] = []
        self._thread: threading.Thread | None = None
        serve_options: ServeOptions = {"connect_timeout": TEST_TIMEOUT}
        serve_options["disconnect_timeout"] = TEST_TIMEOUT
        serve_options.update(options)
        #: The server itself.
        self.server = WebSocketServer(self._handle, host, port, ssl_context, **serve_options)
        scheme = "ws" if ssl_context is None else "wss"
        shown = f"[{host}]" if ":" in host else host
        #: The URL of the server, e.g. ``"ws://127.0.0.1:43210/"``.
        self.url = f"{scheme}://{shown}:{self.server.port}/"

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self.server.port

    def _handle(self, request: WebSocketRequest) -> None:
        with self._lock:
            self._handler_threads.append(threading.current_thread())
        try:
            self._handler(request)
        except ConnectionClosed:
            raise  # The client went away: not a failure of the handler.
        except Exception as exc:
            with self._lock:
                self.errors.append(exc)
            raise
        finally:
            connection = request.connection
            if connection is not None:
                with self._lock:
                    self._accepted.append(connection)

    def start(self) -> ServerThread:
        """Serve in a thread named ``syncws-testing-server-<port>``; return ``self``.

        :raises RuntimeError: when already started.
        """
        if self._thread is not None:
            raise RuntimeError("the server was already started")
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            name=f"syncws-testing-server-{self.port}",
            # A daemon, as the server's own threads: a test that never calls stop()
            # cannot keep the interpreter alive.
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down, then check that its threads have all ended.

        Open connections are closed with code 1001 (see
        :meth:`~syncws.WebSocketServer.shutdown`). Idempotent.

        :raises AssertionError: when a thread the server started (serving, handler,
            or reader thread of an accepted connection) is still running
            :data:`THREAD_JOIN_TIMEOUT` seconds after the shutdown.
        """
        self.server.shutdown()
        with self._lock:
            threads = [*self._handler_threads]
            threads += [c.reader_thread for c in self._accepted if c.reader_thread is not None]
        if self._thread is not None:
            threads.append(self._thread)
        deadline = Deadline(THREAD_JOIN_TIMEOUT)
        for thread in threads:
            thread.join(deadline.remaining())
        alive = [thread.name for thread in threads if thread.is_alive()]
        if alive:
            raise AssertionError(
                f"threads of the server at {self.url} still running after it stopped: "
                f"{alive} (a handler that does not return when its connection closes?)"
            )

    def __enter__(self) -> ServerThread:
        """Start serving (see :meth:`start`)."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop (see :meth:`stop`)."""
        self.stop()


# ------------------------------------------------------- what the fixtures are made of


class ServerFactory:
    """Start :class:`ServerThread` servers and stop them all later: the ``ws_server`` fixture.

    Not thread-safe: call it from the test's thread.
    """

    def __init__(self) -> None:
        #: Every server started, in order (the last one: ``servers[-1]``).
        self.servers: list[ServerThread] = []

    def __call__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        **options: Unpack[ServeOptions],
    ) -> str:
        """Start a server with ``handler``; return its URL, e.g. ``ws://127.0.0.1:43210/``.

        The arguments are those of :class:`ServerThread`; with an ``ssl_context`` the
        URL is a ``wss://`` one. ``connect_timeout`` and ``disconnect_timeout`` default
        to :data:`TEST_TIMEOUT`.
        """
        server = ServerThread(handler, host, port, ssl_context, **options)
        self.servers.append(server)
        return server.start().url

    def stop_all(self) -> list[str]:
        """Stop every server, the last started first; return the problems found.

        A problem is a thread still running after a server stopped (see
        :meth:`ServerThread.stop`), or an exception in a server's :attr:`ServerThread.errors`.
        """
        problems = []
        for server in reversed(self.servers):
            try:
                server.stop()
            except AssertionError as exc:
                problems.append(str(exc))
            for error in server.errors:
                trace = "".join(traceback.format_exception(error)).rstrip()
                problems.append(f"the handler of the server at {server.url} raised:\n{trace}")
        return problems


class ConnectionFactory:
    """Open client connections and close them all later: the ``ws_connect`` fixture.

    Not thread-safe: call it from the test's thread.
    """

    def __init__(self) -> None:
        #: Every connection opened, in order.
        self.connections: list[WebSocketConnection] = []

    def __call__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        **options: Unpack[ConnectOptions],
    ) -> WebSocketConnection:
        """Open a connection to ``url`` with :func:`~syncws.connect`; return it.

        ``connect_timeout`` and ``disconnect_timeout`` default to
        :data:`TEST_TIMEOUT`. The test may close it itself.
        """
        arguments: ConnectOptions = {
            "connect_timeout": TEST_TIMEOUT,
            "disconnect_timeout": TEST_TIMEOUT,
        }
        arguments.update(options)
        ws = connect(url, ssl_context=ssl_context, **arguments)
        self.connections.append(ws)
        return ws

    def close_all(self) -> None:
        """Close every connection (code 1000), the last opened first."""
        for ws in reversed(self.connections):
            ws.close()
