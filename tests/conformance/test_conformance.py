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
from rawpeer import RawPeer, raw_client

import syncws

from .cases import CASES, LIMIT, SIDES, Case
from .conftest import EchoServer
from .harness import Harness


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


@pytest.mark.parametrize(("side", "case"), _params())
def test_conformance(side: str, case: Case, echo_server: EchoServer) -> None:
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
