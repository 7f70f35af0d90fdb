"""Following the server's redirects during the client's opening handshake.

:func:`open_connection` opens one hop after another, all within one ``connect_timeout``:
each hop is :func:`open_hop` (TCP, through the proxy that :mod:`._proxy` picks for that
URL, then TLS for ``wss://`` and the upgrade). An answer 301, 302, 303, 307 or 308 with
one ``Location`` header sends the client to that URL, resolved against the URL that
answered; the answer's body has been read (bounded, within the deadline) and its socket
closed before the next hop starts. As in the ``websockets`` library:

- at most :data:`MAX_REDIRECTS` redirects are followed;
- a redirect from ``wss://`` to ``ws://`` is refused;
- credentials (the ``user:password@`` of the URL, and the ``Authorization``, ``Cookie``
  and ``Proxy-Authorization`` headers of ``extra_headers``) are sent to the server of
  the first URL only: from the first hop to another scheme, host or port on, they are
  left out, even if a later redirect comes back;
- every hop opens a new connection, with the same options.

Unlike ``websockets``: a ``Location`` with an ``http://`` or ``https://`` URL is
followed as ``ws://`` or ``wss://`` (what a web server behind which the WebSocket
server sits writes, e.g. to send ``http`` to ``https``), 300 (Multiple Choices) is not
followed, and a loop is refused as soon as a URL comes back, rather than after the
tenth redirect. Everything that is not followed raises :class:`~syncws.RedirectError`,
a :class:`~syncws.ConnectionRejected` for the redirect answer; a 3xx without a
``Location`` (or with several) raises :class:`~syncws.ConnectionRejected` as any
answer other than 101.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from ._client_handshake import handshake, start_tls
from ._deadline import Deadline
from ._http import check_headers
from ._options import seconds
from ._proxy import open_socket
from ._redact import redact_url
from ._url import Target, split_url, url_problem
from .connection import WebSocketConnection
from .exceptions import ConnectionRejected, RedirectError

if TYPE_CHECKING:
    from .client import ConnectOptions

__all__ = [
    "CREDENTIAL_HEADERS",
    "MAX_REDIRECTS",
    "REDIRECT_STATUSES",
    "location",
    "open_connection",
    "open_hop",
    "shown_url",
    "url_of",
]

logger = logging.getLogger("syncws")

#: The most redirects followed while opening one connection.
MAX_REDIRECTS = 10
#: The statuses of a redirect that is followed.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: The request headers of ``extra_headers`` not sent to another scheme, host or port.
CREDENTIAL_HEADERS = frozenset({b"authorization", b"cookie", b"proxy-authorization"})
#: The WebSocket scheme of an HTTP one in a ``Location``.
_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


def open_hop(
    target: Target,
    deadline: Deadline,
    options: ConnectOptions,
    ssl_context: ssl.SSLContext | None,
) -> WebSocketConnection:
    """TCP connect (through the proxy for ``target``, if any), TLS, then the upgrade.

    Name resolution counts against the deadline but cannot be cut short by it. The
    socket is closed when anything fails, a rejection among them (its body read).
    """
    sock = open_socket(target, deadline, options, ssl_context)
    try:
        if target.secure:
            context = ssl_context if ssl_context is not None else ssl.create_default_context()
            sock = start_tls(sock, target, context, deadline)
        return handshake(sock, target, deadline, options)
    except BaseException:
        sock.close()
        raise


def url_of(target: Target) -> str:
    """Return the URL of ``target`` without credentials, to resolve a ``Location`` against."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{'wss' if target.secure else 'ws'}://{host}:{target.port}{target.resource}"


def shown_url(target: Target) -> str:
    """:func:`url_of` for messages: a host or port that may be a piece of a password hidden."""
    return f"{'wss' if target.secure else 'ws'}://{target.where}{target.resource}"


def _origin(target: Target) -> tuple[bool, str, int]:
    return target.secure, target.host.lower(), target.port


def location(rejection: ConnectionRejected) -> str | None:
    """Return the ``Location`` of a redirect worth following, or ``None``.

    ``None`` for another status, no ``Location``, several, or an empty one.
    """
    if rejection.status_code not in REDIRECT_STATUSES:
        return None
    values = [value for name, value in rejection.headers if name.lower() == b"location"]
    if len(values) != 1 or not values[0].strip():
        return None
    # Decoded as ISO-8859-1, as HTTP header values; a non-ASCII one is refused below.
    return values[0].strip().decode("latin-1")


def _next_url(base: str, where: str) -> str:
    """Resolve ``where`` against ``base``; give an HTTP scheme its WebSocket one."""
    resolved = urljoin(base, where)
    scheme, colon, rest = resolved.partition(":")
    mapped = _SCHEMES.get(scheme.lower()) if colon else None
    return f"{mapped}:{rest}" if mapped is not None else resolved


class _Hops:
    """What a chain of redirects has been through so far."""

    def __init__(self, target: Target, options: ConnectOptions) -> None:
        self.target = target
        self.options = options
        self.count = 0
        self._first = _origin(target)
        self._visited = {url_of(target)}
        #: Whether the chain left the first URL's scheme, host and port.
        self._left = False

    def follow(self, rejection: ConnectionRejected, where: str) -> None:
        """Move on to the URL the redirect ``rejection`` points to.

        :raises RedirectError: when it cannot be followed.
        """
        came_from = shown_url(self.target)
        try:
            # A fragment is not sent: one in a Location is dropped.
            resolved = _next_url(url_of(self.target), where).partition("#")[0]
            scheme = urlsplit(resolved).scheme.lower()
        except ValueError:  # urljoin: a malformed authority (an unclosed "[", say).
            resolved, scheme = where, None
        shown = redact_url(resolved)

        def refuse(why: str) -> RedirectError:
            message = (
                f"the server at {came_from} redirected ({rejection.status_code}) to "
                f"{shown!r}: {why}"
            )
            return RedirectError(message, url=shown, rejection=rejection)

        if scheme is not None and scheme not in ("ws", "wss"):
            raise refuse("not a ws://, wss://, http:// or https:// URL")
        if scheme is None or not where.isascii() or url_problem(resolved) is not None:
            raise refuse("not a valid WebSocket URL")
        self.count += 1
        if self.count > MAX_REDIRECTS:
            raise refuse(f"more than {MAX_REDIRECTS} redirects")
        target = split_url(resolved)
        if self.target.secure and not target.secure:
            raise refuse("a redirect from wss:// to ws:// is not followed")
        url = url_of(target)
        if url in self._visited:
            raise refuse("a redirect loop")
        self._visited.add(url)
        if _origin(target) != self._first and not self._left:
            self._left = True
            self.options = _without_credentials(self.options)
        if not self._left and target.authorization is None:
            target = dataclasses.replace(target, authorization=self.target.authorization)
        logger.debug("redirected (%d) from %s to %s", rejection.status_code, came_from, shown)
        self.target = target


def _without_credentials(options: ConnectOptions) -> ConnectOptions:
    """``options`` without the credentials of ``extra_headers``."""
    headers = check_headers(options.get("extra_headers"))
    kept = [(name, value) for name, value in headers if name.lower() not in CREDENTIAL_HEADERS]
    stripped: ConnectOptions = {**options}
    stripped["extra_headers"] = kept
    return stripped


def open_connection(
    target: Target, ssl_context: ssl.SSLContext | None, options: ConnectOptions
) -> WebSocketConnection:
    """Open ``target``, following redirects, every hop within one ``connect_timeout``.

    The options must have been checked.

    :raises RedirectError: for a redirect that is not followed.
    """
    deadline = Deadline(seconds(options, "connect_timeout"))
    hops = _Hops(target, options)
    while True:
        try:
            return open_hop(hops.target, deadline, hops.options, ssl_context)
        except ConnectionRejected as exc:
            where = location(exc)
            if where is None:
                raise
            hops.follow(exc, where)
