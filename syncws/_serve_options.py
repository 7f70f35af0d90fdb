"""The server's keyword options (:class:`ServeOptions`) and the checks of its arguments.

Shared by :class:`~syncws.WebSocketServer`, :func:`~syncws.serve_websocket` and
:func:`~syncws.wrap_server_socket`, which check their handler and options before they
serve, and by the serving of each client, which checks ``Origin`` against ``origins``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from ._forwarded import check_trusted_proxies
from ._options import check_options as check_option_values
from ._read_request import PLAIN_HTTP_REFUSAL
from ._websocket_request import Handler, WebSocketRequest, run_hook
from .connection import ConnectionOptions

logger = logging.getLogger("syncws")

__all__ = ["ServeOptions", "check_handler", "check_options", "origin_allowed"]


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
    #: The reverse proxies whose ``X-Forwarded-For`` or ``X-Real-IP`` header names the
    #: client: IP addresses or CIDR networks (``"10.0.0.0/8"``), or ``"unix"`` for peers
    #: on a Unix socket. From those peers, :attr:`WebSocketRequest.remote` is the
    #: right-most forwarded address that is not itself a trusted proxy; from any other
    #: peer the headers are ignored. Default: ``None``, no proxy trusted.
    trusted_proxies: Sequence[str] | None


def check_handler(handler: object) -> None:
    """Raise TypeError unless ``handler`` can be called with a request."""
    if not callable(handler):
        raise TypeError(f"handler must be callable, not {type(handler).__name__}")


def check_options(options: ServeOptions) -> None:
    """Check the server ``options``; normalise ``origins`` and ``trusted_proxies``.

    ``origins`` becomes a tuple in lower case, ``trusted_proxies`` a tuple of networks.

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
    trusted = check_trusted_proxies(options.get("trusted_proxies"))
    if trusted is not None:
        options["trusted_proxies"] = trusted  # Normalised: a tuple, read once.


_BAD_ORIGIN = re.compile(r"[\x00-\x20\x7f]")


def origin_allowed(origin: str | None, origins: Sequence[str | None] | None) -> bool:
    """Whether an Origin header value (``None``: absent) is on the checked allow-list."""
    if origins is None:
        return True
    return (origin if origin is None else origin.lower()) in origins


#: What :func:`screen_request` returns when the ``process_request`` hook answered.
HOOK_ANSWERED = 0


def screen_request(request: WebSocketRequest, options: ServeOptions) -> int | None:
    """Apply the checks that come before the handler, as the server and WSGI do.

    The origin check (WebSocket handshakes only: a plain HTTP request such as a
    health check has no Origin to check), then the ``process_request`` hook, then
    ``426`` for a plain request the hook left alone.

    :returns: ``None`` when the request goes on to the handler; otherwise the HTTP
        status it was answered with, or :data:`HOOK_ANSWERED` when the hook answered.
    """
    if request.is_upgrade and not origin_allowed(request.origin, options.get("origins")):
        logger.debug("origin refused: %r", request.origin)
        request.reject(403, body="403 origin not allowed\n")
        return 403
    hook = options.get("process_request")
    if hook is not None and not run_hook(hook, request):
        return HOOK_ANSWERED
    if not request.is_upgrade:
        status, headers, body = PLAIN_HTTP_REFUSAL
        logger.debug("bad handshake request: %s", body.decode().strip())
        request.reject(status, headers, body)
        return status
    return None
