"""Stopping the server: shutdown(), the context manager, serve_forever, stuck handlers."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time

import pytest
from helpers import (
    MARGIN,
    SHORT,
    WAIT,
    Background,
    SyncwsServer,
    echo_once,
    plain_echo,
    server_echo,
    syncws_threads,
    wait_for,
)
from rawpeer import wait_closed
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.sync.client import connect as ws_connect

import syncws
from syncws import ConnectionClosed


def assert_not_listening(port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), WAIT).close()


def ws_client(port: int):
    """A websockets client (its threads are not named syncws-*)."""
    return ws_connect(f"ws://127.0.0.1:{port}/", open_timeout=WAIT, close_timeout=WAIT)


# --------------------------------------------------------------------------- shutdown


def test_shutdown_closes_clients_with_1001_and_hands_queued_messages_to_handlers(
    syncws_server,
) -> None:
    count = 10  # below message_queue_size: the server's reader takes them all
    gate = threading.Event()

    def handler(request, srv: SyncwsServer) -> None:
        ws = request.accept()
        srv.record.put(ws)
        gate.wait(WAIT)  # Read nothing until the connection is already closing.
        received = []
        try:
            received.extend(ws)
        except ConnectionClosed as exc:
            srv.record.put(exc)
        srv.record.put((ws.path, received, ws.close_reason))

    srv = syncws_server(handler)
    clients = [syncws.connect(srv.url_for(f"/c{i}")) for i in range(3)]
    try:
        server_sides = [srv.get() for _ in clients]
        for i, ws in enumerate(clients):
            for j in range(count):
                ws.send_message(f"c{i}-m{j}" if j % 2 else f"c{i}-m{j}".encode())
            # The pong comes after the server's reader has queued every message above.
            ws.ping(timeout=WAIT)
        waiters = [Background(ws.get_message, WAIT) for ws in clients]
        stopper = Background(srv.server.shutdown, WAIT)
        wait_for(lambda: all(s.is_closed for s in server_sides), what="server sides closing")
        gate.set()
        stopper.result()
        for waiter in waiters:
            error = waiter.exception()
            assert isinstance(error, ConnectionClosed), error
            assert error.reason.code == 1001
        results = sorted(srv.get() for _ in clients)
    finally:
        gate.set()
        for ws in clients:
            ws.close()
    for i, (path, received, reason) in enumerate(results):
        assert path == f"/c{i}"
        assert received == [f"c{i}-m{j}" if j % 2 else f"c{i}-m{j}".encode() for j in range(count)]
        assert reason.code == 1001
    assert srv.record.empty(), srv.record.get()


def test_shutdown_joins_every_thread_and_closes_every_socket(syncws_server) -> None:
    srv = syncws_server(server_echo)
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(ws_client(srv.port)) for _ in range(3)]
        for ws in clients:
            ws.send("hi")
            assert ws.recv(timeout=WAIT) == "hi"
        assert len(srv.server.connections) == 3
        assert syncws_threads(), "expected the server's threads to be running"
        srv.server.shutdown(timeout=WAIT)
        # Right away, with no waiting: shutdown() joined them all.
        assert syncws_threads() == []
        assert srv.server.connections == frozenset()
        assert_not_listening(srv.port)
        for ws in clients:
            with pytest.raises(WsConnectionClosed) as excinfo:
                ws.recv(timeout=WAIT)
            assert excinfo.value.rcvd.code == 1001
    # The leak fixture then checks that every socket of the server is closed.


@pytest.mark.allow_syncws_errors(logging.WARNING)
def test_shutdown_with_a_handler_that_ignores_the_connection(syncws_server) -> None:
    """shutdown(timeout) returns in time; the stuck handler thread keeps running.

    Python cannot stop a thread: the handler's thread (a daemon) stays alive until
    its function returns, but its connection is closed, so whatever it tries next
    fails with ConnectionClosed.
    """
    released = threading.Event()  # set only at the end of the test

    def handler(request, srv: SyncwsServer) -> None:
        ws = request.accept()
        srv.record.put(threading.current_thread())
        released.wait(WAIT * 2)
        try:
            ws.send_message("too late")
        except ConnectionClosed as exc:
            srv.record.put(exc)
        else:
            srv.record.put("sent after shutdown")

    srv = syncws_server(handler)
    try:
        with syncws.connect(srv.url) as ws:
            thread = srv.get()
            started = time.monotonic()
            srv.server.shutdown(timeout=SHORT)
            elapsed = time.monotonic() - started
            assert elapsed < SHORT + MARGIN, f"shutdown took {elapsed:.2f}s"
            with pytest.raises(ConnectionClosed) as excinfo:
                ws.get_message(timeout=WAIT)
            assert excinfo.value.reason.code == 1001
        assert_not_listening(srv.port)
        assert thread.name.startswith("syncws-handler-")
        assert thread.daemon
        assert thread.is_alive()
        assert [t for t in syncws_threads() if t is not thread] == []
        released.set()
        error = srv.get()
        assert isinstance(error, ConnectionClosed), error
        thread.join(WAIT)
        assert not thread.is_alive()
    finally:
        released.set()


@pytest.mark.allow_syncws_errors(logging.WARNING)
def test_shutdown_with_a_handler_stuck_before_accepting(syncws_server) -> None:
    released = threading.Event()

    def handler(request, srv: SyncwsServer) -> None:
        srv.record.put("waiting")
        released.wait(WAIT * 2)
        try:
            request.accept()
        except Exception as exc:
            srv.record.put(exc)
        else:
            srv.record.put("accepted after shutdown")

    srv = syncws_server(handler)
    try:
        client = Background(syncws.connect, srv.url, connect_timeout=WAIT)
        assert srv.get() == "waiting"
        started = time.monotonic()
        srv.server.shutdown(timeout=SHORT)
        assert time.monotonic() - started < SHORT + MARGIN
        # The waiting client is not left hanging until its connect_timeout.
        error = client.exception(MARGIN)
        assert isinstance(error, (syncws.HandshakeError, OSError)), error
        assert not isinstance(error, syncws.ConnectionTimeout)
        released.set()
        late = srv.get()
        assert isinstance(late, Exception), late
    finally:
        released.set()


@pytest.mark.allow_syncws_errors(logging.WARNING)
def test_a_finished_shutdown_is_not_repeated(syncws_server, caplog) -> None:
    # serve_websocket() shuts down again after serve_forever() did: with a stuck
    # handler, the second call used to wait its whole timeout again, and warn again.
    released = threading.Event()

    def handler(request, srv: SyncwsServer) -> None:
        request.accept()
        srv.record.put("stuck")
        released.wait(WAIT * 2)

    srv = syncws_server(handler)
    try:
        with syncws.connect(srv.url):
            assert srv.get() == "stuck"
            srv.server.shutdown(timeout=SHORT)
            caplog.clear()
            started = time.monotonic()
            with caplog.at_level(logging.WARNING, logger="syncws"):
                srv.server.shutdown(timeout=WAIT)
            assert time.monotonic() - started < SHORT
            assert caplog.records == []
    finally:
        released.set()


def test_shutdown_is_idempotent_and_thread_safe(syncws_server) -> None:
    srv = syncws_server(server_echo)
    with syncws.connect(srv.url) as ws:
        ws.send_message("x")
        assert ws.get_message(timeout=WAIT) == "x"
        barrier = threading.Barrier(3)

        def stop() -> None:
            barrier.wait(WAIT)
            srv.server.shutdown(timeout=WAIT)

        stoppers = [Background(stop) for _ in range(3)]
        for stopper in stoppers:
            stopper.result()
        srv.server.shutdown()
        with pytest.raises(ConnectionClosed):
            ws.get_message(timeout=WAIT)
    assert syncws_threads() == []


def test_shutdown_of_an_idle_server_is_quick(syncws_server) -> None:
    srv = syncws_server(server_echo)
    started = time.monotonic()
    srv.server.shutdown()
    assert time.monotonic() - started < MARGIN
    assert syncws_threads() == []
    assert_not_listening(srv.port)


def test_handler_may_shut_the_server_down(syncws_server) -> None:
    def handler(request, srv: SyncwsServer) -> None:
        ws = request.accept()
        if ws.get_message(timeout=WAIT) == "stop the server":
            srv.server.shutdown(timeout=SHORT)
            srv.record.put("shutdown returned")

    srv = syncws_server(handler)
    with syncws.connect(srv.url) as ws:
        ws.send_message("stop the server")
        assert srv.get() == "shutdown returned"
        with pytest.raises(ConnectionClosed):
            ws.get_message(timeout=WAIT)
    wait_for(lambda: syncws_threads() == [], what="the server's threads to end")
    assert_not_listening(srv.port)


# ------------------------------------------------------- context manager, serve_forever


def test_context_manager_serves_in_background_and_stops_everything() -> None:
    with contextlib.ExitStack() as stack:
        with syncws.WebSocketServer(plain_echo, "127.0.0.1", 0) as server:
            port = server.port
            client = stack.enter_context(ws_client(port))
            client.send(b"in the block")
            assert client.recv(timeout=WAIT) == b"in the block"
        assert syncws_threads() == []
        assert_not_listening(port)
        with pytest.raises(WsConnectionClosed) as excinfo:
            client.recv(timeout=WAIT)
        assert excinfo.value.rcvd.code == 1001


def test_context_manager_stops_on_exception() -> None:
    with (
        pytest.raises(KeyError),
        syncws.WebSocketServer(plain_echo, "127.0.0.1", 0) as server,
        syncws.connect(f"ws://127.0.0.1:{server.port}/"),
    ):
        raise KeyError("boom")
    assert syncws_threads() == []
    assert_not_listening(server.port)


def test_serve_forever_in_a_thread_and_shutdown_from_another() -> None:
    server = syncws.WebSocketServer(plain_echo, "127.0.0.1", 0)
    loop = Background(server.serve_forever)
    try:
        with syncws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            ws.send_message("served")
            assert ws.get_message(timeout=WAIT) == "served"
            stopper = Background(server.shutdown)
            stopper.result()
            assert loop.result() is None
            with pytest.raises(ConnectionClosed) as excinfo:
                ws.get_message(timeout=WAIT)
            assert excinfo.value.reason.code == 1001
    finally:
        server.shutdown(timeout=WAIT)
        loop.join()
    assert syncws_threads() == []


def test_serve_forever_after_shutdown_does_not_serve() -> None:
    server = syncws.WebSocketServer(plain_echo, "127.0.0.1", 0)
    server.shutdown()
    loop = Background(server.serve_forever)
    try:
        error = loop.exception(MARGIN)
    finally:
        server.shutdown()
        loop.join()
    # Documented: RuntimeError ("the server was shut down"); returning is fine too.
    assert error is None or isinstance(error, RuntimeError), error
    assert syncws_threads() == []


def test_serve_forever_twice_at_once_is_refused() -> None:
    server = syncws.WebSocketServer(plain_echo, "127.0.0.1", 0)
    loop = Background(server.serve_forever)
    try:
        echo_once(f"ws://127.0.0.1:{server.port}/", "serving")
        with pytest.raises(RuntimeError):
            server.serve_forever()
    finally:
        server.shutdown()
        loop.result()


# ------------------------------------------------------- clients that are not connected yet


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_shutdown_does_not_wait_for_stalled_handshakes(
    syncws_server, tls_server_context, tls_client_context, tls
) -> None:
    """Clients stuck before the upgrade (no TLS hello, half a request) are dropped at once."""
    context = tls_server_context if tls else None
    srv = syncws_server(server_echo, ssl_context=context, connect_timeout=3 * MARGIN)
    with (
        socket.create_connection(("127.0.0.1", srv.port), WAIT) as silent,
        socket.create_connection(("127.0.0.1", srv.port), WAIT) as partial,
    ):
        if not tls:
            partial.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        # A full client afterwards: once it is served, both stalled ones were accepted.
        echo_once(srv.url, "served", ssl_context=tls_client_context if tls else None)
        started = time.monotonic()
        srv.server.shutdown(timeout=MARGIN)
        elapsed = time.monotonic() - started
        assert elapsed < MARGIN, f"shutdown took {elapsed:.2f}s"
        for sock in (silent, partial):
            assert wait_closed(sock, MARGIN) == b""
    assert syncws_threads() == []


@pytest.mark.allow_syncws_errors(logging.WARNING, logging.ERROR)
def test_handler_raising_system_exit_still_closes_the_connection(syncws_server) -> None:
    def handler(request, srv: SyncwsServer) -> None:
        request.accept().send_message("exiting")
        raise SystemExit(3)

    srv = syncws_server(handler)
    with syncws.connect(srv.url) as ws:
        assert ws.get_message(timeout=WAIT) == "exiting"
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=2 * MARGIN)
        assert excinfo.value.reason.code in (1000, 1011)
    wait_for(lambda: srv.server.connections == frozenset(), what="the connection to be gone")
