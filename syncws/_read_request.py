"""Reading a client's upgrade request within the deadline; answering a bad one.

:func:`receive_request` returns the request with the bytes that came after it, or
answers a request that is not a valid WebSocket upgrade with the HTTP error that says
why (400, 426 for plain HTTP, 431 for huge headers) and returns ``None``.
"""

from __future__ import annotations

import contextlib
import logging
import socket

from wsproto import ConnectionType, WSConnection
from wsproto.events import RejectConnection, Request
from wsproto.utilities import RemoteProtocolError

from ._deadline import Deadline
from ._http import check_request_head, response
from ._wsproto import HANDSHAKE_ERRORS, http_status_hint, missing_upgrade

logger = logging.getLogger("syncws")

__all__ = ["receive_request"]


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
        status, headers = 426, [(b"Upgrade", b"websocket")]
        message = "this is a WebSocket server: send a WebSocket upgrade request"
    return status, headers, f"{status} {message}\n".encode()


def receive_request(
    sock: socket.socket, deadline: Deadline
) -> tuple[WSConnection, Request, bytes] | None:
    """Read the upgrade request; answer and return None when it is not a valid one.

    :returns: the engine, the request, and the bytes that came after the request
        (frames a client sent without waiting for the response).
    """
    ws = WSConnection(ConnectionType.SERVER)
    received = bytearray()
    while True:
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            raise TimeoutError("no complete handshake in time")
        sock.settimeout(remaining)
        data = sock.recv(65536)
        received += data
        try:
            ws.receive_data(data or None)
            events = list(ws.events())
        except HANDSHAKE_ERRORS as exc:
            # UnicodeError: wsproto could not decode the Host header.
            status, headers, body = _error_status(exc)
            logger.debug("bad handshake request: %s", body.decode().strip())
            _send_error(sock, status, headers, body)
            return None
        for event in events:
            if isinstance(event, Request):
                problem, end = check_request_head(bytes(received))
                if problem is not None:
                    status, why = problem
                    logger.debug("bad handshake request: %s", why)
                    _send_error(sock, status, [], f"{status} {why}\n".encode())
                    return None
                return ws, event, bytes(received[end:])
        if not data:
            return None


def _send_error(
    sock: socket.socket, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(response(status, headers, body))
