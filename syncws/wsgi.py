"""WebSocket connections inside WSGI applications (Flask, plain WSGI, ...).

A threaded WSGI server has already read and parsed the HTTP request when it calls the
application. :func:`accept` rebuilds that request from the WSGI ``environ``, runs the
same checks as :class:`~syncws.WebSocketServer` (a valid upgrade request, ``origins``,
``process_request``), answers ``101`` itself on the client's socket and returns the
open :class:`~syncws.WebSocketConnection`. Once the connection is closed the view
returns :func:`response`, which makes the WSGI server drop the socket without
writing a second response.

Supported servers: werkzeug's development server (``flask run``, ``app.run()``,
``werkzeug.serving.run_simple``; the raw socket is ``environ["werkzeug.socket"]``)
and gunicorn's ``gthread`` and ``sync`` workers (``environ["gunicorn.socket"]``), on
plain TCP. Everywhere else :func:`accept` raises :class:`UnsupportedServer`.

The WebSocket lives in the WSGI server's thread that runs the view: one thread per
open connection (see the WSGI topic of the docs).
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import socket
import ssl
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ._deadline import Deadline
from ._http import response as http_response
from ._options import check_options as check_option_values
from ._options import seconds
from ._serve_options import HOOK_ANSWERED, screen_request
from ._websocket_request import close_socket
from .exceptions import WebSocketError
from .request import ServeOptions, WebSocketRequest, check_options, receive_request

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .connection import WebSocketConnection

logger = logging.getLogger("syncws")

__all__ = [
    "RequestRefused",
    "TakenOver",
    "UnsupportedServer",
    "WSGIOptions",
    "accept",
    "response",
]

#: The servers :func:`accept` works with, for error messages.
SUPPORTED_SERVERS = (
    "werkzeug's development server and gunicorn's gthread and sync workers, on plain TCP"
)

#: Where :func:`accept` leaves the connection in the environ, for :func:`response`.
_CONNECTION_KEY = "syncws.connection"


class UnsupportedServer(RuntimeError):
    """The WSGI server does not hand over its client's socket in a way syncws can use.

    Raised by :func:`accept` under servers other than werkzeug's development server
    and gunicorn's ``gthread`` and ``sync`` workers (uWSGI, waitress, mod_wsgi,
    gunicorn's gevent, eventlet and tornado workers, ...), for HTTP/2 requests, and
    when the WSGI server terminates TLS itself. Nothing was sent to the client.
    """


class RequestRefused(WebSocketError):
    """:func:`accept` answered the request with an HTTP error instead of ``101``.

    The answer is sent and the socket closed: the view returns :func:`response`.

    :param status_code: the HTTP status sent (400, 403, 426, ...); ``None`` when a
        ``process_request`` hook rejected the request (with a status of its choice).
    """

    def __init__(self, status_code: int | None) -> None:
        why = "by process_request" if status_code is None else f"with HTTP {status_code}"
        super().__init__(f"the WebSocket request was refused {why}")
        #: The HTTP status sent to the client (``None``: the hook's).
        self.status_code = status_code


class WSGIOptions(ServeOptions, total=False):
    """Keyword options of :func:`accept`.

    Those of :class:`~syncws.ServeOptions` except ``max_connections``, and
    ``subprotocols``.

    ``connect_timeout`` bounds the sending of the ``101`` response (the WSGI server
    has already read the request).
    """

    #: The subprotocols the application speaks, in its order of preference: the first
    #: one the client offers is chosen; none when the client offers none of them.
    subprotocols: Sequence[str] | None


def accept(environ: dict[str, Any], **options: Unpack[WSGIOptions]) -> WebSocketConnection:
    """Upgrade the WSGI request in ``environ`` to a WebSocket connection.

    Call it from the view (the WSGI application) under a supported server; once the
    connection is closed, return :func:`response` from the view. A request that is not
    a valid upgrade gets ``400`` or ``426``, an origin not in ``origins`` gets ``403``,
    and a ``process_request`` hook may reject the request, as on the server;
    :class:`RequestRefused` then says so.

    :param environ: the WSGI environ of the request (``flask.request.environ``).
    :param options: see :class:`WSGIOptions`.
    :returns: the open connection, owned by the caller: close it, or use it as a
        context manager, before the view returns.
    :raises UnsupportedServer: under another WSGI server (nothing was sent).
    :raises RequestRefused: when the request was answered with an HTTP error.
    :raises TypeError: for an unknown option or a value of the wrong type.
    :raises ValueError: for a bad option value.
    :raises OSError: when the client went away before it got the ``101``.
    """
    subprotocols = options.pop("subprotocols", None)
    check_option_values({"subprotocols": subprotocols}, "client")
    if "max_connections" in options:
        raise TypeError("max_connections does not apply to syncws.wsgi.accept")
    check_options(options)
    server_sock = _server_socket(environ)
    head = _request_head(environ)
    # A socket of our own on the same connection: the WSGI server keeps its socket
    # object, and closes it after the view, without ever touching ours.
    sock = server_sock.dup()
    try:
        early = _buffered_input(environ, sock)
        request = _parse(sock, head, early, options)
        status = screen_request(request, options)
        if status is not None:
            raise RequestRefused(None if status == HOOK_ANSWERED else status)
        offered = request.proposed_subprotocols
        chosen = next((name for name in subprotocols or () if name in offered), None)
        connection = request.accept(chosen)
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise
    logger.debug("WSGI request %s upgraded for %s", request.path, request.remote)
    # Not public: response() closes a connection that the view left open.
    environ[_CONNECTION_KEY] = connection
    return connection


class TakenOver(Iterator[bytes]):
    """The WSGI response body of a request whose socket syncws took over.

    Returned by :func:`response`. The WSGI server's first attempt to iterate it raises
    :exc:`BrokenPipeError`, before the server has written anything: werkzeug's
    development server and gunicorn's workers take it for a client that went away,
    close their socket quietly and write no response.
    """

    def __next__(self) -> bytes:
        raise BrokenPipeError(
            errno.EPIPE, "the socket belongs to a WebSocket connection (syncws.wsgi)"
        )

    def close(self) -> None:
        """Nothing to release (the WSGI protocol calls it)."""


def response(environ: dict[str, Any]) -> TakenOver:
    """Return what the view returns after :func:`accept`, whatever happened.

    Closes the connection :func:`accept` returned, if it is still open (code 1000,
    waiting for the closing handshake at most ``disconnect_timeout``), then returns
    a :class:`TakenOver`. Also correct after :class:`RequestRefused` or an
    :exc:`OSError` from :func:`accept`.

    :param environ: the WSGI environ given to :func:`accept`.
    """
    connection = environ.pop(_CONNECTION_KEY, None)
    if connection is not None:
        connection.close()
    for key in ("werkzeug.socket", "gunicorn.socket"):
        sock = environ.get(key)
        if isinstance(sock, socket.socket):
            # Our socket shares the file description, and its timeouts made it
            # non-blocking: give the server back the mode its socket object expects.
            with contextlib.suppress(OSError):
                sock.settimeout(sock.gettimeout())
    return TakenOver()


# -- the parts of accept() -------------------------------------------------------------


def _server_socket(environ: dict[str, Any]) -> socket.socket:
    """Return the WSGI server's socket for this request, or raise UnsupportedServer."""
    software = environ.get("SERVER_SOFTWARE") or "this WSGI server"
    if environ.get("HTTP_VERSION") == "2" or str(environ.get("SERVER_PROTOCOL")) == "HTTP/2":
        raise UnsupportedServer("an HTTP/2 request cannot become a WebSocket connection")
    sock = environ.get("werkzeug.socket", environ.get("gunicorn.socket"))
    if sock is None:
        raise UnsupportedServer(
            f"syncws.wsgi cannot take over the client's socket under {software}: it "
            f"supports {SUPPORTED_SERVERS}"
        )
    if isinstance(sock, ssl.SSLSocket):
        raise UnsupportedServer(
            f"{software} terminates TLS itself, which syncws.wsgi does not support: "
            "terminate TLS in a reverse proxy, or use syncws.WebSocketServer"
        )
    kind = type(sock)
    if kind.__module__ != "socket" or kind.__name__ != "socket":
        # gevent's and eventlet's sockets: their workers run greenlets, not threads.
        raise UnsupportedServer(
            f"syncws.wsgi needs a standard socket, not {kind.__module__}.{kind.__name__} "
            f"(gevent and eventlet workers are not supported): it supports "
            f"{SUPPORTED_SERVERS}"
        )
    return sock  # type: ignore[no-any-return]


def _request_head(environ: dict[str, Any]) -> bytes:
    """Rebuild the request head, as the client sent it, from the environ."""
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not target:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        target = quote(path.encode("latin-1"), safe="/;=,:@!$&'()*+~") or "/"
        if environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
    method = environ.get("REQUEST_METHOD", "GET")
    lines = [f"{method} {target} {environ.get('SERVER_PROTOCOL') or 'HTTP/1.1'}"]
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:]
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key
        else:
            continue
        if isinstance(value, str) and "\r" not in value and "\n" not in value:
            lines.append(f"{name.replace('_', '-').title()}: {value}")
    # WSGI strings hold the bytes received, one character each (PEP 3333).
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def _buffered_input(environ: dict[str, Any], sock: socket.socket) -> bytes:
    """Bytes that the WSGI server read past the request head (early frames)."""
    stream = environ.get("wsgi.input")
    if isinstance(stream, io.BufferedReader):
        # werkzeug: the socket's buffered reader, which may hold more than the head.
        # peek() returns the buffer, or reads the socket once when it is empty:
        # without waiting, as the socket's file description is non-blocking now.
        sock.setblocking(False)
        try:
            data = stream.peek()
            return stream.read(len(data)) if data else b""
        except OSError:
            return b""
    # gunicorn: the request body reads from the parser's buffer of the socket.
    unreader = getattr(getattr(stream, "reader", None), "unreader", None)
    take = getattr(unreader, "take_buffered", None)
    if callable(take):
        data = take()
        return bytes(data) if isinstance(data, (bytes, bytearray)) else b""
    buffer = getattr(unreader, "buf", None)
    if isinstance(buffer, io.BytesIO):  # Versions without take_buffered().
        data = buffer.getvalue()
        unreader.buf = io.BytesIO()  # type: ignore[union-attr]
        return data
    return b""


def _parse(
    sock: socket.socket, head: bytes, early: bytes, options: ServeOptions
) -> WebSocketRequest:
    """Parse the head as the server does (receive_request) and answer a bad one."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        try:
            sent = ours.send(head)
        except BlockingIOError:
            sent = 0
        if sent < len(head):
            _answer(sock, http_response(431, [], b"431 request header fields too large\n"))
            raise RequestRefused(431)
        ours.shutdown(socket.SHUT_WR)
        received = receive_request(theirs, Deadline(seconds(options, "connect_timeout")))
        if received is None:
            answer = b""
            with contextlib.suppress(OSError):
                while chunk := ours.recv(65536):
                    answer += chunk
            _answer(sock, answer)
            status = answer[9:12]
            raise RequestRefused(int(status) if status.isdigit() else None)
    event, rest = received
    return WebSocketRequest(sock, event, rest + early, options, reader_on_demand=True)


def _answer(sock: socket.socket, answer: bytes) -> None:
    """Send an HTTP error response on the client's socket, then close it."""
    logger.debug("bad WebSocket request: %r", answer.split(b"\r\n", 1)[0])
    with contextlib.suppress(OSError):
        sock.settimeout(10.0)
        sock.sendall(answer)
    close_socket(sock)
