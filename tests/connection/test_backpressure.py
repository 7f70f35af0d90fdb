"""Flow control in both directions: a full message queue and a peer that does not read."""

from __future__ import annotations

import struct
import time

import pytest
from helpers import MARGIN, SHORT, UNIT, WAIT, Background, WsServer, echo_handler
from rawpeer import OP_BINARY, OP_CLOSE, Pusher, encode_frame

import syncws
from syncws import ConnectionClosed

MESSAGE = 64 * 1024
COUNT = 512  # 32 MiB in all: far more than socket buffers and a small queue can absorb


def numbered_frames(count: int, size: int) -> bytes:
    return b"".join(
        encode_frame(OP_BINARY, struct.pack("!I", i) + bytes(size - 4)) for i in range(count)
    )


def waiting_handler(ws, srv: WsServer) -> None:
    """Never read: websockets stops reading the socket once max_queue frames are buffered."""
    srv.record.put("connected")
    srv.release.wait(WAIT)


# ------------------------------------------------------ incoming: a full queue


@pytest.mark.timeout(60)
def test_full_queue_stalls_the_peer_and_reading_resumes_it(raw_peer) -> None:
    peer = raw_peer(sndbuf=MESSAGE)
    data = numbered_frames(COUNT, MESSAGE)
    with syncws.connect(peer.url, message_queue_size=2, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        pusher = Pusher(conn.sock, data, stall_after=SHORT)
        try:
            # The application does not read: the peer can push only a bounded amount.
            assert pusher.stalled.wait(WAIT), "the peer was never held back"
            assert pusher.sent_at_stall is not None
            assert pusher.sent_at_stall < len(data) * 3 // 4
            assert not ws.is_closed
            # The application reads: the peer's sender resumes and everything arrives.
            for i in range(COUNT):
                message = ws.get_message(timeout=WAIT)
                assert len(message) == MESSAGE
                assert struct.unpack("!I", message[:4])[0] == i
            assert pusher.done.wait(WAIT)
        finally:
            pusher.join()
        assert pusher.error is None
        closer = Background(ws.close)
        conn.close_handshake()
        closer.result()


def test_small_queue_delivers_everything_in_order(websockets_server) -> None:
    count = 200

    def handler(ws, srv: WsServer) -> None:
        assert ws.recv(timeout=WAIT) == "go"
        for i in range(count):
            ws.send(f"{i}:" + "x" * 1000)
        srv.record.put("sent")
        srv.release.wait(WAIT)

    srv = websockets_server(handler)
    with syncws.connect(srv.url, message_queue_size=1) as ws:
        ws.send_message("go")
        for i in range(count):
            assert ws.get_message(timeout=WAIT).startswith(f"{i}:")
        assert srv.get() == "sent"


# --------------------------------------------------- outgoing: a peer not reading


def test_send_timeout_when_websockets_peer_stops_reading(websockets_server) -> None:
    srv = websockets_server(waiting_handler, max_queue=1, close_timeout=SHORT)
    ws = syncws.connect(srv.url)
    try:
        assert srv.get() == "connected"
        chunk = bytes(2**20)
        with pytest.raises(TimeoutError):
            for _ in range(1024):  # 1 GiB: the stalled server cannot absorb it
                start = time.monotonic()
                ws.send_message(chunk, timeout=SHORT)
        elapsed = time.monotonic() - start
        assert SHORT * 0.9 <= elapsed < SHORT + MARGIN
        assert ws.is_closed
        assert ws.close_reason.code == 1006
        with pytest.raises(ConnectionClosed):
            ws.send_message("after the timeout")
    finally:
        ws.close()


def test_send_timeout_aborts_the_connection(raw_peer) -> None:
    peer = raw_peer(rcvbuf=MESSAGE)
    ws = syncws.connect(peer.url)
    try:
        conn = peer.connection()
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            ws.send_message(bytes(64 * 2**20), timeout=SHORT)
        assert time.monotonic() - start < SHORT + MARGIN
        assert ws.is_closed
        assert ws.close_reason.code == 1006
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
        assert excinfo.value.reason.code == 1006
        # The peer sees the connection end without a close frame after the partial one.
        conn.wait_eof()
        assert all(frame.opcode != OP_CLOSE for frame in conn.frames)
    finally:
        ws.close()


def test_get_message_polls_closed_right_after_send_timeout(raw_peer) -> None:
    """Once send_message timed out (connection aborted), polling reports the close.

    The scenario is repeated a few times because a wrong implementation only
    shows itself when the poll runs before the reader thread has wound down.
    """
    for _ in range(5):
        peer = raw_peer(rcvbuf=MESSAGE)
        ws = syncws.connect(peer.url)
        try:
            peer.connection()
            with pytest.raises(TimeoutError):
                ws.send_message(bytes(64 * 2**20), timeout=0.1 * UNIT)
            assert ws.is_closed
            with pytest.raises(ConnectionClosed):
                ws.get_message(timeout=0)
        finally:
            ws.close()
            peer.close()


def test_send_timeout_not_triggered_when_peer_reads(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    with syncws.connect(srv.url) as ws:
        payload = bytes(range(256)) * 4096  # 1 MiB
        ws.send_message(payload, timeout=WAIT)
        assert ws.get_message(timeout=WAIT) == payload
        assert not ws.is_closed


def test_incoming_messages_processed_while_a_send_is_blocked(raw_peer) -> None:
    """Incoming traffic is still processed while a send is blocked."""
    peer = raw_peer(rcvbuf=MESSAGE)
    ws = syncws.connect(peer.url, disconnect_timeout=SHORT)
    try:
        conn = peer.connection()
        sender = Background(ws.send_message, bytes(64 * 2**20))
        conn.read_at_least(MESSAGE)
        conn.send_text("while you were sending")
        assert ws.get_message(timeout=WAIT) == "while you were sending"
        ws.close()
        assert isinstance(sender.exception(), ConnectionClosed)
    finally:
        ws.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_send_timeout_abort_stress(raw_peer) -> None:
    """Abort after a send timeout many times: the reader must never crash.

    Any warning or error syncws logs (a reader thread failing) fails the test
    through the autouse leak fixture.
    """
    for _ in range(300):
        peer = raw_peer(rcvbuf=MESSAGE)
        ws = syncws.connect(peer.url)
        try:
            peer.connection()
            with pytest.raises(TimeoutError):
                ws.send_message(bytes(16 * 2**20), timeout=0.02 * UNIT)
            with pytest.raises(ConnectionClosed):
                ws.get_message(timeout=0)
        finally:
            ws.close()
            peer.close()
