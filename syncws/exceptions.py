"""Exceptions raised by syncws.

Every exception that syncws defines derives from :class:`WebSocketError`::

    WebSocketError
    ├── HandshakeError              the opening handshake failed
    │   ├── ConnectionRejected      the server answered with an HTTP error
    │   │   └── RedirectError       ... a redirect that is not followed (a loop, too
    │   │                           many, a wss:// to ws:// downgrade, ...)
    │   ├── ConnectionLost          the server closed or reset the connection during
    │   │                           the handshake (also ConnectionError)
    │   ├── ProxyError              the proxy refused to open a tunnel to the server
    │   └── ConnectionTimeout       connect + TLS + HTTP took too long (also TimeoutError)
    ├── ConnectionClosed            the connection is closed; carries a CloseReason
    │   ├── ConnectionClosedOK      ... normally: close frames 1000, 1001 or 1005
    │   └── ConnectionClosedError   ... otherwise: an error code, a failure, an abort
    ├── DisconnectionTimeout        no longer raised, kept for except clauses (TimeoutError)
    └── RedisUnavailable            a RedisHub cannot reach Redis (also ConnectionError)

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
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "ConnectionLost",
    "ConnectionRejected",
    "ConnectionTimeout",
    "DisconnectionTimeout",
    "HandshakeError",
    "ProxyError",
    "RedirectError",
    "RedisUnavailable",
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


class RedirectError(ConnectionRejected):
    """The server answered with a redirect that the client does not follow.

    The client functions that open a URL follow redirects (301, 302, 303, 307, 308)
    to ``ws://`` and ``wss://`` URLs (see :ref:`redirects`); this is raised, instead
    of following one, for a redirect loop, more than ten redirects, a redirect from
    ``wss://`` to ``ws://``, or a ``Location`` that is not a WebSocket URL. It is a
    :class:`ConnectionRejected`, for the redirect answer (its status, headers and
    body), so ``except ConnectionRejected`` still catches a 3xx that is not followed.

    :param message: what happened, naming the URLs, their passwords hidden.
    :param url: the URL the last redirect pointed to, resolved against the URL that
        answered it, its password hidden.
    :param rejection: the redirect answer.
    """

    def __init__(self, message: str, *, url: str, rejection: ConnectionRejected) -> None:
        super().__init__(
            rejection.status_code,
            rejection.headers,
            rejection.body,
            status_line=rejection.status_line,
        )
        self.args = (message,)
        self._message = message
        #: The URL the last redirect pointed to, its password hidden.
        self.url = url

    def __str__(self) -> str:
        return self._message


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


class ProxyError(HandshakeError):
    """The proxy did not open a tunnel to the server.

    An HTTP proxy answered ``CONNECT`` with a status other than 2xx (407: it wants
    credentials, or those of the proxy URL are wrong; 403: it does not allow the
    destination or its port; 502: it could not reach the server), its answer was not
    HTTP, or a SOCKS proxy refused. The message names the proxy, its password hidden,
    and the status line it answered. A proxy that cannot be reached raises the
    :class:`OSError` of the failed connection instead, its message naming the proxy.

    :param message: what happened.
    :param proxy: the proxy URL, its password hidden.
    :param status_code: the HTTP status of the proxy's answer, ``None`` for SOCKS or
        an answer that was not HTTP.
    :param status_line: the status line as received, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        proxy: str,
        status_code: int | None = None,
        status_line: str | None = None,
    ) -> None:
        super().__init__(message)
        #: The proxy URL, its password hidden.
        self.proxy = proxy
        #: The HTTP status code of the proxy's answer, or ``None``.
        self.status_code = status_code
        #: The status line as received (decoded as ISO-8859-1), or ``None``.
        self.status_line = status_line


class ConnectionTimeout(HandshakeError, TimeoutError):
    """Opening the connection took longer than ``connect_timeout``.

    The time counts the TCP connection, the TLS handshake and the HTTP upgrade
    together, and the connection to a proxy and its answer when there is one. This is
    also a builtin :class:`TimeoutError`.
    """


class ConnectionClosed(WebSocketError):
    """The connection is closed, or closing, so the operation cannot proceed.

    syncws raises one of the two subclasses, :class:`ConnectionClosedOK` for a normal
    close and :class:`ConnectionClosedError` for any other; ``except ConnectionClosed``
    catches both. Besides the close reason, the exception says which close frames
    went through, in which order: who closed. Its message says it too, e.g.
    ``connection closed: 1000 (NORMAL_CLOSURE); received 1000 (NORMAL_CLOSURE), then
    sent 1000 (NORMAL_CLOSURE)`` when the peer closed.

    :param reason: why the connection closed: the connection's
        :attr:`~syncws.WebSocketConnection.close_reason` when it was raised.
    :param rcvd: the close frame received from the peer, ``None`` if none was.
    :param sent: the close frame sent to the peer, ``None`` if none was.
    :param rcvd_then_sent: with both frames, whether the peer's came first;
        ``None`` unless both are given.
    :raises ValueError: when ``rcvd_then_sent`` is given without both frames, or
        missing with both.
    """

    def __init__(
        self,
        reason: CloseReason,
        *,
        rcvd: CloseReason | None = None,
        sent: CloseReason | None = None,
        rcvd_then_sent: bool | None = None,
    ) -> None:
        if (rcvd_then_sent is None) != (rcvd is None or sent is None):
            raise ValueError("rcvd_then_sent is given when both rcvd and sent are, and only then")
        super().__init__(reason)
        #: The :class:`~syncws.CloseReason` of the connection.
        self.reason = reason
        #: The close frame received from the peer (its code and reason), or ``None``:
        #: the connection ended before the peer's close frame, or the peer sent none.
        self.rcvd = rcvd
        #: The close frame sent to the peer (its code and reason), or ``None``. Sent
        #: means handed to the socket's write queue: a broken connection may have lost
        #: it on the way.
        self.sent = sent
        #: With both close frames, whether the peer's came first (``True``: the peer
        #: closed and this side answered; ``False``: this side closed and the peer
        #: answered); ``None`` otherwise.
        self.rcvd_then_sent = rcvd_then_sent

    def __str__(self) -> str:
        return f"connection closed: {self.reason}; {self._frames()}"

    def _frames(self) -> str:
        """Say which close frames went through, in order."""
        rcvd = None if self.rcvd is None else f"received {_frame(self.rcvd)}"
        sent = None if self.sent is None else f"sent {_frame(self.sent)}"
        if rcvd is not None and sent is not None:
            return f"{rcvd}, then {sent}" if self.rcvd_then_sent else f"{sent}, then {rcvd}"
        if rcvd is not None:
            return f"{rcvd}, no close frame sent"
        if sent is not None:
            return f"{sent}, no close frame received"
        return "no close frame received or sent"


def _frame(frame: CloseReason) -> str:
    """Show a close frame by its code (its reason text may be long)."""
    return f"{frame.code} ({frame.name})"


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed normally (a :class:`ConnectionClosed`).

    Normal means: the close frames sent and received all have code 1000 (normal
    closure), 1001 (going away) or none (1005), and the connection was neither failed
    nor aborted before they went through. Once the connection is closed, both close
    frames went through, whichever side closed first: a ``close()`` answered by the
    peer, or a peer's close that syncws answered. (As in ``websockets``, whose
    exception of the same name follows the same codes.)

    During a closing handshake, a call that finds the connection closing gets this
    exception when the handshake so far is normal: after ``close()`` (code 1000 or
    1001) from another thread, before the peer's answer.

    A ``for message in ws`` loop ends quietly on this exception.
    """


class ConnectionClosedError(ConnectionClosed):
    """The connection did not close normally (a :class:`ConnectionClosed`).

    A close frame with another code was sent or received (the peer's error, a
    failure detected here such as 1009 for a message too big, or 1011 for a keepalive
    timeout, or a ``close()`` with such a code), or the connection ended without a
    complete closing handshake: the TCP connection broke, or was aborted (1006).

    A ``for message in ws`` loop raises this exception.
    """


class DisconnectionTimeout(WebSocketError, TimeoutError):
    """The closing handshake did not finish within ``disconnect_timeout``.

    No longer raised by syncws: leaving the ``with`` block of
    :func:`~syncws.open_websocket` or :func:`~syncws.open_websocket_url` used to raise
    it, and now closes as :func:`~syncws.connect` does, without raising (the
    connection's :attr:`~syncws.WebSocketConnection.close_reason` then has code 1006).
    Kept so that ``except`` clauses that name it still work. This is also a builtin
    :class:`TimeoutError`.
    """


class RedisUnavailable(WebSocketError, ConnectionError):
    """A :class:`~syncws.RedisHub` cannot reach Redis, or Redis did not answer in time.

    Raised by :meth:`~syncws.RedisHub.publish` and :meth:`~syncws.RedisHub.subscribe`,
    always within the hub's ``timeout`` (see their documentation). The exception that
    Redis's client raised, if any, is its ``__cause__``. This is also a builtin
    :class:`ConnectionError`.
    """
