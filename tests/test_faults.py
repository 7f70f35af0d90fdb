"""Faults: peers that die, stall, go silent or misbehave, seen from both sides.

Every fault of issue 5 is proven here, in test_faults_server.py (``server``), or by
the existing test named below.  Each case checks that nothing hangs past the
configured timeouts (elapsed times are measured against them, below and above),
that no thread or socket is left behind (the autouse fixture, and
``syncws_threads()`` back to what it was) and the documented exception and close
code.  The ``link`` fixture runs a case twice: syncws as the client of a raw server
peer, and syncws as the server of a raw client (tests/faultlink.py).

Fault map (``here`` = this module):

1. Peer killed mid-message
   - FIN in the middle of a frame, client side:
     test_close.py::test_peer_vanishing_mid_message_is_1006
   - RST after complete messages, client side:
     test_close.py::test_peer_reset_is_1006_and_queued_messages_survive
   - RST mid-frame, and RST after messages and half a fragmented message, both
     sides: here, test_peer_reset_mid_message
   - the peer's process killed (SIGKILL) while it sends a large message slowly:
     here, test_killed_client_process, test_killed_server_process
2. Peer that stops reading while we send
   - (a) close() from another thread releases the blocked send:
     test_close.py::test_close_wakes_thread_blocked_in_send_message (client side);
     both sides, with both time bounds: here,
     test_close_releases_a_send_blocked_by_a_peer_not_reading
   - (b) send_message(timeout=T) raises TimeoutError, then 1006:
     test_backpressure.py::test_send_timeout_aborts_the_connection,
     test_backpressure.py::test_send_timeout_when_websockets_peer_stops_reading,
     test_server_both_sides.py::test_send_timeout_when_remote_does_not_read;
     both sides against a raw peer, with both time bounds: here,
     test_send_timeout_against_a_peer_not_reading
   - (c) ping(timeout=T) behind the blocked send: here, test_ping_timeout_behind_a_blocked_send
   - the peer resetting under the blocked send: here, test_peer_reset_under_a_blocked_send
3. Peer that half-closes (SHUT_WR), both sides: here,
   test_peer_half_close_without_close_frame, test_peer_half_close_right_after_its_close_frame
4. Peer that never answers our close frame
   - client side: test_close.py::test_close_against_peer_that_never_answers,
     test_close.py::test_connection_context_manager_does_not_raise_on_close_timeout,
     test_close.py::test_open_websocket_url_raises_disconnection_timeout,
     test_close.py::test_open_websocket_raises_disconnection_timeout; both context
     managers with both time bounds: here,
     test_context_managers_raise_disconnection_timeout_in_time
   - server side, the handler closes: server, test_handler_close_against_a_client_that_never_answers
5. Network silence and keepalive
   - a peer that reads but never answers pings nor sends anything, client side:
     test_keepalive.py::test_keepalive_fails_unresponsive_peer_with_1011; server side
     (test_server.py::test_server_keepalive_fails_an_unresponsive_client_with_1011
     without time bounds): server, test_keepalive_fails_a_silent_client_with_1011
   - a peer that answers pings stays connected:
     test_keepalive.py::test_keepalive_with_healthy_server_updates_latency,
     test_server.py::test_server_keepalive_with_a_responsive_client; both sides
     against a raw peer, over several intervals: here,
     test_keepalive_keeps_a_peer_that_answers_pings
6. Server shutdown while clients are mid-send and mid-receive
   - queued messages handed to handlers: test_server_shutdown.py::
     test_shutdown_closes_clients_with_1001_and_hands_queued_messages_to_handlers
   - streaming both ways, syncws and websockets clients: server, test_shutdown_mid_stream
   - a client that stopped reading: server, test_shutdown_with_a_client_that_stopped_reading
7. Other faults
   - data after the peer's close frame: here, test_peer_sends_data_after_its_close_frame
   - data after the peer's answer to our close frame: here,
     test_peer_sends_data_after_answering_our_close
   - an RST instead of an answer to our close frame: here, test_peer_reset_during_our_close
   - a send while the peer's close frame waits behind queued messages: here,
     test_send_while_the_peers_close_waits_behind_queued_messages
   - a handler raising mid-stream: server, test_handler_raising_mid_stream_closes_with_1011
   - a client that answers the server's close frame but keeps TCP open: server,
     test_server_close_against_a_client_that_keeps_tcp_open

Set ``SYNCWS_FAULT_FIGURES`` to a file name to have every measured time appended to it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultlink import (
    BIG,
    PEER_RCVBUF,
    Link,
    LinkFactory,
    Timing,
    closed_code,
    open_links,
    timed,
)
from helpers import (
    MARGIN,
    SHORT,
    UNIT,
    WAIT,
    Background,
    ChildProcess,
    SyncwsServer,
    syncws_threads,
    wait_for,
)
from rawpeer import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    ClientPeerConnection,
    close_payload,
)

import syncws
from syncws import CloseReason, ConnectionClosed

INTERVAL = 0.1 * UNIT
PING_TIMEOUT = SHORT
TESTS_DIR = str(Path(__file__).resolve().parent)


@pytest.fixture
def timing(request: pytest.FixtureRequest) -> Timing:
    return Timing(request.node.nodeid.rpartition("::")[2])


@pytest.fixture(params=["client", "server"])
def link(
    request: pytest.FixtureRequest, raw_peer: Any, syncws_server: Any
) -> Iterator[LinkFactory]:
    """Factory ``link(peer_rcvbuf=None, **options)``: syncws as client, then as server."""
    yield from open_links(request.param, raw_peer, syncws_server)


# ------------------------------------------------------- 1. peer killed mid-message


@pytest.mark.parametrize("variant", ["partial frame", "messages then half a fragmented message"])
def test_peer_reset_mid_message(link: LinkFactory, timing: Timing, variant: str) -> None:
    lk = link(disconnect_timeout=WAIT)
    ws, conn = lk.ws, lk.conn
    queued: list[str | bytes] = []
    waiter = None
    if variant == "partial frame":
        waiter = Background(ws.get_message, WAIT)  # blocked before the fault
        conn.send_raw(lk.frame(OP_BINARY, bytes(4096))[:100])
    else:
        conn.send_raw(lk.frame(OP_TEXT, b"one"))
        conn.send_raw(lk.frame(OP_BINARY, b"two"))
        conn.send_raw(lk.frame(OP_TEXT, b"three, first part", fin=False))
        lk.sync()
        conn.send_raw(lk.frame(OP_CONT, bytes(4096))[:100])
        queued = ["one", b"two"]
    start = time.monotonic()
    conn.abort()  # RST
    if waiter is not None:
        assert closed_code(waiter.exception()) == 1006
        assert waiter.finished_at is not None
        timing.check("blocked get_message wakes", waiter.finished_at - start, at_most=MARGIN)
    lk.wait_readers_gone(start, timing, "the reader ends")
    for message in queued:
        assert ws.get_message(timeout=0) == message
    with pytest.raises(ConnectionClosed) as excinfo:
        ws.get_message(timeout=WAIT)
    assert excinfo.value.reason.code == 1006
    with pytest.raises(ConnectionClosed) as excinfo:
        ws.send_message("nobody there")
    assert excinfo.value.reason.code == 1006
    with pytest.raises(ConnectionClosed):
        ws.ping(timeout=WAIT)
    lk.close_at_once(timing)
    assert ws.close_reason is not None
    assert ws.close_reason.code == 1006
    lk.end()


SLOW_SENDER = """
import sys, threading
sys.path.insert(0, sys.argv[1])
from rawpeer import OP_BINARY, RawPeer, encode_frame, raw_client
role, unit = sys.argv[2], float(sys.argv[3])
if role == "client":
    conn = raw_client(int(sys.argv[4]))
    mask = b"mask"
else:
    peer = RawPeer()
    print("port", peer.port, flush=True)
    conn = peer.connection()
    mask = None
conn.send_text("before")  # masked by a client connection
wire = encode_frame(OP_BINARY, bytes(2**19), mask=mask)
conn.send_raw(wire[:4096])
print("sending", flush=True)
pause = threading.Event()
for start in range(4096, len(wire), 512):
    pause.wait(0.01 * unit)
    conn.send_raw(wire[start:start + 512])
print("the whole message went out: the child was not killed", flush=True)
"""


def test_killed_client_process(syncws_server: Any, timing: Timing) -> None:
    """A client process killed while it slowly sends a large message: 1006 at once."""

    def handler(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        srv.record.put(ws.get_message(timeout=WAIT))
        try:
            ws.get_message(timeout=WAIT)
        except ConnectionClosed as exc:
            srv.record.put((exc.reason, time.monotonic()))
        else:
            srv.record.put("a message arrived")

    srv = syncws_server(handler, disconnect_timeout=WAIT)
    with ChildProcess(SLOW_SENDER, TESTS_DIR, "client", str(UNIT), str(srv.port)) as child:
        child.wait_line("sending")
        assert srv.get() == "before"
        killed_at = time.monotonic()
        child.proc.kill()
        reason, seen_at = srv.get()
        timing.check("the handler sees the close", seen_at - killed_at, at_most=MARGIN)
        assert reason.code == 1006
        child.wait()
    wait_for(lambda: srv.server.connections == frozenset(), what="the connection to go")
    srv.stop()
    assert syncws_threads() == []


def test_killed_server_process(timing: Timing) -> None:
    """A server process killed while it slowly sends a large message: 1006 at once."""
    with ChildProcess(SLOW_SENDER, TESTS_DIR, "server", str(UNIT)) as child:
        port = child.wait_number(r"port (\d+)")
        ws = syncws.connect(f"ws://127.0.0.1:{port}/", disconnect_timeout=WAIT)
        try:
            child.wait_line("sending")
            assert ws.get_message(timeout=WAIT) == "before"
            waiter = Background(ws.get_message, WAIT)
            killed_at = time.monotonic()
            child.proc.kill()
            assert closed_code(waiter.exception()) == 1006
            assert waiter.finished_at is not None
            timing.check(
                "get_message sees the close", waiter.finished_at - killed_at, at_most=MARGIN
            )
            child.wait()
        finally:
            elapsed, error = timed(ws.close)
        assert error is None
        timing.check("close() once the connection is over", elapsed, at_most=MARGIN)
        assert ws.close_reason is not None
        assert ws.close_reason.code == 1006
    assert syncws_threads() == []


# --------------------------------------------- 2. a peer that stops reading while we send


def blocked_send(lk: Link) -> Any:
    """Start sending BIG in the thread that owns ``ws``; the peer reads a little, then stops."""
    sender = lk.call(lk.ws.send_message, bytes(BIG))
    lk.conn.read_at_least(PEER_RCVBUF)
    return sender


def test_close_releases_a_send_blocked_by_a_peer_not_reading(
    link: LinkFactory, timing: Timing
) -> None:
    lk = link(peer_rcvbuf=PEER_RCVBUF, disconnect_timeout=SHORT)
    ws, conn = lk.ws, lk.conn
    sender = blocked_send(lk)
    start = time.monotonic()
    elapsed, error = timed(ws.close)  # from another thread than the sender's
    assert error is None
    # The close frame waits behind the message: the closing handshake cannot happen.
    timing.check("close()", elapsed, at_least=SHORT, at_most=SHORT + MARGIN)
    assert closed_code(sender.exception(MARGIN)) == 1006
    timing.check("the blocked send wakes", sender.finished_at - start, at_most=SHORT + MARGIN)
    assert ws.close_reason is not None
    assert ws.close_reason.code == 1006
    assert not lk.readers()
    conn.wait_eof()
    assert all(f.opcode != OP_CLOSE for f in conn.frames)
    lk.end()


def test_send_timeout_against_a_peer_not_reading(link: LinkFactory, timing: Timing) -> None:
    lk = link(peer_rcvbuf=PEER_RCVBUF, disconnect_timeout=WAIT)
    ws, conn = lk.ws, lk.conn
    elapsed, error = lk.call(timed, ws.send_message, bytes(BIG), timeout=SHORT).result()
    assert isinstance(error, TimeoutError), error
    assert not isinstance(error, ConnectionClosed)
    timing.check("send_message(timeout)", elapsed, at_least=SHORT, at_most=SHORT + MARGIN)
    assert ws.is_closed
    assert ws.close_reason is not None
    assert ws.close_reason.code == 1006
    with pytest.raises(ConnectionClosed) as excinfo:
        ws.send_message("after the timeout")
    assert excinfo.value.reason.code == 1006
    with pytest.raises(ConnectionClosed) as excinfo:
        ws.get_message(timeout=WAIT)
    assert excinfo.value.reason.code == 1006
    assert not lk.readers()
    conn.wait_eof()  # aborted: no close frame after the partial one
    assert all(f.opcode != OP_CLOSE for f in conn.frames)
    lk.close_at_once(timing)
    lk.end()


def test_ping_timeout_behind_a_blocked_send(link: LinkFactory, timing: Timing) -> None:
    """The ping waits behind the blocked message; its timeout aborts like a send's."""
    lk = link(peer_rcvbuf=PEER_RCVBUF, disconnect_timeout=WAIT)
    ws = lk.ws
    sender = blocked_send(lk)
    start = time.monotonic()
    with pytest.raises(TimeoutError) as excinfo:
        ws.ping(timeout=SHORT)
    elapsed = time.monotonic() - start
    assert not isinstance(excinfo.value, ConnectionClosed)
    timing.check("ping(timeout)", elapsed, at_least=SHORT, at_most=SHORT + MARGIN)
    # The ping frame never got out whole: the connection is aborted.
    assert ws.is_closed
    assert ws.close_reason is not None
    assert ws.close_reason.code == 1006
    assert closed_code(sender.exception(MARGIN)) == 1006
    timing.check("the blocked send wakes", sender.finished_at - start, at_most=SHORT + MARGIN)
    lk.close_at_once(timing)
    lk.end()


def test_peer_reset_under_a_blocked_send(link: LinkFactory, timing: Timing) -> None:
    lk = link(peer_rcvbuf=PEER_RCVBUF, disconnect_timeout=WAIT)
    ws, conn = lk.ws, lk.conn
    sender = blocked_send(lk)
    start = time.monotonic()
    conn.abort()
    assert closed_code(sender.exception()) == 1006
    timing.check("the blocked send wakes", sender.finished_at - start, at_most=MARGIN)
    lk.wait_readers_gone(start, timing, "the reader ends")
    assert ws.close_reason is not None
    assert ws.close_reason.code == 1006
    lk.close_at_once(timing)
    lk.end()


# ------------------------------------------------------------------ 3. half-close


def test_peer_half_close_without_close_frame(link: LinkFactory, timing: Timing) -> None:
    lk = link(disconnect_timeout=WAIT)
    ws, conn = lk.ws, lk.conn
    conn.send_raw(lk.frame(OP_TEXT, b"queued 1"))
    conn.send_raw(lk.frame(OP_BINARY, b"queued 2"))
    start = time.monotonic()
    conn.sock.shutdown(socket.SHUT_WR)
    lk.wait_readers_gone(start, timing, "the reader ends")
    conn.wait_eof(MARGIN)  # syncws closed its end too: the peer is not left half-open
    assert ws.get_message(timeout=0) == "queued 1"
    assert ws.get_message(timeout=0) == b"queued 2"
    with pytest.raises(ConnectionClosed) as excinfo:
        ws.get_message(timeout=WAIT)
    assert excinfo.value.reason.code == 1006
    with pytest.raises(ConnectionClosed):
        ws.send_message("to a half-closed peer")
    lk.close_at_once(timing)
    assert ws.close_reason is not None
    assert ws.close_reason.code == 1006
    lk.end()


def test_peer_half_close_right_after_its_close_frame(link: LinkFactory, timing: Timing) -> None:
    lk = link(disconnect_timeout=WAIT)
    ws, conn = lk.ws, lk.conn
    conn.send_raw(lk.frame(OP_TEXT, b"last words"))
    conn.send_close(4001, "half closed")
    start = time.monotonic()
    conn.sock.shutdown(socket.SHUT_WR)
    reply = conn.expect_close(MARGIN)  # syncws completes the closing handshake
    assert reply.close_code == 4001
    conn.wait_eof(MARGIN)
    timing.check("close frame answered and TCP closed", time.monotonic() - start, at_most=MARGIN)
    lk.wait_readers_gone(start, timing, "the reader ends")
    assert ws.get_message(timeout=0) == "last words"
    with pytest.raises(ConnectionClosed) as excinfo:
        ws.get_message(timeout=WAIT)
    assert excinfo.value.reason == CloseReason(4001, "half closed")
    assert ws.close_reason == CloseReason(4001, "half closed")
    lk.close_at_once(timing)
    lk.end()


# ------------------------------------------------ 4. a peer that never answers our close


@pytest.mark.parametrize("opener", ["connect", "open_websocket", "open_websocket_url"])
def test_context_managers_close_in_time_without_raising(
    raw_peer: Any, timing: Timing, opener: str
) -> None:
    peer = raw_peer()
    if opener == "open_websocket":
        manager = syncws.open_websocket(
            "127.0.0.1", peer.port, "/", use_ssl=False, disconnect_timeout=SHORT
        )
    elif opener == "open_websocket_url":
        manager = syncws.open_websocket_url(peer.url, disconnect_timeout=SHORT)
    else:
        manager = syncws.connect(peer.url, disconnect_timeout=SHORT)
    with manager as ws:
        conn = peer.connection()
        start = time.monotonic()
    elapsed = time.monotonic() - start
    timing.check("leaving the block", elapsed, at_least=SHORT, at_most=SHORT + MARGIN)
    assert ws.close_reason is not None
    assert ws.close_reason.code == 1006
    assert conn.expect_close().close_code == 1000
    conn.wait_eof(MARGIN)
    assert syncws_threads() == []


# ------------------------------------------------------------------- 5. keepalive


def test_keepalive_keeps_a_peer_that_answers_pings(link: LinkFactory, timing: Timing) -> None:
    lk = link(ping_interval=INTERVAL, ping_timeout=PING_TIMEOUT, disconnect_timeout=WAIT)
    ws, conn = lk.ws, lk.conn
    start = time.monotonic()
    for _ in range(4):
        frame = conn.recv_frame(INTERVAL + MARGIN)
        assert frame.opcode == OP_PING, frame  # nothing but pings, in particular no close
        conn.send_pong(frame.payload)
    timing.check(
        "four answered pings",
        time.monotonic() - start,
        at_least=3 * INTERVAL,
        at_most=4 * INTERVAL + MARGIN,
    )
    wait_for(lambda: ws.latency > 0, what="a measured round trip")
    assert not ws.is_closed
    conn.send_raw(lk.frame(OP_TEXT, b"still here"))
    assert ws.get_message(timeout=WAIT) == "still here"
    ws.send_message("me too")
    assert conn.recv_message() == (OP_TEXT, b"me too")
    lk.close_cleanly()
    assert ws.close_reason is not None
    assert ws.close_reason.code == 1000
    lk.end()


# ------------------------------------------------------------------ 7. other faults


def test_peer_sends_data_after_its_close_frame(link: LinkFactory, timing: Timing) -> None:
    lk = link(disconnect_timeout=WAIT)
    ws, conn = lk.ws, lk.conn
    conn.send_raw(lk.frame(OP_TEXT, b"before the close"))
    conn.send_close(4002, "closing")
    conn.send_raw(lk.frame(OP_TEXT, b"after the close"))
    conn.send_raw(lk.frame(OP_BINARY, b"more after the close"))
    start = time.monotonic()
    assert conn.expect_close(MARGIN).close_code == 4002
    if isinstance(conn, ClientPeerConnection):
        conn.wait_eof(MARGIN)
    conn.close()
    lk.wait_readers_gone(start, timing, "the reader ends")
    assert ws.get_message(timeout=0) == "before the close"
    with pytest.raises(ConnectionClosed) as excinfo:
        ws.get_message(timeout=WAIT)
    assert excinfo.value.reason == CloseReason(4002, "closing")
    lk.close_at_once(timing)
    lk.end()


def test_peer_sends_data_after_answering_our_close(link: LinkFactory, timing: Timing) -> None:
    lk = link(disconnect_timeout=WAIT)
    ws, conn = lk.ws, lk.conn
    closer = lk.call(timed, ws.close, 4003, "ours")
    frame = conn.expect_close()
    conn.send_frame(OP_CLOSE, frame.payload)
    conn.send_raw(lk.frame(OP_TEXT, b"after the close"))
    if isinstance(conn, ClientPeerConnection):
        conn.wait_eof(MARGIN)
    conn.close()
    elapsed, error = closer.result()
    assert error is None
    timing.check("close()", elapsed, at_most=MARGIN)
    assert ws.close_reason == CloseReason(4003, "ours")
    with pytest.raises(ConnectionClosed):
        ws.get_message(timeout=0)
    assert not lk.readers()
    lk.end()


def test_peer_reset_during_our_close(link: LinkFactory, timing: Timing) -> None:
    lk = link(disconnect_timeout=WAIT)
    ws, conn = lk.ws, lk.conn
    closer = lk.call(timed, ws.close)
    assert conn.expect_close().close_code == 1000
    start = time.monotonic()
    conn.abort()
    _, error = closer.result()
    assert error is None
    timing.check("close() returns after the reset", closer.finished_at - start, at_most=MARGIN)
    assert ws.close_reason is not None
    assert ws.close_reason.code == 1006
    assert not lk.readers()
    lk.end()


def test_send_while_the_peers_close_waits_behind_queued_messages(link: LinkFactory) -> None:
    """A send fails once the peer's close frame is parsed; it reports the peer's code."""
    lk = link(message_queue_size=1, disconnect_timeout=WAIT)
    ws, conn = lk.ws, lk.conn
    count = 5
    # One write: the reader parses the messages and the close frame together, then
    # waits for the application to read the first messages before it handles the close.
    wire = b"".join(lk.frame(OP_TEXT, b"m%d" % i) for i in range(count))
    conn.send_raw(wire + lk.frame(OP_CLOSE, close_payload(4005, "bye")))
    errors: list[tuple[ConnectionClosed, bool]] = []

    def send_fails() -> bool:
        try:
            ws.send_message("probe")
        except ConnectionClosed as exc:
            errors.append((exc, ws.is_closed))
            return True
        return False

    wait_for(send_fails, what="send_message to fail")
    (error, closed), *_ = errors
    received = [ws.get_message(timeout=WAIT) for _ in range(count)]
    assert received == [f"m{i}" for i in range(count)]
    with pytest.raises(ConnectionClosed) as excinfo:
        ws.get_message(timeout=WAIT)
    assert excinfo.value.reason == CloseReason(4005, "bye")
    assert error.reason == CloseReason(4005, "bye"), error.reason
    assert closed, "send_message raised ConnectionClosed while is_closed was false"
    lk.end()
