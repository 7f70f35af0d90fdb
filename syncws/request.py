"""Serving one client: the opening handshake and the handler, in the calling thread.

:func:`wrap_server_socket` and every client thread of
:class:`~syncws.WebSocketServer` run the TLS handshake (``_server_tls.py``), read the
HTTP upgrade request within ``connect_timeout`` (``_read_request.py``), and hand a
:class:`WebSocketRequest` (``_websocket_request.py``) to the handler, which accepts or
rejects it. The server's options and their checks are in ``_serve_options.py``.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._deadline import Deadline
from ._deprecated import module_getattr as _module_getattr
from ._options import seconds
from ._read_request import receive_request
from ._serve_options import ServeOptions, check_handler, check_options, screen_request
from ._server_tls import tls_handshake
from ._transport import endpoint
from ._websocket_request import Handler, WebSocketRequest, close_socket, run_handler
from .connection import WebSocketConnection

logger = logging.getLogger("syncws")

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "Handler",
    "ServeOptions",
    "WebSocketRequest",
    "check_handler",
    "check_options",
    "receive_request",
    "serve_socket",
    "wrap_server_socket",
]

if TYPE_CHECKING:
    #: Deprecated: the former name of :data:`Handler` for ``process_request`` hooks.
    RequestHook = Handler
else:
    # RequestHook, with a DeprecationWarning.
    __getattr__ = _module_getattr(__name__, globals())


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
                if not tls_handshake(sock, remote):
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
        if overloaded:
            request.reject(503, [("Retry-After", "1")], "503 too many connections\n")
            return
        if screen_request(request, options) is not None:
            return
        run_handler(handler, request)
    finally:
        # accept() hands the socket to the connection, reject() closes it.
        if request is None or not request.answered:
            close_socket(sock)


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
