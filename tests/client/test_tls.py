"""wss:// with certificates made by trustme."""

from __future__ import annotations

import socket
import ssl
import time

import pytest
from helpers import (
    MARGIN,
    SHORT,
    WAIT,
    Background,
    WsServer,
    echo_handler,
    echo_once,
    get_close,
    record_close_handler,
)

import syncws

pytest.importorskip("trustme")


def path_handler(ws, srv: WsServer) -> None:
    srv.record.put(ws.request.path)
    echo_handler(ws, srv)


def test_wss_with_trusted_context(
    websockets_server, tls_server_context, tls_client_context
) -> None:
    srv = websockets_server(path_handler, ssl=tls_server_context)
    with syncws.connect(srv.wss_url + "tls?x=1", ssl_context=tls_client_context) as ws:
        ws.send_message("over tls")
        assert ws.get_message(timeout=WAIT) == "over tls"
        assert ws.remote.is_ssl
        assert ws.local.is_ssl
        assert ws.remote.url == f"wss://127.0.0.1:{srv.port}"
        assert ws.path == "/tls?x=1"
    assert srv.get() == "/tls?x=1"


def test_wss_by_host_name(websockets_server, tls_server_context, tls_client_context) -> None:
    srv = websockets_server(echo_handler, ssl=tls_server_context)
    echo_once(f"wss://localhost:{srv.port}/", b"named", ssl_context=tls_client_context)


def test_wss_large_messages_both_ways(
    websockets_server, tls_server_context, tls_client_context
) -> None:
    srv = websockets_server(echo_handler, ssl=tls_server_context)
    payload = bytes(range(256)) * 4096  # 1 MiB
    with syncws.connect(srv.wss_url, ssl_context=tls_client_context) as ws:
        for _ in range(3):
            ws.send_message(payload)
        for _ in range(3):
            assert ws.get_message(timeout=WAIT) == payload


def test_wss_close_code_reaches_peer(
    websockets_server, tls_server_context, tls_client_context
) -> None:
    srv = websockets_server(record_close_handler, ssl=tls_server_context)
    ws = syncws.connect(srv.wss_url, ssl_context=tls_client_context)
    ws.close(4002, "tls bye")
    assert get_close(srv) == (4002, "tls bye")
    assert ws.close_reason.code == 4002


def test_wss_ping(websockets_server, tls_server_context, tls_client_context) -> None:
    srv = websockets_server(echo_handler, ssl=tls_server_context)
    with syncws.connect(srv.wss_url, ssl_context=tls_client_context) as ws:
        assert ws.ping(timeout=WAIT) > 0


def test_default_context_rejects_untrusted_certificate(
    websockets_server, tls_server_context
) -> None:
    srv = websockets_server(echo_handler, ssl=tls_server_context)
    with pytest.raises(ssl.SSLCertVerificationError) as excinfo:
        syncws.connect(srv.wss_url)
    assert isinstance(excinfo.value, OSError)


def test_host_name_is_verified(websockets_server, tls_ca, tls_client_context) -> None:
    other = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_ca.issue_cert("other.example").configure_cert(other)
    srv = websockets_server(echo_handler, ssl=other)
    with pytest.raises(ssl.SSLCertVerificationError):
        syncws.connect(srv.wss_url, ssl_context=tls_client_context)


def test_open_websocket_with_ssl_context(
    websockets_server, tls_server_context, tls_client_context
) -> None:
    srv = websockets_server(path_handler, ssl=tls_server_context)
    with syncws.open_websocket("127.0.0.1", srv.port, "/ow", use_ssl=tls_client_context) as ws:
        ws.send_message("x")
        assert ws.get_message(timeout=WAIT) == "x"
        assert ws.remote.is_ssl
    assert srv.get() == "/ow"


def test_open_websocket_use_ssl_true_uses_default_context(
    websockets_server, tls_server_context
) -> None:
    srv = websockets_server(echo_handler, ssl=tls_server_context)
    with (
        pytest.raises(ssl.SSLCertVerificationError),
        syncws.open_websocket("127.0.0.1", srv.port, "/", use_ssl=True),
    ):
        pass


def test_connect_websocket_with_ssl_context(
    websockets_server, tls_server_context, tls_client_context
) -> None:
    srv = websockets_server(echo_handler, ssl=tls_server_context)
    ws = syncws.connect_websocket("127.0.0.1", srv.port, "/", use_ssl=tls_client_context)
    try:
        assert ws.remote.is_ssl
        ws.send_message("cw")
        assert ws.get_message(timeout=WAIT) == "cw"
    finally:
        ws.close()


def test_url_functions_with_ssl_context(
    websockets_server, tls_server_context, tls_client_context
) -> None:
    srv = websockets_server(echo_handler, ssl=tls_server_context)
    with syncws.open_websocket_url(srv.wss_url, tls_client_context) as ws:
        ws.send_message("owu")
        assert ws.get_message(timeout=WAIT) == "owu"
    ws = syncws.connect_websocket_url(srv.wss_url, tls_client_context)
    try:
        ws.send_message("cwu")
        assert ws.get_message(timeout=WAIT) == "cwu"
    finally:
        ws.close()


def test_wrap_client_socket_over_ssl_socket(
    websockets_server, tls_server_context, tls_client_context
) -> None:
    srv = websockets_server(path_handler, ssl=tls_server_context)
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
    try:
        tls = tls_client_context.wrap_socket(raw, server_hostname="127.0.0.1")
        try:
            with syncws.wrap_client_socket(tls, "127.0.0.1", "/wrapped-tls") as ws:
                ws.send_message(b"wrapped")
                assert ws.get_message(timeout=WAIT) == b"wrapped"
                assert ws.remote.is_ssl
        finally:
            tls.close()
    finally:
        raw.close()
    assert srv.get() == "/wrapped-tls"


# -------------------------------------------------------- misbehaving TLS peers


def test_wss_burst_of_messages_is_not_stuck_in_tls_buffers(
    websockets_server, tls_server_context, tls_client_context
) -> None:
    """Records already decrypted inside the TLS layer must not wait for more bytes."""
    sizes = [1, 5000, 17000, 3, 70000, 2, 40000, 1, 1, 1]

    def handler(ws, srv: WsServer) -> None:
        assert ws.recv(timeout=WAIT) == "go"
        for i, size in enumerate(sizes):
            ws.send(bytes([i]) * size)
        srv.release.wait(WAIT)

    srv = websockets_server(handler, ssl=tls_server_context)
    with syncws.connect(srv.wss_url, ssl_context=tls_client_context) as ws:
        ws.send_message("go")
        for i, size in enumerate(sizes):
            assert ws.get_message(timeout=WAIT) == bytes([i]) * size


def test_wss_concurrent_senders_and_receiver(
    websockets_server, tls_server_context, tls_client_context
) -> None:
    srv = websockets_server(echo_handler, ssl=tls_server_context)
    per_thread, threads = 40, 3

    def send_all(thread: int) -> None:
        for index in range(per_thread):
            ws.send_message(f"{thread}:{index}:" + "z" * (index * 997 % 30000))

    def receive_all() -> list:
        return [ws.get_message(timeout=WAIT) for _ in range(per_thread * threads)]

    with syncws.connect(srv.wss_url, ssl_context=tls_client_context) as ws:
        receiver = Background(receive_all)
        for sender in [Background(send_all, t) for t in range(threads)]:
            sender.result()
        got = receiver.result()
    order: dict[int, list[int]] = {t: [] for t in range(threads)}
    for message in got:
        thread, index, rest = message.split(":")
        assert rest == "z" * (int(index) * 997 % 30000)
        order[int(thread)].append(int(index))
    assert all(order[t] == list(range(per_thread)) for t in range(threads))


def test_wss_peer_vanishing_without_close_is_1006(
    raw_peer, tls_server_context, tls_client_context
) -> None:
    peer = raw_peer(ssl_context=tls_server_context)
    with syncws.connect(peer.url, ssl_context=tls_client_context) as ws:
        conn = peer.connection()
        conn.send_text("last words")
        conn.close()  # no TLS close_notify, no close frame
        assert ws.get_message(timeout=WAIT) == "last words"
        with pytest.raises(syncws.ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
        assert excinfo.value.reason.code == 1006


def test_wss_peer_reset_is_1006(raw_peer, tls_server_context, tls_client_context) -> None:
    peer = raw_peer(ssl_context=tls_server_context)
    with syncws.connect(peer.url, ssl_context=tls_client_context) as ws:
        peer.connection().abort()
        with pytest.raises(syncws.ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
        assert excinfo.value.reason.code == 1006


def test_wss_close_handshake_with_raw_peer(
    raw_peer, tls_server_context, tls_client_context
) -> None:
    peer = raw_peer(ssl_context=tls_server_context)
    ws = syncws.connect(peer.url, ssl_context=tls_client_context)
    conn = peer.connection()
    closer = Background(ws.close, 4003, "tls close")
    frame = conn.close_handshake()
    closer.result()
    assert (frame.close_code, frame.close_reason) == (4003, "tls close")
    assert ws.close_reason.code == 4003


def test_wss_close_against_peer_that_never_answers(
    raw_peer, tls_server_context, tls_client_context
) -> None:
    peer = raw_peer(ssl_context=tls_server_context)
    ws = syncws.connect(peer.url, ssl_context=tls_client_context, disconnect_timeout=SHORT)
    conn = peer.connection()
    start = time.monotonic()
    ws.close()
    assert time.monotonic() - start < SHORT + MARGIN
    assert ws.close_reason.code == 1006
    assert conn.expect_close().close_code == 1000
