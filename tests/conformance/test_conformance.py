"""RFC 6455 conformance: every case of :mod:`conformance.cases` against both sides.

``server-*``: a syncws echo server (``syncws.WebSocketServer``), the raw peer of
:mod:`rawpeer` as a masking client. ``client-*``: a ``syncws.connect`` client whose
messages a test thread echoes back, the raw peer as the server. See
:mod:`conformance.cases` for the behaviour syncws chooses where the RFC allows.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from helpers import WAIT, Background
from rawpeer import (
    ClientPeerConnection,
    RawPeer,
    raw_client,
    response_101,
)

import syncws

from .cases import CASES, LIMIT, SIDES, Case
from .conftest import EchoServer
from .harness import Deflate, Harness, check_response, ext_params


def _params() -> list[Any]:
    params = []
    for side in SIDES:
        for case in CASES:
            if side not in case.sides:
                continue
            marks = []
            if side in case.xfail:
                marks.append(pytest.mark.xfail(strict=True, reason=case.xfail[side]))
            params.append(pytest.param(side, case, id=f"{side}-{case.id}-{case.slug}", marks=marks))
    return params


def _client_echo(ws: syncws.WebSocketConnection) -> Any:
    try:
        for message in ws:
            ws.send_message(message)
    except syncws.ConnectionClosed:
        pass
    return ws.close_reason


def _reader_alive() -> bool:
    """Whether a syncws reader thread runs: the client side's reader ends with its TCP."""
    return any(t.name.startswith("syncws-reader") and t.is_alive() for t in threading.enumerate())


def _run(case: Case, harness: Harness) -> None:
    for step in case.steps:
        step.run(harness)
    case.end.run(harness)


def _deflate_client(port: int, path: str, offer: str) -> tuple[ClientPeerConnection, str | None]:
    """A raw client offering ``offer``: the connection and the server's extension answer."""
    conn = raw_client(port, path, headers=[("Sec-WebSocket-Extensions", offer)], timeout=WAIT)
    assert conn.response is not None
    return conn, conn.response.header("Sec-WebSocket-Extensions")


def _run_deflate_server(case: Case, server: EchoServer) -> None:
    neg = case.deflate
    assert neg is not None
    path = f"/{uuid.uuid4().hex}"
    conn, answer = _deflate_client(server.port, path, neg.offer)
    try:
        if neg.declined:
            assert answer is None, f"{neg.offer!r} should be declined, got {answer!r}"
            deflate = None
        else:
            assert answer is not None, f"syncws declined {neg.offer!r}"
            deflate = Deflate("server", check_response(neg.offer, answer))
        _run(
            case, Harness("server", conn, lambda: server.close_reason(path), WAIT, deflate=deflate)
        )
    finally:
        conn.close()


def _run_deflate_client(case: Case) -> None:
    neg = case.deflate
    assert neg is not None
    header = [("Sec-WebSocket-Extensions", neg.response)]
    with RawPeer(handshake=lambda request: response_101(request, extra_headers=header)) as peer:
        if neg.fails:
            with pytest.raises(syncws.HandshakeError):
                syncws.connect(peer.url, compression="deflate", disconnect_timeout=WAIT)
            return
        ws = syncws.connect(
            peer.url, compression="deflate", max_message_size=LIMIT, disconnect_timeout=WAIT
        )
        try:
            conn = peer.connection(WAIT)
            offers = conn.request.header_all("Sec-WebSocket-Extensions") if conn.request else []
            assert [ext_params(o) for o in offers], "syncws offered no permessage-deflate"
            deflate = Deflate("client", dict(ext_params(neg.response)))
            echo = Background(_client_echo, ws)
            try:
                harness = Harness("client", conn, lambda: echo.result(WAIT), WAIT, _reader_alive)
                harness.deflate = deflate
                _run(case, harness)
            finally:
                conn.close()
                echo.join(WAIT)
        finally:
            ws.close()


@pytest.mark.parametrize(("side", "case"), _params())
def test_conformance(
    side: str, case: Case, echo_server: EchoServer, deflate_echo_server: EchoServer
) -> None:
    if case.deflate is not None:
        if side == "server":
            _run_deflate_server(case, deflate_echo_server)
        else:
            _run_deflate_client(case)
        return
    if side == "server":
        server = echo_server
        path = f"/{uuid.uuid4().hex}"
        conn = raw_client(server.port, path, timeout=WAIT)
        try:
            _run(case, Harness(side, conn, lambda: server.close_reason(path), WAIT))
        finally:
            conn.close()
        return
    with RawPeer() as peer:
        ws = syncws.connect(peer.url, max_message_size=LIMIT, disconnect_timeout=WAIT)
        try:
            conn = peer.connection(WAIT)
            echo = Background(_client_echo, ws)
            try:
                _run(case, Harness(side, conn, lambda: echo.result(WAIT), WAIT, _reader_alive))
            finally:
                conn.close()
                echo.join(WAIT)
        finally:
            ws.close()
