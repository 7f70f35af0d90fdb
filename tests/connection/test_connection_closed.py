"""ConnectionClosed says who closed: ConnectionClosedOK and ConnectionClosedError.

Each exception carries the close frame received (``rcvd``), the one sent (``sent``) and
their order (``rcvd_then_sent``), besides the close reason; its class says whether the
close was normal. Real loopback connections throughout: syncws on both ends, a raw peer
that breaks the protocol on purpose, and a ``websockets`` server.
"""

from __future__ import annotations

import pickle
import queue
import struct
from typing import Any

import pytest
from helpers import SHORT, WAIT, Background, SyncwsServer, WsServer, ping_in_flight
from rawpeer import OP_CLOSE, OP_TEXT, encode_frame

import syncws
from syncws import (
    CloseReason,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
)

NORMAL = CloseReason(1000, None)


def closed_by(call: Any, *args: Any) -> ConnectionClosed:
    """Return the ConnectionClosed that ``call(*args)`` raises."""
    with pytest.raises(ConnectionClosed) as excinfo:
        call(*args)
    return excinfo.value


# ---------------------------------------------------------------- the exception


def test_both_subclasses_are_connection_closed_and_exported() -> None:
    assert issubclass(ConnectionClosedOK, ConnectionClosed)
    assert issubclass(ConnectionClosedError, ConnectionClosed)
    assert {"ConnectionClosedOK", "ConnectionClosedError"} <= set(syncws.__all__)
    for kind in (ConnectionClosedOK, ConnectionClosedError):
        try:
            raise kind(NORMAL)
        except ConnectionClosed as exc:  # Catches both.
            assert type(exc) is kind


def test_constructed_with_the_reason_only() -> None:
    reason = CloseReason(1011, "boom")
    exc = ConnectionClosed(reason)
    assert exc.reason is reason
    assert (exc.rcvd, exc.sent, exc.rcvd_then_sent) == (None, None, None)
    assert (
        str(exc)
        == "connection closed: 1011 (INTERNAL_ERROR): boom; no close frame received or sent"
    )


def test_message_says_who_closed() -> None:
    normal, away = CloseReason(1000, "bye"), CloseReason(1001, None)
    both = {"rcvd": normal, "sent": away}
    assert str(ConnectionClosedOK(normal, **both, rcvd_then_sent=True)) == (
        "connection closed: 1000 (NORMAL_CLOSURE): bye; "
        "received 1000 (NORMAL_CLOSURE), then sent 1001 (GOING_AWAY)"
    )
    assert str(ConnectionClosedOK(normal, **both, rcvd_then_sent=False)) == (
        "connection closed: 1000 (NORMAL_CLOSURE): bye; "
        "sent 1001 (GOING_AWAY), then received 1000 (NORMAL_CLOSURE)"
    )
    failed = CloseReason(1011, "keepalive ping timeout")
    assert str(ConnectionClosedError(failed, sent=failed)) == (
        "connection closed: 1011 (INTERNAL_ERROR): keepalive ping timeout; "
        "sent 1011 (INTERNAL_ERROR), no close frame received"
    )
    assert str(ConnectionClosedError(away, rcvd=away)) == (
        "connection closed: 1001 (GOING_AWAY); received 1001 (GOING_AWAY), no close frame sent"
    )


@pytest.mark.parametrize(
    "frames",
    [
        {"rcvd": NORMAL, "rcvd_then_sent": True},
        {"sent": NORMAL, "rcvd_then_sent": False},
        {"rcvd_then_sent": True},
        {"rcvd": NORMAL, "sent": NORMAL},
    ],
)
def test_the_order_goes_with_both_frames_only(frames: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="rcvd_then_sent"):
        ConnectionClosed(NORMAL, **frames)


def test_pickles_with_its_frames() -> None:
    exc = ConnectionClosedOK(NORMAL, rcvd=NORMAL, sent=NORMAL, rcvd_then_sent=False)
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is ConnectionClosedOK
    assert (copy.reason, copy.rcvd, copy.sent, copy.rcvd_then_sent) == (
        NORMAL,
        NORMAL,
        NORMAL,
        False,
    )


# ------------------------------------------------------- syncws on both ends


@pytest.mark.parametrize("code", [1000, 1001])
def test_normal_close_each_side_sees_its_order(pair, code: int) -> None:
    local, remote = pair
    local.close(code, "done")
    # The remote received the close frame, then answered it.
    exc = closed_by(remote.get_message, WAIT)
    assert type(exc) is ConnectionClosedOK
    frame = CloseReason(code, "done")
    assert (exc.reason, exc.rcvd, exc.sent, exc.rcvd_then_sent) == (frame, frame, frame, True)
    assert str(exc).endswith(f"received {code} ({frame.name}), then sent {code} ({frame.name})")
    # The local side sent its close frame, then received the answer.
    exc = closed_by(local.get_message, WAIT)
    assert type(exc) is ConnectionClosedOK
    assert (exc.reason, exc.rcvd, exc.sent, exc.rcvd_then_sent) == (frame, frame, frame, False)
    assert local.close_reason == remote.close_reason == frame
    for ws in (local, remote):
        exc = closed_by(ws.send_message, "late")
        assert type(exc) is ConnectionClosedOK
        exc = closed_by(ws.ping)
        assert type(exc) is ConnectionClosedOK
        exc = closed_by(ws.pong)
        assert type(exc) is ConnectionClosedOK


def test_close_with_an_error_code_is_an_error_on_both_sides(pair) -> None:
    local, remote = pair
    local.close(1011, "broken")
    frame = CloseReason(1011, "broken")
    exc = closed_by(remote.get_message, WAIT)
    assert type(exc) is ConnectionClosedError
    assert (exc.rcvd, exc.sent, exc.rcvd_then_sent) == (frame, frame, True)
    exc = closed_by(local.get_message, WAIT)
    assert type(exc) is ConnectionClosedError
    assert (exc.rcvd, exc.sent, exc.rcvd_then_sent) == (frame, frame, False)


def test_peer_fails_with_1009_on_a_message_too_big(syncws_server: Any) -> None:
    handlers: queue.Queue[ConnectionClosed] = queue.Queue()

    def handler(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        try:
            ws.get_message(WAIT)
        except ConnectionClosed as exc:
            handlers.put(exc)

    srv = syncws_server(handler, max_message_size=10)
    with syncws.connect(srv.url) as ws:
        ws.send_message(b"x" * 100)
        exc = closed_by(ws.get_message, WAIT)
    # The client received the server's 1009 and answered it.
    assert type(exc) is ConnectionClosedError
    assert exc.reason.code == 1009
    assert exc.rcvd == exc.sent == exc.reason
    assert exc.rcvd_then_sent is True
    # The server failed the connection: its close frame first, and it reads nothing after.
    exc = handlers.get(timeout=WAIT)
    assert type(exc) is ConnectionClosedError
    assert exc.sent == exc.reason == CloseReason(1009, "message larger than 10 bytes")
    assert (exc.rcvd, exc.rcvd_then_sent) == (None, None)
    assert str(exc).endswith("sent 1009 (MESSAGE_TOO_BIG), no close frame received")


# ------------------------------------------------------------- a raw peer


def test_peer_fails_with_1002(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_close(1002, "you broke it")
        assert conn.expect_close().close_code == 1002
        conn.close()
        exc = closed_by(ws.get_message, WAIT)
    frame = CloseReason(1002, "you broke it")
    assert type(exc) is ConnectionClosedError
    assert (exc.reason, exc.rcvd, exc.sent, exc.rcvd_then_sent) == (frame, frame, frame, True)


def test_syncws_fails_with_1002(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_raw(encode_frame(0x3, b"reserved opcode"))
        # The answer comes, but nothing after a protocol error is read.
        assert conn.close_handshake().close_code == 1002
        exc = closed_by(ws.get_message, WAIT)
    assert type(exc) is ConnectionClosedError
    assert exc.sent == exc.reason
    assert exc.reason.code == 1002
    assert (exc.rcvd, exc.rcvd_then_sent) == (None, None)


def test_peer_vanishing_is_an_abort_without_close_frames(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_text("last words")
        conn.close()
        assert ws.get_message(WAIT) == "last words"
        exc = closed_by(ws.get_message, WAIT)
    assert type(exc) is ConnectionClosedError
    assert exc.reason == CloseReason(1006, None)
    assert (exc.rcvd, exc.sent, exc.rcvd_then_sent) == (None, None, None)
    assert str(exc) == "connection closed: 1006 (ABNORMAL_CLOSURE); no close frame received or sent"


def test_unanswered_normal_close_is_an_error(raw_peer) -> None:
    peer = raw_peer()
    ws = syncws.connect(peer.url, disconnect_timeout=SHORT)
    conn = peer.connection()
    try:
        ws.close()  # The peer never answers: aborted after disconnect_timeout.
        assert conn.expect_close().close_code == 1000
        exc = closed_by(ws.get_message, WAIT)
    finally:
        conn.close()
    assert type(exc) is ConnectionClosedError
    assert exc.reason == CloseReason(1006, "closing handshake timed out")
    assert (exc.rcvd, exc.sent, exc.rcvd_then_sent) == (None, NORMAL, None)


def test_keepalive_timeout_sends_1011_and_receives_nothing(raw_peer) -> None:
    peer = raw_peer()
    ws = syncws.connect(peer.url, ping_interval=0.1 * SHORT, ping_timeout=SHORT)
    try:
        conn = peer.connection()
        assert conn.close_handshake(WAIT, answer_pings=False).close_code == 1011
        exc = closed_by(ws.get_message, WAIT)
    finally:
        ws.close()
    assert type(exc) is ConnectionClosedError
    assert exc.reason == exc.sent == CloseReason(1011, "keepalive ping timeout")
    assert (exc.rcvd, exc.rcvd_then_sent) == (None, None)


def test_empty_close_frame_is_normal(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_text("only")
        conn.send_close(None)
        assert conn.expect_close().payload == b""
        conn.close()
        # The loop ends quietly: 1005 stands for a close frame without a code.
        assert list(ws) == ["only"]
        exc = closed_by(ws.get_message, WAIT)
    assert type(exc) is ConnectionClosedOK
    empty = CloseReason(1005, None)
    assert (exc.reason, exc.rcvd, exc.sent, exc.rcvd_then_sent) == (empty, empty, empty, True)


def test_send_during_a_normal_closing_handshake_is_ok(raw_peer) -> None:
    peer = raw_peer()
    ws = syncws.connect(peer.url)
    conn = peer.connection()
    closer = Background(ws.close, 1001)
    try:
        assert conn.expect_close().close_code == 1001
        # Closing, the answer not in yet: normal so far.
        exc = closed_by(ws.send_message, "too late")
        assert type(exc) is ConnectionClosedOK
        away = CloseReason(1001, None)
        assert (exc.reason, exc.rcvd, exc.sent) == (away, None, away)
        conn.send_close(1001)
        conn.close()
    finally:
        closer.result()
    exc = closed_by(ws.get_message, WAIT)
    assert type(exc) is ConnectionClosedOK
    assert (exc.rcvd, exc.sent, exc.rcvd_then_sent) == (away, away, False)


def test_own_error_code_answered_with_1000_is_an_error(raw_peer) -> None:
    peer = raw_peer()
    ws = syncws.connect(peer.url)
    conn = peer.connection()
    iterating = Background(list, ws)
    closer = Background(ws.close, 4000, "mine")
    assert conn.expect_close().close_code == 4000
    conn.send_close(1000)
    conn.close()
    closer.result()
    # The close reason is the peer's, but this side closed with an error code.
    assert ws.close_reason == NORMAL
    exc = iterating.exception(timeout=WAIT)
    assert type(exc) is ConnectionClosedError
    assert (exc.reason, exc.rcvd, exc.sent, exc.rcvd_then_sent) == (
        NORMAL,
        NORMAL,
        CloseReason(4000, "mine"),
        False,
    )


def test_ping_in_flight_gets_the_peers_normal_close(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        pinger = ping_in_flight(ws, conn, b"never answered")
        conn.send_close(1000)
        assert conn.expect_close().close_code == 1000
        conn.close()
        exc = pinger.exception(timeout=WAIT)
    assert type(exc) is ConnectionClosedOK
    assert (exc.rcvd, exc.sent, exc.rcvd_then_sent) == (NORMAL, NORMAL, True)


# ------------------------------------------------------------ a websockets peer


def test_websockets_peer_closing_with_4000_is_an_error(websockets_server) -> None:
    def handler(ws: Any, srv: WsServer) -> None:
        assert ws.recv(timeout=WAIT) == "go"
        ws.send("one")
        ws.close(4000, "custom")

    srv = websockets_server(handler)
    with syncws.connect(srv.url) as ws:
        ws.send_message("go")
        received = []
        with pytest.raises(ConnectionClosedError) as excinfo:
            for message in ws:
                received.append(message)
    assert received == ["one"]
    exc = excinfo.value
    frame = CloseReason(4000, "custom")
    assert (exc.reason, exc.rcvd, exc.sent, exc.rcvd_then_sent) == (frame, frame, frame, True)
    assert str(exc).endswith("received 4000 (PRIVATE_RESERVED), then sent 4000 (PRIVATE_RESERVED)")


@pytest.mark.parametrize("code", [1000, 1001])
def test_iteration_ends_quietly_on_websockets_normal_close(websockets_server, code: int) -> None:
    def handler(ws: Any, srv: WsServer) -> None:
        assert ws.recv(timeout=WAIT) == "go"
        ws.send("one")
        ws.close(code)

    srv = websockets_server(handler)
    with syncws.connect(srv.url) as ws:
        ws.send_message("go")
        assert list(ws) == ["one"]
        exc = closed_by(ws.get_message, WAIT)
    assert type(exc) is ConnectionClosedOK
    assert exc.rcvd_then_sent is True


def test_iteration_raises_on_1011(websockets_server) -> None:
    def handler(ws: Any, srv: WsServer) -> None:
        assert ws.recv(timeout=WAIT) == "go"
        ws.close(1011, "oops")

    srv = websockets_server(handler)
    with syncws.connect(srv.url) as ws:
        ws.send_message("go")
        with pytest.raises(ConnectionClosedError) as excinfo:
            list(ws)
    assert excinfo.value.reason == CloseReason(1011, "oops")


def test_websockets_sees_syncws_close_frames(websockets_server) -> None:
    closes: queue.Queue[tuple[Any, Any, Any]] = queue.Queue()

    def handler(ws: Any, srv: WsServer) -> None:
        from websockets.exceptions import ConnectionClosed as WsClosed

        try:
            ws.recv(timeout=WAIT)
        except WsClosed as exc:
            closes.put((type(exc).__name__, exc.rcvd and exc.rcvd.code, exc.rcvd_then_sent))

    srv = websockets_server(handler)
    with syncws.connect(srv.url):
        pass  # Closes with 1000.
    # The same rule on both ends: websockets received 1000 first, then answered.
    assert closes.get(timeout=WAIT) == ("ConnectionClosedOK", 1000, True)


def test_message_after_own_close_is_discarded_and_the_close_stays_normal(raw_peer) -> None:
    peer = raw_peer()
    ws = syncws.connect(peer.url)
    conn = peer.connection()
    closer = Background(ws.close)
    assert conn.expect_close().close_code == 1000
    conn.send_raw(encode_frame(OP_TEXT, b"after the close"))
    conn.send_frame(OP_CLOSE, struct.pack("!H", 1000))
    conn.close()
    closer.result()
    exc = closed_by(ws.get_message, WAIT)
    assert type(exc) is ConnectionClosedOK
