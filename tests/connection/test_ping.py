"""ping(), pong(), latency, and answering the peer's pings."""

from __future__ import annotations

import sys
import time

import pytest
from helpers import MARGIN, SHORT, WAIT, Background, WsServer, echo_handler, finish, ping_in_flight
from rawpeer import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, encode_frame

import syncws
from syncws import ConnectionClosed


def test_ping_returns_round_trip_seconds(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    with syncws.connect(srv.url) as ws:
        assert ws.latency == 0.0
        rtt = ws.ping()
        assert isinstance(rtt, float)
        assert 0 < rtt < WAIT
        assert ws.latency == pytest.approx(rtt)


def test_ping_with_custom_payload(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        pinger = Background(ws.ping, b"custom payload")
        frame = conn.recv_frame()
        assert (frame.opcode, frame.payload, frame.fin, frame.masked) == (
            OP_PING,
            b"custom payload",
            True,
            True,
        )
        conn.send_pong(b"custom payload")
        rtt = pinger.result()
        assert rtt > 0
        assert ws.latency == pytest.approx(rtt)
        finish(ws, conn)


def test_default_ping_payloads_are_unique(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url) as ws:
        for _ in range(5):
            ws.ping(timeout=WAIT)
        payloads = [peer.next_frame().payload for _ in range(5)]
    assert len(set(payloads)) == 5
    assert all(len(p) <= 125 for p in payloads)


def test_duplicate_payload_in_flight_raises_value_error(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        first = ping_in_flight(ws, conn, b"dup")
        with pytest.raises(ValueError):
            ws.ping(b"dup")
        conn.send_pong(b"dup")
        assert first.result() > 0
        # Once answered, the payload may be used again.
        second = ping_in_flight(ws, conn, b"dup")
        conn.send_pong(b"dup")
        assert second.result() > 0
        finish(ws, conn)


def test_ping_timeout_raises_timeout_error(raw_peer) -> None:
    peer = raw_peer(auto=True, auto_pong=False)
    with syncws.connect(peer.url) as ws:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            ws.ping(b"unanswered", timeout=SHORT)
        elapsed = time.monotonic() - start
        assert SHORT * 0.9 <= elapsed < SHORT + MARGIN
        assert peer.next_frame().opcode == OP_PING


def test_ping_raises_connection_closed_when_peer_closes(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        pinger = ping_in_flight(ws, conn, b"never answered")
        conn.send_close(1001, "going")
        reply = conn.expect_close()
        assert reply.opcode == OP_CLOSE
        conn.close()
        exc = pinger.exception()
        assert isinstance(exc, ConnectionClosed)
        assert exc.reason.code == 1001
        assert exc.reason.reason == "going"


def test_ping_raises_connection_closed_when_peer_vanishes(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        pinger = ping_in_flight(ws, conn, b"lost")
        conn.close()
        exc = pinger.exception()
        assert isinstance(exc, ConnectionClosed)
        assert exc.reason.code == 1006


def test_pong_for_later_ping_wakes_earlier_pings(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        first = ping_in_flight(ws, conn, b"first")
        second = ping_in_flight(ws, conn, b"second")
        conn.send_pong(b"second")
        assert second.result() > 0
        assert first.result() > 0
        finish(ws, conn)


@pytest.fixture
def eager_switching():
    """Let a thread that was woken run at once, as it may on a busy machine."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("eager_switching")
def test_messages_before_the_pong_are_queued_when_ping_returns(raw_peer) -> None:
    # Messages and the pong arrive in one write: the pong is matched only after the
    # messages before it are queued, so they can all be taken without waiting.
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        for round_ in range(20):
            pinger = ping_in_flight(ws, conn, b"p%d" % round_)
            texts = [f"{round_}-{i}" for i in range(15)]  # the queue holds 16
            frames = b"".join(encode_frame(OP_TEXT, t.encode()) for t in texts)
            conn.send_raw(frames + encode_frame(OP_PONG, b"p%d" % round_))
            pinger.result()
            assert [ws.get_message(timeout=0) for _ in texts] == texts
        finish(ws, conn)


def test_pong_for_earlier_ping_does_not_wake_later_ping(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        first = ping_in_flight(ws, conn, b"first")
        second = ping_in_flight(ws, conn, b"second", timeout=SHORT)
        conn.send_pong(b"first")
        assert first.result() > 0
        assert isinstance(second.exception(), TimeoutError)
        finish(ws, conn)


def test_unsolicited_pong_from_peer_is_ignored(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_pong(b"nobody asked")
        conn.send_text("still fine")
        assert ws.get_message(timeout=WAIT) == "still fine"
        assert not ws.is_closed
        finish(ws, conn)


def test_latency_tracks_last_ping(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url) as ws:
        assert ws.latency == 0.0
        first = ws.ping(timeout=WAIT)
        assert ws.latency == pytest.approx(first)
        second = ws.ping(timeout=WAIT)
        assert ws.latency == pytest.approx(second)


def test_pong_sends_unsolicited_pong(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url) as ws:
        ws.pong(b"heartbeat")
        ws.pong()
        first = peer.next_frame()
        second = peer.next_frame()
    assert (first.opcode, first.payload, first.masked) == (OP_PONG, b"heartbeat", True)
    assert (second.opcode, second.payload) == (OP_PONG, b"")


def test_peer_ping_is_answered_with_same_payload(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_ping(b"are you there")
        frame = conn.recv_frame()
        assert (frame.opcode, frame.payload, frame.masked) == (OP_PONG, b"are you there", True)
        conn.send_ping(b"")
        frame = conn.recv_frame()
        assert (frame.opcode, frame.payload) == (OP_PONG, b"")
        finish(ws, conn)


def test_websockets_server_ping_is_answered(websockets_server) -> None:
    def handler(ws, srv: WsServer) -> None:
        pong = ws.ping(b"server ping")
        srv.record.put(pong.wait(WAIT))
        echo_handler(ws, srv)

    srv = websockets_server(handler)
    with syncws.connect(srv.url):
        assert srv.get() is True
