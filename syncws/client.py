"""The client functions: from a URL or an address to an open connection.

Each parses its address, connects (``_connect.py``) and runs the opening handshake
(``_client_handshake.py``), all within ``connect_timeout``. The entry point is
:func:`connect`. :func:`open_websocket_url`, :func:`connect_websocket_url`,
:func:`open_websocket`, :func:`connect_websocket` and :func:`wrap_client_socket` keep
trio-websocket's names, with the same meaning of ``with`` as :func:`connect`: they
differ only in how they take the address and in when the connection opens.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Literal

from ._client_handshake import MAX_REJECT_BODY, handshake, upgrade_request
from ._deadline import Deadline
from ._http import HeadersLike
from ._options import check_options, seconds
from ._redact import redact_url
from ._redirects import open_connection
from ._url import UNSAFE_URL, Target, check_host, check_resource, host_header, parse_url
from .connection import ConnectionOptions, WebSocketConnection

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "MAX_REJECT_BODY",
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


class ConnectOptions(ConnectionOptions, total=False):
    """Keyword options accepted by every client function.

    Besides those of :class:`ConnectionOptions`; every key is optional.
    """

    #: Seconds for the opening handshake: the TCP connection (every address of the
    #: host), TLS and the HTTP upgrade together, for every redirect followed (default 10).
    connect_timeout: float
    #: Subprotocols to offer, in order of preference (default: none).
    subprotocols: Sequence[str] | None
    #: Extra headers for the HTTP upgrade request (default: none).
    extra_headers: HeadersLike | None
    #: The ``Origin`` header to send (default: none).
    origin: str | None
    #: The ``User-Agent`` header (default: ``"syncws/VERSION Python/X.Y"``; ``None``: none).
    user_agent: str | None
    #: The proxy to connect through: a URL such as ``"http://user:password@host:3128"``
    #: (schemes ``http``, ``https``, ``socks5``, ``socks5h``, ``socks4``, ``socks4a``;
    #: SOCKS needs ``pip install 'syncws[socks]'``); ``True`` (the default): the one
    #: the environment names (``wss_proxy``, ``https_proxy``, ``ws_proxy``,
    #: ``http_proxy``, ``all_proxy``, less the hosts of ``no_proxy``); ``None``: none.
    #: See :doc:`/topics/proxies`.
    proxy: str | Literal[True] | None


def _open(
    target: Target, ssl_context: ssl.SSLContext | None, options: ConnectOptions
) -> WebSocketConnection:
    """Open ``target``, following redirects (``_redirects.py``), within ``connect_timeout``."""
    check_options(options, "client")
    upgrade_request(target, options)  # Check every option before touching the network.
    return open_connection(target, ssl_context, options)


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

    Redirects (301, 302, 303, 307, 308 with a ``Location``) are followed, ten at most,
    within ``connect_timeout``; credentials go to the first server only (see
    :ref:`redirects`).

    :param url: the URL; its query string is kept, a ``user:password@`` part is sent
        as HTTP Basic authentication (to that server only, not after a redirect to
        another).
    :param ssl_context: for ``wss://``: the TLS context (default: the system's
        trusted certificates, with certificate and host name verification).
    :param options: see :class:`ConnectOptions`.
    :raises ValueError: for a malformed URL or option.
    :raises TypeError: for an unknown option or a value of the wrong type.
    :raises ConnectionRejected: when the server answers with a status other than 101
        (an HTTP error, or a web page: it did not upgrade); after redirects, the
        answer, its status and body, are those of the last server asked.
    :raises RedirectError: (a :exc:`ConnectionRejected`) for a redirect that is not
        followed: a loop, more than ten, from ``wss://`` to ``ws://``, or to a
        ``Location`` that is not a WebSocket (or HTTP) URL.
    :raises ProxyError: when the proxy refuses to connect to the server (HTTP 407, 403,
        502, a SOCKS refusal) or its answer is not HTTP.
    :raises ConnectionLost: when the server closes or resets the connection during the
        TLS handshake or the upgrade (also a :class:`ConnectionError`).
    :raises ConnectionTimeout: when opening takes longer than ``connect_timeout``, which
        bounds the attempts on every address of the host, TLS and the upgrade together,
        for all the redirects followed.
    :raises HandshakeError: when the server's answer is not a valid handshake (TLS bytes
        to a ``ws://`` URL among them).
    :raises OSError: when the connection fails (DNS, refused, TLS verification, TLS
        from a server that does not speak it). When every address of the host failed,
        the error of the first one, its message naming each address and port and why it
        failed. For a proxy that cannot be reached, a message naming the proxy.
    :raises ImportError: for a SOCKS proxy without python-socks installed.
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
    connection in a ``with`` statement or close it yourself. Redirects are followed
    as :func:`connect` follows them.

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

    Redirects are not followed: following one needs a new connection, which this
    function, given a socket, cannot open. A redirect raises
    :exc:`~syncws.ConnectionRejected`, its ``Location`` in its headers.

    :param sock: a connected stream socket, plain or :class:`ssl.SSLSocket`.
    :param host: the value of the ``Host`` header (with ``:port`` if not the default).
    :param resource: the path and query string to request.
    :param options: see :class:`ConnectOptions`.
    :raises ValueError, HandshakeError, OSError: as :func:`connect`, but never
        :exc:`~syncws.RedirectError`.
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
        return handshake(sock, target, deadline, options)
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
