"""Close codes registered after RFC 6455 (1012, 1013, 1014), sent by syncws.

The cases 7.6.x of :mod:`conformance.cases` have the raw peer send every valid close
code to syncws. Here syncws sends them, with ``close(code)``: as a client to the raw
peer (which checks the frame), as a server to a raw client, to the other end of a
syncws connection, and a ``websockets`` server sends them to syncws. 1014 (Bad
Gateway) is the one wsproto does not know (see :mod:`syncws._wsproto`).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from helpers import WAIT, SyncwsServer, WsServer, get_close, record_close_handler
from rawpeer import OP_CLOSE, raw_client

import syncws

#: The codes the IANA registry added after RFC 6455, with their names in syncws.
LATER_CODES = {1012: "SERVICE_RESTART", 1013: "TRY_AGAIN_LATER", 1014: "BAD_GATEWAY"}
REASON = "upstream went away"


@pytest.mark.parametrize("code", sorted(LATER_CODES))
def test_client_sends_code(raw_peer: Any, code: int) -> None:
    peer = raw_peer(auto=True)
    ws = syncws.connect(peer.url, disconnect_timeout=WAIT)
    ws.close(code, REASON)
    frame = peer.next_frame(WAIT)
    assert frame.opcode == OP_CLOSE
    assert frame.masked
    assert (frame.close_code, frame.close_reason) == (code, REASON)
    # The raw peer echoed the code: the closing handshake is complete.
    assert ws.close_reason is not None
    assert (ws.close_reason.code, ws.close_reason.name) == (code, LATER_CODES[code])


@pytest.mark.parametrize("code", sorted(LATER_CODES))
def test_server_sends_code(syncws_server: Any, code: int) -> None:
    def handler(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        ws.close(code, REASON)
        srv.record.put(ws.close_reason)

    server = syncws_server(handler)
    conn = raw_client(server.port, f"/{uuid.uuid4().hex}", timeout=WAIT)
    try:
        frame = conn.expect_close(WAIT)
        assert not frame.masked
        assert (frame.close_code, frame.close_reason) == (code, REASON)
        conn.send_close(code, REASON)
        conn.wait_eof(WAIT)
    finally:
        conn.close()
    reason = server.get()
    assert (reason.code, reason.name, reason.reason) == (code, LATER_CODES[code], REASON)


@pytest.mark.parametrize("code", sorted(LATER_CODES))
def test_code_between_syncws_ends(pair: Any, code: int) -> None:
    local, remote = pair
    local.close(code, REASON)
    with pytest.raises(syncws.ConnectionClosedError) as excinfo:
        remote.get_message(timeout=WAIT)
    frame = syncws.CloseReason(code, REASON)
    # The remote end reports the code received and echoes it.
    assert (excinfo.value.reason, excinfo.value.rcvd, excinfo.value.sent) == (frame, frame, frame)
    assert excinfo.value.reason.name == LATER_CODES[code]
    assert local.close_reason == remote.close_reason == frame


@pytest.mark.parametrize("code", sorted(LATER_CODES))
def test_code_from_websockets_server(websockets_server: Any, code: int) -> None:
    def handler(ws: Any, srv: WsServer) -> None:
        ws.close(code, REASON)

    server = websockets_server(handler)
    ws = syncws.connect(server.url, disconnect_timeout=WAIT)
    try:
        with pytest.raises(syncws.ConnectionClosedError) as excinfo:
            ws.get_message(timeout=WAIT)
    finally:
        ws.close()
    assert excinfo.value.reason == syncws.CloseReason(code, REASON)


@pytest.mark.parametrize("code", sorted(LATER_CODES))
def test_code_to_websockets_server(websockets_server: Any, code: int) -> None:
    server = websockets_server(record_close_handler)
    ws = syncws.connect(server.url, disconnect_timeout=WAIT)
    ws.close(code, REASON)
    assert get_close(server) == (code, REASON)
    assert ws.close_reason == syncws.CloseReason(code, REASON)
