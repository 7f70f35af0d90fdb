"""Client side: URLs, the opening handshake, the client functions and their failures."""

from __future__ import annotations

import base64
import socket
import time
from http import HTTPStatus

import pytest
from helpers import (
    HAS_IPV6,
    MARGIN,
    SHORT,
    WAIT,
    Background,
    WsServer,
    echo_handler,
    get_close,
    record_close_handler,
    unused_port,
)
from rawpeer import (
    MUTE,
    OP_BINARY,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    SILENT,
    Request,
    encode_frame,
    response_101,
)

import syncws
from syncws import ConnectionRejected, ConnectionTimeout, HandshakeError, WebSocketError


def path_echo_handler(ws, srv: WsServer) -> None:
    srv.record.put(("request", ws.request.path, ws.request.headers))
    echo_handler(ws, srv)


def roundtrip(ws: syncws.WebSocketConnection, message: str = "ping?") -> None:
    ws.send_message(message)
    assert ws.get_message(timeout=WAIT) == message


# ------------------------------------------------------------ client functions


def test_connect_plain_call_returns_open_connection(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    ws = syncws.connect(srv.url)
    try:
        assert not ws.is_closed
        roundtrip(ws)
    finally:
        ws.close()
    assert ws.is_closed


def test_connect_as_context_manager_closes_normally(websockets_server) -> None:
    srv = websockets_server(record_close_handler)
    with syncws.connect(srv.url) as ws:
        ws.send_message("inside")
    assert ws.is_closed
    assert srv.get() == ("message", "inside")
    assert get_close(srv)[0] == 1000


def test_open_websocket(websockets_server) -> None:
    srv = websockets_server(path_echo_handler)
    with syncws.open_websocket("127.0.0.1", srv.port, "/res?q=1", use_ssl=False) as ws:
        assert ws.path == "/res?q=1"
        roundtrip(ws)
    assert ws.is_closed
    assert srv.get()[1] == "/res?q=1"


def test_open_websocket_url(websockets_server) -> None:
    srv = websockets_server(path_echo_handler)
    with syncws.open_websocket_url(f"ws://127.0.0.1:{srv.port}/u?k=v") as ws:
        assert ws.path == "/u?k=v"
        roundtrip(ws)
    assert ws.is_closed
    assert srv.get()[1] == "/u?k=v"


def test_connect_websocket(websockets_server) -> None:
    srv = websockets_server(path_echo_handler)
    ws = syncws.connect_websocket("127.0.0.1", srv.port, "/cw", use_ssl=False)
    try:
        assert ws.path == "/cw"
        roundtrip(ws)
    finally:
        ws.close()
    assert ws.is_closed
    assert srv.get()[1] == "/cw"


def test_connect_websocket_url(websockets_server) -> None:
    srv = websockets_server(path_echo_handler)
    ws = syncws.connect_websocket_url(f"ws://127.0.0.1:{srv.port}/cwu")
    try:
        assert ws.path == "/cwu"
        roundtrip(ws)
    finally:
        ws.close()
    assert ws.is_closed
    assert srv.get()[1] == "/cwu"


def test_wrap_client_socket(websockets_server) -> None:
    srv = websockets_server(path_echo_handler)
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
    try:
        ws = syncws.wrap_client_socket(sock, "127.0.0.1", "/wrapped?x=1")
        with ws:
            assert ws.path == "/wrapped?x=1"
            assert ws.is_client
            roundtrip(ws)
        assert ws.is_closed
    finally:
        sock.close()
    assert srv.get()[1] == "/wrapped?x=1"


def test_wrap_client_socket_sends_given_host(raw_peer) -> None:
    peer = raw_peer(auto=True)
    sock = socket.create_connection(("127.0.0.1", peer.port), timeout=WAIT)
    try:
        with syncws.wrap_client_socket(sock, "example.test", "/") as ws:
            assert not ws.is_closed
    finally:
        sock.close()
    assert peer.wait_request().header("Host") == "example.test"


def test_client_options_accepted_by_every_function(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    options = {
        "message_queue_size": 4,
        "max_message_size": 1000,
        "connect_timeout": WAIT,
        "disconnect_timeout": WAIT,
        "ping_interval": None,
        "ping_timeout": None,
    }
    with syncws.connect(srv.url, **options) as ws:
        roundtrip(ws)
    with syncws.open_websocket("127.0.0.1", srv.port, "/", use_ssl=False, **options) as ws:
        roundtrip(ws)
    with syncws.open_websocket_url(srv.url, **options) as ws:
        roundtrip(ws)
    with syncws.connect_websocket("127.0.0.1", srv.port, "/", use_ssl=False, **options) as ws:
        roundtrip(ws)
    with syncws.connect_websocket_url(srv.url, **options) as ws:
        roundtrip(ws)
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
    try:
        with syncws.wrap_client_socket(sock, "127.0.0.1", "/", **options) as ws:
            roundtrip(ws)
    finally:
        sock.close()


# ----------------------------------------------------------------- the request


def test_upgrade_request_is_well_formed(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url):
        pass
    request = peer.wait_request()
    assert request.method == "GET"
    assert request.version == "HTTP/1.1"
    assert request.header("Upgrade").lower() == "websocket"
    assert "upgrade" in request.header("Connection").lower()
    assert request.header("Sec-WebSocket-Version") == "13"
    assert len(base64.b64decode(request.header("Sec-WebSocket-Key"), validate=True)) == 16


def test_query_string_kept_in_resource(raw_peer) -> None:
    peer = raw_peer(auto=True)
    resource = "/chat/room?x=1&y=two"
    with syncws.connect(peer.url_for(resource)) as ws:
        assert ws.path == resource
    assert peer.wait_request().target == resource


def test_empty_path_is_sent_as_slash(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(f"ws://127.0.0.1:{peer.port}") as ws:
        assert ws.path == "/"
    assert peer.wait_request().target == "/"


def test_host_header_includes_non_default_port(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url):
        pass
    assert peer.wait_request().header("Host") == f"127.0.0.1:{peer.port}"


def test_ws_default_port_is_80(raw_peer) -> None:
    try:
        peer = raw_peer(auto=True, port=80)
    except OSError as exc:
        pytest.skip(f"cannot listen on port 80: {exc}")
    with syncws.connect("ws://127.0.0.1/") as ws:
        assert ws.remote.port == 80
        assert ws.remote.url == "ws://127.0.0.1"
    assert peer.wait_request().header("Host") == "127.0.0.1"


def test_wss_default_port_is_443(tls_server_context, tls_client_context) -> None:
    def handler(ws, srv: WsServer) -> None:
        srv.record.put(ws.request.headers["Host"])
        echo_handler(ws, srv)

    try:
        srv = WsServer(handler, port=443, ssl=tls_server_context)
    except OSError as exc:
        pytest.skip(f"cannot listen on port 443: {exc}")
    try:
        with syncws.connect("wss://127.0.0.1/", ssl_context=tls_client_context) as ws:
            assert ws.remote.port == 443
            assert ws.remote.is_ssl
            roundtrip(ws)
        assert srv.get() == "127.0.0.1"
    finally:
        srv.stop()


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")
def test_ipv6_literal_url(raw_peer) -> None:
    peer = raw_peer(host="::1", auto=True, echo=True)
    url = f"ws://[::1]:{peer.port}/v6?x=1"
    with syncws.connect(url) as ws:
        roundtrip(ws)
        assert ws.path == "/v6?x=1"
        assert ws.remote.address == "::1"
        assert ws.remote.port == peer.port
        assert ws.remote.url == f"ws://[::1]:{peer.port}"
    request = peer.wait_request()
    assert request.header("Host") == f"[::1]:{peer.port}"
    assert request.target == "/v6?x=1"


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")
def test_ipv6_address_with_connect_websocket(raw_peer) -> None:
    peer = raw_peer(host="::1", auto=True)
    with syncws.connect_websocket("::1", peer.port, "/six", use_ssl=False) as ws:
        assert ws.remote.address == "::1"
        assert ws.path == "/six"
    assert peer.wait_request().header("Host") == f"[::1]:{peer.port}"


def test_frames_sent_along_with_the_101_response_are_received(raw_peer) -> None:
    def handshake(request: Request) -> bytes:
        return (
            response_101(request)
            + encode_frame(OP_TEXT, b"early bird")
            + encode_frame(OP_PING, b"early ping")
            + encode_frame(OP_BINARY, b"second")
        )

    peer = raw_peer(handshake=handshake)
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        assert ws.get_message(timeout=WAIT) == "early bird"
        assert ws.get_message(timeout=WAIT) == b"second"
        pong = conn.recv_frame()
        assert (pong.opcode, pong.payload) == (OP_PONG, b"early ping")
        closer = Background(ws.close)
        conn.close_handshake()
        closer.result()


def test_origin_header(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url, origin="https://app.example"):
        pass
    assert peer.wait_request().header("Origin") == "https://app.example"


def test_no_origin_header_by_default(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url):
        pass
    assert peer.wait_request().header("Origin") is None


def test_extra_headers_as_pairs_of_str_and_bytes(raw_peer) -> None:
    peer = raw_peer(auto=True)
    headers = [("X-One", "1"), (b"X-Two", b"two"), ("X-Multi", "a"), ("X-Multi", "b")]
    with syncws.connect(peer.url, extra_headers=headers):
        pass
    request = peer.wait_request()
    assert request.header("X-One") == "1"
    assert request.header("X-Two") == "two"
    assert request.header_all("X-Multi") == ["a", "b"]


def test_extra_headers_as_mapping(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url, extra_headers={"X-Token": "abc", "X-Other": "z"}):
        pass
    request = peer.wait_request()
    assert request.header("X-Token") == "abc"
    assert request.header("X-Other") == "z"


def test_extra_headers_with_open_websocket(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.open_websocket(
        "127.0.0.1",
        peer.port,
        "/",
        use_ssl=False,
        extra_headers=[("X-Via", "open_websocket")],
        origin="http://o.example",
    ):
        pass
    request = peer.wait_request()
    assert request.header("X-Via") == "open_websocket"
    assert request.header("Origin") == "http://o.example"


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Bad", "value\r\nInjected: yes")],
        [("X-Bad", "value\nInjected: yes")],
        [("X-Bad", "value\rmore")],
        [("X-Bad", "nul\x00byte")],
        [("X-Bad\r\nInjected", "v")],
        [("X-Bad\n", "v")],
        [(b"X-Bad", b"a\r\nb")],
        {"X-Bad": "a\nb"},
    ],
    ids=["crlf", "lf", "cr", "nul", "name-crlf", "name-lf", "bytes-crlf", "mapping-lf"],
)
def test_control_characters_in_headers_rejected(headers) -> None:
    url = f"ws://127.0.0.1:{unused_port()}/"
    with pytest.raises(ValueError):
        syncws.connect(url, extra_headers=headers)


def test_control_characters_in_origin_rejected() -> None:
    url = f"ws://127.0.0.1:{unused_port()}/"
    with pytest.raises(ValueError):
        syncws.connect(url, origin="http://a.example\r\nX-Injected: 1")


def test_userinfo_sends_basic_authorization(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(f"ws://alice:s3cret@127.0.0.1:{peer.port}/private"):
        pass
    request = peer.wait_request()
    expected = base64.b64encode(b"alice:s3cret").decode("ascii")
    assert request.header("Authorization") == f"Basic {expected}"
    assert request.header("Host") == f"127.0.0.1:{peer.port}"
    assert request.target == "/private"


def test_no_authorization_without_userinfo(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url):
        pass
    assert peer.wait_request().header("Authorization") is None


# ------------------------------------------------------------------- bad URLs


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{port}/",
        "https://127.0.0.1:{port}/",
        "ftp://127.0.0.1:{port}/",
        "127.0.0.1:{port}/",
        "",
        "ws://",
        "ws:///path",
        "ws://:{port}/",
        "ws://127.0.0.1:notaport/",
        "ws://127.0.0.1:70000/",
        "ws://127.0.0.1:-1/",
        "ws://127.0.0.1:{port}/#frag",
        "ws://127.0.0.1:{port}/path?q=1#frag",
        "ws://[::1/",
    ],
)
def test_bad_url_raises_value_error(template: str) -> None:
    url = template.format(port=unused_port())
    with pytest.raises(ValueError):
        syncws.connect(url)


def test_port_zero_is_rejected() -> None:
    with pytest.raises(ValueError):
        syncws.connect("ws://127.0.0.1:0/")


def test_empty_fragment_is_rejected() -> None:
    # RFC 6455, section 3: a "#" must be escaped as %23; fragments must not be used.
    with pytest.raises(ValueError):
        syncws.connect(f"ws://127.0.0.1:{unused_port()}/path#")


def test_percent_encoded_userinfo_is_decoded(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(f"ws://us%40er:p%3Ass@127.0.0.1:{peer.port}/"):
        pass
    expected = base64.b64encode(b"us@er:p:ss").decode("ascii")
    assert peer.wait_request().header("Authorization") == f"Basic {expected}"


@pytest.mark.parametrize("scheme", ["http", "https", "ftp", "wsx"])
def test_bad_scheme_error_names_the_scheme(scheme: str) -> None:
    with pytest.raises(ValueError, match=scheme):
        syncws.connect(f"{scheme}://127.0.0.1:{unused_port()}/")


def test_bad_url_in_other_url_functions() -> None:
    url = f"http://127.0.0.1:{unused_port()}/"
    with pytest.raises(ValueError):
        syncws.connect_websocket_url(url)
    with pytest.raises(ValueError), syncws.open_websocket_url(url):
        pass


def test_uppercase_scheme_accepted(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(f"WS://127.0.0.1:{peer.port}/") as ws:
        assert not ws.is_closed


# ---------------------------------------------------------------- subprotocols


def test_subprotocol_negotiated(websockets_server) -> None:
    def handler(ws, srv: WsServer) -> None:
        srv.record.put(ws.subprotocol)
        echo_handler(ws, srv)

    srv = websockets_server(handler, subprotocols=["chat", "superchat"])
    with syncws.connect(srv.url, subprotocols=["superchat", "other"]) as ws:
        assert ws.subprotocol == "superchat"
    assert srv.get() == "superchat"


def test_subprotocol_none_when_not_requested(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    with syncws.connect(srv.url) as ws:
        assert ws.subprotocol is None


def test_subprotocol_none_when_server_selects_none(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    with syncws.connect(srv.url, subprotocols=["chat"]) as ws:
        assert ws.subprotocol is None


def test_subprotocols_offered_in_request(raw_peer) -> None:
    def handshake(request: Request) -> bytes:
        return response_101(request, subprotocol="two")

    peer = raw_peer(auto=True, handshake=handshake)
    with syncws.connect(peer.url, subprotocols=["one", "two"]) as ws:
        assert ws.subprotocol == "two"
    offered = ",".join(peer.wait_request().header_all("Sec-WebSocket-Protocol"))
    assert [p.strip() for p in offered.split(",")] == ["one", "two"]


def test_subprotocol_not_offered_is_handshake_error(raw_peer) -> None:
    def handshake(request: Request) -> bytes:
        return response_101(request, subprotocol="sneaky")

    peer = raw_peer(handshake=handshake)
    with pytest.raises(HandshakeError):
        syncws.connect(peer.url, subprotocols=["one"], connect_timeout=WAIT)


def test_subprotocol_when_none_offered_is_handshake_error(raw_peer) -> None:
    def handshake(request: Request) -> bytes:
        return response_101(request, subprotocol="unasked")

    peer = raw_peer(handshake=handshake)
    with pytest.raises(HandshakeError):
        syncws.connect(peer.url, connect_timeout=WAIT)


def test_extension_not_offered_is_handshake_error(raw_peer) -> None:
    def handshake(request: Request) -> bytes:
        return response_101(
            request, extra_headers=[("Sec-WebSocket-Extensions", "permessage-deflate")]
        )

    peer = raw_peer(handshake=handshake)
    with pytest.raises(HandshakeError):
        syncws.connect(peer.url, connect_timeout=WAIT)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Connection: Upgrade", "Connection: Upgrade\x1c"),
        ("Upgrade: websocket", "Upgrade: websocket\x1f"),
        ("Connection: Upgrade", "Connection: Upgrade\r\nX-Note: a\x01b"),
    ],
    ids=["connection", "upgrade", "other-header"],
)
def test_control_character_in_a_response_header_is_handshake_error(
    raw_peer, old: str, new: str
) -> None:
    # str.strip() takes \x1c-\x1f for spaces: wsproto alone would take
    # "Upgrade\x1c" for "Upgrade" (found by the long fuzz run).
    def handshake(request: Request) -> bytes:
        return response_101(request).replace(old.encode(), new.encode(), 1)

    peer = raw_peer(handshake=handshake)
    with pytest.raises(HandshakeError, match="invalid handshake response"):
        syncws.connect(peer.url, connect_timeout=WAIT)


def test_handshake_headers_hold_server_response_headers(websockets_server) -> None:
    def process_response(connection, request, response):
        response.headers["X-Test-Header"] = "hello"

    srv = websockets_server(echo_handler, process_response=process_response)
    with syncws.connect(srv.url) as ws:
        headers = ws.handshake_headers
    assert isinstance(headers, tuple)
    assert (b"x-test-header", b"hello") in headers
    for name, value in headers:
        assert isinstance(name, bytes)
        assert isinstance(value, bytes)
        assert name == name.lower()


# ------------------------------------------------------------------- failures


def test_refused_connection_raises_connection_refused_error() -> None:
    with pytest.raises(ConnectionRefusedError) as excinfo:
        syncws.connect(f"ws://127.0.0.1:{unused_port()}/")
    assert isinstance(excinfo.value, OSError)


def test_dns_failure_raises_gaierror(monkeypatch: pytest.MonkeyPatch) -> None:
    def unknown(*args: object) -> None:  # No DNS query leaves the machine.
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    with pytest.raises(socket.gaierror) as excinfo:
        syncws.connect("ws://no-such-host.invalid/", connect_timeout=WAIT)
    assert isinstance(excinfo.value, OSError)


def test_refused_connection_in_open_websocket() -> None:
    with (
        pytest.raises(ConnectionRefusedError),
        syncws.open_websocket("127.0.0.1", unused_port(), "/", use_ssl=False),
    ):
        pass


def rejecting(status: str, headers: list[tuple[str, str]], body: bytes):
    def handshake(request: Request) -> bytes:
        head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        return head.encode("latin-1") + b"\r\n" + body

    return handshake


def test_non_101_response_raises_connection_rejected(raw_peer) -> None:
    body = b"<h1>not today</h1>"
    peer = raw_peer(
        handshake=rejecting(
            "403 Forbidden",
            [
                ("Content-Type", "text/html"),
                ("X-Reject-Reason", "policy"),
                ("Content-Length", str(len(body))),
            ],
            body,
        )
    )
    with pytest.raises(ConnectionRejected) as excinfo:
        syncws.connect(peer.url, connect_timeout=WAIT)
    exc = excinfo.value
    assert isinstance(exc, HandshakeError)
    assert isinstance(exc, WebSocketError)
    assert exc.status_code == 403
    assert isinstance(exc.headers, tuple)
    assert all(isinstance(n, bytes) and isinstance(v, bytes) for n, v in exc.headers)
    headers = {name.lower(): value for name, value in exc.headers}
    assert headers[b"x-reject-reason"] == b"policy"
    assert headers[b"content-type"] == b"text/html"
    assert exc.body == body


def test_rejection_body_delimited_by_connection_close(raw_peer) -> None:
    def handshake(request: Request) -> bytes:
        return b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\nbroken"

    # No Content-Length: the body ends when the server closes the connection.
    peer = raw_peer(handshake=handshake, close_after_handshake=True)
    with pytest.raises(ConnectionRejected) as excinfo:
        syncws.connect(peer.url, connect_timeout=WAIT)
    assert excinfo.value.status_code == 500
    assert excinfo.value.body == b"broken"


def test_rejection_by_websockets_server(websockets_server) -> None:
    def process_request(connection, request):
        return connection.respond(HTTPStatus.UNAUTHORIZED, "who are you?\n")

    srv = websockets_server(echo_handler, process_request=process_request)
    with pytest.raises(ConnectionRejected) as excinfo:
        syncws.connect(srv.url)
    assert excinfo.value.status_code == 401
    assert excinfo.value.body == b"who are you?\n"


def test_silent_server_raises_connection_timeout(raw_peer) -> None:
    peer = raw_peer(handshake=SILENT)
    start = time.monotonic()
    with pytest.raises(ConnectionTimeout) as excinfo:
        syncws.connect(peer.url, connect_timeout=SHORT)
    elapsed = time.monotonic() - start
    assert isinstance(excinfo.value, TimeoutError)
    assert isinstance(excinfo.value, HandshakeError)
    assert SHORT * 0.9 <= elapsed < SHORT + MARGIN
    assert peer.wait_request().method == "GET"


def test_partial_response_raises_connection_timeout(raw_peer) -> None:
    def handshake(request: Request) -> bytes:
        return b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"

    peer = raw_peer(handshake=handshake)
    start = time.monotonic()
    with pytest.raises(ConnectionTimeout):
        syncws.connect(peer.url, connect_timeout=SHORT)
    assert time.monotonic() - start < SHORT + MARGIN


def test_silent_server_timeout_in_open_websocket(raw_peer) -> None:
    peer = raw_peer(handshake=SILENT)
    start = time.monotonic()
    with (
        pytest.raises(ConnectionTimeout),
        syncws.open_websocket("127.0.0.1", peer.port, "/", use_ssl=False, connect_timeout=SHORT),
    ):
        pass
    assert time.monotonic() - start < SHORT + MARGIN


def test_mute_server_times_out_tls_handshake(raw_peer, tls_client_context) -> None:
    peer = raw_peer(handshake=MUTE)
    start = time.monotonic()
    with pytest.raises(ConnectionTimeout):
        syncws.connect(
            f"wss://127.0.0.1:{peer.port}/",
            ssl_context=tls_client_context,
            connect_timeout=SHORT,
        )
    assert time.monotonic() - start < SHORT + MARGIN


def test_bad_accept_key_raises_handshake_error(raw_peer) -> None:
    def handshake(request: Request) -> bytes:
        return response_101(request, accept=base64.b64encode(b"x" * 20).decode())

    peer = raw_peer(handshake=handshake)
    with pytest.raises(HandshakeError) as excinfo:
        syncws.connect(peer.url, connect_timeout=WAIT)
    assert not isinstance(excinfo.value, ConnectionRejected)
    assert not isinstance(excinfo.value, TimeoutError)


def test_missing_upgrade_header_raises_handshake_error(raw_peer) -> None:
    def handshake(request: Request) -> bytes:
        key = response_101(request).split(b"Sec-WebSocket-Accept: ")[1].split(b"\r\n")[0]
        return (
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + key + b"\r\n\r\n"
        )

    peer = raw_peer(handshake=handshake)
    with pytest.raises(HandshakeError):
        syncws.connect(peer.url, connect_timeout=WAIT)


def test_server_closing_during_handshake_is_reported(raw_peer) -> None:
    def handshake(request: Request) -> bytes:
        return b""  # read the request, answer nothing, close

    peer = raw_peer(handshake=handshake, close_after_handshake=True)
    with pytest.raises(HandshakeError, match="closed the connection before answering"):
        syncws.connect(peer.url, connect_timeout=WAIT)
