"""The opening handshake's HTTP in syncws's own code, for the heads every peer sends.

Opening a connection through wsproto's handshake engine (which runs h11) costs about
140 µs of CPU on each side, as much as the rest of syncws's part of a handshake. Most
heads are plain: one request or response line, ``Name: value`` lines ending in CRLF,
printable ASCII, no header repeated. For those, this module writes the upgrade request
and the ``101`` response itself, and reads them back with one regular expression per
line, with the same checks and in the same order as wsproto's engine; it hands the
open connection to wsproto's :class:`~wsproto.connection.Connection`, which its
documentation offers for a handshake done outside wsproto ("advanced usage").

Anything else, an HTTP parser's leniencies (bare LF, continuation lines, odd spacing,
bytes beyond ASCII, a repeated header) and every request or response that is not a
valid upgrade, is not read here: the readers return ``None`` and the caller hands the
bytes to wsproto's engine, so that the errors and the answers stay wsproto's and
syncws's as they were. So this module only ever decides for heads that both readers
accept, and they agree on those (``tests/test_upgrade.py`` checks it).

Extensions are negotiated by wsproto's own documented functions,
:func:`wsproto.handshake.server_extensions_handshake` and
:func:`wsproto.handshake.client_extensions_handshake`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from wsproto.connection import Connection, ConnectionType
from wsproto.events import Request
from wsproto.extensions import Extension
from wsproto.handshake import client_extensions_handshake, server_extensions_handshake
from wsproto.utilities import RemoteProtocolError

from ._http import HEAD_END, MAX_HEAD_SIZE, MAX_HEADERS, is_websocket_key

__all__ = [
    "REQUEST_START",
    "SWITCH_START",
    "Switched",
    "accept_token",
    "may_be_plain",
    "new_key",
    "read_request",
    "read_switch",
    "request_bytes",
    "response_bytes",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_HEAD_END = b"\r\n\r\n"
#: A header line as every peer writes it: a token, a colon, optional spaces or tabs,
#: then printable ASCII (inner spaces and tabs allowed), nothing trailing.
_HEADER = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*((?:[!-~](?:[\t -~]*[!-~])?)?)")
#: A request line in origin form, HTTP/1.1.
_REQUEST_LINE = re.compile(rb"GET (/[!-~]*) HTTP/1\.1")
#: A ``101`` status line, HTTP/1.1, its reason phrase optional.
_SWITCH_LINE = re.compile(rb"HTTP/1\.1 101(?: [\t -~]*)?")
#: Request headers a valid upgrade request has exactly once.
_ONCE = (b"host", b"upgrade", b"connection", b"sec-websocket-key", b"sec-websocket-version")
#: Response headers that wsproto reads only the last of: one of each, or wsproto decides.
_AT_MOST_ONCE_IN_RESPONSE = (
    b"upgrade",
    b"connection",
    b"sec-websocket-accept",
    b"sec-websocket-protocol",
    b"sec-websocket-extensions",
)
#: Request headers that wsproto leaves out of ``Request.extra_headers``.
_NOT_EXTRA = frozenset({b"host", b"sec-websocket-extensions", b"sec-websocket-protocol"})


#: How a plain upgrade request starts, and a plain answer that accepts one.
REQUEST_START = b"GET /"
SWITCH_START = b"HTTP/1.1 101"


def may_be_plain(received: bytes | bytearray, start: bytes) -> bool:
    """Whether ``received`` may be the start of a plain head, still incomplete.

    ``start`` is how such a head starts (:data:`REQUEST_START`, :data:`SWITCH_START`).
    ``False`` once the end of a head arrived, plain or not (bare LF line ends
    included), or more bytes than a head may have.
    """
    return (
        len(received) < MAX_HEAD_SIZE
        and HEAD_END.search(received) is None
        and (received.startswith(start) or start.startswith(received))
    )


def new_key() -> bytes:
    """Return a fresh ``Sec-WebSocket-Key``: 16 random bytes in base64."""
    return base64.b64encode(os.urandom(16))


def accept_token(key: bytes) -> bytes:
    """Return the ``Sec-WebSocket-Accept`` that answers ``key`` (RFC 6455, section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _GUID, usedforsecurity=False).digest())


def _split_comma(value: bytes) -> list[str]:
    """Split a comma-separated header value, as wsproto does (ASCII, stripped)."""
    return [piece.decode("ascii").strip() for piece in value.split(b",")]


def _lines(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], int] | None:
    """Split a plain head at the start of ``data``; ``None`` for any other.

    :returns: the start line, the headers (names in lower case) and the offset just
        past the head.
    """
    end = data.find(_HEAD_END)
    if end < 0 or end + 4 > MAX_HEAD_SIZE:
        return None
    start_line, *lines = data[:end].split(b"\r\n")
    if len(lines) > MAX_HEADERS:
        return None
    headers = []
    match = _HEADER.fullmatch
    for line in lines:
        found = match(line)
        if found is None:
            return None
        headers.append((found[1].lower(), found[2]))
    return start_line, headers, end + 4


# -- the client's side ---------------------------------------------------------------


def request_bytes(request: Request, key: bytes) -> bytes:
    """Write the upgrade request for ``request`` with ``key``, as wsproto's engine would.

    The headers come in wsproto's order: ``Host``, ``Upgrade``, ``Connection``, the key,
    the version, the subprotocols and extensions offered, then ``request.extra_headers``
    (checked by the caller).
    """
    lines = [
        b"GET " + request.target.encode("ascii") + b" HTTP/1.1",
        b"Host: " + request.host.encode("idna"),
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + key,
        b"Sec-WebSocket-Version: 13",
    ]
    if request.subprotocols:
        lines.append(b"Sec-WebSocket-Protocol: " + ", ".join(request.subprotocols).encode("ascii"))
    offers = []
    for extension in request.extensions:
        assert isinstance(extension, Extension)
        params = extension.offer()
        name = extension.name.encode("ascii")
        if isinstance(params, bool):
            if params:
                offers.append(name)
        else:
            offers.append(name + b"; " + params.encode("ascii"))
    if offers:
        lines.append(b"Sec-WebSocket-Extensions: " + b", ".join(offers))
    lines.extend(name + b": " + value for name, value in request.extra_headers)
    return b"\r\n".join(lines) + b"\r\n\r\n"


@dataclass(frozen=True)
class Switched:
    """A ``101`` response read by :func:`read_switch`, and the engine of the open connection."""

    #: The subprotocol the server chose, if any.
    subprotocol: str | None
    #: The other response headers, names in lower case (as wsproto's ``AcceptConnection``).
    extra_headers: list[tuple[bytes, bytes]]
    #: The bytes after the head (frames the server sent right behind it).
    trailing: bytes
    #: wsproto's engine of the open connection, given the bytes after the head.
    engine: Connection


def read_switch(data: bytes, key: bytes, request: Request) -> Switched | None:
    """Read a plain ``101`` response to ``request`` at the start of ``data``.

    :returns: ``None`` when ``data`` does not start with a complete, plain ``101`` head
        with each of its WebSocket headers once: wsproto's engine must read it.
    :raises RemoteProtocolError: with wsproto's message, for a ``101`` that does not
        accept the request (missing ``Upgrade``, a wrong accept token, a subprotocol
        or extension not offered).
    :raises UnicodeError: for a non-ASCII subprotocol or extension, as wsproto does.
    """
    split = _lines(data)
    if split is None or not _SWITCH_LINE.fullmatch(split[0]):
        return None
    _, headers, end = split
    values: dict[bytes, bytes] = {}
    extra = []
    for name, value in headers:
        if name in _AT_MOST_ONCE_IN_RESPONSE:
            if name in values:
                return None
            values[name] = value
        else:
            extra.append((name, value))
    # The checks of wsproto's engine, in its order and with its messages.
    connection = values.get(b"connection")
    if connection is None or not any(t.lower() == "upgrade" for t in _split_comma(connection)):
        raise RemoteProtocolError("Missing header, 'Connection: Upgrade'")
    if values.get(b"upgrade", b"").lower() != b"websocket":
        raise RemoteProtocolError("Missing header, 'Upgrade: websocket'")
    if values.get(b"sec-websocket-accept") != accept_token(key):
        raise RemoteProtocolError("Bad accept token")
    protocol = values.get(b"sec-websocket-protocol")
    subprotocol = None if protocol is None else protocol.decode("ascii")
    if subprotocol is not None and subprotocol not in request.subprotocols:
        raise RemoteProtocolError(f"unrecognized subprotocol {subprotocol}")
    accepted = values.get(b"sec-websocket-extensions")
    offered: Sequence[Extension] = request.extensions  # type: ignore[assignment]
    extensions = client_extensions_handshake(
        [] if accepted is None else _split_comma(accepted), offered
    )
    trailing = data[end:]
    engine = Connection(ConnectionType.CLIENT, extensions, trailing)
    return Switched(subprotocol, extra, trailing, engine)


# -- the server's side ---------------------------------------------------------------


def read_request(data: bytes) -> tuple[Request, int] | None:
    """Read a plain, valid upgrade request at the start of ``data``.

    :returns: the request, as wsproto's engine would give it, and the offset just past
        its head; ``None`` for anything else (incomplete, unusual or invalid), which
        wsproto's engine then reads and answers.
    """
    split = _lines(data)
    if split is None:
        return None
    target = _REQUEST_LINE.fullmatch(split[0])
    if target is None:
        return None
    _, headers, end = split
    once: dict[bytes, bytes] = {}
    extensions: list[str] = []
    subprotocols: list[str] = []
    extra = []
    for name, value in headers:
        if name in _ONCE:
            if name in once:
                return None
            once[name] = value
        elif name == b"sec-websocket-extensions":
            extensions.extend(_split_comma(value))
            continue
        elif name == b"sec-websocket-protocol":
            subprotocols.extend(_split_comma(value))
            continue
        elif name == b"content-length" and value == b"0":
            pass
        elif name in (b"content-length", b"transfer-encoding"):
            return None
        if name != b"host":
            extra.append((name, value))
    if (
        len(once) != len(_ONCE)
        or once[b"upgrade"].lower() != b"websocket"
        or once[b"sec-websocket-version"] != b"13"
        or not any(t.lower() == "upgrade" for t in _split_comma(once[b"connection"]))
        or not is_websocket_key(once[b"sec-websocket-key"])
    ):
        return None
    request = Request(
        host=once[b"host"].decode("idna"),
        target=target[1].decode("ascii"),
        extensions=extensions,
        extra_headers=extra,
        subprotocols=subprotocols,
    )
    return request, end


def response_bytes(
    request: Request,
    subprotocol: str | None,
    extensions: list[Extension],
    extra_headers: list[tuple[bytes, bytes]],
) -> bytes:
    """Write the ``101`` that accepts ``request``, as wsproto's engine would.

    ``subprotocol`` must be one the client offered (the caller checked it);
    ``extensions`` are those the server supports: each one the client offered and that
    accepts the offer is named in the response.
    """
    key = dict(request.extra_headers)[b"sec-websocket-key"]
    lines = [
        b"HTTP/1.1 101 Switching Protocols",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Accept: " + accept_token(key),
    ]
    if subprotocol is not None:
        lines.append(b"Sec-WebSocket-Protocol: " + subprotocol.encode("ascii"))
    if extensions:
        offers: list[str] = request.extensions  # type: ignore[assignment]
        accepts = server_extensions_handshake(offers, extensions)
        if accepts:
            lines.append(b"Sec-WebSocket-Extensions: " + accepts)
    lines.extend(name + b": " + value for name, value in extra_headers)
    return b"\r\n".join(lines) + b"\r\n\r\n"
