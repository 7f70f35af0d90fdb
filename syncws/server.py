"""The threaded server: a handler function per client, each in its own thread.

The accept loop (:meth:`WebSocketServer.serve_forever`) only accepts sockets. Each
client then gets a thread of its own that runs the TLS handshake, reads the HTTP
upgrade request (all within ``connect_timeout``), and calls the handler with a
:class:`WebSocketRequest`; the handler accepts or rejects it. A slow client can
therefore never stall the accept loop or the other clients.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import selectors
import socket
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request
from wsproto.utilities import RemoteProtocolError

from ._core import ABORT_JOIN_TIMEOUT, endpoint, logger
from ._deadline import Deadline
from ._http import HeadersLike, check_headers, response
from .connection import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DISCONNECT_TIMEOUT,
    ConnectionOptions,
    WebSocketConnection,
    connection_args,
)
from .types import Endpoint

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "Handler",
    "ServeOptions",
    "WebSocketRequest",
    "WebSocketServer",
    "serve_websocket",
    "wrap_server_socket",
]

#: A handler: called with each client's request, in that client's own thread.
Handler = Callable[["WebSocketRequest"], None]

#: How long a rejected client may take to read the response before its socket closes.
_LINGER = 2.0
#: Clients over ``max_connections`` that may wait at once for their 503 answer.
_MAX_OVERFLOW = 64
_LISTEN_BACKLOG = 1024
_handler_ids = itertools.count(1)


class ServeOptions(ConnectionOptions, total=False):
    """Keyword options of the server functions, besides :class:`ConnectionOptions`.

    ``connect_timeout`` bounds the TLS handshake and the HTTP request of each client
    together: a client that is slower is dropped (a defence against slowloris).
    """

    #: Clients served at once; beyond it, new clients get HTTP 503 (default: no limit).
    max_connections: int | None


_OPTION_NAMES = frozenset(ServeOptions.__annotations__)


def _check_options(options: ServeOptions) -> None:
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    max_connections = options.get("max_connections")
    if max_connections is not None and max_connections < 1:
        raise ValueError("max_connections must be >= 1 or None")


def _close_socket(sock: socket.socket) -> None:
    """Close after a response: FIN first, then let the client read it (bounded)."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_WR)
        sock.settimeout(_LINGER)
        # Read what the client still sends, so that closing does not turn into a
        # reset that could destroy the response before the client has read it.
        while sock.recv(65536):
            pass
    sock.close()


class WebSocketRequest:
    """A client's opening handshake, handed to the server's handler.

    The handler inspects it and calls :meth:`accept` or :meth:`reject` once.
    Not thread-safe: use it from the handler's thread.
    """

    def __init__(
        self,
        sock: socket.socket,
        ws: WSConnection,
        event: Request,
        options: ServeOptions,
        on_accept: Callable[[WebSocketConnection], None] | None = None,
    ) -> None:
        self._sock = sock
        self._ws = ws
        self._event = event
        self._options = options
        self._on_accept = on_accept
        self._connection: WebSocketConnection | None = None
        self._answered = False
        is_ssl = isinstance(sock, ssl.SSLSocket)
        self._local = endpoint(sock, local=True, is_ssl=is_ssl)
        self._remote = endpoint(sock, local=False, is_ssl=is_ssl)
        self._headers = ((b"host", event.host.encode("idna")), *event.extra_headers)

    @property
    def headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """The request headers, ``(name, value)`` pairs of bytes, names in lower case.

        ``Host`` is included; ``Sec-WebSocket-Protocol`` is given by
        :attr:`proposed_subprotocols` and ``Sec-WebSocket-Extensions`` is left out.
        """
        return self._headers

    @property
    def path(self) -> str:
        """The requested resource: the URL path with its query string."""
        return self._event.target

    @property
    def proposed_subprotocols(self) -> tuple[str, ...]:
        """The subprotocols the client offers, in its order of preference."""
        return tuple(self._event.subprotocols)

    @property
    def local(self) -> Endpoint | str:
        """The server's end of the connection (a path string for Unix sockets)."""
        return self._local

    @property
    def remote(self) -> Endpoint | str:
        """The client's end of the connection (a path string for Unix sockets)."""
        return self._remote

    def accept(
        self, subprotocol: str | None = None, extra_headers: HeadersLike | None = None
    ) -> WebSocketConnection:
        """Accept the handshake and return the open connection.

        :param subprotocol: the subprotocol to use, one of :attr:`proposed_subprotocols`.
        :param extra_headers: extra headers for the ``101`` response.
        :raises ValueError: for a subprotocol the client did not offer, or a bad header.
        :raises RuntimeError: when the request was already accepted or rejected.
        :raises OSError: when the client went away meanwhile.
        """
        if subprotocol is not None and subprotocol not in self._event.subprotocols:
            raise ValueError(f"the client did not offer the subprotocol {subprotocol!r}")
        headers = check_headers(extra_headers)
        self._answer()
        try:
            data = self._ws.send(AcceptConnection(subprotocol=subprotocol, extra_headers=headers))
            self._sock.settimeout(self._options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))
            self._sock.sendall(data)
            connection = WebSocketConnection(
                self._sock,
                self._ws,
                path=self.path,
                subprotocol=subprotocol,
                handshake_headers=self._headers,
                **connection_args(self._options),
            )
        except BaseException:
            self._sock.close()
            raise
        self._connection = connection
        if self._on_accept is not None:
            self._on_accept(connection)
        return connection

    def reject(
        self,
        status_code: int,
        extra_headers: HeadersLike | None = None,
        body: bytes | str | None = None,
    ) -> None:
        """Refuse the handshake with an HTTP response, then close the connection.

        :param status_code: the HTTP status, e.g. 403 (not 101).
        :param extra_headers: extra response headers.
        :param body: the response body; ``str`` is sent as UTF-8 text.
        :raises ValueError: for status 101 or outside 100-599, or a bad header.
        :raises RuntimeError: when the request was already accepted or rejected.
        """
        if not 100 <= status_code <= 599 or status_code == 101:
            raise ValueError(f"invalid status code for a rejection: {status_code}")
        headers = check_headers(extra_headers)
        payload = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        self._answer()
        with contextlib.suppress(OSError):
            self._sock.settimeout(self._options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))
            self._sock.sendall(response(status_code, headers, payload))
        _close_socket(self._sock)

    def _answer(self) -> None:
        if self._answered:
            raise RuntimeError("this request was already accepted or rejected")
        self._answered = True


def _error_status(exc: RemoteProtocolError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Choose the HTTP answer to a request wsproto refused: status, headers, body."""
    message = str(exc)
    hint = exc.event_hint
    status = hint.status_code if isinstance(hint, RejectConnection) else 400
    headers = list(hint.headers) if isinstance(hint, RejectConnection) else []
    # wsproto wraps h11's errors, whose status hint (431 for huge headers) is better.
    status = getattr(exc.__context__, "error_status_hint", status)
    if "Upgrade" in message and status == 400:
        # A plain HTTP request: RFC 7231, section 6.5.15 wants Upgrade with a 426.
        status, headers = 426, [(b"Upgrade", b"websocket")]
        message = "this is a WebSocket server: send a WebSocket upgrade request"
    return status, headers, f"{status} {message}\n".encode()


def _receive_request(
    sock: socket.socket, deadline: Deadline
) -> tuple[WSConnection, Request] | None:
    """Read the upgrade request; answer and return None when it is not a valid one."""
    ws = WSConnection(ConnectionType.SERVER)
    while True:
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            raise TimeoutError("no complete handshake in time")
        sock.settimeout(remaining)
        data = sock.recv(65536)
        try:
            ws.receive_data(data or None)
        except RemoteProtocolError as exc:
            status, headers, body = _error_status(exc)
            logger.debug("bad handshake request: %s", exc)
            with contextlib.suppress(OSError):
                sock.sendall(response(status, headers, body))
            return None
        for event in ws.events():
            if isinstance(event, Request):
                return ws, event
        if not data:
            return None


def _serve(
    sock: socket.socket,
    handler: Handler,
    ssl_context: ssl.SSLContext | None,
    options: ServeOptions,
    *,
    overloaded: bool = False,
    on_socket: Callable[[socket.socket], None] | None = None,
    on_accept: Callable[[WebSocketConnection], None] | None = None,
) -> None:
    """Serve one client in the calling thread: TLS, handshake, handler, close."""
    deadline = Deadline(options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))
    request = None
    try:
        try:
            if ssl_context is not None:
                sock.settimeout(deadline.remaining())
                sock = ssl_context.wrap_socket(sock, server_side=True)
                if on_socket is not None:
                    on_socket(sock)
            received = _receive_request(sock, deadline)
        except (OSError, ValueError) as exc:
            logger.debug("opening handshake failed: %r", exc)
            return
        if received is None:
            return
        request = WebSocketRequest(sock, *received, options, on_accept)
        if overloaded:
            request.reject(503, [("Retry-After", "1")], "503 too many connections\n")
            return
        _run_handler(handler, request)
    finally:
        # accept() hands the socket to the connection, reject() closes it.
        if request is None or not request._answered:
            _close_socket(sock)


def _run_handler(handler: Handler, request: WebSocketRequest) -> None:
    """Call the handler; close or answer whatever it left open."""
    try:
        handler(request)
    except Exception:
        logger.exception("connection handler failed")
        failed = True
    else:
        failed = False
    connection = request._connection
    if connection is not None:
        connection._close(1011 if failed else 1000, None)
    elif not request._answered:
        if not failed:
            logger.warning("connection handler returned without accepting or rejecting")
        request.reject(500, body="500 internal server error\n")


def wrap_server_socket(
    sock: socket.socket,
    handler: Handler,
    ssl_context: ssl.SSLContext | None = None,
    **options: Unpack[ServeOptions],
) -> None:
    """Serve one client on a socket that is already accepted, in the calling thread.

    Runs the TLS handshake (when ``ssl_context`` is given), reads the upgrade request,
    calls ``handler`` and closes the connection when it returns, as
    :class:`WebSocketServer` does for each client. Returns when all of that is done;
    the socket is closed. This is the integration point for other servers, such as
    :mod:`socketserver`.

    :param sock: an accepted stream socket.
    :param handler: called with the :class:`WebSocketRequest`.
    :param ssl_context: for TLS: a server-side :class:`ssl.SSLContext`.
    :param options: see :class:`ServeOptions` (``max_connections`` is ignored here).
    """
    _check_options(options)
    _serve(sock, handler, ssl_context, options)


def _bind(host: str | None, port: int) -> list[socket.socket]:
    """Open listening sockets: all interfaces, one address, or every address of a name."""
    if not host:
        if socket.has_dualstack_ipv6():
            return [
                socket.create_server(
                    ("", port),
                    family=socket.AF_INET6,
                    dualstack_ipv6=True,
                    backlog=_LISTEN_BACKLOG,
                )
            ]
        return [socket.create_server(("", port), backlog=_LISTEN_BACKLOG)]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for family, _, _, _, address in infos:
            if (family, address[0]) in seen:
                continue
            seen.add((family, address[0]))
            # With port 0, every address listens on the port the first one got.
            bind_port = sockets[0].getsockname()[1] if sockets and port == 0 else port
            try:
                sockets.append(
                    socket.create_server(
                        (address[0], bind_port, *address[2:]),
                        family=family,
                        backlog=_LISTEN_BACKLOG,
                    )
                )
            except OSError as exc:
                # A name may resolve to an address family this machine lacks (::1
                # without IPv6): skip it, as long as another address works.
                if exc.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    raise
                logger.debug("cannot listen on %s: %s", address[0], exc)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise OSError(errno.EADDRNOTAVAIL, f"cannot listen on any address of {host!r}")
    return sockets


class WebSocketServer:
    """A WebSocket server that runs ``handler`` in a thread of its own for each client.

    The listening sockets are bound when the server is created, so :attr:`port` is
    known at once. Serve with :meth:`serve_forever`, or use the server as a context
    manager, which serves in a background thread and shuts down on exit::

        with syncws.WebSocketServer(handler, "127.0.0.1", 0) as server:
            with syncws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                ...

    Handler threads are daemon threads named ``syncws-handler-<n>``: a handler that
    never returns cannot keep the interpreter alive once :meth:`shutdown` gave up on
    it. The server itself only starts threads through :meth:`__enter__` and for its
    clients, and :meth:`shutdown` joins them all.

    :param handler: called with a :class:`WebSocketRequest` for each client.
    :param host: a host name (every address it resolves to), an IP address, or
        ``None`` for all interfaces.
    :param port: the TCP port; ``0`` picks a free one.
    :param ssl_context: for TLS: a server-side :class:`ssl.SSLContext`.
    :param options: see :class:`ServeOptions`.
    """

    def __init__(
        self,
        handler: Handler,
        host: str | None,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        **options: Unpack[ServeOptions],
    ) -> None:
        _check_options(options)
        self._handler = handler
        self._ssl_context = ssl_context
        self._options = options
        self._max_connections = options.get("max_connections")
        self._lock = threading.Lock()
        self._listeners = _bind(host, port)
        for listener in self._listeners:
            listener.setblocking(False)
        self._port = int(self._listeners[0].getsockname()[1])
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stopping = False
        self._serving = False
        self._loop_done = threading.Event()
        self._loop_done.set()
        self._closed = False
        self._background: threading.Thread | None = None
        # Guarded by _lock.
        self._threads: set[threading.Thread] = set()
        self._sockets: dict[threading.Thread, socket.socket] = {}
        self._connections: set[WebSocketConnection] = set()
        self._overflow = 0

    # -- information -----------------------------------------------------------------

    @property
    def listeners(self) -> list[Endpoint | str]:
        """The listening sockets, as endpoints."""
        is_ssl = self._ssl_context is not None
        return [endpoint(sock, local=True, is_ssl=is_ssl) for sock in self._listeners]

    @property
    def port(self) -> int:
        """The TCP port the server listens on (the real one when 0 was asked)."""
        return self._port

    @property
    def connections(self) -> frozenset[WebSocketConnection]:
        """The accepted connections that are still open (a snapshot)."""
        with self._lock:
            return frozenset(c for c in self._connections if not c.is_closed)

    def __repr__(self) -> str:
        return f"<WebSocketServer {', '.join(map(str, self.listeners))}>"

    # -- serving -------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept clients until :meth:`shutdown` is called from another thread.

        On :exc:`KeyboardInterrupt` the server shuts down gracefully, then the
        exception propagates.

        :raises RuntimeError: when the server is already serving or was shut down.
        """
        with self._lock:
            if self._stopping:
                raise RuntimeError("the server was shut down")
            if self._serving:
                raise RuntimeError("the server is already serving")
            self._serving = True
            self._loop_done.clear()
        for address in self.listeners:
            logger.info("syncws server listening on %s", getattr(address, "url", address))
        try:
            self._accept_loop()
        except KeyboardInterrupt:
            self._loop_done.set()
            self.shutdown()
            raise
        finally:
            self._loop_done.set()

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ)
            for listener in self._listeners:
                selector.register(listener, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                        continue
                    self._accept(key.fileobj, selector)  # type: ignore[arg-type]

    def _accept(self, listener: socket.socket, selector: selectors.BaseSelector) -> None:
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                # Out of resources: back off briefly instead of spinning on accept.
                logger.error("cannot accept a client: %s", exc)
                selector.select(0.1)
                return
            raise
        self._start_client(sock)

    def _start_client(self, sock: socket.socket) -> None:
        with self._lock:
            if self._stopping:
                sock.close()
                return
            overloaded = (
                self._max_connections is not None
                and len(self._threads) - self._overflow >= self._max_connections
            )
            if overloaded:
                if self._overflow >= _MAX_OVERFLOW:
                    sock.close()
                    return
                self._overflow += 1
            thread = threading.Thread(
                target=self._client_main,
                args=(sock, overloaded),
                name=f"syncws-handler-{next(_handler_ids)}",
                # A daemon, so that a handler that never returns cannot keep the
                # interpreter alive; shutdown() joins it within its timeout.
                daemon=True,
            )
            self._threads.add(thread)
            self._sockets[thread] = sock
        thread.start()

    def _client_main(self, sock: socket.socket, overloaded: bool) -> None:
        me = threading.current_thread()
        try:
            _serve(
                sock,
                self._handler,
                self._ssl_context,
                self._options,
                overloaded=overloaded,
                on_socket=lambda tls: self._track_socket(me, tls),
                on_accept=self._track_connection,
            )
        except Exception:
            logger.exception("error while serving a client")
        finally:
            with self._lock:
                self._threads.discard(me)
                self._sockets.pop(me, None)
                if overloaded:
                    self._overflow -= 1
                self._connections = {c for c in self._connections if not c.is_closed}

    def _track_socket(self, thread: threading.Thread, sock: socket.socket) -> None:
        with self._lock:
            self._sockets[thread] = sock

    def _track_connection(self, connection: WebSocketConnection) -> None:
        with self._lock:
            self._sockets.pop(threading.current_thread(), None)
            self._connections.add(connection)
            stopping = self._stopping
        if stopping:
            connection._start_close(1001, "server shutting down")

    # -- stopping ------------------------------------------------------------------------

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop serving and close every connection gracefully.

        Stops accepting, sends every open connection a close frame with code 1001
        (going away), and waits up to ``timeout`` seconds for the handlers to return;
        connections still open then are aborted. Messages a handler has received stay
        readable by it. Every thread the server started is joined; a handler that
        ignores its closed connection and never returns is left running as a daemon
        thread and a warning is logged. Idempotent; callable from any thread.

        :param timeout: seconds to wait for the handlers (default:
            ``disconnect_timeout``).
        """
        if timeout is None:
            timeout = self._options.get("disconnect_timeout", DEFAULT_DISCONNECT_TIMEOUT)
        deadline = Deadline(timeout)
        with self._lock:
            self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._background is not threading.current_thread():
            self._loop_done.wait(deadline.remaining())
        with self._lock:
            already_closed, self._closed = self._closed, True
            sockets = list(self._sockets.values())
            connections = list(self._connections)
        if not already_closed:
            for listener in self._listeners:
                listener.close()
        # Wake handshakes in progress; their threads close their sockets.
        for sock in sockets:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        for connection in connections:
            connection._start_close(1001, "server shutting down")
        self._join_handlers(deadline)
        self._join_background(deadline)
        if not already_closed:
            self._wake_r.close()
            self._wake_w.close()
            logger.info("syncws server stopped")

    def _join_handlers(self, deadline: Deadline) -> None:
        me = threading.current_thread()
        with self._lock:
            threads = [t for t in self._threads if t is not me]
        for thread in threads:
            thread.join(deadline.remaining())
        with self._lock:
            late = [c for c in self._connections if not c.is_closed]
        for connection in late:
            connection._abort("server shut down")
        for thread in threads:
            thread.join(ABORT_JOIN_TIMEOUT if thread.is_alive() else 0)
            if thread.is_alive():
                logger.warning("handler thread %s did not return after shutdown", thread.name)

    def _join_background(self, deadline: Deadline) -> None:
        background = self._background
        if background is not None and background is not threading.current_thread():
            background.join(deadline.remaining())

    def __enter__(self) -> WebSocketServer:
        """Serve in a background thread named ``syncws-server-<port>``."""
        self._background = threading.Thread(
            target=self.serve_forever, name=f"syncws-server-{self.port}", daemon=True
        )
        self._background.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Shut the server down (see :meth:`shutdown`)."""
        self.shutdown()


def serve_websocket(
    handler: Handler,
    host: str | None,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    **options: Unpack[ServeOptions],
) -> None:
    """Serve WebSocket clients until interrupted.

    Creates a :class:`WebSocketServer` and serves in the calling thread. Ctrl-C
    (:exc:`KeyboardInterrupt`) shuts the server down gracefully and returns.

    :param handler: called with a :class:`WebSocketRequest` for each client, in a
        thread of its own.
    :param host: a host name, an IP address, or ``None`` for all interfaces.
    :param port: the TCP port; ``0`` picks a free one.
    :param ssl_context: for TLS: a server-side :class:`ssl.SSLContext`.
    :param options: see :class:`ServeOptions`.
    """
    server = WebSocketServer(handler, host, port, ssl_context, **options)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("interrupted")
    finally:
        server.shutdown()
