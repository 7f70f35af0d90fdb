"""The request a handler gets: a client's opening handshake, to accept or reject.

:class:`WebSocketRequest` answers the client once, with the ``101`` that opens the
connection or with an HTTP error; :func:`run_hook` and :func:`run_handler` call the
application's ``process_request`` hook and handler with it, and answer or close
whatever they leave open.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from wsproto.connection import Connection, ConnectionType
from wsproto.events import Request

from ._deadline import Deadline
from ._deflate import deflate_extensions
from ._forwarded import client_address
from ._http import HeadersLike, add_header, check_header_option, check_headers, product, response
from ._options import seconds
from ._read_request import PlainRequest
from ._transport import endpoint
from ._upgrade import response_bytes
from .connection import WebSocketConnection, connection_args
from .exceptions import ConnectionClosed
from .types import Endpoint

if TYPE_CHECKING:
    from ._serve_options import ServeOptions

logger = logging.getLogger("syncws")

__all__ = ["Handler", "WebSocketRequest", "close_socket", "run_handler", "run_hook"]

#: A handler: called with each client's request, in that client's own thread. Also the
#: type of the ``process_request`` hook, which runs before the handler and may reject
#: the request.
Handler = Callable[["WebSocketRequest"], None]

#: How long a rejected client may take to read the response before its socket closes.
_LINGER = 2.0


def close_socket(sock: socket.socket) -> None:
    """Close after a response: FIN first, then let the client read it (bounded)."""
    deadline = Deadline(_LINGER)
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_WR)
        # Read what the client still sends, so that closing does not turn into a
        # reset that could destroy the response before the client has read it.
        while not deadline.expired():
            sock.settimeout(deadline.remaining())
            if not sock.recv(65536):
                break
    sock.close()


def _host_bytes(host: str) -> bytes:
    """Turn back into bytes the Host header that wsproto decoded as IDNA."""
    if host.isascii():
        return host.encode("ascii")
    try:
        return host.encode("idna")
    except UnicodeError:
        return host.encode("utf-8", "surrogateescape")


class WebSocketRequest:
    """A client's opening handshake, handed to the server's handler.

    The handler inspects it and calls :meth:`accept` or :meth:`reject` once.
    Not thread-safe: use it from the handler's thread.
    """

    def __init__(
        self,
        sock: socket.socket,
        event: Request | PlainRequest,
        early_data: bytes,
        options: ServeOptions,
        *,
        on_accept: Callable[[WebSocketConnection], None] | None = None,
        reader_on_demand: bool = False,
    ) -> None:
        self._sock = sock
        self._reader_on_demand = reader_on_demand
        # A plain HTTP request (no Upgrade) cannot be accepted: only a hook sees it.
        self._event = event if isinstance(event, Request) else None
        self._method = event.method if isinstance(event, PlainRequest) else "GET"
        self._target = event.target
        self._early_data = early_data
        self._options = options
        self._on_accept = on_accept
        self._connection: WebSocketConnection | None = None
        self._answered = False
        self._in_hook = False
        # What accept() raised when the client could not take the 101 response.
        self._client_gone: OSError | None = None
        #: The user name the client authenticated as, set by :func:`~syncws.basic_auth`
        #: (or by your own ``process_request`` hook); ``None`` otherwise.
        self.username: str | None = None
        is_ssl = isinstance(sock, ssl.SSLSocket)
        self._local = endpoint(sock, local=True, is_ssl=is_ssl)
        if isinstance(event, Request):
            self._headers = ((b"host", _host_bytes(event.host)), *event.extra_headers)
        else:
            self._headers = event.headers
        peer = endpoint(sock, local=False, is_ssl=is_ssl)
        self._remote = client_address(peer, self._headers, options.get("trusted_proxies"))
        if self._remote != peer and isinstance(self._remote, Endpoint):
            logger.debug("%s forwards a request of %s", peer, self._remote.address)

    @property
    def headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """The request headers, ``(name, value)`` pairs of bytes, names in lower case.

        ``Host`` is included; ``Sec-WebSocket-Protocol`` is given by
        :attr:`proposed_subprotocols` and ``Sec-WebSocket-Extensions`` is left out.
        """
        return self._headers

    def header(self, name: str) -> str | None:
        """Return the value of the first header called ``name`` (any case), or ``None``.

        Values are decoded as ISO-8859-1, which never fails; they are ASCII in
        practice.
        """
        key = name.lower().encode("latin-1")
        for header_name, value in self._headers:
            if header_name.lower() == key:
                return value.decode("latin-1")
        return None

    @property
    def origin(self) -> str | None:
        """The ``Origin`` header: the web page's origin for a browser, else usually ``None``."""
        return self.header("origin")

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies of the ``Cookie`` headers, by name (the first one wins)."""
        cookies: dict[str, str] = {}
        for name, value in self._headers:
            if name.lower() != b"cookie":
                continue
            for pair in value.decode("latin-1").split(";"):
                key, sep, item = pair.partition("=")
                key, item = key.strip(), item.strip()
                if sep and key:
                    if len(item) >= 2 and item[0] == item[-1] == '"':
                        item = item[1:-1]
                    cookies.setdefault(key, item)
        return cookies

    @property
    def path(self) -> str:
        """The requested resource: the URL path with its query string."""
        return self._target

    @property
    def is_upgrade(self) -> bool:
        """Whether this is a WebSocket upgrade request.

        ``False`` for a plain HTTP ``GET`` or ``HEAD`` request (one without an
        ``Upgrade`` header), such as a load balancer's health check: only a
        ``process_request`` hook sees those, and may answer them with :meth:`respond`;
        the server answers the others with ``426 Upgrade Required``.
        """
        return self._event is not None

    @property
    def proposed_subprotocols(self) -> tuple[str, ...]:
        """The subprotocols the client offers, in its order of preference."""
        return () if self._event is None else tuple(self._event.subprotocols)

    @property
    def local(self) -> Endpoint | str:
        """The server's end of the connection (a path string for Unix sockets)."""
        return self._local

    @property
    def remote(self) -> Endpoint | str:
        """The client's end of the connection (a path string for Unix sockets).

        When the TCP peer is one of the server's ``trusted_proxies``, the client's
        address that the proxy forwarded instead, with port ``0`` (see
        :ref:`trusted-proxies`).
        """
        return self._remote

    @property
    def connection(self) -> WebSocketConnection | None:
        """The connection :meth:`accept` returned; ``None`` before, or after a rejection.

        Part of the interface for syncws's own tools (:mod:`syncws.testing`); not public
        API.
        """
        return self._connection

    @property
    def answered(self) -> bool:
        """Whether :meth:`accept` or :meth:`reject` was called.

        Part of the interface for syncws's own tools (:mod:`syncws.request`); not
        public API.
        """
        return self._answered

    def accept(
        self, subprotocol: str | None = None, extra_headers: HeadersLike | None = None
    ) -> WebSocketConnection:
        """Accept the handshake and return the open connection.

        :param subprotocol: the subprotocol to use, one of :attr:`proposed_subprotocols`.
        :param extra_headers: extra headers for the ``101`` response; a ``Server`` header
            among them replaces the one of the ``server_header`` option.
        :raises ValueError: for a subprotocol the client did not offer, or a bad header.
        :raises RuntimeError: when the request was already accepted or rejected, or
            when called from a ``process_request`` hook, which may only reject.
        :raises OSError: when the client went away meanwhile (a reset, a closed
            connection) or did not take the response within ``connect_timeout``; the
            socket is then closed. A handler may let this exception propagate: the
            server logs it as one ``DEBUG`` line, not as a handler failure.
        """
        if self._in_hook:
            raise RuntimeError("a process_request hook may reject a request, not accept it")
        if self._event is None:
            raise RuntimeError("a plain HTTP request cannot be accepted as a WebSocket")
        if subprotocol is not None and subprotocol not in self.proposed_subprotocols:
            raise ValueError(f"the client did not offer the subprotocol {subprotocol!r}")
        headers = check_headers(extra_headers)
        server = self._options.get("server_header", product())
        if server is not None:
            add_header(headers, check_header_option("server_header", "Server", server))
        self._answer()
        try:
            extensions = deflate_extensions(self._options)
            data = response_bytes(self._event, subprotocol, extensions, headers)
            self._sock.settimeout(seconds(self._options, "connect_timeout"))
            try:
                self._sock.sendall(data)
            except OSError as exc:
                self._client_gone = exc
                raise
            # Frames that came with the request: the reader parses them first.
            engine = Connection(ConnectionType.SERVER, extensions, self._early_data)
            connection = WebSocketConnection(
                self._sock,
                engine,
                path=self.path,
                subprotocol=subprotocol,
                handshake_headers=self._headers,
                received=self._early_data,
                reader_on_demand=self._reader_on_demand,
                **connection_args(self._options),
            )
        except BaseException:
            self._sock.close()
            raise
        self._connection = connection
        # The early bytes are the connection's now: the request, which the handler
        # may keep, does not hold on to them.
        self._early_data = b""
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
        self.respond(status_code, body, extra_headers=extra_headers)

    def respond(
        self,
        status_code: int,
        body: bytes | str | None = None,
        *,
        extra_headers: HeadersLike | None = None,
    ) -> None:
        r"""Answer with an HTTP response instead of a WebSocket, then close the connection.

        What a ``process_request`` hook calls to serve a plain HTTP request, e.g.
        ``request.respond(200, "ok\n")`` for a health check (see
        :attr:`is_upgrade`); the same as :meth:`reject` with the body second. The
        response has ``Content-Length`` and ``Connection: close``, and a
        ``text/plain`` ``Content-Type`` unless ``extra_headers`` set one; the answer
        to a ``HEAD`` request has no body.

        :param status_code: the HTTP status, e.g. 200 or 404 (not 101).
        :param body: the response body; ``str`` is sent as UTF-8 text.
        :param extra_headers: extra response headers.
        :raises ValueError: for status 101 or outside 100-599, or a bad header.
        :raises RuntimeError: when the request was already accepted or answered.
        """
        if not 100 <= status_code <= 599 or status_code == 101:
            raise ValueError(f"invalid status code for an HTTP response: {status_code}")
        headers = check_headers(extra_headers)
        payload = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        self._answer()
        data = response(status_code, headers, payload, head=self._method == "HEAD")
        with contextlib.suppress(OSError):
            self._sock.settimeout(seconds(self._options, "connect_timeout"))
            self._sock.sendall(data)
        close_socket(self._sock)

    def _answer(self) -> None:
        if self._answered:
            raise RuntimeError("this request was already accepted or rejected")
        self._answered = True


def run_hook(hook: Handler, request: WebSocketRequest) -> bool:
    """Run the ``process_request`` hook; return whether the handler should run."""
    request._in_hook = True
    try:
        hook(request)
    except Exception:
        logger.exception("process_request hook failed")
        if not request._answered:
            request.reject(500, body="500 internal server error\n")
        return False
    finally:
        request._in_hook = False
    return not request._answered


def run_handler(handler: Handler, request: WebSocketRequest) -> None:
    """Call the handler; close or answer whatever it left open, whatever happens."""
    failed = True
    try:
        handler(request)
        failed = False
    except ConnectionClosed as exc:
        # The client went away while the handler was talking to it: not a failure.
        logger.debug("connection handler ended by a closed connection: %s", exc.reason)
        failed = False
    except Exception as exc:
        if exc is not request._client_gone:
            logger.exception("connection handler failed")
        else:
            # accept() could not send the 101: the client is gone, which is no
            # failure of the handler (an OSError of its own still is).
            logger.debug(
                "client %s went away during the opening handshake: %r", request.remote, exc
            )
            failed = False
    finally:
        # Also on BaseException (SystemExit in a handler), which then propagates.
        connection = request._connection
        if connection is not None:
            connection.close_within_timeout(1011 if failed else 1000, None)
        elif not request._answered:
            if not failed:
                logger.warning("connection handler returned without accepting or rejecting")
            request.reject(500, body="500 internal server error\n")
