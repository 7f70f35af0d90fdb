"""Reading a client's upgrade request within the deadline; answering a bad one.

:func:`receive_request` returns the request with the bytes that came after it, or
answers a request that is not a valid WebSocket upgrade with the HTTP error that says
why (400, 431 for huge headers) and returns ``None``. A well-formed plain HTTP ``GET``
or ``HEAD`` (no ``Upgrade`` header, such as a health check) is returned without an
engine, for the ``process_request`` hook to answer (or the server answers it with 426).
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
from dataclasses import dataclass

from wsproto import ConnectionType, WSConnection
from wsproto.events import RejectConnection, Request
from wsproto.utilities import RemoteProtocolError

from ._deadline import Deadline
from ._http import (
    MAX_HEADERS,
    check_request_head,
    has_control_character,
    response,
    split_head,
)
from ._upgrade import REQUEST_START, may_be_plain, read_request
from ._wsproto import HANDSHAKE_ERRORS, http_status_hint, missing_upgrade

logger = logging.getLogger("syncws")

_HEAD_END = re.compile(rb"\r?\n\r?\n")

__all__ = ["PLAIN_HTTP_REFUSAL", "PlainRequest", "Received", "receive_request"]


@dataclass(frozen=True)
class PlainRequest:
    """A plain HTTP request (no ``Upgrade``), such as a load balancer's health check."""

    #: ``"GET"`` or ``"HEAD"``.
    method: str
    #: The request target: the path and query string.
    target: str
    #: Every header, names in lower case, in the order received (``Host`` included).
    headers: tuple[tuple[bytes, bytes], ...]


#: What :func:`receive_request` returns: the upgrade request, or a plain HTTP request;
#: then the bytes that came after the request.
Received = tuple[Request | PlainRequest, bytes]

#: The answer to a plain HTTP request that the ``process_request`` hook left alone:
#: status, headers and body (RFC 9110, section 15.5.22: 426 comes with ``Upgrade``).
PLAIN_HTTP_REFUSAL = (
    426,
    [(b"Upgrade", b"websocket")],
    b"426 this is a WebSocket server: send a WebSocket upgrade request\n",
)


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
        status, headers, body = PLAIN_HTTP_REFUSAL
        return status, list(headers), body
    return status, headers, f"{status} {message}\n".encode()


def _plain_request(data: bytes) -> PlainRequest | None:
    """Return a well-formed plain HTTP ``GET`` or ``HEAD`` request (no ``Upgrade``), or None.

    ``data`` starts with a complete request head that the HTTP parser accepted.
    """
    start_line, values, end = split_head(data)
    parts = start_line.split(b" ")
    if (
        len(parts) != 3
        or parts[0] not in (b"GET", b"HEAD")
        or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0")
        or not parts[1].startswith(b"/")
        or b"upgrade" in values
        or b"transfer-encoding" in values
        or values.get(b"content-length", [b"0"]) != [b"0"]
        or len(values.get(b"host", ())) > 1
        or has_control_character(values)
    ):
        return None
    headers = []
    for line in data[:end].split(b"\n")[1:]:
        if line[:1] in (b" ", b"\t"):
            return None  # obs-fold (RFC 9112, section 5.2): answered as an error
        name, sep, value = line.partition(b":")
        if sep:
            headers.append((name.strip().lower(), value.strip()))
    if len(headers) > MAX_HEADERS:
        return None
    return PlainRequest(parts[0].decode("ascii"), parts[1].decode("latin-1"), tuple(headers))


def receive_request(sock: socket.socket, deadline: Deadline) -> Received | None:
    """Read the upgrade request; answer and return None when it is not a valid one.

    A plain request head is read by :func:`._upgrade.read_request`; any other, and
    every request that is not a valid upgrade, by wsproto's engine, which finds what
    to answer.

    :returns: the request, and the bytes that came after it (frames a client sent
        without waiting for the response); for a plain HTTP ``GET`` or ``HEAD``
        request, a :class:`PlainRequest`, unanswered.
    """
    ws: WSConnection | None = None
    received = bytearray()
    while True:
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            raise TimeoutError("no complete handshake in time")
        sock.settimeout(remaining)
        data = sock.recv(65536)
        received += data
        if ws is None:
            if data:
                fast = read_request(bytes(received))
                if fast is not None:
                    request, end = fast
                    return request, bytes(received[end:])
                if may_be_plain(received, REQUEST_START):
                    continue  # The rest of a head that may be plain.
            # Not plain: wsproto's engine reads it all, from the first byte.
            ws = WSConnection(ConnectionType.SERVER)
            chunks: list[bytes | None] = [bytes(received)] if received else []
            if not data:
                chunks.append(None)
        else:
            chunks = [data or None]
        try:
            for chunk in chunks:
                ws.receive_data(chunk)
            events = list(ws.events())
        except HANDSHAKE_ERRORS as exc:
            plain = None
            if http_status_hint(exc) is None and _HEAD_END.search(received):
                # wsproto refused a complete request head that the HTTP parser took.
                plain = _plain_request(bytes(received))
            if plain is not None:
                return plain, b""
            # UnicodeError: wsproto could not decode the Host header.
            status, headers, body = _error_status(exc)
            logger.debug("bad handshake request: %s", body.decode().strip())
            _send_error(sock, status, headers, body, head=received.startswith(b"HEAD "))
            return None
        for event in events:
            if isinstance(event, Request):
                problem, end = check_request_head(bytes(received))
                if problem is not None:
                    status, why = problem
                    logger.debug("bad handshake request: %s", why)
                    message = f"{status} {why}\n".encode()
                    _send_error(sock, status, [], message, head=received.startswith(b"HEAD "))
                    return None
                return event, bytes(received[end:])
        if not data:
            return None


def _send_error(
    sock: socket.socket,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    *,
    head: bool = False,
) -> None:
    """Send an error response; to a ``HEAD`` request (``head``), its head only.

    RFC 9110, section 9.3.2: the answer to ``HEAD`` has the headers of the answer to
    ``GET``, ``Content-Length`` included, and no body.
    """
    with contextlib.suppress(OSError):
        sock.sendall(response(status, headers, body, head=head))
