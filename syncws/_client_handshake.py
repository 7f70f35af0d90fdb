"""The client's opening handshake on a connected socket: TLS, then the HTTP upgrade.

:func:`start_tls` and :func:`handshake` turn what goes wrong into errors that say
what it likely means (a ``ws://`` URL for a TLS server, a rejection with its body, a
server that went away), for :mod:`syncws.client`, whose functions open the socket.
"""

from __future__ import annotations

import re
import socket
import ssl
from typing import TYPE_CHECKING

from wsproto import WSConnection
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request

from ._deadline import Deadline
from ._deflate import deflate_extensions
from ._http import (
    MAX_HEAD_SIZE,
    add_header,
    check_header_option,
    check_headers,
    check_token,
    has_control_character,
    product,
    split_head,
)
from ._upgrade import SWITCH_START, Switched, may_be_plain, new_key, read_switch, request_bytes
from ._url import Target
from ._wsproto import HANDSHAKE_ERRORS, client_engine, interim_status
from .connection import WebSocketConnection, connection_args
from .exceptions import (
    ConnectionLost,
    ConnectionRejected,
    ConnectionTimeout,
    HandshakeError,
)

if TYPE_CHECKING:
    from .client import ConnectOptions

__all__ = ["MAX_INTERIM_RESPONSES", "MAX_REJECT_BODY", "handshake", "start_tls", "upgrade_request"]

#: The most of a rejection's body that is kept for :class:`~syncws.ConnectionRejected`.
MAX_REJECT_BODY = 64 * 1024
#: The most interim (``1xx``) responses skipped before the final response. Their heads
#: and the final one's count together against the bound on the head's size,
#: :data:`._http.MAX_HEAD_SIZE`.
MAX_INTERIM_RESPONSES = 8

#: Response headers that may appear once (RFC 6455, section 4.1).
_SINGLE_RESPONSE_HEADERS = (b"sec-websocket-accept", b"sec-websocket-protocol")


def upgrade_request(target: Target, options: ConnectOptions) -> Request:
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
    """What arrived of the server's answer to the upgrade request, fed to wsproto.

    Interim responses (``1xx`` other than ``101``, such as ``100 Continue`` or ``103
    Early Hints``) are skipped, as RFC 9110 (section 15.2) asks of a client: at most
    :data:`MAX_INTERIM_RESPONSES`, and all heads together within
    :data:`._http.MAX_HEAD_SIZE` bytes.
    """

    def __init__(self, ws: WSConnection, target: Target) -> None:
        self._ws = ws
        self._target = target
        #: The bytes of the response until it turned out to be a rejection.
        self.received = bytearray()
        #: Where the head of the final response starts in ``received``: after the
        #: interim responses skipped.
        self.head_start = 0
        self._interim = 0
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
                self._check_head_size(self.head_end())
                return event
            if isinstance(event, RejectConnection):
                if interim_status(event) is not None and self._rejection is None:
                    self._skip_interim()
                    continue
                self._rejection = event
                if not event.has_body:
                    raise self.rejected()
            elif isinstance(event, RejectData) and self._rejection is not None:
                self._body += event.data
                if event.body_finished or len(self._body) >= MAX_REJECT_BODY:
                    raise self.rejected()
        if not chunk:
            raise self.rejected()
        if self._rejection is None:
            # All of it is head: the interim ones and the start of the next.
            self._check_head_size(len(self.received))
        return None

    @property
    def engine(self) -> WSConnection:
        """The wsproto engine that read the response."""
        return self._ws

    def head_end(self) -> int:
        """Return the offset just past the head that starts at :attr:`head_start`."""
        _, _, end = split_head(bytes(self.received[self.head_start :]))
        return self.head_start + end

    def _skip_interim(self) -> None:
        self._interim += 1
        if self._interim > MAX_INTERIM_RESPONSES:
            raise HandshakeError(
                f"invalid handshake response: more than {MAX_INTERIM_RESPONSES} "
                "interim (1xx) responses"
            )
        self.head_start = self.head_end()
        self._check_head_size(self.head_start)

    def _check_head_size(self, size: int) -> None:
        if size > MAX_HEAD_SIZE:
            what = "response heads" if self._interim else "response head"
            raise HandshakeError(
                f"invalid handshake response: {what} larger than {MAX_HEAD_SIZE} bytes"
            )

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
        head = bytes(self.received[self.head_start :])
        status_line = head.split(b"\n", 1)[0].rstrip(b"\r")
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


def handshake(
    sock: socket.socket, target: Target, deadline: Deadline, options: ConnectOptions
) -> WebSocketConnection:
    """Run the HTTP upgrade on a connected socket; return the open connection.

    A plain ``101`` head is read by :func:`._upgrade.read_switch`; anything else (an
    interim response, a rejection, an unusual head, bytes that are not HTTP) by
    wsproto's engine, through :class:`_Response`.
    """
    request = upgrade_request(target, options)
    key = new_key()
    received = bytearray()
    response: _Response | None = None
    try:
        _settimeout(sock, deadline)
        try:
            sock.sendall(request_bytes(request, key))
        except _LOST as exc:
            raise _Response(client_engine(request, key), target).lost(exc) from exc
        while True:
            _settimeout(sock, deadline)
            try:
                chunk = sock.recv(65536)
            except _LOST as exc:
                if response is None:
                    response = _Response(client_engine(request, key), target)
                    response.received += received
                raise response.lost(exc) from exc
            if response is None:
                received += chunk
                if chunk and received.startswith(SWITCH_START):
                    try:
                        switched = read_switch(bytes(received), key, request)
                    except HANDSHAKE_ERRORS as exc:
                        raise HandshakeError(f"invalid handshake response: {exc}") from exc
                    if switched is not None:
                        return _open(sock, target, options, switched)
                if chunk and may_be_plain(received, SWITCH_START):
                    continue  # The rest of a head that may be plain.
                # Not plain: wsproto's engine reads it all, from the first byte.
                response = _Response(client_engine(request, key), target)
                event = response.feed(bytes(received)) if received else None
                if event is None and not chunk:
                    event = response.feed(b"")
            else:
                event = response.feed(chunk)
            if event is not None:
                start = response.head_start
                head_end = start + _check_response_head(bytes(response.received[start:]))
                return WebSocketConnection(
                    sock,
                    response.engine,
                    path=target.resource,
                    subprotocol=event.subprotocol,
                    handshake_headers=tuple(
                        (name.lower(), value) for name, value in event.extra_headers
                    ),
                    received=bytes(response.received[head_end:]),
                    **connection_args(options),
                )
    except TimeoutError as exc:
        if response is not None and response.rejecting:
            # Still a timeout, but the status says more: the rejection is its cause.
            rejection = response.rejected()
            raise ConnectionTimeout(
                f"timed out waiting for the end of the server's response; {rejection}"
            ) from rejection
        if isinstance(exc, ConnectionTimeout):
            raise
        raise ConnectionTimeout("timed out during the WebSocket handshake") from exc


def _open(
    sock: socket.socket, target: Target, options: ConnectOptions, switched: Switched
) -> WebSocketConnection:
    """Make the connection that a plain ``101`` opened."""
    return WebSocketConnection(
        sock,
        switched.engine,
        path=target.resource,
        subprotocol=switched.subprotocol,
        handshake_headers=tuple(switched.extra_headers),
        received=switched.trailing,
        **connection_args(options),
    )


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
    """Refuse what wsproto lets through: repeated headers, control characters.

    wsproto reads only the last of repeated headers, and takes some control
    characters for spaces (see :func:`._http.has_control_character`).

    Sec-WebSocket-Accept and -Protocol may appear once. Sec-WebSocket-Extensions may
    be repeated (RFC 6455 erratum 3433), but syncws offers one extension at most, so
    only the last of them may name one: that is the one wsproto checked.

    :returns: the offset just past the head in ``data``.
    """
    _, values, end = split_head(data)
    if has_control_character(values):
        raise HandshakeError("invalid handshake response: control character in a header value")
    for name in _SINGLE_RESPONSE_HEADERS:
        if len(values.get(name, ())) > 1:
            raise HandshakeError(f"invalid handshake response: repeated {name.decode()} header")
    if any(value.strip(b" \t,") for value in values.get(b"sec-websocket-extensions", [])[:-1]):
        raise HandshakeError("invalid handshake response: more extensions than offered")
    return end


def start_tls(
    sock: socket.socket, target: Target, context: ssl.SSLContext, deadline: Deadline
) -> socket.socket:
    """Run the TLS handshake on a connected socket within ``deadline``; return the TLS socket.

    The errors of a server that does not speak TLS, or whose certificate cannot be
    verified, say so and what to do.
    """
    _settimeout(sock, deadline)
    try:
        return context.wrap_socket(sock, server_hostname=target.host)
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
