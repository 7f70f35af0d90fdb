"""Serving one client: the opening handshake and the handler, in the calling thread.

:func:`wrap_server_socket` and every client thread of
:class:`~syncws.WebSocketServer` run the TLS handshake, read the HTTP upgrade
request within ``connect_timeout``, and hand a :class:`WebSocketRequest` to the
handler, which accepts or rejects it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request
from wsproto.utilities import RemoteProtocolError

from ._deadline import Deadline
from ._deflate import deflate_extensions
from ._deprecated import module_getattr as _module_getattr
from ._http import (
    HeadersLike,
    add_header,
    check_header_option,
    check_headers,
    check_request_head,
    product,
    response,
)
from ._options import check_options as check_option_values
from ._options import seconds
from ._transport import endpoint
from ._wsproto import HANDSHAKE_ERRORS, http_status_hint, missing_upgrade
from .connection import ConnectionOptions, WebSocketConnection, connection_args
from .exceptions import ConnectionClosed
from .types import Endpoint

logger = logging.getLogger("syncws")

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "Handler",
    "ServeOptions",
    "WebSocketRequest",
    "check_handler",
    "serve_socket",
    "wrap_server_socket",
]

#: A handler: called with each client's request, in that client's own thread. Also the
#: type of the ``process_request`` hook, which runs before the handler and may reject
#: the request.
Handler = Callable[["WebSocketRequest"], None]

if TYPE_CHECKING:
    #: Deprecated: the former name of :data:`Handler` for ``process_request`` hooks.
    RequestHook = Handler
else:
    # RequestHook, with a DeprecationWarning.
    __getattr__ = _module_getattr(__name__, globals())

#: How long a rejected client may take to read the response before its socket closes.
_LINGER = 2.0
#: Failed TLS handshakes are logged at INFO, one line each, at most TLS_LOG_BURST of
#: them per TLS_LOG_INTERVAL seconds (a scanner cannot flood the log); the others
#: are counted, and the count is logged when lines are allowed again.
TLS_LOG_BURST = 10
TLS_LOG_INTERVAL = 60.0


class ServeOptions(ConnectionOptions, total=False):
    """Keyword options of the server functions, besides :class:`ConnectionOptions`.

    ``connect_timeout`` bounds the TLS handshake and the HTTP request of each client
    together: a client that is slower is dropped (a defence against slowloris).
    """

    #: Seconds for each client's opening handshake: TLS, the HTTP request and the
    #: response together (default 10).
    connect_timeout: float
    #: Clients served at once; beyond it, new clients get HTTP 503 (default: no limit).
    max_connections: int | None
    #: The ``Origin`` header values allowed, e.g. ``["https://example.com"]``; other
    #: requests get HTTP 403. ``None`` in the list admits requests without the header
    #: (clients other than browsers). Default: ``None``, any origin (no check).
    origins: Sequence[str | None] | None
    #: Called with each request, in the client's thread, before the handler; it may
    #: refuse the request with :meth:`WebSocketRequest.reject` (e.g. HTTP 401), and
    #: the handler then never runs. See :func:`~syncws.basic_auth`. Default: ``None``.
    process_request: Handler | None
    #: The ``Server`` header of the 101 response (default: ``"syncws/VERSION Python/X.Y"``;
    #: ``None``: none).
    server_header: str | None


def check_handler(handler: object) -> None:
    """Raise TypeError unless ``handler`` can be called with a request."""
    if not callable(handler):
        raise TypeError(f"handler must be callable, not {type(handler).__name__}")


def check_options(options: ServeOptions) -> None:
    """Check the server ``options``; normalise ``origins`` (a tuple, in lower case).

    :raises TypeError: for an unknown option or a value of the wrong type.
    :raises ValueError: for a bad value.
    """
    check_option_values(options, "server")
    origins = options.get("origins")
    if origins is not None:
        origins = tuple(origins)  # Any iterable, read once.
        for origin in origins:
            if origin is not None and not isinstance(origin, str):
                raise TypeError(f"origins must hold strings or None, not {origin!r}")
            if origin is not None and (not origin.isascii() or _BAD_ORIGIN.search(origin)):
                raise ValueError(f"invalid origin {origin!r}")
        # Scheme and host are case-insensitive (RFC 6454): compare in lower case,
        # lowered here once rather than for every request.
        options["origins"] = tuple(o if o is None else o.lower() for o in origins)


_BAD_ORIGIN = re.compile(r"[\x00-\x20\x7f]")


def _origin_allowed(origin: str | None, origins: Sequence[str | None] | None) -> bool:
    """Whether an Origin header value (``None``: absent) is on the checked allow-list."""
    if origins is None:
        return True
    return (origin if origin is None else origin.lower()) in origins


def _close_socket(sock: socket.socket) -> None:
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
        ws: WSConnection,
        event: Request,
        early_data: bytes,
        options: ServeOptions,
        *,
        on_accept: Callable[[WebSocketConnection], None] | None = None,
        reader_on_demand: bool = False,
    ) -> None:
        self._sock = sock
        self._reader_on_demand = reader_on_demand
        self._ws: WSConnection | None = ws
        self._event = event
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
        self._remote = endpoint(sock, local=False, is_ssl=is_ssl)
        self._headers = ((b"host", _host_bytes(event.host)), *event.extra_headers)

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

    @property
    def connection(self) -> WebSocketConnection | None:
        """The connection :meth:`accept` returned; ``None`` before, or after a rejection.

        Part of the interface for syncws's own tools (:mod:`syncws.testing`); not public
        API.
        """
        return self._connection

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
        if subprotocol is not None and subprotocol not in self._event.subprotocols:
            raise ValueError(f"the client did not offer the subprotocol {subprotocol!r}")
        headers = check_headers(extra_headers)
        server = self._options.get("server_header", product())
        if server is not None:
            add_header(headers, check_header_option("server_header", "Server", server))
        self._answer()
        try:
            extensions = deflate_extensions(self._options)
            assert self._ws is not None  # _answer() allows one answer only.
            data = self._ws.send(
                AcceptConnection(
                    subprotocol=subprotocol, extensions=extensions, extra_headers=headers
                )
            )
            self._sock.settimeout(seconds(self._options, "connect_timeout"))
            try:
                self._sock.sendall(data)
            except OSError as exc:
                self._client_gone = exc
                raise
            if self._early_data:
                # Frames that came with the request: the reader parses them first.
                self._ws.receive_data(self._early_data)
            connection = WebSocketConnection(
                self._sock,
                self._ws,
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
        # The handshake engine and the early bytes are the connection's now: the
        # request, which the handler may keep, does not hold on to them.
        self._ws = None
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
        if not 100 <= status_code <= 599 or status_code == 101:
            raise ValueError(f"invalid status code for a rejection: {status_code}")
        headers = check_headers(extra_headers)
        payload = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        self._answer()
        with contextlib.suppress(OSError):
            self._sock.settimeout(seconds(self._options, "connect_timeout"))
            self._sock.sendall(response(status_code, headers, payload))
        _close_socket(self._sock)

    def _answer(self) -> None:
        if self._answered:
            raise RuntimeError("this request was already accepted or rejected")
        self._answered = True


def _error_status(
    exc: RemoteProtocolError | UnicodeError,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Choose the HTTP answer to a request wsproto refused: status, headers, body."""
    if isinstance(exc, UnicodeError):
        return 400, [], b"400 invalid Host header\n"
    message = str(exc)
    hint = exc.event_hint
    status = hint.status_code if isinstance(hint, RejectConnection) else 400
    headers = list(hint.headers) if isinstance(hint, RejectConnection) else []
    # wsproto wraps h11's errors, whose status hint (431 for huge headers) is better.
    h11_status = http_status_hint(exc)
    if h11_status is not None:
        status = h11_status
    if status == 400 and missing_upgrade(exc):
        # A plain HTTP request: RFC 7231, section 6.5.15 wants Upgrade with a 426.
        status, headers = 426, [(b"Upgrade", b"websocket")]
        message = "this is a WebSocket server: send a WebSocket upgrade request"
    return status, headers, f"{status} {message}\n".encode()


#: OpenSSL's reasons for a handshake that was not TLS at all.
_NOT_TLS = {
    "HTTP_REQUEST": "plain HTTP, such as a ws:// URL for this wss:// server",
    "HTTPS_PROXY_REQUEST": "an HTTP proxy request",
    "WRONG_VERSION_NUMBER": "no TLS record",
    "UNKNOWN_PROTOCOL": "no TLS record",
    "PACKET_LENGTH_TOO_LONG": "no TLS record",
    "RECORD_LENGTH_MISMATCH": "no TLS record",
}
#: Alerts of a client that refuses the server's certificate (a browser that does not
#: trust it, a name that does not match, an expired certificate).
_CERTIFICATE_REFUSED = frozenset(
    [
        "TLSV1_ALERT_UNKNOWN_CA",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV1_ALERT_ACCESS_DENIED",
    ]
)
#: No protocol version or cipher suite that both sides accept.
_NOTHING_IN_COMMON = frozenset(
    [
        "UNSUPPORTED_PROTOCOL",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "VERSION_TOO_LOW",
        "NO_PROTOCOLS_AVAILABLE",
        "NO_SHARED_CIPHER",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "TLSV1_ALERT_INSUFFICIENT_SECURITY",
    ]
)


def describe_tls_failure(exc: ssl.SSLError) -> str | None:
    """Say why a TLS handshake failed, for an operator; ``None`` for a client that left.

    A client that closes or resets the connection during the handshake (a port scan,
    a health check) is no TLS problem: ``None``. Otherwise OpenSSL's reason, such as
    ``TLSV1_ALERT_UNKNOWN_CA``, and what it usually means.
    """
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)):
        return None
    reason = exc.reason or str(exc)
    if reason in _NOT_TLS:
        return f"not TLS: {reason} ({_NOT_TLS[reason]})"
    if reason in _CERTIFICATE_REFUSED:
        return f"{reason} (the client does not accept the server's certificate)"
    if reason in _NOTHING_IN_COMMON:
        return f"{reason} (no TLS version or cipher that both sides accept)"
    return reason


class LogBudget:
    """At most ``TLS_LOG_BURST`` INFO lines per ``TLS_LOG_INTERVAL`` seconds; thread-safe.

    Lines over the budget are counted; the count is logged before the next line
    allowed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window: float | None = None
        self._logged = 0
        self._dropped = 0

    def info(self, message: str, *args: object) -> None:
        """Log ``message % args`` at INFO if the budget allows, else count it."""
        now = time.monotonic()
        with self._lock:
            dropped = 0
            if self._window is None or now - self._window >= TLS_LOG_INTERVAL:
                self._window, self._logged = now, 0
                dropped, self._dropped = self._dropped, 0
            allowed = self._logged < TLS_LOG_BURST
            if allowed:
                self._logged += 1
            else:
                self._dropped += 1
        if dropped:
            logger.info(
                "%d more TLS handshakes failed and were not logged one by one "
                "(at most %d are, every %g s)",
                dropped,
                TLS_LOG_BURST,
                TLS_LOG_INTERVAL,
            )
        if allowed:
            logger.info(message, *args)


#: The budget of the process's "TLS handshake failed" lines.
tls_failures = LogBudget()


def _tls_handshake(sock: ssl.SSLSocket, remote: Endpoint | str) -> bool:
    """Run the server's TLS handshake; return whether it succeeded.

    A failure that says something about TLS (a client that refuses the certificate,
    a client that does not speak TLS) is logged at INFO, in one line with the
    client's address; a client that just went away, or was too slow, at DEBUG.
    """
    try:
        sock.do_handshake()
    except ssl.SSLError as exc:
        why = describe_tls_failure(exc)
        if why is None:
            logger.debug("TLS handshake with %s failed: %r", remote, exc)
        else:
            tls_failures.info("TLS handshake with %s failed: %s", remote or "a client", why)
        return False
    except OSError as exc:
        logger.debug("TLS handshake with %s failed: %r", remote, exc)
        return False
    return True


def receive_request(
    sock: socket.socket, deadline: Deadline
) -> tuple[WSConnection, Request, bytes] | None:
    """Read the upgrade request; answer and return None when it is not a valid one.

    :returns: the engine, the request, and the bytes that came after the request
        (frames a client sent without waiting for the response).
    """
    ws = WSConnection(ConnectionType.SERVER)
    received = bytearray()
    while True:
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            raise TimeoutError("no complete handshake in time")
        sock.settimeout(remaining)
        data = sock.recv(65536)
        received += data
        try:
            ws.receive_data(data or None)
            events = list(ws.events())
        except HANDSHAKE_ERRORS as exc:
            # UnicodeError: wsproto could not decode the Host header.
            status, headers, body = _error_status(exc)
            logger.debug("bad handshake request: %s", body.decode().strip())
            _send_error(sock, status, headers, body)
            return None
        for event in events:
            if isinstance(event, Request):
                problem, end = check_request_head(bytes(received))
                if problem is not None:
                    status, why = problem
                    logger.debug("bad handshake request: %s", why)
                    _send_error(sock, status, [], f"{status} {why}\n".encode())
                    return None
                return ws, event, bytes(received[end:])
        if not data:
            return None


def _send_error(
    sock: socket.socket, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(response(status, headers, body))


def serve_socket(
    sock: socket.socket,
    handler: Handler,
    ssl_context: ssl.SSLContext | None,
    options: ServeOptions,
    *,
    overloaded: bool = False,
    on_socket: Callable[[socket.socket], None] | None = None,
    on_accept: Callable[[WebSocketConnection], None] | None = None,
    reader_on_demand: bool = False,
) -> None:
    """Serve one client in the calling thread: TLS, handshake, handler, close.

    ``reader_on_demand``: the connection starts its reader thread only when the
    handler does not read (the server's connections do; see :mod:`._starter`).
    """
    deadline = Deadline(seconds(options, "connect_timeout"))
    request = None
    try:
        try:
            if ssl_context is not None:
                remote = endpoint(sock, local=False, is_ssl=True)
                sock.settimeout(deadline.remaining())
                sock = ssl_context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                )
                # Known before the handshake, so that a shutdown can interrupt it.
                if on_socket is not None:
                    on_socket(sock)
                if not _tls_handshake(sock, remote):
                    return
            received = receive_request(sock, deadline)
        except (OSError, ValueError) as exc:
            logger.debug("opening handshake failed: %r", exc)
            return
        if received is None:
            return
        request = WebSocketRequest(
            sock, *received, options, on_accept=on_accept, reader_on_demand=reader_on_demand
        )
        received = None  # The request owns the handshake engine (and drops it on accept).
        if overloaded:
            request.reject(503, [("Retry-After", "1")], "503 too many connections\n")
            return
        if not _origin_allowed(request.origin, options.get("origins")):
            logger.debug("origin refused: %r", request.origin)
            request.reject(403, body="403 origin not allowed\n")
            return
        hook = options.get("process_request")
        if hook is None or _run_hook(hook, request):
            _run_handler(handler, request)
    finally:
        # accept() hands the socket to the connection, reject() closes it.
        if request is None or not request._answered:
            _close_socket(sock)


def _run_hook(hook: Handler, request: WebSocketRequest) -> bool:
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


def _run_handler(handler: Handler, request: WebSocketRequest) -> None:
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
    check_handler(handler)
    check_options(options)
    # As on the server: the handler's reads need no reader thread.
    serve_socket(sock, handler, ssl_context, options, reader_on_demand=True)
