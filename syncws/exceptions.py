"""Exceptions raised by syncws.

Every exception that syncws defines derives from :class:`WebSocketError`::

    WebSocketError
    ├── HandshakeError              the opening handshake failed
    │   ├── ConnectionRejected      the server answered with an HTTP error
    │   ├── ConnectionLost          the server closed or reset the connection during
    │   │                           the handshake (also ConnectionError)
    │   └── ConnectionTimeout       connect + TLS + HTTP took too long (also TimeoutError)
    ├── ConnectionClosed            the connection is closed; carries a CloseReason
    └── DisconnectionTimeout        the closing handshake took too long (also TimeoutError)

Blocking calls that time out (:meth:`~syncws.WebSocketConnection.get_message`,
:meth:`~syncws.WebSocketConnection.send_message`, :meth:`~syncws.WebSocketConnection.ping`)
raise the builtin :class:`TimeoutError`. Network failures while connecting (DNS, refused
connection, TLS certificate errors) propagate as the :class:`OSError` Python raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .types import CloseReason

__all__ = [
    "ConnectionClosed",
    "ConnectionLost",
    "ConnectionRejected",
    "ConnectionTimeout",
    "DisconnectionTimeout",
    "HandshakeError",
    "WebSocketError",
]


class WebSocketError(Exception):
    """Base class of every exception that syncws defines."""


class HandshakeError(WebSocketError):
    """The opening handshake failed.

    Raised as is when the server's answer is not a valid WebSocket handshake
    (a wrong ``Sec-WebSocket-Accept``, a missing ``Upgrade`` header, a subprotocol
    that was not offered, malformed HTTP, ...), and as one of its subclasses for a
    rejection or a timeout.
    """


class ConnectionRejected(HandshakeError):
    """The server answered the WebSocket handshake with an HTTP response other than 101.

    An error status (4xx, 5xx) is a refusal; any other status (200 from a plain web
    server, a redirect, ...) means that the server did not upgrade the connection. The
    message says which, with the status line and the first bytes of the body.

    :param status_code: the HTTP status code of the response.
    :param headers: the response headers as ``(name, value)`` pairs of bytes.
    :param body: the response body, or ``None`` when the response had none.
    :param status_line: the status line as received, e.g. ``"HTTP/1.1 200 OK"``.
    :param hint: a sentence for the end of the message: what the response suggests.
    """

    def __init__(
        self,
        status_code: int,
        headers: tuple[tuple[bytes, bytes], ...],
        body: bytes | None,
        *,
        status_line: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(status_code, headers, body)
        #: The HTTP status code of the response.
        self.status_code = status_code
        #: The response headers as ``(name, value)`` pairs of bytes.
        self.headers = headers
        #: The response body, or ``None``.
        self.body = body
        #: The status line as received (decoded as ISO-8859-1), or ``None`` if unknown.
        self.status_line = status_line
        self._hint = hint

    def __str__(self) -> str:
        line = _excerpt(self.status_line or f"HTTP {self.status_code}", _SHOWN_LINE)
        if self.status_code >= 400:
            version, _, rest = line.partition(" ")
            text = f"server rejected WebSocket connection: HTTP {rest if rest else version},"
        else:
            text = f"the server did not upgrade to WebSocket: it answered {line!r}"
        text = f"{text} with the body {_body_excerpt(self.body)}" if self.body else text.rstrip(",")
        return f"{text}; {self._hint}" if self._hint else text


#: The most of a status line, and of a body, that a message shows.
_SHOWN_LINE = 100
_SHOWN_BODY = 100


def _excerpt(text: str, size: int) -> str:
    return text if len(text) <= size else text[:size] + "..."


def _body_excerpt(body: bytes) -> str:
    """Quote the first bytes of ``body``, control characters escaped."""
    shown = repr(body[:_SHOWN_BODY].decode("utf-8", "replace"))
    return shown + "..." if len(body) > _SHOWN_BODY else shown


class ConnectionLost(HandshakeError, ConnectionError):
    """The server closed or reset the connection during the opening handshake.

    Raised for an end of stream or a reset during the TLS handshake, while the request
    is sent, or before the head of the server's response is complete; the error of the
    socket, if any, is its ``__cause__``. A rejection (an HTTP error status) that the
    server cuts short is a :class:`ConnectionRejected` with what arrived of its body.

    This is also a builtin :class:`ConnectionError`, an :class:`OSError`, as the
    :class:`ConnectionResetError` raised for some of these cases was.
    """


class ConnectionTimeout(HandshakeError, TimeoutError):
    """Opening the connection took longer than ``connect_timeout``.

    The time counts the TCP connection, the TLS handshake and the HTTP upgrade
    together. This is also a builtin :class:`TimeoutError`.
    """


class ConnectionClosed(WebSocketError):
    """The connection is closed, or closing, so the operation cannot proceed.

    :param reason: why the connection closed.
    """

    def __init__(self, reason: CloseReason) -> None:
        super().__init__(reason)
        #: The :class:`~syncws.CloseReason` of the connection.
        self.reason = reason

    def __str__(self) -> str:
        return f"connection closed: {self.reason}"


class DisconnectionTimeout(WebSocketError, TimeoutError):
    """The closing handshake did not finish within ``disconnect_timeout``.

    The connection was aborted. Raised on exit by the context managers
    :func:`~syncws.open_websocket` and :func:`~syncws.open_websocket_url`;
    :meth:`~syncws.WebSocketConnection.close` itself returns normally in that case.
    This is also a builtin :class:`TimeoutError`.
    """
