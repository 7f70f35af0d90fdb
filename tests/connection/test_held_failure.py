"""A protocol error behind valid messages fails the connection only after they are read.

The valid message and the violation arrive in one write; the application reads the
message, may answer it, and the connection fails (1002) when it asks for more, when
it closes, or after ``FAIL_AFTER_MESSAGES_TIMEOUT`` if it does not read. See
``syncws/_held_failure.py``.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any

import pytest
from helpers import WAIT, Background, SyncwsServer
from rawpeer import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, encode_frame, raw_client

import syncws
from syncws._held_failure import FAIL_AFTER_MESSAGES_TIMEOUT


def _masked(opcode: int, payload: bytes = b"", rsv: int = 0) -> bytes:
    return encode_frame(opcode, payload, rsv=rsv, mask=os.urandom(4))


#: A valid text message, a frame with RSV2 set (a violation), and a ping behind it.
VALID_THEN_BAD = (
    _masked(OP_TEXT, b"hello") + _masked(OP_TEXT, b"bad", rsv=2) + _masked(OP_PING, b"late")
)


def test_the_answer_to_the_message_goes_out_before_the_close(syncws_server: Any) -> None:
    outcome: queue.Queue[Any] = queue.Queue()

    def handler(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        message = ws.get_message(timeout=WAIT)
        ws.send_message(f"got {message}")
        try:
            ws.get_message(timeout=WAIT)
        except syncws.ConnectionClosed as exc:
            outcome.put(exc)

    srv = syncws_server(handler)
    conn = raw_client(srv.port)
    try:
        conn.send_raw(VALID_THEN_BAD)
        frames = [conn.recv_frame(timeout=WAIT), conn.recv_frame(timeout=WAIT)]
    finally:
        conn.close()
    assert (frames[0].opcode, frames[0].payload) == (OP_TEXT, b"got hello")
    # The close frame next: the ping behind the violation is not answered.
    assert frames[1].opcode == OP_CLOSE and frames[1].close_code == 1002
    exc = outcome.get(timeout=WAIT)
    assert exc.sent is not None and exc.sent.code == 1002
    assert exc.rcvd is None


def test_an_application_that_does_not_read_still_sees_the_connection_fail(
    syncws_server: Any,
) -> None:
    read_now = threading.Event()
    outcome: queue.Queue[Any] = queue.Queue()

    def handler(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        read_now.wait(WAIT)
        # Nothing lost: the message is still there, then the failure.
        outcome.put(ws.get_message(timeout=WAIT))
        try:
            ws.send_message("too late")
        except syncws.ConnectionClosed as exc:
            outcome.put(exc)

    srv = syncws_server(handler)
    conn = raw_client(srv.port)
    try:
        conn.send_raw(VALID_THEN_BAD)
        # Within the bound (FAIL_AFTER_MESSAGES_TIMEOUT), with no get_message call.
        frame = conn.recv_frame(timeout=FAIL_AFTER_MESSAGES_TIMEOUT + WAIT)
        assert frame.opcode == OP_CLOSE and frame.close_code == 1002
    finally:
        read_now.set()
        conn.close()
    assert outcome.get(timeout=WAIT) == "hello"
    assert outcome.get(timeout=WAIT).sent.code == 1002


def _bad_after_hello(raw_peer: Any) -> tuple[Any, Any]:
    """A syncws client whose server sends a message and a violation in one write."""
    peer = raw_peer()
    ws = syncws.connect(peer.url, disconnect_timeout=WAIT)
    conn = peer.connection()
    conn.send_raw(
        encode_frame(OP_TEXT, b"hello")
        + encode_frame(OP_TEXT, b"bad", rsv=2)
        + encode_frame(OP_PING, b"late")
    )
    assert ws.get_message(timeout=WAIT) == "hello"
    return ws, conn


def test_close_while_the_failure_is_held_sends_its_code(raw_peer: Any) -> None:
    ws, conn = _bad_after_hello(raw_peer)
    closing = Background(ws.close)
    frame = conn.recv_frame(timeout=WAIT)
    assert frame.opcode == OP_CLOSE and frame.close_code == 1002
    conn.send_close(1002)
    conn.close()
    closing.result()
    assert ws.close_reason is not None and ws.close_reason.code == 1002


def test_a_ping_in_flight_wakes_when_the_held_failure_is_done(raw_peer: Any) -> None:
    ws, conn = _bad_after_hello(raw_peer)
    try:
        # The pong can never be read (nothing after the violation is parsed): the
        # failure, done by the reader at the latest after its bound, ends the wait.
        with pytest.raises(syncws.ConnectionClosed) as excinfo:
            ws.ping(timeout=FAIL_AFTER_MESSAGES_TIMEOUT + WAIT)
        assert excinfo.value.sent is not None and excinfo.value.sent.code == 1002
        frames = []
        while not frames or frames[-1].opcode != OP_CLOSE:
            frames.append(conn.recv_frame(timeout=WAIT))
        # The ping went out, then the close frame; the peer's late ping got no pong.
        assert [f.opcode for f in frames] == [OP_PING, OP_CLOSE]
        assert OP_PONG not in [f.opcode for f in frames]
        conn.send_close(1002)
    finally:
        conn.close()
        ws.close()
