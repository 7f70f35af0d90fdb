"""Opening client connections: URL parsing, TCP, TLS and the HTTP upgrade.

The entry point is :func:`connect`. :func:`open_websocket_url`,
:func:`connect_websocket_url`, :func:`open_websocket`, :func:`connect_websocket` and
:func:`wrap_client_socket` keep trio-websocket's names, with the same meaning of
``with`` as :func:`connect`: they differ only in how they take the address and in
when the connection opens.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request

from ._connect import open_tcp
from ._deadline import Deadline
from ._deflate import deflate_extensions
from ._http import (
    HeadersLike,
    add_header,
    check_header_option,
    check_headers,
    check_token,
    product,
    split_head,
)
from ._options import check_options, seconds
from ._redact import redact_url
from ._url import UNSAFE_URL, Target, check_host, check_resource, host_header, parse_url
from ._wsproto import HANDSHAKE_ERRORS
from .connection import ConnectionOptions, WebSocketConnection, connection_args
from .exceptions import (
    ConnectionLost,
    ConnectionRejected,
    ConnectionTimeout,
    HandshakeError,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "ConnectOptions",
    "HeadersLike",
    "connect",
    "connect_websocket",
    "connect_websocket_url",
    "open_websocket",
    "open_websocket_url",
    "redact_url",
    "wrap_client_socket",
]

#: The most of a rejection's body that is kept for :class:`~syncws.ConnectionRejected`.
MAX_REJECT_BODY = 64 * 1024

#: Response headers that may appear once (RFC 6455, section 4.1).
_SINGLE_RESPONSE_HEADERS = (b"sec-websocket-accept", b"sec-websocket-protocol")


class ConnectOptions(ConnectionOptions, total=False):
    """Keyword options accepted by every client function.

    Besides those of :class:`ConnectionOptions`; every key is optional.
    """

    #: Seconds for the opening handshake: the TCP connection (every address of the
    #: host), TLS and the HTTP upgrade together (default 10).
    connect_timeout: float
    #: Subprotocols to offer, in order of preference (default: none).
    subprotocols: Sequence[str] | None
    #: Extra headers for the HTTP upgrade request (default: none).
    extra_headers: HeadersLike | None
    #: The ``Origin`` header to send (default: none).
    origin: str | None
    #: The ``User-Agent`` header (default: ``"syncws/VERSION Python/X.Y"``; ``None``: none).
    user_agent: str | None


def _request(target: Target, options: ConnectOptions) -> Request:
    """Build the wsproto upgrade request for ``target``."""
    subprotocols = list(options.get("subprotocols") or ())
    for subprotocol in subprotocols:
        check_token(subprotocol, "subprotocol")
    headers = check_headers(options.get("extra_headers"))
    origin = options.get("origin")
    if origin is not None:
        headers += check_headers([("Origin", origin)])
    if target.authorization is not None:
        headers.append((b"Authorization", target.authorization))
    user_agent = options.get("user_agent", product())
    if user_agent is not None:
        # Checked even when an extra header of that name takes its place.
        add_header(headers, check_header_option("user_agent", "User-Agent", user_agent))
    return Request(
        host=target.host_header,
        target=target.resource,
        extensions=deflate_extensions(options),
        subprotocols=subprotocols,
        extra_headers=headers,
    )


def _settimeout(sock: socket.socket, deadline: Deadline) -> None:
    remaining = deadline.remaining()
    if remaining is not None and remaining <= 0:
        raise ConnectionTimeout("timed out opening the WebSocket connection")
    sock.settimeout(remaining)


#: What a socket raises when the server goes away; an end of stream is ``b""``.
_LOST = (ConnectionError, ssl.SSLEOFError, ssl.SSLZeroReturnError)

#: The hints for TLS on one side only.
_TRY_WS = "is it ws:// rather than wss://?"
_TRY_WSS = "is it wss:// rather than ws://?"
#: What OpenSSL says when the server's first bytes are not a TLS record (HTTP, say).
_NOT_TLS_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "UNKNOWN_PROTOCOL",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LAYER_FAILURE",
        "RECORD_LENGTH_MISMATCH",
    }
)
#: The start of a TLS record: an alert (21) or a handshake (22), then version 3.x.
_TLS_RECORD = re.compile(rb"[\x15\x16](?:\x03|\Z)")
#: What servers answer in a 400 to a plain HTTP request on their TLS port (nginx:
#: "The plain HTTP request was sent to HTTPS port").
_TLS_PORT_400 = re.compile(rb"\b(?:https|tls|ssl)\b", re.IGNORECASE)


def _lost(
    target: Target, error: BaseException | None, when: str, hint: str | None = None
) -> ConnectionLost:
    """Make the :class:`ConnectionLost` for an end of stream (``None``) or a socket error."""
    how = "reset" if isinstance(error, ConnectionResetError) else "closed"
    message = f"the server at {target.where} {how} the connection {when}"
    return ConnectionLost(f"{message}; {hint}" if hint else message)


def _not_tls(error: ssl.SSLError, target: Target) -> ssl.SSLError:
    """Remake a TLS error about bytes that are not TLS, saying what they may mean."""
    remade = ssl.SSLError(
        error.errno,
        f"the server at {target.where} did not answer the TLS handshake; {_TRY_WS} "
        f"({error.reason})",
    )
    remade.reason = error.reason
    remade.library = error.library
    return remade


class _Response:
    """What arrived of the server's answer to the upgrade request, fed to wsproto."""

    def __init__(self, ws: WSConnection, target: Target) -> None:
        self._ws = ws
        self._target = target
        #: The bytes of the response until it turned out to be a rejection.
        self.received = bytearray()
        self._rejection: RejectConnection | None = None
        self._body = bytearray()

    def feed(self, chunk: bytes) -> AcceptConnection | None:
        """Take the next bytes; return the acceptance once complete, else ``None``.

        ``b""`` stands for the end of stream.

        :raises ConnectionRejected: when the server refused, with the body as far as
            it goes (at most :data:`MAX_REJECT_BODY` bytes).
        :raises ConnectionLost: at the end of stream before a complete response head.
        :raises HandshakeError: for a response that is not a valid handshake.
        """
        if not chunk and self._rejection is None:
            raise self.lost(None)
        if self._rejection is None:
            self.received += chunk
            if not self._target.secure and _TLS_RECORD.match(self.received):
                raise HandshakeError(
                    f"the server at {self._target.where} answered in TLS, not HTTP; {_TRY_WSS}"
                )
        try:
            self._ws.receive_data(chunk or None)
        except HANDSHAKE_ERRORS as exc:
            # UnicodeError: wsproto could not decode a header it parses.
            if self._rejection is not None:
                raise self.rejected() from exc  # A body cut short or badly framed.
            raise HandshakeError(f"invalid handshake response: {exc}") from exc
        # Iterate lazily: frames that came with the response stay in wsproto, for the
        # connection's reader to pick up after AcceptConnection.
        for event in self._ws.events():
            if isinstance(event, AcceptConnection):
                return event
            if isinstance(event, RejectConnection):
                self._rejection = event
                if not event.has_body:
                    raise self.rejected()
            elif isinstance(event, RejectData) and self._rejection is not None:
                self._body += event.data
                if event.body_finished or len(self._body) >= MAX_REJECT_BODY:
                    raise self.rejected()
        if not chunk:
            raise self.rejected()
        return None

    def lost(self, error: BaseException | None) -> HandshakeError:
        """Make the error for a server that went away, at an end of stream (``None``) or not.

        A rejection is still one, with what arrived of its body.
        """
        if self._rejection is not None:
            return self.rejected()
        if self.received:
            return _lost(self._target, error, "during its handshake response")
        # What TLS servers do with a plain request, among other reasons.
        hint = None if self._target.secure else _TRY_WSS
        return _lost(self._target, error, "before answering the WebSocket handshake", hint)

    def rejected(self) -> ConnectionRejected:
        """Make the rejection received, with its body as far as it arrived."""
        assert self._rejection is not None
        status_line = bytes(self.received).split(b"\n", 1)[0].rstrip(b"\r")
        body = bytes(self._body[:MAX_REJECT_BODY])
        tls_port = self._rejection.status_code == 400 and _TLS_PORT_400.search(body)
        return ConnectionRejected(
            self._rejection.status_code,
            tuple(self._rejection.headers),
            body,
            status_line=status_line.decode("latin-1"),
            hint=_TRY_WSS if tls_port and not self._target.secure else None,
        )

    @property
    def rejecting(self) -> bool:
        """Whether the head of a rejection arrived (its body may not have)."""
        return self._rejection is not None


def _handshake(
    sock: socket.socket, target: Target, deadline: Deadline, options: ConnectOptions
) -> WebSocketConnection:
    """Run the HTTP upgrade on a connected socket; return the open connection."""
    ws = WSConnection(ConnectionType.CLIENT)
    data = ws.send(_request(target, options))
    response = _Response(ws, target)
    try:
        _settimeout(sock, deadline)
        try:
            sock.sendall(data)
        except _LOST as exc:
            raise response.lost(exc) from exc
        while True:
            _settimeout(sock, deadline)
            try:
                chunk = sock.recv(65536)
            except _LOST as exc:
                raise response.lost(exc) from exc
            event = response.feed(chunk)
            if event is not None:
                head_end = _check_response_head(bytes(response.received))
                return WebSocketConnection(
                    sock,
                    ws,
                    path=target.resource,
                    subprotocol=event.subprotocol,
                    handshake_headers=tuple(
                        (name.lower(), value) for name, value in event.extra_headers
                    ),
                    received=bytes(response.received[head_end:]),
                    **connection_args(options),
                )
    except TimeoutError as exc:
        if response.rejecting:
            # Still a timeout, but the status says more: the rejection is its cause.
            rejection = response.rejected()
            raise ConnectionTimeout(
                f"timed out waiting for the end of the server's response; {rejection}"
            ) from rejection
        if isinstance(exc, ConnectionTimeout):
            raise
        raise ConnectionTimeout("timed out during the WebSocket handshake") from exc


def _verification_error(
    exc: ssl.SSLCertVerificationError, target: Target
) -> ssl.SSLCertVerificationError:
    """Remake the error with a message that names the server and what to do."""
    error = ssl.SSLCertVerificationError(
        exc.errno,
        f"the TLS certificate of {target.where} could not be verified: "
        f"{exc.verify_message or exc.reason}. To trust a private certificate authority, "
        "pass ssl_context=ssl.create_default_context(cafile=...)",
    )
    error.verify_code = exc.verify_code
    error.verify_message = exc.verify_message
    error.reason = exc.reason
    error.library = exc.library
    return error


def _check_response_head(data: bytes) -> int:
    """Refuse what wsproto lets through: it reads only the last of repeated headers.

    Sec-WebSocket-Accept and -Protocol may appear once. Sec-WebSocket-Extensions may
    be repeated (RFC 6455 erratum 3433), but syncws offers one extension at most, so
    only the last of them may name one: that is the one wsproto checked.

    :returns: the offset just past the head in ``data``.
    """
    _, values, end = split_head(data)
    for name in _SINGLE_RESPONSE_HEADERS:
        if len(values.get(name, ())) > 1:
            raise HandshakeError(f"invalid handshake response: repeated {name.decode()} header")
    if any(value.strip(b" \t,") for value in values.get(b"sec-websocket-extensions", [])[:-1]):
        raise HandshakeError("invalid handshake response: more extensions than offered")
    return end


def _open(
    target: Target, ssl_context: ssl.SSLContext | None, options: ConnectOptions
) -> WebSocketConnection:
    """TCP connect, TLS, then the upgrade, all within ``connect_timeout``.

    Name resolution counts against the deadline but cannot be cut short by it.
    """
    check_options(options, "client")
    _request(target, options)  # Check every option before touching the network.
    deadline = Deadline(seconds(options, "connect_timeout"))
    sock = open_tcp(
        target.host, target.port, deadline, hide_host=target.hide_host, hide_port=target.hide_port
    )
    try:
        if target.secure:
            context = ssl_context if ssl_context is not None else ssl.create_default_context()
            _settimeout(sock, deadline)
            try:
                sock = context.wrap_socket(sock, server_hostname=target.host)
            except TimeoutError as exc:
                # A plain server waits for a request head that never comes.
                raise ConnectionTimeout(
                    f"timed out during the TLS handshake with {target.where}; {_TRY_WS}"
                ) from exc
            except ssl.SSLCertVerificationError as exc:
                raise _verification_error(exc, target) from exc
            except _LOST as exc:
                raise _lost(target, exc, "during the TLS handshake", _TRY_WS) from exc
            except ssl.SSLError as exc:
                if exc.reason in _NOT_TLS_REASONS:
                    raise _not_tls(exc, target) from exc
                raise
        return _handshake(sock, target, deadline, options)
    except BaseException:
        sock.close()
        raise


def connect(
    url: str, *, ssl_context: ssl.SSLContext | None = None, **options: Unpack[ConnectOptions]
) -> WebSocketConnection:
    """Open a connection to a ``ws://`` or ``wss://`` URL: the main entry point.

    Use the connection in a ``with`` statement, which closes it at the end of the
    block, or close it yourself with :meth:`~WebSocketConnection.close`::

        with syncws.connect("ws://127.0.0.1:8765/") as ws:
            ws.send_message("hello")

    Leaving the block closes the connection with code 1000, or when an exception is
    propagating with 1001 for Ctrl-C (:exc:`KeyboardInterrupt`) and 1011 for any
    other, waiting up to ``disconnect_timeout`` for the closing handshake; a peer too
    slow to answer raises nothing (:attr:`~WebSocketConnection.close_reason` then has
    code 1006).

    :param url: the URL; its query string is kept, a ``user:password@`` part is sent
        as HTTP Basic authentication.
    :param ssl_context: for ``wss://``: the TLS context (default: the system's
        trusted certificates, with certificate and host name verification).
    :param options: see :class:`ConnectOptions`.
    :raises ValueError: for a malformed URL or option.
    :raises TypeError: for an unknown option or a value of the wrong type.
    :raises ConnectionRejected: when the server answers with a status other than 101
        (an HTTP error, or a web page: it did not upgrade).
    :raises ConnectionLost: when the server closes or resets the connection during the
        TLS handshake or the upgrade (also a :class:`ConnectionError`).
    :raises ConnectionTimeout: when opening takes longer than ``connect_timeout``, which
        bounds the attempts on every address of the host, TLS and the upgrade together.
    :raises HandshakeError: when the server's answer is not a valid handshake (TLS bytes
        to a ``ws://`` URL among them).
    :raises OSError: when the connection fails (DNS, refused, TLS verification, TLS
        from a server that does not speak it). When every address of the host failed,
        the error of the first one, its message naming each address and port and why it
        failed.
    """
    return _open(parse_url(url), ssl_context, options)


def connect_websocket_url(
    url: str, ssl_context: ssl.SSLContext | None = None, **options: Unpack[ConnectOptions]
) -> WebSocketConnection:
    """:func:`connect` under trio-websocket's name; ``ssl_context`` may be positional.

    Same arguments, exceptions and ``with`` behaviour as :func:`connect`.
    """
    return connect(url, ssl_context=ssl_context, **options)


def connect_websocket(
    host: str,
    port: int,
    resource: str,
    *,
    use_ssl: bool | ssl.SSLContext,
    **options: Unpack[ConnectOptions],
) -> WebSocketConnection:
    """Open a connection to ``host:port``, asking for ``resource``.

    As :func:`connect`, for an address given in parts rather than as a URL: use the
    connection in a ``with`` statement or close it yourself.

    :param host: a host name or an IPv4 or IPv6 address.
    :param port: the TCP port.
    :param resource: the path and query string to request, e.g. ``"/chat?room=1"``.
    :param use_ssl: ``True`` for TLS with the default context, an
        :class:`ssl.SSLContext` for TLS with that context, ``False`` for none.
    :param options: see :class:`ConnectOptions`.
    :raises ValueError, HandshakeError, OSError: as :func:`connect`.
    """
    host = check_host(host)
    if not 0 < port < 65536:
        raise ValueError(f"invalid port {port!r}")
    secure = use_ssl is not False
    target = Target(
        host=host,
        port=port,
        secure=secure,
        resource=check_resource(resource),
        host_header=host_header(host, port, secure),
    )
    context = use_ssl if isinstance(use_ssl, ssl.SSLContext) else None
    return _open(target, context, options)


def wrap_client_socket(
    sock: socket.socket, host: str, resource: str, **options: Unpack[ConnectOptions]
) -> WebSocketConnection:
    """Run the client handshake on a socket that is already connected.

    The connection takes the socket over: it is closed when the connection closes,
    or at once if the handshake fails. Use the connection in a ``with`` statement, as
    :func:`connect` describes, or close it yourself.

    :param sock: a connected stream socket, plain or :class:`ssl.SSLSocket`.
    :param host: the value of the ``Host`` header (with ``:port`` if not the default).
    :param resource: the path and query string to request.
    :param options: see :class:`ConnectOptions`.
    :raises ValueError, HandshakeError, OSError: as :func:`connect`.
    """
    try:
        check_options(options, "client")
        if not host or UNSAFE_URL.search(host):
            raise ValueError(f"invalid host {host!r}")
        target = Target(
            host=host,
            port=0,
            secure=isinstance(sock, ssl.SSLSocket),
            resource=check_resource(resource),
            host_header=host,
        )
        deadline = Deadline(seconds(options, "connect_timeout"))
        return _handshake(sock, target, deadline, options)
    except BaseException:
        sock.close()
        raise


@contextlib.contextmanager
def _opening(open_connection: Callable[[], WebSocketConnection]) -> Iterator[WebSocketConnection]:
    """Open on entry; on exit, do what leaving the connection's own ``with`` does."""
    with open_connection() as ws:
        yield ws


def open_websocket(
    host: str,
    port: int,
    resource: str,
    *,
    use_ssl: bool | ssl.SSLContext,
    **options: Unpack[ConnectOptions],
) -> contextlib.AbstractContextManager[WebSocketConnection]:
    """:func:`connect_websocket` as a context manager that opens the connection on entry.

    ``with open_websocket(...) as ws:`` is ``with connect_websocket(...) as ws:``, but
    the connection opens when the block is entered rather than when the function is
    called. Leaving the block closes the connection as :func:`connect` describes, and
    never raises because the peer was slow to close.

    :raises ValueError, HandshakeError, OSError: on entry, as :func:`connect`.
    """
    return _opening(lambda: connect_websocket(host, port, resource, use_ssl=use_ssl, **options))


def open_websocket_url(
    url: str, ssl_context: ssl.SSLContext | None = None, **options: Unpack[ConnectOptions]
) -> contextlib.AbstractContextManager[WebSocketConnection]:
    """:func:`connect` as a context manager that opens the connection on entry.

    ``with open_websocket_url(url) as ws:`` is ``with connect(url) as ws:``, but the
    connection opens when the block is entered rather than when the function is called;
    ``ssl_context`` may be positional. Leaving the block closes the connection as
    :func:`connect` describes, and never raises because the peer was slow to close.

    :raises ValueError, HandshakeError, OSError: on entry, as :func:`connect`.
    """
    return _opening(lambda: connect(url, ssl_context=ssl_context, **options))
