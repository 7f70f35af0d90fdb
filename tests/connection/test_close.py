"""The closing handshake, close reasons, and waking blocked threads."""

from __future__ import annotations

import time

import pytest
from helpers import (
    MARGIN,
    SHORT,
    WAIT,
    Background,
    WsServer,
    echo_handler,
    finish,
    get_close,
    ping_in_flight,
    record_close_handler,
    wait_for,
)
from rawpeer import OP_CLOSE, PeerConnection

import syncws
from syncws import CloseReason, ConnectionClosed, DisconnectionTimeout

BIG = 64 * 2**20  # far more than socket buffers hold: a send of this size must block


def ping_sync(ws, conn: PeerConnection) -> None:
    """Return once the client has processed everything the peer sent so far."""
    pinger = ping_in_flight(ws, conn, b"sync")
    conn.send_pong(b"sync")
    pinger.result()


def waiting_handler(ws, srv: WsServer) -> None:
    """Never read nor send; wait for the test to release the server."""
    srv.record.put("connected")
    srv.release.wait(WAIT)


# --------------------------------------------------------------- basic closing


def test_close_is_idempotent(websockets_server) -> None:
    srv = websockets_server(record_close_handler)
    ws = syncws.connect(srv.url)
    ws.close()
    ws.close()
    ws.close(1001, "again")
    assert ws.is_closed
    assert ws.close_reason is not None
    assert ws.close_reason.code == 1000
    assert get_close(srv)[0] == 1000


def test_close_code_and_reason_reach_the_peer(websockets_server) -> None:
    srv = websockets_server(record_close_handler)
    ws = syncws.connect(srv.url)
    ws.close(4001, "custom reason ☃")
    assert get_close(srv) == (4001, "custom reason ☃")
    assert ws.close_reason is not None
    assert ws.close_reason.code == 4001


def test_close_default_code_is_1000(raw_peer) -> None:
    peer = raw_peer(auto=True)
    ws = syncws.connect(peer.url)
    ws.close()
    frame = peer.next_frame()
    assert frame.opcode == OP_CLOSE
    assert frame.masked
    assert frame.close_code == 1000
    assert ws.close_reason.code == 1000


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1008, 1011, 3000, 4999])
def test_valid_close_codes_sent(websockets_server, code: int) -> None:
    srv = websockets_server(record_close_handler)
    ws = syncws.connect(srv.url)
    ws.close(code, "r")
    assert get_close(srv) == (code, "r")


@pytest.mark.parametrize("code", [999, 1005, 1006, 1015, 5000, 0])
def test_invalid_close_code_raises_value_error(websockets_server, code: int) -> None:
    srv = websockets_server(echo_handler)
    with syncws.connect(srv.url) as ws:
        with pytest.raises(ValueError):
            ws.close(code)
        assert not ws.is_closed
        ws.send_message("still open")
        assert ws.get_message(timeout=WAIT) == "still open"


def test_reason_longer_than_123_bytes_raises_value_error(websockets_server) -> None:
    srv = websockets_server(record_close_handler)
    ws = syncws.connect(srv.url)
    try:
        with pytest.raises(ValueError):
            ws.close(1000, "é" * 62)  # 124 UTF-8 bytes
        assert not ws.is_closed
        longest = "é" * 61 + "a"  # 123 UTF-8 bytes
        ws.close(1000, longest)
    finally:
        ws.close()
    assert get_close(srv) == (1000, longest)


def test_is_closed_and_close_reason_after_close(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    ws = syncws.connect(srv.url)
    assert ws.is_closed is False
    assert ws.close_reason is None
    ws.close(1000, "bye")
    assert ws.is_closed is True
    assert isinstance(ws.close_reason, CloseReason)
    assert ws.close_reason.code == 1000


def test_operations_after_close_raise_connection_closed(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    ws = syncws.connect(srv.url)
    ws.close()
    for call in (
        lambda: ws.send_message("late"),
        lambda: ws.send_message(b"late"),
        ws.ping,
        lambda: ws.ping(b"x"),
        ws.pong,
        ws.get_message,
        lambda: ws.get_message(timeout=0),
    ):
        with pytest.raises(ConnectionClosed) as excinfo:
            call()
        assert excinfo.value.reason == ws.close_reason


def test_operations_while_closing_raise_connection_closed(raw_peer) -> None:
    peer = raw_peer()
    ws = syncws.connect(peer.url)
    conn = peer.connection()
    closer = Background(ws.close, 4000, "closing")
    frame = conn.expect_close()  # the client is now waiting for the answer
    assert ws.is_closed
    with pytest.raises(ConnectionClosed):
        ws.send_message("too late")
    with pytest.raises(ConnectionClosed):
        ws.ping(b"too late")
    with pytest.raises(ConnectionClosed):
        ws.pong(b"too late")
    conn.send_frame(OP_CLOSE, frame.payload[:2])
    conn.close()
    closer.result()
    assert ws.close_reason.code == 4000
    assert conn.frames[-1].opcode == OP_CLOSE  # nothing was sent after the close frame


def test_close_returns_promptly_when_peer_answers(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    ws = syncws.connect(srv.url, disconnect_timeout=WAIT)
    start = time.monotonic()
    ws.close()
    assert time.monotonic() - start < MARGIN


# ------------------------------------------------------------ the peer closes


def test_close_reason_is_the_peers_code(websockets_server) -> None:
    def handler(ws, srv: WsServer) -> None:
        ws.close(1001, "server going away")

    srv = websockets_server(handler)
    with syncws.connect(srv.url) as ws:
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
        assert excinfo.value.reason == CloseReason(1001, "server going away")
        assert ws.close_reason == CloseReason(1001, "server going away")
        assert ws.close_reason.name == "GOING_AWAY"
        assert ws.is_closed


def test_close_after_peer_closed_is_a_no_op(websockets_server) -> None:
    def handler(ws, srv: WsServer) -> None:
        ws.close(4100, "mine")
        srv.record.put("closed")

    srv = websockets_server(handler)
    ws = syncws.connect(srv.url)
    assert srv.get() == "closed"
    ws.close(1000, "ours")
    assert ws.close_reason == CloseReason(4100, "mine")


def test_peer_close_without_tcp_close_ends_within_disconnect_timeout(raw_peer) -> None:
    """A server that sends its close frame but keeps TCP open cannot hold readers forever."""
    peer = raw_peer()
    ws = syncws.connect(peer.url, disconnect_timeout=SHORT)
    try:
        conn = peer.connection()
        conn.send_close(1001, "bye")
        assert conn.expect_close().close_code == 1001
        start = time.monotonic()
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
        assert time.monotonic() - start < SHORT + MARGIN
        assert excinfo.value.reason == CloseReason(1001, "bye")
        conn.wait_eof()  # the client dropped TCP itself
    finally:
        ws.close()


def test_peer_closing_tcp_right_after_handshake(raw_peer) -> None:
    peer = raw_peer(close_after_handshake=True)
    ws = syncws.connect(peer.url, connect_timeout=WAIT)
    try:
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
        assert excinfo.value.reason.code == 1006
        assert ws.is_closed
    finally:
        ws.close()


def test_peer_close_without_status_code_is_1005(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_close(None)
        reply = conn.expect_close()
        assert reply.payload == b""
        conn.close()
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
        assert excinfo.value.reason.code == 1005
        assert excinfo.value.reason.name == "NO_STATUS_RCVD"


def test_client_echoes_the_peers_close_code(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_close(4321, "peer reason")
        reply = conn.expect_close()
        assert reply.masked
        assert reply.close_code == 4321
        conn.close()
        with pytest.raises(ConnectionClosed):
            ws.get_message(timeout=WAIT)
        assert ws.close_reason == CloseReason(4321, "peer reason")


def test_messages_queued_before_peer_close_are_returned_first(websockets_server) -> None:
    def handler(ws, srv: WsServer) -> None:
        assert ws.recv(timeout=WAIT) == "go"
        ws.send("a")
        ws.send(b"b")
        ws.send("c")
        ws.close(1000, "done")
        srv.record.put("closed")

    srv = websockets_server(handler)
    with syncws.connect(srv.url) as ws:
        ws.send_message("go")
        assert srv.get() == "closed"  # the closing handshake is over
        wait_for(lambda: ws.is_closed, what="is_closed")
        assert ws.get_message(timeout=WAIT) == "a"
        assert ws.get_message(timeout=0) == b"b"
        assert ws.get_message(timeout=WAIT) == "c"
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
        assert excinfo.value.reason == CloseReason(1000, "done")


def test_peer_vanishing_without_close_is_1006(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_text("first")
        conn.send_binary(b"second")
        conn.close()  # FIN without a close frame
        wait_for(lambda: ws.is_closed, what="is_closed")
        assert ws.close_reason.code == 1006
        assert ws.close_reason.name == "ABNORMAL_CLOSURE"
        assert ws.get_message(timeout=WAIT) == "first"
        assert ws.get_message(timeout=WAIT) == b"second"
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
        assert excinfo.value.reason.code == 1006


def test_peer_reset_is_1006_and_queued_messages_survive(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_text("kept")
        ping_sync(ws, conn)
        conn.abort()  # RST
        wait_for(lambda: ws.is_closed, what="is_closed")
        assert ws.close_reason.code == 1006
        assert ws.get_message(timeout=WAIT) == "kept"
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
        assert excinfo.value.reason.code == 1006
        with pytest.raises(ConnectionClosed):
            ws.send_message("nobody there")


def test_peer_vanishing_mid_message_is_1006(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_raw(b"\x81\x7e\x10\x00" + b"x" * 100)  # announces 4096 bytes, sends 100
        conn.close()
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
        assert excinfo.value.reason.code == 1006


def test_send_right_after_peer_reset_raises_connection_closed(raw_peer) -> None:
    """However the broken pipe shows up, the application sees ConnectionClosed."""
    peer = raw_peer()
    ws = syncws.connect(peer.url, disconnect_timeout=SHORT)
    try:
        peer.connection().abort()
        with pytest.raises(ConnectionClosed) as excinfo:
            for _ in range(10_000):
                ws.send_message(bytes(65536))
        assert excinfo.value.reason.code == 1006
        with pytest.raises(ConnectionClosed):
            ws.ping(timeout=WAIT)
        with pytest.raises(ConnectionClosed):
            ws.pong()
    finally:
        ws.close()


def test_ping_right_after_peer_reset_raises_connection_closed(raw_peer) -> None:
    peer = raw_peer()
    ws = syncws.connect(peer.url, disconnect_timeout=SHORT)
    try:
        peer.connection().abort()
        with pytest.raises(ConnectionClosed):
            for _ in range(10_000):
                ws.ping(timeout=WAIT)
    finally:
        ws.close()


def test_close_with_a_full_queue_returns_promptly(raw_peer) -> None:
    peer = raw_peer()
    ws = syncws.connect(peer.url, message_queue_size=2, disconnect_timeout=WAIT)
    conn = peer.connection()
    conn.send_text("queued 0")
    conn.send_text("queued 1")
    ping_sync(ws, conn)  # both are in the queue, which is now full
    for i in range(2, 20):
        conn.send_text(f"queued {i}")
    peer_side = Background(conn.expect_close)
    start = time.monotonic()
    closer = Background(ws.close)
    frame = peer_side.result()
    conn.send_frame(OP_CLOSE, frame.payload[:2])
    conn.close()
    closer.result()
    assert time.monotonic() - start < MARGIN
    assert ws.close_reason.code == 1000
    assert ws.get_message(timeout=WAIT) == "queued 0"
    assert ws.get_message(timeout=WAIT) == "queued 1"


def test_messages_received_before_close_call_stay_readable(raw_peer) -> None:
    peer = raw_peer()
    ws = syncws.connect(peer.url)
    conn = peer.connection()
    conn.send_text("before close")
    ping_sync(ws, conn)
    finish(ws, conn)
    assert ws.get_message(timeout=WAIT) == "before close"
    with pytest.raises(ConnectionClosed):
        ws.get_message(timeout=WAIT)


def test_data_arriving_after_close_call_is_discarded(raw_peer) -> None:
    peer = raw_peer()
    ws = syncws.connect(peer.url)
    conn = peer.connection()
    closer = Background(ws.close)
    frame = conn.expect_close()
    conn.send_text("too late")
    conn.send_frame(OP_CLOSE, frame.payload[:2])
    conn.close()
    closer.result()
    with pytest.raises(ConnectionClosed):
        ws.get_message(timeout=WAIT)


# --------------------------------------------------- close wakes blocked threads


def test_close_wakes_thread_blocked_in_get_message(websockets_server) -> None:
    srv = websockets_server(waiting_handler)
    ws = syncws.connect(srv.url, disconnect_timeout=SHORT)
    assert srv.get() == "connected"
    receiver = Background(ws.get_message)
    start = time.monotonic()
    ws.close()
    assert time.monotonic() - start < SHORT + MARGIN
    exc = receiver.exception(timeout=MARGIN)
    assert isinstance(exc, ConnectionClosed)
    assert exc.reason == ws.close_reason


def test_close_inside_iteration_ends_the_loop(websockets_server) -> None:
    def handler(ws, srv: WsServer) -> None:
        for i in range(5):
            ws.send(f"m{i}")
        srv.release.wait(WAIT)

    srv = websockets_server(handler)
    seen = []
    with syncws.connect(srv.url) as ws:
        for message in ws:
            seen.append(message)
            if message == "m2":
                ws.close()
    assert seen[:3] == ["m0", "m1", "m2"]
    assert ws.close_reason.code == 1000


def test_close_wakes_thread_blocked_in_iteration(websockets_server) -> None:
    srv = websockets_server(waiting_handler)
    ws = syncws.connect(srv.url, disconnect_timeout=SHORT)
    assert srv.get() == "connected"
    iterator = Background(list, ws)
    ws.close()
    # Our own normal close ends the iteration quietly.
    assert iterator.result(timeout=MARGIN) == []


def test_close_wakes_thread_blocked_in_ping(raw_peer) -> None:
    peer = raw_peer()
    ws = syncws.connect(peer.url, disconnect_timeout=SHORT)
    conn = peer.connection()
    pinger = ping_in_flight(ws, conn, b"unanswered")  # the ping is in flight
    start = time.monotonic()
    closer = Background(ws.close)
    conn.close_handshake()
    closer.result()
    assert time.monotonic() - start < SHORT + MARGIN
    exc = pinger.exception(timeout=MARGIN)
    assert isinstance(exc, ConnectionClosed)


def test_close_wakes_thread_blocked_in_send_message(raw_peer) -> None:
    peer = raw_peer(rcvbuf=65536)
    ws = syncws.connect(peer.url, disconnect_timeout=SHORT)
    conn = peer.connection()
    sender = Background(ws.send_message, bytes(BIG))
    # The peer reads the start of the frame (so the send is under way), then stops.
    conn.read_at_least(65536)
    start = time.monotonic()
    ws.close()
    elapsed = time.monotonic() - start
    assert elapsed < SHORT + MARGIN
    exc = sender.exception(timeout=MARGIN)
    assert isinstance(exc, ConnectionClosed)
    assert ws.is_closed
    assert ws.close_reason.code == 1006


# ---------------------------------------------------- peers that never answer


def test_close_against_peer_that_never_answers(raw_peer) -> None:
    peer = raw_peer()
    ws = syncws.connect(peer.url, disconnect_timeout=SHORT)
    conn = peer.connection()
    start = time.monotonic()
    ws.close()
    elapsed = time.monotonic() - start
    assert SHORT * 0.9 <= elapsed < SHORT + MARGIN
    assert ws.is_closed
    assert ws.close_reason.code == 1006
    frame = conn.expect_close()
    assert frame.close_code == 1000
    conn.wait_eof()  # the client dropped the TCP connection


def test_close_waits_for_server_tcp_close_then_aborts(raw_peer) -> None:
    peer = raw_peer()
    ws = syncws.connect(peer.url, disconnect_timeout=SHORT)
    conn = peer.connection()
    closer = Background(ws.close)
    frame = conn.expect_close()
    conn.send_frame(OP_CLOSE, frame.payload[:2])  # answer, but keep TCP open
    conn.wait_eof()
    closer.result(timeout=SHORT + MARGIN)
    assert ws.close_reason.code == 1000


# The three context managers against a peer that never answers the close, timed: by
# default in tests/test_faults.py (test_context_managers_close_in_time_without_raising);
# these three, which check less, under -m slow.
@pytest.mark.slow
def test_connection_context_manager_does_not_raise_on_close_timeout(raw_peer) -> None:
    peer = raw_peer()
    start = time.monotonic()
    with syncws.connect(peer.url, disconnect_timeout=SHORT) as ws:
        conn = peer.connection()
    assert time.monotonic() - start < SHORT + MARGIN
    assert ws.close_reason.code == 1006
    assert conn.expect_close().close_code == 1000


@pytest.mark.slow
def test_open_websocket_url_does_not_raise_on_close_timeout(raw_peer) -> None:
    # One meaning of "with" everywhere: the same as with syncws.connect() above.
    peer = raw_peer()
    start = time.monotonic()
    with syncws.open_websocket_url(peer.url, disconnect_timeout=SHORT) as ws:
        conn = peer.connection()
    assert time.monotonic() - start < SHORT + MARGIN
    assert ws.is_closed
    assert ws.close_reason.code == 1006
    assert conn.expect_close().close_code == 1000


@pytest.mark.slow
def test_open_websocket_does_not_raise_on_close_timeout(raw_peer) -> None:
    peer = raw_peer()
    with syncws.open_websocket(
        "127.0.0.1", peer.port, "/", use_ssl=False, disconnect_timeout=SHORT
    ) as ws:
        peer.connection()
    assert ws.close_reason.code == 1006


def test_open_websocket_propagates_body_exception_on_close_timeout(raw_peer) -> None:
    peer = raw_peer()
    with (
        pytest.raises(KeyError),
        syncws.open_websocket_url(peer.url, disconnect_timeout=SHORT),
    ):
        peer.connection()
        raise KeyError("from the body")


def test_disconnection_timeout_is_still_importable() -> None:
    # No longer raised by syncws; kept so that existing except clauses still work.
    assert issubclass(DisconnectionTimeout, TimeoutError)
    assert syncws.DisconnectionTimeout is DisconnectionTimeout


def test_open_websocket_url_no_error_when_peer_answers(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    with syncws.open_websocket_url(srv.url, disconnect_timeout=WAIT) as ws:
        ws.send_message("x")
        assert ws.get_message(timeout=WAIT) == "x"
    assert ws.close_reason.code == 1000


# ---------------------------------------------------- exceptions in the body


def test_connect_exit_with_exception_sends_1011(websockets_server) -> None:
    srv = websockets_server(record_close_handler)
    with pytest.raises(RuntimeError, match="boom"), syncws.connect(srv.url) as ws:
        ws.send_message("before")
        raise RuntimeError("boom")
    assert ws.is_closed
    assert srv.get() == ("message", "before")
    assert get_close(srv)[0] == 1011


def test_open_websocket_url_exit_with_exception_sends_1011(websockets_server) -> None:
    srv = websockets_server(record_close_handler)
    with pytest.raises(ValueError, match="bad"), syncws.open_websocket_url(srv.url):
        raise ValueError("bad")
    assert get_close(srv)[0] == 1011


def test_open_websocket_exit_with_exception_sends_1011(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with (
        pytest.raises(ZeroDivisionError),
        syncws.open_websocket("127.0.0.1", peer.port, "/", use_ssl=False),
    ):
        _ = 1 / 0
    frame = peer.next_frame()
    assert frame.opcode == OP_CLOSE
    assert frame.close_code == 1011


def test_ctrl_c_in_the_block_sends_1001(websockets_server) -> None:
    srv = websockets_server(record_close_handler)
    with pytest.raises(KeyboardInterrupt), syncws.connect(srv.url):
        raise KeyboardInterrupt  # The user leaves: going away, not an error.
    assert get_close(srv)[0] == 1001
    with pytest.raises(KeyboardInterrupt), syncws.open_websocket_url(srv.url):
        raise KeyboardInterrupt
    assert get_close(srv)[0] == 1001


def test_normal_exit_sends_1000(websockets_server) -> None:
    srv = websockets_server(record_close_handler)
    with syncws.open_websocket_url(srv.url):
        pass
    assert get_close(srv)[0] == 1000


def test_close_frame_ends_the_stream_before_tcp_closes(raw_peer) -> None:
    """get_message reports the peer's close at once, not when TCP finally closes."""
    peer = raw_peer()
    ws = syncws.connect(peer.url, disconnect_timeout=60.0)
    try:
        conn = peer.connection()
        conn.send_text("last words")
        conn.send_close(1000, "done")
        assert conn.expect_close().close_code == 1000
        assert ws.get_message(timeout=WAIT) == "last words"
        start = time.monotonic()
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
        assert time.monotonic() - start < WAIT
        assert excinfo.value.reason == CloseReason(1000, "done")
        conn.close()  # now the client's reader sees EOF and finishes
    finally:
        ws.close()
