"""The server facing bad or slow input: plain HTTP, garbage, slowloris, protocol errors.

Every test here talks to the server through raw sockets and reads the raw response.
No traceback may be logged (the leak fixture fails a test on any syncws WARNING or
ERROR; these tests also look at the DEBUG records).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import queue
import socket
import struct
import threading
import time

import pytest
from helpers import (
    MARGIN,
    SHORT,
    UNIT,
    WAIT,
    SyncwsServer,
    echo_once,
    server_echo,
    syncws_threads,
    wait_for,
)
from rawpeer import (
    OP_CLOSE,
    OP_TEXT,
    HttpResponse,
    raw_client,
    read_http_response,
    upgrade_request,
    wait_closed,
)

import syncws
from syncws.testing import RecordingHandler

#: connect_timeout of the servers in the slow-client tests.
LIMIT = 1.0 * UNIT


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="syncws")
    return caplog


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        if record.name.startswith("syncws"):
            assert record.exc_info is None, f"traceback logged: {record.getMessage()}"
            assert record.levelno < logging.WARNING, record.getMessage()
    assert "Traceback" not in caplog.text


def exchange(port: int, data: bytes) -> HttpResponse:
    """Send ``data``, read the response and wait for the server to close."""
    with socket.create_connection(("127.0.0.1", port), WAIT) as sock:
        sock.sendall(data)
        return read_http_response(sock, WAIT)


def assert_error_response(response: HttpResponse, statuses: tuple[int, ...]) -> None:
    assert response.status in statuses, response
    assert response.closed, "the server kept the connection open after an error response"
    assert response.header("Content-Length") == str(len(response.body))
    assert 0 < len(response.body) < 1024, response.body
    assert response.rest == b""


@pytest.fixture
def echo_server(syncws_server) -> SyncwsServer:
    return syncws_server(server_echo, connect_timeout=WAIT)


# ------------------------------------------------------------------------ not WebSocket


def test_plain_get_is_refused(echo_server, debug_log) -> None:
    request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{echo_server.port}\r\n\r\n".encode()
    response = exchange(echo_server.port, request)
    assert_error_response(response, (400, 426))
    if response.status == 426:
        assert (response.header("Upgrade") or "").lower() == "websocket"
    assert_no_traceback(debug_log)
    echo_server.record.put("still serving")
    assert echo_server.get() == "still serving"


def test_garbage_gets_400(echo_server, debug_log) -> None:
    response = exchange(echo_server.port, b"\x00\x01 THIS IS NOT HTTP \xff\r\n\r\n")
    assert_error_response(response, (400,))
    assert_no_traceback(debug_log)


def test_tls_hello_on_plain_server_gets_400_or_drop(echo_server, debug_log) -> None:
    client_hello_start = bytes.fromhex("16030100a5010000a10303") + b"\x00" * 32 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", echo_server.port), WAIT) as sock:
        sock.sendall(client_hello_start)
        try:
            response = read_http_response(sock, WAIT)
        except EOFError:
            pass  # dropped without an answer: acceptable for non-HTTP bytes
        else:
            assert response.status == 400
            assert response.closed
    assert_no_traceback(debug_log)


def test_unsupported_version_gets_426_with_version_13(echo_server, debug_log) -> None:
    request = upgrade_request(f"127.0.0.1:{echo_server.port}", version="8")
    response = exchange(echo_server.port, request)
    assert_error_response(response, (426,))
    assert response.header("Sec-WebSocket-Version") == "13"
    assert_no_traceback(debug_log)


def test_missing_version_is_refused(echo_server, debug_log) -> None:
    request = upgrade_request(f"127.0.0.1:{echo_server.port}", version=None)
    response = exchange(echo_server.port, request)
    assert_error_response(response, (400, 426))
    assert_no_traceback(debug_log)


def test_post_upgrade_is_refused(echo_server, debug_log) -> None:
    request = upgrade_request(f"127.0.0.1:{echo_server.port}", method="POST")
    response = exchange(echo_server.port, request)
    assert_error_response(response, (400, 405))
    assert_no_traceback(debug_log)


def test_missing_key_is_refused(echo_server, debug_log) -> None:
    request = (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{echo_server.port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    response = exchange(echo_server.port, request)
    assert_error_response(response, (400, 426))
    assert_no_traceback(debug_log)


def test_huge_request_head_is_refused(echo_server, debug_log) -> None:
    filler = [(f"X-Filler-{i}", "y" * 1000) for i in range(200)]  # a 200 KB head
    request = upgrade_request(f"127.0.0.1:{echo_server.port}", headers=filler)
    with socket.create_connection(("127.0.0.1", echo_server.port), WAIT) as sock:
        # The server may stop reading and close before all is sent: also a refusal.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        try:
            response = read_http_response(sock, WAIT)
        except EOFError:
            pass
        else:
            assert response.status in (400, 413, 431), response
    assert_no_traceback(debug_log)


def test_client_disconnecting_mid_request_is_quiet(echo_server, debug_log) -> None:
    with socket.create_connection(("127.0.0.1", echo_server.port), WAIT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    with socket.create_connection(("127.0.0.1", echo_server.port), WAIT):
        pass  # connects and leaves without a byte
    # The server is still fine, and said nothing above DEBUG about either.
    echo_once(echo_server.url, "ok")
    assert_no_traceback(debug_log)


def test_server_answers_a_request_sent_byte_by_byte(echo_server) -> None:
    with socket.create_connection(("127.0.0.1", echo_server.port), WAIT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in upgrade_request(f"127.0.0.1:{echo_server.port}"):
            sock.sendall(bytes([byte]))
        response = read_http_response(sock, WAIT, until_eof=False)
        assert response.status == 101


# --------------------------------------------------------------------------- slowloris


def test_slowloris_is_dropped_after_connect_timeout(syncws_server) -> None:
    srv = syncws_server(server_echo, connect_timeout=LIMIT)
    with socket.create_connection(("127.0.0.1", srv.port), WAIT) as slow:
        started = time.monotonic()
        slow.sendall(upgrade_request(f"127.0.0.1:{srv.port}")[:40])
        # Others are served while the slow client dawdles.
        echo_once(srv.url, "meanwhile")
        assert time.monotonic() - started < LIMIT
        assert wait_closed(slow, LIMIT + MARGIN) == b""
        elapsed = time.monotonic() - started
    assert elapsed >= LIMIT * 0.9, f"dropped after {elapsed:.2f}s"


def test_connect_timeout_covers_the_whole_request(syncws_server) -> None:
    srv = syncws_server(server_echo, connect_timeout=LIMIT)
    request = upgrade_request(f"127.0.0.1:{srv.port}")
    with socket.create_connection(("127.0.0.1", srv.port), WAIT) as slow:
        started = time.monotonic()
        # A byte at a time, each well within the limit: the total still counts.
        pause = LIMIT / 8
        dropped = False
        for byte in request[:-1]:
            try:
                slow.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                dropped = True
                break
            if time.monotonic() - started > LIMIT + MARGIN:
                break
            slow.settimeout(pause)
            try:
                if slow.recv(1) == b"":
                    dropped = True
                    break
            except TimeoutError:
                pass
            except ConnectionResetError:
                dropped = True
                break
        if not dropped:
            assert wait_closed(slow, MARGIN) == b""
    assert time.monotonic() - started <= LIMIT + 2 * MARGIN


def test_idle_tcp_connection_is_dropped(syncws_server) -> None:
    # Nothing has to happen before the timeout here: a short one proves the same.
    srv = syncws_server(server_echo, connect_timeout=SHORT)
    with socket.create_connection(("127.0.0.1", srv.port), WAIT) as idle:
        started = time.monotonic()
        assert wait_closed(idle, SHORT + MARGIN) == b""
        assert time.monotonic() - started >= SHORT * 0.9


def test_connect_timeout_does_not_limit_an_accepted_connection(syncws_server) -> None:
    srv = syncws_server(server_echo, connect_timeout=SHORT)
    with syncws.connect(srv.url) as ws:
        # Longer than connect_timeout without traffic: still open.
        with pytest.raises(TimeoutError):
            ws.get_message(timeout=3 * SHORT)
        ws.send_message("still here")
        assert ws.get_message(timeout=WAIT) == "still here"


# ------------------------------------------------------------------ protocol violations


def test_unmasked_client_frame_fails_with_1002(ws_server) -> None:
    handler = RecordingHandler()
    ws_server(handler)
    conn = raw_client(ws_server.servers[-1].port)
    try:
        conn.send_frame(OP_TEXT, b"not masked", mask=None)
        close = conn.expect_close(WAIT)
        assert close.close_code == 1002
        assert not close.masked
        conn.wait_eof(WAIT)
    finally:
        conn.close()
    assert [reason.code for reason in handler.wait_closed()] == [1002]


def test_raw_client_echo_and_close_handshake(syncws_server) -> None:
    srv = syncws_server(server_echo)
    conn = raw_client(srv.port, "/raw")
    try:
        conn.send_text("raw hello")
        opcode, payload = conn.recv_message(WAIT)
        assert (opcode, payload) == (OP_TEXT, b"raw hello")
        conn.send_frame(OP_TEXT, b"frag", fin=False)
        conn.send_frame(0, b"mented")
        assert conn.recv_message(WAIT) == (OP_TEXT, b"fragmented")
        frame = conn.close_handshake(WAIT)
        assert frame.opcode == OP_CLOSE
        assert frame.close_code == 1000
        assert not frame.masked
    finally:
        conn.close()


def test_invalid_utf8_from_client_fails_with_1007(ws_server) -> None:
    handler = RecordingHandler()
    ws_server(handler)
    conn = raw_client(ws_server.servers[-1].port)
    try:
        conn.send_frame(OP_TEXT, b"\xff\xfe bad")
        assert conn.expect_close(WAIT).close_code == 1007
        conn.wait_eof(WAIT)
    finally:
        conn.close()
    assert [reason.code for reason in handler.wait_closed()] == [1007]


def test_message_over_server_limit_fails_with_1009(ws_server) -> None:
    handler = RecordingHandler()
    ws_server(handler, max_message_size=1000)
    conn = raw_client(ws_server.servers[-1].port)
    try:
        conn.send_frame(OP_TEXT, b"a" * 1000)
        conn.send_frame(OP_TEXT, b"b" * 1001)
        assert conn.expect_close(WAIT).close_code == 1009
        conn.wait_eof(WAIT)
    finally:
        conn.close()
    assert [reason.code for reason in handler.wait_closed()] == [1009]
    assert handler.messages == ["a" * 1000]


def test_client_reset_gives_1006_to_the_handler(syncws_server, debug_log) -> None:
    def handler(request, srv: SyncwsServer) -> None:
        ws = request.accept()
        srv.record.put("accepted")
        try:
            ws.get_message(timeout=WAIT)
        except syncws.ConnectionClosed as exc:
            srv.record.put(exc.reason.code)

    srv = syncws_server(handler)
    conn = raw_client(srv.port)
    assert srv.get() == "accepted"
    conn.abort()
    assert srv.get() == 1006
    assert_no_traceback(debug_log)


def test_client_vanishing_without_close_frame_gives_1006(ws_server, debug_log) -> None:
    handler = RecordingHandler()
    ws_server(handler)
    conn = raw_client(ws_server.servers[-1].port)
    conn.send_text("last")
    conn.close()  # FIN without a close frame
    assert [reason.code for reason in handler.wait_closed()] == [1006]
    assert handler.messages == ["last"]
    assert_no_traceback(debug_log)


@pytest.mark.parametrize(
    ("host", "status"),
    [(b"a..b", 403), (b"x" * 70 + b".com", 403), (b"\xff\xfe", 400)],
    ids=["empty-label", "long-label", "not-utf8"],
)
def test_odd_host_headers_never_break_the_server(syncws_server, debug_log, host, status) -> None:
    """Host values IDNA cannot round-trip reach the handler; undecodable ones get 400."""

    def handler(request, server) -> None:
        server.record.put(dict(request.headers)[b"host"])
        request.reject(403)

    server = syncws_server(handler)
    request = upgrade_request("placeholder").replace(b"placeholder", host)
    response = exchange(server.port, request)
    assert response.status == status
    if status == 403:
        assert server.record.get(timeout=WAIT) == host
    assert_no_traceback(debug_log)


# ------------------------------------------------ clients that go away in the handshake

#: Clients that reset while a process_request hook holds their handshake.
RESETTING_CLIENTS = 40


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets an RST."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def handler_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The syncws records logged in handler threads."""
    return [
        r
        for r in caplog.records
        if r.name.startswith("syncws") and r.threadName.startswith("syncws-handler-")
    ]


def reset_during_handshakes(syncws_server, handler, clients: int) -> None:
    """Serve ``clients`` that each send an upgrade request, then reset while a
    ``process_request`` hook holds their handshake; return once every handler ended."""
    entered: queue.Queue[object] = queue.Queue()
    go = threading.Event()

    def hook(request: syncws.WebSocketRequest) -> None:
        entered.put(request.remote)
        assert go.wait(WAIT), "the test did not release the hook"

    srv = syncws_server(handler, process_request=hook)
    socks = []
    try:
        for _ in range(clients):
            sock = socket.create_connection(("127.0.0.1", srv.port), WAIT)
            socks.append(sock)
            sock.sendall(upgrade_request(f"127.0.0.1:{srv.port}"))
        for _ in range(clients):
            entered.get(timeout=WAIT)  # each request was read: the hook holds it
        while socks:
            reset(socks.pop())
    finally:
        go.set()
        for sock in socks:
            sock.close()
    wait_for(
        lambda: not [t for t in syncws_threads() if t.name.startswith("syncws-handler-")],
        what="the handlers to end",
    )


def test_clients_that_reset_during_the_handshake_are_no_errors(syncws_server, debug_log) -> None:
    # The documented pattern, ws = request.accept(), while each client resets before
    # accept() sends the 101. A client that went away is no failure of the
    # application: no ERROR, no traceback, one DEBUG line per client at most.
    reset_during_handshakes(syncws_server, server_echo, RESETTING_CLIENTS)
    assert_no_traceback(debug_log)
    records = handler_records(debug_log)
    per_thread = collections.Counter(r.threadName for r in records)
    # The reset reaches the server before the hook returns (loopback): every accept()
    # failed, and each handler logged that one line.
    assert len(per_thread) == RESETTING_CLIENTS, per_thread
    assert set(per_thread.values()) == {1}, [r.getMessage() for r in records]
    assert all("went away during the opening handshake" in r.getMessage() for r in records)


@pytest.mark.allow_syncws_errors
def test_an_oserror_the_handler_raises_after_a_reset_is_an_error(syncws_server, caplog) -> None:
    # Only the very exception accept() raised is taken for the client's departure.
    def handler(request: syncws.WebSocketRequest, srv: SyncwsServer) -> None:
        try:
            request.accept()
        except OSError as exc:
            raise OSError("the handler's own failure") from exc

    reset_during_handshakes(syncws_server, handler, 1)
    (record,) = error_records(caplog)
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "the handler's own failure"


@pytest.mark.allow_syncws_errors
@pytest.mark.parametrize("when", ["before accept", "after accept"])
def test_an_oserror_of_the_handler_is_an_error(syncws_server, caplog, when) -> None:
    def handler(request: syncws.WebSocketRequest, srv: SyncwsServer) -> None:
        if when == "after accept":
            request.accept()
        raise FileNotFoundError(errno.ENOENT, "no such session file", "/sessions/42")

    srv = syncws_server(handler)
    with (
        contextlib.suppress(syncws.ConnectionRejected, syncws.ConnectionClosed),
        syncws.connect(srv.url, connect_timeout=WAIT) as ws,
    ):
        ws.get_message(timeout=WAIT)
    wait_for(lambda: error_records(caplog), what="the ERROR record")
    (record,) = error_records(caplog)
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], FileNotFoundError)
    assert "Traceback" in caplog.text


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("syncws") and r.levelno >= logging.ERROR]
