"""Other clients against the syncws server, and wrap_server_socket in a socketserver."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading

import pytest
import websocket  # websocket-client
from helpers import (
    WAIT,
    Background,
    SyncwsServer,
    echo_messages,
    plain_echo,
    server_echo,
    server_record_close,
)
from rawpeer import read_http_response
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.sync.client import connect as ws_connect

import syncws
from syncws import CloseReason, ConnectionClosed

MIXED: list[str | bytes] = [
    "",
    b"",
    "plain text",
    "unicode \u00e9\u4e2d\U0001f600",
    b"\x00\x01\x02\xff",
    "x" * 125,
    b"y" * 126,
    "z" * 65535,
    b"w" * 65536,
    bytes(range(256)) * 1024,
]


def websockets_client(srv: SyncwsServer, **kwargs):
    kwargs.setdefault("open_timeout", WAIT)
    kwargs.setdefault("close_timeout", WAIT)
    kwargs.setdefault("max_size", None)
    return ws_connect(srv.url, **kwargs)


# ------------------------------------------------------------------------- websockets


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_websockets_client_echo(syncws_server, compression) -> None:
    srv = syncws_server(server_echo)
    with websockets_client(srv, compression=compression) as ws:
        for message in MIXED:
            ws.send(message)
            assert ws.recv(timeout=WAIT) == message


def test_websockets_client_fragmented_message(syncws_server) -> None:
    srv = syncws_server(server_echo)
    with websockets_client(srv) as ws:
        ws.send(iter(["frag", "men", "ted"]))
        assert ws.recv(timeout=WAIT) == "fragmented"
        ws.send(iter([b"\x01", b"\x02"]))
        assert ws.recv(timeout=WAIT) == b"\x01\x02"


def test_websockets_client_answers_server_ping(syncws_server) -> None:
    def handler(request, srv: SyncwsServer) -> None:
        ws = request.accept()
        srv.record.put(ws.ping(timeout=WAIT))
        srv.record.put(ws.ping(b"custom", timeout=WAIT))
        srv.record.put(ws.latency)

    srv = syncws_server(handler)
    with websockets_client(srv) as ws:
        first, second, latency = srv.get(), srv.get(), srv.get()
        assert first > 0
        assert second > 0
        assert latency == second
        with pytest.raises(WsConnectionClosed):
            ws.recv(timeout=WAIT)


def test_server_answers_websockets_client_ping(syncws_server) -> None:
    srv = syncws_server(server_echo)
    with websockets_client(srv) as ws:
        assert ws.ping(b"from client").wait(WAIT)


def test_server_close_code_and_reason_reach_websockets_client(syncws_server) -> None:
    def handler(request, srv: SyncwsServer) -> None:
        ws = request.accept()
        ws.close(4100, "server says bye")
        srv.record.put(ws.close_reason)

    srv = syncws_server(handler)
    with websockets_client(srv) as ws:
        with pytest.raises(WsConnectionClosed) as excinfo:
            ws.recv(timeout=WAIT)
        assert excinfo.value.rcvd.code == 4100
        assert excinfo.value.rcvd.reason == "server says bye"
    assert srv.get() == CloseReason(4100, "server says bye")


def test_websockets_client_close_code_reaches_handler(syncws_server) -> None:
    srv = syncws_server(server_record_close)
    with websockets_client(srv) as ws:
        ws.close(4200, "client says bye")
    assert srv.get() == CloseReason(4200, "client says bye")
    assert srv.get() == CloseReason(4200, "client says bye")


def test_server_sends_while_websockets_client_sends(syncws_server) -> None:
    count = 200

    def handler(request, srv: SyncwsServer) -> None:
        ws = request.accept()
        pusher = Background(lambda: [ws.send_message(f"s{i}") for i in range(count)])
        received = [ws.get_message(timeout=WAIT) for _ in range(count)]
        pusher.result()
        srv.record.put(received)

    srv = syncws_server(handler)
    with websockets_client(srv) as ws:
        for i in range(count):
            ws.send(f"c{i}")
        assert [ws.recv(timeout=WAIT) for _ in range(count)] == [f"s{i}" for i in range(count)]
        assert srv.get() == [f"c{i}" for i in range(count)]


# ------------------------------------------------------------------- websocket-client


def test_websocket_client_echo(syncws_server) -> None:
    srv = syncws_server(server_echo)
    ws = websocket.create_connection(srv.url_for("/wsc?x=1"), timeout=WAIT)
    try:
        ws.send("text from websocket-client")
        assert ws.recv() == "text from websocket-client"
        ws.send_binary(b"\x00\xffbinary")
        assert ws.recv() == b"\x00\xffbinary"
        ws.send("big " * 50_000)
        assert ws.recv() == "big " * 50_000
    finally:
        ws.close()


def test_websocket_client_headers_and_subprotocol(syncws_server) -> None:
    def handler(request, srv: SyncwsServer) -> None:
        srv.record.put((request.path, request.headers, request.proposed_subprotocols))
        request.accept(subprotocol="v2", extra_headers=[("X-Reply", "ok")])

    srv = syncws_server(handler)
    ws = websocket.create_connection(
        srv.url_for("/h"), timeout=WAIT, header=["X-Token: abc"], subprotocols=["v1", "v2"]
    )
    try:
        assert ws.getsubprotocol() == "v2"
        assert ws.getheaders()["x-reply"] == "ok"
    finally:
        ws.close()
    path, headers, proposed = srv.get()
    assert path == "/h"
    assert (b"x-token", b"abc") in headers
    assert proposed == ("v1", "v2")


def test_websocket_client_close_status_reaches_handler(syncws_server) -> None:
    def handler(request, srv: SyncwsServer) -> None:
        ws = request.accept()
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
        srv.record.put(excinfo.value.reason.code)

    srv = syncws_server(handler)
    ws = websocket.create_connection(srv.url, timeout=WAIT)
    ws.close(status=4300)
    assert srv.get() == 4300


def test_websocket_client_answers_server_ping_while_reading(syncws_server) -> None:
    def handler(request, srv: SyncwsServer) -> None:
        ws = request.accept()
        rtt = ws.ping(timeout=WAIT)
        ws.send_message(f"rtt {rtt > 0}")
        ws.get_message(timeout=WAIT)

    srv = syncws_server(handler)
    ws = websocket.create_connection(srv.url, timeout=WAIT)
    try:
        assert ws.recv() == "rtt True"  # recv() answers the ping on its way
        ws.send("done")
    finally:
        ws.close()


# -------------------------------------------------------------- wrap_server_socket


class _SocketServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = False  # server_close() joins the request threads
    block_on_close = True


def make_request_handler(ws_handler, sink: list[BaseException]):
    class RequestHandler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            try:
                syncws.wrap_server_socket(self.request, ws_handler, disconnect_timeout=WAIT)
            except BaseException as exc:  # reported to the test
                sink.append(exc)
                raise

    return RequestHandler


@contextlib.contextmanager
def socketserver_running(ws_handler):
    errors: list[BaseException] = []
    server = _SocketServer(("127.0.0.1", 0), make_request_handler(ws_handler, errors))
    loop = threading.Thread(target=server.serve_forever, args=(0.05,), name="test-socketserver")
    loop.start()
    try:
        yield server, errors
    finally:
        server.shutdown()
        loop.join(WAIT)
        server.server_close()
        assert not loop.is_alive()


def test_wrap_server_socket_in_threading_tcp_server() -> None:
    with socketserver_running(plain_echo) as (server, errors):
        port = server.server_address[1]
        with syncws.connect(f"ws://127.0.0.1:{port}/via/socketserver") as ws:
            for message in MIXED[:8]:
                ws.send_message(message)
                assert ws.get_message(timeout=WAIT) == message
            assert ws.remote.port == port
        other = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=WAIT)
        try:
            other.send("websocket-client too")
            assert other.recv() == "websocket-client too"
        finally:
            other.close()
    assert errors == []


def test_wrap_server_socket_runs_in_the_calling_thread() -> None:
    seen: list[tuple[str, str, bool]] = []

    def handler(request) -> None:
        ws = request.accept()
        seen.append((threading.current_thread().name, request.path, ws.is_server))
        ws.send_message(threading.current_thread().name)

    with socketserver_running(handler) as (server, errors):
        port = server.server_address[1]
        with syncws.connect(f"ws://127.0.0.1:{port}/p") as ws:
            name = ws.get_message(timeout=WAIT)
            with pytest.raises(ConnectionClosed) as excinfo:
                ws.get_message(timeout=WAIT)
            assert excinfo.value.reason.code == 1000
    assert errors == []
    assert seen == [(name, "/p", True)]
    assert "process_request_thread" in name  # socketserver's thread, not one of syncws


def test_wrap_server_socket_refuses_plain_http() -> None:
    with socketserver_running(plain_echo) as (server, errors):
        port = server.server_address[1]
        with socket.create_connection(("127.0.0.1", port), WAIT) as sock:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            response = read_http_response(sock, WAIT)
    assert response.status in (400, 426)
    assert response.closed
    assert errors == []


def test_wrap_server_socket_reject() -> None:
    def handler(request) -> None:
        request.reject(401, extra_headers={"WWW-Authenticate": "Basic"}, body="who are you?")

    with socketserver_running(handler) as (server, errors):
        port = server.server_address[1]
        with pytest.raises(syncws.ConnectionRejected) as excinfo:
            syncws.connect(f"ws://127.0.0.1:{port}/")
    assert excinfo.value.status_code == 401
    assert excinfo.value.body == b"who are you?"
    assert errors == []


def test_wrap_server_socket_on_an_ssl_socket(tls_server_context, tls_client_context) -> None:
    def handler(request) -> None:
        ws = request.accept()
        ws.send_message(f"tls {ws.local.is_ssl} {ws.remote.is_ssl}")
        echo_messages(ws)

    class TlsRequestHandler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.settimeout(WAIT)
            with tls_server_context.wrap_socket(self.request, server_side=True) as tls:
                syncws.wrap_server_socket(tls, handler, disconnect_timeout=WAIT)

    server = _SocketServer(("127.0.0.1", 0), TlsRequestHandler)
    loop = threading.Thread(target=server.serve_forever, args=(0.05,), name="test-socketserver")
    loop.start()
    try:
        url = f"wss://localhost:{server.server_address[1]}/tls"
        with syncws.connect(url, ssl_context=tls_client_context) as ws:
            assert ws.get_message(timeout=WAIT) == "tls True True"
            ws.send_message(b"secure bytes")
            assert ws.get_message(timeout=WAIT) == b"secure bytes"
    finally:
        server.shutdown()
        loop.join(WAIT)
        server.server_close()
