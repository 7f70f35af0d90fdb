"""Keepalive: ping_interval / ping_timeout."""

from __future__ import annotations

import contextlib
import struct
import time

from helpers import MARGIN, SHORT, UNIT, WAIT, echo_handler, finish, wait_for
from rawpeer import OP_BINARY, OP_CLOSE, OP_PING, PeerConnection, Pusher, encode_frame

import syncws

INTERVAL = 0.1 * UNIT
TIMEOUT = 0.2 * UNIT


def frames_during(conn: PeerConnection, seconds: float) -> list:
    """Collect what the client sends during ``seconds`` (pings are not answered)."""
    frames = []
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            frames.append(conn.recv_frame(remaining))
        except TimeoutError:
            break
    return frames


def test_keepalive_off_by_default(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url) as ws, contextlib.suppress(TimeoutError):
        ws.get_message(timeout=3 * INTERVAL + SHORT)
    frames = [peer.next_frame()]
    assert [f.opcode for f in frames] == [OP_CLOSE]


def test_keepalive_with_healthy_server_updates_latency(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    with syncws.connect(srv.url, ping_interval=INTERVAL, ping_timeout=TIMEOUT) as ws:
        assert ws.latency == 0.0
        wait_for(lambda: ws.latency > 0, what="a keepalive round trip")
        # Several intervals later the connection is still open and usable.
        first = ws.latency
        wait_for(lambda: ws.latency != first, what="a second keepalive round trip")
        assert not ws.is_closed
        ws.send_message("alive")
        assert ws.get_message(timeout=WAIT) == "alive"
    assert ws.close_reason.code == 1000


def test_keepalive_sends_pings_after_ping_interval(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, ping_interval=INTERVAL, ping_timeout=WAIT) as ws:
        conn = peer.connection()
        start = time.monotonic()
        frame = conn.recv_frame(timeout=WAIT)
        assert frame.opcode == OP_PING
        assert frame.masked
        assert time.monotonic() - start < INTERVAL + MARGIN
        conn.send_pong(frame.payload)
        wait_for(lambda: ws.latency > 0, what="latency from the keepalive pong")
        finish(ws, conn)


def test_keepalive_fails_unresponsive_peer_with_1011(raw_peer) -> None:
    peer = raw_peer()
    start = time.monotonic()
    ws = syncws.connect(peer.url, ping_interval=INTERVAL, ping_timeout=TIMEOUT)
    try:
        conn = peer.connection()
        frames = []
        while True:
            frame = conn.recv_frame(timeout=WAIT)  # pings are not answered
            frames.append(frame)
            if frame.opcode == OP_CLOSE:
                break
        elapsed = time.monotonic() - start
        assert any(f.opcode == OP_PING for f in frames)
        assert frame.close_code == 1011
        assert (INTERVAL + TIMEOUT) * 0.9 <= elapsed < INTERVAL + TIMEOUT + MARGIN
        conn.send_frame(OP_CLOSE, frame.payload[:2])
        conn.close()
        try:
            ws.get_message(timeout=WAIT)
        except syncws.ConnectionClosed as exc:
            assert exc.reason.code == 1011
        else:
            raise AssertionError("get_message returned on a failed connection")
        assert ws.close_reason.code == 1011
        assert ws.close_reason.name == "INTERNAL_ERROR"
    finally:
        ws.close()


def test_keepalive_failure_when_peer_then_vanishes_keeps_1011(raw_peer) -> None:
    peer = raw_peer()
    ws = syncws.connect(peer.url, ping_interval=INTERVAL, ping_timeout=TIMEOUT)
    try:
        conn = peer.connection()
        assert conn.expect_close(WAIT, answer_pings=False).close_code == 1011
        conn.close()
        wait_for(lambda: ws.is_closed, what="is_closed")
        with contextlib.suppress(syncws.ConnectionClosed):
            ws.get_message(timeout=WAIT)
        assert ws.close_reason.code == 1011
    finally:
        ws.close()


def test_any_traffic_counts_as_alive(raw_peer) -> None:
    """Pings go unanswered, but data keeps arriving within ping_timeout: no failure."""
    interval, timeout = 0.05 * UNIT, 0.6 * UNIT
    peer = raw_peer()
    with syncws.connect(peer.url, ping_interval=interval, ping_timeout=timeout) as ws:
        conn = peer.connection()
        seen = []
        for i in range(7):  # 7 x 0.2 s: more than twice interval + timeout
            conn.send_text(f"tick {i}")
            seen += frames_during(conn, 0.2 * UNIT)
            assert ws.get_message(timeout=WAIT) == f"tick {i}"
        assert OP_CLOSE not in [f.opcode for f in seen]
        assert OP_PING in [f.opcode for f in seen], "keepalive never pinged"
        assert not ws.is_closed
        finish(ws, conn)


def test_late_pong_with_other_traffic_is_not_fatal(raw_peer) -> None:
    """A pong answered late is fine while other frames keep arriving in time."""
    peer = raw_peer()
    with syncws.connect(peer.url, ping_interval=INTERVAL, ping_timeout=0.7 * UNIT) as ws:
        conn = peer.connection()
        pending = []
        for i in range(4):
            frames = frames_during(conn, 0.25 * UNIT)
            assert OP_CLOSE not in [f.opcode for f in frames]
            conn.send_ping(f"peer {i}".encode())  # traffic, but no pong yet
            for frame in pending:
                conn.send_pong(frame.payload)  # pongs for older pings, late
            pending = [f for f in frames if f.opcode == OP_PING]
        assert not ws.is_closed
        finish(ws, conn)


def test_paused_reading_does_not_count_against_the_peer(raw_peer) -> None:
    """With the queue full the client stops reading; keepalive must not fail the peer."""
    message, count = 64 * 1024, 512
    peer = raw_peer(sndbuf=message)
    data = b"".join(
        encode_frame(OP_BINARY, struct.pack("!I", i) + bytes(message - 4)) for i in range(count)
    )
    with syncws.connect(
        peer.url,
        message_queue_size=1,
        ping_interval=INTERVAL,
        ping_timeout=TIMEOUT,
        disconnect_timeout=WAIT,
    ) as ws:
        conn = peer.connection()
        pusher = Pusher(conn.sock, data, stall_after=SHORT)
        try:
            assert pusher.stalled.wait(WAIT)
            # The application does not read for several times interval + timeout.
            frames = frames_during(conn, 3 * (INTERVAL + TIMEOUT))
            assert OP_CLOSE not in [f.opcode for f in frames]
            assert not ws.is_closed
            for i in range(count):
                assert struct.unpack("!I", ws.get_message(timeout=WAIT)[:4])[0] == i
            assert pusher.done.wait(WAIT)
        finally:
            pusher.join()
        assert not ws.is_closed
        finish(ws, conn)
