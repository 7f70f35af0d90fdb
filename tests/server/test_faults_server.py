"""Faults on the server side: handlers, keepalive and shutdown against bad clients.

The fault map is at the top of test_faults.py.  These cases concern what only a
server has: the handler's thread, ``WebSocketServer.shutdown`` and many clients.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websockets.exceptions
from faultlink import (
    BIG,
    PEER_RCVBUF,
    LinkFactory,
    Timing,
    closed_code,
    number,
    numbered,
    open_links,
    timed,
)
from helpers import MARGIN, SHORT, UNIT, WAIT, Background, SyncwsServer, syncws_threads, wait_for
from rawpeer import OP_CLOSE, OP_PING, Frame
from websockets.sync.client import connect as ws_connect

import syncws
from syncws import CloseReason, ConnectionClosed

INTERVAL = 0.1 * UNIT
PING_TIMEOUT = SHORT


@pytest.fixture
def timing(request: pytest.FixtureRequest) -> Timing:
    return Timing(request.node.nodeid.rpartition("::")[2])


@pytest.fixture
def link(raw_peer: Any, syncws_server: Any) -> Iterator[LinkFactory]:
    """Factory ``link(peer_rcvbuf=None, **options)``: a handler's connection, a raw client."""
    yield from open_links("server", raw_peer, syncws_server)


# ------------------------------------------------------------------ the handler's close


def test_handler_close_against_a_client_that_never_answers(
    link: LinkFactory, timing: Timing
) -> None:
    """The handler closes; the client reads the close frame and never answers."""
    lk = link(disconnect_timeout=SHORT)
    ws, conn = lk.ws, lk.conn
    closer = lk.call(timed, ws.close)
    assert conn.expect_close().close_code == 1000
    elapsed, error = closer.result()
    assert error is None
    timing.check("close() in the handler", elapsed, at_least=SHORT, at_most=SHORT + MARGIN)
    assert ws.close_reason is not None
    assert ws.close_reason.code == 1006
    conn.wait_eof(MARGIN)  # the server dropped TCP
    assert not lk.readers()
    lk.end()  # and the handler thread ends


# ------------------------------------------------------------------- keepalive


def test_keepalive_fails_a_silent_client_with_1011(link: LinkFactory, timing: Timing) -> None:
    """The peer reads everything, answers no ping and sends nothing."""
    start = time.monotonic()
    lk = link(ping_interval=INTERVAL, ping_timeout=PING_TIMEOUT, disconnect_timeout=WAIT)
    ws, conn = lk.ws, lk.conn
    waiter = Background(ws.get_message, WAIT)
    frames: list[Frame] = []
    while not frames or frames[-1].opcode != OP_CLOSE:
        frames.append(conn.recv_frame(WAIT))
    elapsed = time.monotonic() - start
    assert frames[0].opcode == OP_PING
    assert frames[-1].close_code == 1011
    limit = INTERVAL + PING_TIMEOUT
    timing.check("keepalive failure", elapsed, at_least=limit, at_most=limit + MARGIN)
    assert closed_code(waiter.exception()) == 1011
    assert waiter.finished_at is not None
    timing.check("get_message wakes", waiter.finished_at - start, at_most=limit + MARGIN)
    conn.send_frame(OP_CLOSE, frames[-1].payload[:2])
    answered = time.monotonic()
    conn.wait_eof(MARGIN)  # the server ends TCP first
    conn.close()
    lk.wait_readers_gone(answered, timing, "the reader ends after the answer")
    assert ws.close_reason is not None
    assert ws.close_reason.code == 1011
    lk.close_at_once(timing)
    lk.end()


# ---------------------------------------------------------------------- shutdown


class Streamer:
    """One client sending numbered messages and reading, each in a thread of its own.

    ``kind`` is ``"syncws"`` or ``"websockets"``. ``sent`` holds the numbers whose
    send returned, ``received`` the numbers read; ``send_error`` and ``recv_error``
    what ended each loop.
    """

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.path = url.split("/", 3)[3]
        self.sent: list[int] = []
        self.received: list[int] = []
        self.send_error: BaseException | None = None
        self.recv_error: BaseException | None = None
        self.recv_error_at: float | None = None
        self._stack = contextlib.ExitStack()
        self.ws: Any
        if kind == "syncws":
            self.ws = syncws.connect(url, connect_timeout=WAIT, disconnect_timeout=WAIT)
        else:
            self.ws = ws_connect(
                url,
                open_timeout=WAIT,
                close_timeout=WAIT,
                max_size=None,
                ping_interval=None,
                compression=None,
            )
        self._stack.enter_context(self.ws)
        self._threads = [
            threading.Thread(target=self._send_loop, name=f"test-send-{self.path}"),
            threading.Thread(target=self._recv_loop, name=f"test-recv-{self.path}"),
        ]
        for thread in self._threads:
            thread.start()

    def _send_loop(self) -> None:
        i = 0
        try:
            while True:
                if self.kind == "syncws":
                    self.ws.send_message(numbered(i), timeout=WAIT)
                else:
                    self.ws.send(numbered(i))
                self.sent.append(i)
                i += 1
        except Exception as exc:
            self.send_error = exc

    def _recv_loop(self) -> None:
        try:
            while True:
                if self.kind == "syncws":
                    message = self.ws.get_message(timeout=WAIT)
                else:
                    message = self.ws.recv(timeout=WAIT)
                self.received.append(number(message))
        except Exception as exc:
            self.recv_error = exc
            self.recv_error_at = time.monotonic()

    def close_code(self, exc: BaseException | None) -> int | None:
        """The close code an exception of the loops reports (``None``: not a close)."""
        if self.kind == "syncws":
            return exc.reason.code if isinstance(exc, ConnectionClosed) else None
        if isinstance(exc, websockets.exceptions.ConnectionClosed) and exc.rcvd is not None:
            return exc.rcvd.code
        return None

    def join(self) -> None:
        for thread in self._threads:
            thread.join(WAIT)
            assert not thread.is_alive(), f"{thread.name} still running"

    def close(self) -> None:
        self._stack.close()


def streaming_handler(request: Any, srv: SyncwsServer) -> None:
    """Record every message received while streaming numbered messages back.

    Puts ``(path, state)`` in ``record`` at once; ``state`` is filled as it goes:
    ``received``, ``sent``, and at the end ``send_error``, ``end`` (what ended the
    iteration: ``None`` for a quiet end) and ``close_reason``.
    """
    ws = request.accept()
    state: dict[str, Any] = {"received": [], "sent": [], "send_error": None}
    srv.record.put((ws.path, state))

    def stream() -> None:
        i = 0
        try:
            while True:
                ws.send_message(numbered(i), timeout=WAIT)
                state["sent"].append(i)
                i += 1
        except Exception as exc:
            state["send_error"] = exc

    sender = threading.Thread(target=stream, name=f"test-stream-{ws.path}")
    sender.start()
    try:
        for message in ws:
            state["received"].append(number(message))
        state["end"] = None
    except ConnectionClosed as exc:
        state["end"] = exc
    finally:
        sender.join(WAIT)
    state["close_reason"] = ws.close_reason
    state["done"] = True


def shutdown_mid_stream(srv: SyncwsServer, kinds: list[str], timing: Timing) -> None:
    """Clients of ``kinds`` stream both ways with ``srv``, which shuts down mid-stream."""
    clients: list[Streamer] = []
    try:
        for k, kind in enumerate(kinds):
            clients.append(Streamer(kind, srv.url_for(f"/{kind}-{k}")))
        handlers = dict(srv.get() for _ in clients)
        wait_for(
            lambda: all(
                len(c.received) >= 50 and len(handlers["/" + c.path]["received"]) >= 50
                for c in clients
            ),
            what="every stream to be under way",
        )
        start = time.monotonic()
        srv.server.shutdown(timeout=WAIT)
        elapsed = time.monotonic() - start
        timing.check("shutdown()", elapsed, at_most=WAIT + MARGIN)
        for client in clients:
            client.join()
    finally:
        for client in clients:
            client.close()
    for client in clients:
        state = handlers["/" + client.path]
        what = f"{client.kind} client {client.path}"
        assert state.get("done"), f"{what}: the handler did not finish"
        assert client.close_code(client.recv_error) == 1001, (what, client.recv_error)
        # See also test_faults.py::test_send_while_the_peers_close_waits_behind_queued_messages.
        assert client.close_code(client.send_error) == 1001, (what, client.send_error)
        assert client.recv_error_at is not None
        # No later than the shutdown, which waits for the closing handshakes.
        timing.check(
            f"{client.kind} reader sees 1001",
            client.recv_error_at - start,
            at_most=elapsed + MARGIN,
        )
        # Server to client: everything the handler sent arrived, in order.
        assert client.received == state["sent"] == list(range(len(state["sent"]))), what
        # Client to server: a gap-free prefix (what came after the close was discarded).
        got = state["received"]
        assert got == list(range(len(got))), f"{what}: the handler missed messages"
        assert len(got) <= len(client.sent), what
        assert len(got) >= 50, what
        assert state["end"] is None, (what, state["end"])  # iteration ended quietly on 1001
        assert closed_code(state["send_error"]) == 1001, what
        assert state["close_reason"].code == 1001, what
    assert syncws_threads() == []


def test_shutdown_mid_stream(syncws_server: Any, timing: Timing) -> None:
    srv = syncws_server(streaming_handler, disconnect_timeout=WAIT)
    shutdown_mid_stream(srv, ["syncws", "syncws", "websockets"], timing)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_shutdown_mid_stream_many_times(syncws_server: Any, timing: Timing) -> None:
    """The same with eight clients, twenty times over."""
    for _ in range(20):
        srv = syncws_server(streaming_handler, disconnect_timeout=WAIT)
        shutdown_mid_stream(srv, ["syncws"] * 6 + ["websockets"] * 2, timing)


def test_shutdown_with_a_client_that_stopped_reading(syncws_server: Any, timing: Timing) -> None:
    """The handler streams to a client that reads nothing: shutdown aborts it in time."""
    count = 10

    def handler(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        sent = []
        try:
            for i in range(count):
                ws.send_message(numbered(i))
                sent.append(i)
            srv.record.put("blocking")
            ws.send_message(bytes(BIG))  # cannot go out whole
            sent.append(count)
            srv.record.put(("sent", sent, None, time.monotonic()))
        except ConnectionClosed as exc:
            srv.record.put(("sent", sent, exc, time.monotonic()))

    srv = syncws_server(handler, disconnect_timeout=WAIT)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PEER_RCVBUF)
    try:
        sock.connect(("127.0.0.1", srv.port))
    except BaseException:
        sock.close()
        raise
    # A queue of one: the client's reader soon stops reading the socket.
    client = syncws.wrap_client_socket(
        sock,
        f"127.0.0.1:{srv.port}",
        "/",
        message_queue_size=1,
        max_message_size=2 * BIG,
        disconnect_timeout=WAIT,
    )
    try:
        assert srv.get() == "blocking"
        # Shut down only once the big send is under way: a shutdown before it would
        # (rightly) make the send fail at once with the server's 1001.
        (conn,) = srv.server.connections
        wait_for(lambda: conn._transport._writing, what="the handler's send to block")
        start = time.monotonic()
        srv.server.shutdown(timeout=SHORT)
        elapsed = time.monotonic() - start
        timing.check("shutdown()", elapsed, at_least=SHORT, at_most=SHORT + MARGIN)
        # The stuck connection was aborted after the timeout: the handler's send woke.
        _, sent, error, seen_at = srv.get(MARGIN)
        assert closed_code(error) == 1006
        timing.check("the handler's send wakes", seen_at - start, at_most=SHORT + MARGIN)
        assert sent == list(range(count))
        # Reader threads, and the timer that started them, may still be finishing.
        finishing = ("syncws-reader-", "syncws-starter")
        left = [t.name for t in syncws_threads() if not t.name.startswith(finishing)]
        assert left == [], left
        # The client reads at last: everything the handler sent, then the abort.
        received = []
        with pytest.raises(ConnectionClosed) as excinfo:
            while True:
                received.append(number(client.get_message(timeout=WAIT)))
        assert received == sent
        assert excinfo.value.reason.code == 1006
    finally:
        client.close()
    assert syncws_threads() == []


# ------------------------------------------------------------------- other faults


def test_server_close_against_a_client_that_keeps_tcp_open(
    link: LinkFactory, timing: Timing
) -> None:
    """The client answers the close frame but never closes TCP.

    The server ends TCP first (RFC 6455, section 7.1.1), then waits for the
    client's end of stream, at most disconnect_timeout.
    """
    lk = link(disconnect_timeout=SHORT)
    ws, conn = lk.ws, lk.conn
    closer = lk.call(timed, ws.close, 4000)
    frame = conn.expect_close()
    conn.send_frame(OP_CLOSE, frame.payload[:2])
    answered = time.monotonic()
    conn.wait_eof(MARGIN)
    timing.check("the server ends TCP", time.monotonic() - answered, at_most=MARGIN)
    elapsed, error = closer.result()
    assert error is None
    timing.check("close() in the handler", elapsed, at_most=SHORT + MARGIN)
    assert ws.close_reason == CloseReason(4000, None)
    assert not lk.readers()
    lk.end()


@pytest.mark.allow_syncws_errors
def test_handler_raising_mid_stream_closes_with_1011(
    syncws_server: Any, timing: Timing, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        for sent, message in enumerate(ws, 1):
            ws.send_message(numbered(sent - 1))
            if number(message) == 30:
                srv.record.put((sent, time.monotonic()))
                raise RuntimeError("handler bug mid-stream")

    srv = syncws_server(handler, disconnect_timeout=WAIT)
    client = Streamer("syncws", srv.url_for("/stream"))
    try:
        sent, raised_at = srv.get()
        client.join()
    finally:
        client.close()
    assert client.close_code(client.recv_error) == 1011, client.recv_error
    assert client.close_code(client.send_error) == 1011, client.send_error
    assert client.recv_error_at is not None
    timing.check("the client sees 1011", client.recv_error_at - raised_at, at_most=MARGIN)
    assert client.received == list(range(sent))
    wait_for(lambda: srv.server.connections == frozenset(), what="the connection to go")
    errors = [r for r in caplog.records if r.name == "syncws" and r.levelno == logging.ERROR]
    assert len(errors) == 1, errors
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)
    srv.stop()
    assert syncws_threads() == []
