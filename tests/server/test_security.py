"""Security: origin allow-list, the process_request hook, Basic auth, request limits,
TLS verification errors, and credentials that never reach a log."""

from __future__ import annotations

import base64
import logging
import socket
import ssl
from typing import Any

import pytest
import websockets.sync.client
from helpers import WAIT, SyncwsServer, echo_once, server_echo
from rawpeer import HttpResponse, read_http_response, upgrade_request
from websockets.exceptions import InvalidStatus

import syncws


def exchange(port: int, data: bytes) -> HttpResponse:
    with socket.create_connection(("127.0.0.1", port), WAIT) as sock:
        sock.sendall(data)
        return read_http_response(sock, WAIT)


def assert_refused(response: HttpResponse, status: int) -> None:
    assert response.status == status, response
    assert response.closed
    assert response.header("Content-Length") == str(len(response.body))


# --------------------------------------------------------------------------- origins


@pytest.fixture
def origin_server(syncws_server) -> SyncwsServer:
    return syncws_server(server_echo, origins=["https://example.com", "http://localhost:8000"])


def test_allowed_origin_is_accepted(origin_server) -> None:
    echo_once(origin_server.url, origin="https://example.com")
    echo_once(origin_server.url, origin="http://localhost:8000")


def test_origin_comparison_ignores_case(origin_server) -> None:
    echo_once(origin_server.url, origin="HTTPS://Example.COM")


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://example.com.evil.example",
        "http://example.com",  # another scheme is another origin
        "https://example.com:8443",  # so is another port
        "null",
    ],
)
def test_other_origins_get_403(origin_server, origin) -> None:
    with pytest.raises(syncws.ConnectionRejected) as excinfo:
        syncws.connect(origin_server.url, origin=origin)
    assert excinfo.value.status_code == 403
    assert origin_server.record.empty()  # the handler never ran


def test_missing_origin_is_refused_unless_none_is_listed(syncws_server, origin_server) -> None:
    with pytest.raises(syncws.ConnectionRejected) as excinfo:
        syncws.connect(origin_server.url)
    assert excinfo.value.status_code == 403
    lenient = syncws_server(server_echo, origins=["https://example.com", None])
    echo_once(lenient.url)
    echo_once(lenient.url, origin="https://example.com")


def test_origin_check_with_a_browser_like_peer(origin_server) -> None:
    with websockets.sync.client.connect(
        origin_server.url, origin="https://example.com", open_timeout=WAIT
    ) as ws:
        ws.send("hi")
        assert ws.recv(timeout=WAIT) == "hi"
    with pytest.raises(InvalidStatus) as excinfo:
        websockets.sync.client.connect(
            origin_server.url, origin="https://evil.example", open_timeout=WAIT
        )
    assert excinfo.value.response.status_code == 403


def test_origin_without_upgrade_is_still_a_plain_refusal(origin_server) -> None:
    request = upgrade_request(
        f"127.0.0.1:{origin_server.port}", headers=[("Origin", "https://evil.example")]
    )
    assert_refused(exchange(origin_server.port, request), 403)


def test_origins_given_as_an_iterator(syncws_server) -> None:
    srv = syncws_server(server_echo, origins=iter([None, "https://example.com"]))
    echo_once(srv.url)
    echo_once(srv.url, origin="https://example.com")


@pytest.mark.parametrize(
    ("origins", "error"),
    [
        ("https://example.com", TypeError),
        (["https://exa mple.com"], ValueError),
        (["https://example.com\r\nX: y"], ValueError),
        (["https://ex\u00e4mple.com"], ValueError),
    ],
)
def test_bad_origins_option(origins, error) -> None:
    with pytest.raises(error):
        syncws.WebSocketServer(server_echo, "127.0.0.1", 0, origins=origins)


# ---------------------------------------------------------------- process_request


def test_hook_rejects_with_401_and_handler_never_runs(syncws_server) -> None:
    def hook(request: syncws.WebSocketRequest) -> None:
        if request.header("X-Token") != "letmein":
            request.reject(401, [("WWW-Authenticate", "Token")], "who are you?\n")

    srv = syncws_server(server_echo, process_request=hook)
    with pytest.raises(syncws.ConnectionRejected) as excinfo:
        syncws.connect(srv.url)
    assert excinfo.value.status_code == 401
    assert (b"www-authenticate", b"Token") in [
        (name.lower(), value) for name, value in excinfo.value.headers
    ]
    assert excinfo.value.body == b"who are you?\n"
    assert srv.record.empty()
    echo_once(srv.url, extra_headers={"X-Token": "letmein"})


def test_hook_reads_headers_and_cookies(syncws_server) -> None:
    seen: dict[str, Any] = {}

    def hook(request: syncws.WebSocketRequest) -> None:
        seen["cookies"] = request.cookies
        seen["agent"] = request.header("user-agent")
        seen["missing"] = request.header("x-missing")
        seen["origin"] = request.origin
        seen["path"] = request.path

    srv = syncws_server(server_echo, process_request=hook)
    echo_once(
        srv.url_for("/room?id=7"),
        extra_headers=[
            ("Cookie", 'session=abc123; theme="dark"'),
            ("Cookie", "session=second; lang=fr"),
            ("User-Agent", "syncws-test"),
        ],
        origin="https://example.com",
    )
    assert seen == {
        "cookies": {"session": "abc123", "theme": "dark", "lang": "fr"},
        "agent": "syncws-test",
        "missing": None,
        "origin": "https://example.com",
        "path": "/room?id=7",
    }


@pytest.mark.allow_syncws_errors
def test_hook_that_raises_gives_500(syncws_server, caplog) -> None:
    def hook(request: syncws.WebSocketRequest) -> None:
        raise RuntimeError("hook bug")

    srv = syncws_server(server_echo, process_request=hook)
    with pytest.raises(syncws.ConnectionRejected) as excinfo:
        syncws.connect(srv.url)
    assert excinfo.value.status_code == 500
    assert "process_request hook failed" in caplog.text
    assert srv.record.empty()


def test_hook_must_be_callable() -> None:
    with pytest.raises(TypeError):
        syncws.WebSocketServer(server_echo, "127.0.0.1", 0, process_request="no")  # type: ignore[typeddict-item]


@pytest.mark.allow_syncws_errors
def test_hook_may_not_accept(syncws_server, caplog) -> None:
    def hook(request: syncws.WebSocketRequest) -> None:
        request.accept()  # a mistake: a hook rejects or lets the request through

    srv = syncws_server(server_echo, process_request=hook)
    with pytest.raises(syncws.ConnectionRejected) as excinfo:
        syncws.connect(srv.url)
    assert excinfo.value.status_code == 500
    assert "may reject a request, not accept it" in caplog.text


def test_origin_check_runs_before_the_hook(syncws_server) -> None:
    calls = []
    srv = syncws_server(server_echo, origins=[None], process_request=calls.append)
    with pytest.raises(syncws.ConnectionRejected):
        syncws.connect(srv.url, origin="https://evil.example")
    assert calls == []
    echo_once(srv.url)
    assert len(calls) == 1


# ---------------------------------------------------------------------- basic auth


def user_handler(request: Any, srv: SyncwsServer) -> None:
    ws = request.accept()
    ws.send_message(request.username or "")
    ws.get_message(timeout=WAIT)


@pytest.fixture
def auth_server(syncws_server) -> SyncwsServer:
    auth = syncws.basic_auth(
        realm="tests", credentials=[("alice", "s3cret:with:colons"), ("bob", "p\u00e4ss")]
    )
    return syncws_server(user_handler, process_request=auth)


def auth_url(srv: SyncwsServer, userinfo: str) -> str:
    return srv.url.replace("ws://", f"ws://{userinfo}@")


@pytest.mark.parametrize(
    ("userinfo", "user"), [("alice:s3cret:with:colons", "alice"), ("bob:p%C3%A4ss", "bob")]
)
def test_basic_auth_accepts_valid_credentials(auth_server, userinfo, user) -> None:
    with syncws.connect(auth_url(auth_server, userinfo)) as ws:
        assert ws.get_message(timeout=WAIT) == user
        ws.send_message("bye")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + base64.b64encode(b"alice:wrong").decode(),
        "Basic " + base64.b64encode(b"mallory:s3cret:with:colons").decode(),
        "Basic " + base64.b64encode(b"alice").decode(),  # no colon
        "Basic not-base64!",
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),  # not UTF-8
        "Bearer abc",
        "Basic",
        "",
    ],
)
def test_basic_auth_refuses_with_401(auth_server, authorization) -> None:
    headers = [] if authorization is None else [("Authorization", authorization)]
    with pytest.raises(syncws.ConnectionRejected) as excinfo:
        syncws.connect(auth_server.url, extra_headers=headers)
    assert excinfo.value.status_code == 401
    challenge = dict((n.lower(), v) for n, v in excinfo.value.headers)[b"www-authenticate"]
    assert challenge == b'Basic realm="tests", charset="UTF-8"'


def test_basic_auth_with_check_function(syncws_server) -> None:
    calls = []

    def check(username: str, password: str) -> bool:
        calls.append(username)
        return password == username[::-1]

    srv = syncws_server(user_handler, process_request=syncws.basic_auth(check_credentials=check))
    with syncws.connect(auth_url(srv, "abc:cba")) as ws:
        assert ws.get_message(timeout=WAIT) == "abc"
        ws.send_message("bye")
    with pytest.raises(syncws.ConnectionRejected):
        syncws.connect(auth_url(srv, "abc:abc"))
    assert calls == ["abc", "abc"]


def test_basic_auth_with_websockets_client(auth_server) -> None:
    with websockets.sync.client.connect(
        auth_url(auth_server, "alice:s3cret:with:colons"), open_timeout=WAIT
    ) as ws:
        assert ws.recv(timeout=WAIT) == "alice"
        ws.send("bye")


def test_basic_auth_single_pair(syncws_server) -> None:
    auth = syncws.basic_auth(credentials=("solo", "pw"))
    srv = syncws_server(user_handler, process_request=auth)
    with syncws.connect(auth_url(srv, "solo:pw")) as ws:
        assert ws.get_message(timeout=WAIT) == "solo"
        ws.send_message("bye")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, TypeError),
        ({"credentials": ("a", "b"), "check_credentials": lambda u, p: True}, TypeError),
        ({"credentials": [("a", 1)]}, TypeError),
        ({"credentials": ("a", "b"), "realm": 'say "hi"'}, ValueError),
        ({"credentials": ("a", "b"), "realm": "line\nbreak"}, ValueError),
        ({"credentials": ("alice:smith", "b")}, ValueError),  # RFC 7617: no colon
    ],
)
def test_basic_auth_arguments(kwargs, error) -> None:
    with pytest.raises(error):
        syncws.basic_auth(**kwargs)


# -------------------------------------------------------------------- request limits


@pytest.fixture
def echo_server(syncws_server) -> SyncwsServer:
    return syncws_server(server_echo)


def test_too_many_header_lines_get_431(echo_server) -> None:
    headers = [(f"X-{i}", "1") for i in range(150)]
    request = upgrade_request(f"127.0.0.1:{echo_server.port}", headers=headers)
    assert len(request) < 16 * 1024  # below the size limit: the count is what fails
    assert_refused(exchange(echo_server.port, request), 431)


def folded_request(port: int, pieces: int) -> bytes:
    """An upgrade request whose last header is folded onto ``pieces`` lines (obs-fold)."""
    request = upgrade_request(f"127.0.0.1:{port}", headers=[("X-Folded", "f")])
    return request.replace(b"X-Folded: f\r\n", b"X-Folded: f\r\n" + b" f\r\n" * (pieces - 1))


def test_obs_fold_gets_400(echo_server) -> None:
    # RFC 9112, section 5.2: a server may refuse a request with obs-fold with 400.
    assert_refused(exchange(echo_server.port, folded_request(echo_server.port, 2)), 400)


def test_obs_fold_in_a_handshake_header_gets_400(echo_server) -> None:
    request = upgrade_request(f"127.0.0.1:{echo_server.port}")
    request = request.replace(b"Connection: Upgrade", b"Connection:\r\n Upgrade", 1)
    assert_refused(exchange(echo_server.port, request), 400)


def test_continuation_lines_count_as_header_lines(echo_server) -> None:
    # 1,128 header lines but 6 fields: the limit counts lines.
    request = folded_request(echo_server.port, 1123)
    assert request.count(b"\r\n") - 2 == 1128
    assert len(request) < 16 * 1024  # below the size limit: the count is what fails
    assert_refused(exchange(echo_server.port, request), 431)


def test_many_headers_below_the_limit_are_fine(echo_server) -> None:
    headers = [(f"X-{i}", "1") for i in range(100)]
    echo_once(echo_server.url, extra_headers=headers)


def test_request_head_over_16_kib_gets_431(echo_server) -> None:
    request = upgrade_request(f"127.0.0.1:{echo_server.port}", headers=[("X-Big", "y" * 17000)])
    assert_refused(exchange(echo_server.port, request), 431)


def test_long_request_line_gets_431(echo_server) -> None:
    request = upgrade_request(f"127.0.0.1:{echo_server.port}", "/" + "a" * 20000)
    assert_refused(exchange(echo_server.port, request), 431)


@pytest.mark.parametrize("name", ["Sec-WebSocket-Key", "Sec-WebSocket-Version", "Host", "Upgrade"])
def test_repeated_handshake_headers_get_400(echo_server, name) -> None:
    values = {
        "Sec-WebSocket-Key": base64.b64encode(bytes(16)).decode(),
        "Sec-WebSocket-Version": "13",
        "Host": f"127.0.0.1:{echo_server.port}",
        "Upgrade": "websocket",
    }
    request = upgrade_request(f"127.0.0.1:{echo_server.port}", headers=[(name, values[name])])
    assert_refused(exchange(echo_server.port, request), 400)


@pytest.mark.parametrize(
    "headers",
    [
        [("Content-Length", "5")],
        [("Transfer-Encoding", "chunked")],
        [("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
    ],
)
def test_upgrade_with_a_body_gets_400(echo_server, headers) -> None:
    request = upgrade_request(f"127.0.0.1:{echo_server.port}", headers=headers)
    assert_refused(exchange(echo_server.port, request + b"hello"), 400)


@pytest.mark.parametrize("value", ["a\x01b", "ab\x7f", "a\x1fb"])
def test_control_characters_in_header_values_get_400(echo_server, value) -> None:
    request = upgrade_request(f"127.0.0.1:{echo_server.port}", headers=[("X-Custom", value)])
    assert_refused(exchange(echo_server.port, request), 400)


def test_control_character_that_strip_removes_is_not_taken_for_a_space(echo_server) -> None:
    request = upgrade_request(f"127.0.0.1:{echo_server.port}")
    request = request.replace(b"Connection: Upgrade", b"Connection: Upgrade\x1c", 1)
    assert_refused(exchange(echo_server.port, request), 400)


@pytest.mark.parametrize(
    ("version", "target"), [("HTTP/1.0", "/"), ("HTTP/1.1", "*"), ("HTTP/1.1", "chat")]
)
def test_old_versions_and_odd_targets_get_400(echo_server, version, target) -> None:
    request = upgrade_request(f"127.0.0.1:{echo_server.port}", target)
    request = request.replace(b"HTTP/1.1\r\n", f"{version}\r\n".encode(), 1)
    assert_refused(exchange(echo_server.port, request), 400)


@pytest.mark.parametrize(
    "key",
    [
        base64.b64encode(bytes(15)).decode(),
        base64.b64encode(bytes(17)).decode(),
        "not base64 at all",
        "AAAAAAAAAAAAAAAAAAAAAA",  # 16 bytes, but the padding is missing
    ],
)
def test_bad_key_gets_400(echo_server, key) -> None:
    request = upgrade_request(f"127.0.0.1:{echo_server.port}", key=key)
    assert_refused(exchange(echo_server.port, request), 400)


# ----------------------------------------------------------------------------- TLS


def test_untrusted_certificate_error_names_the_server(syncws_server, tls_server_context) -> None:
    srv = syncws_server(server_echo, ssl_context=tls_server_context)
    url = f"wss://127.0.0.1:{srv.port}/"
    with pytest.raises(ssl.SSLCertVerificationError) as excinfo:
        syncws.connect(url)
    message = str(excinfo.value)
    assert f"127.0.0.1:{srv.port}" in message
    assert "certificate" in message
    assert "ssl_context" in message
    assert excinfo.value.verify_code != 0
    assert isinstance(excinfo.value.__cause__, ssl.SSLCertVerificationError)


def test_wrong_host_name_error(syncws_server, tls_ca, tls_client_context) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_ca.issue_cert("other.example").configure_cert(context)
    srv = syncws_server(server_echo, ssl_context=context)
    with pytest.raises(ssl.SSLCertVerificationError) as excinfo:
        syncws.connect(f"wss://127.0.0.1:{srv.port}/", ssl_context=tls_client_context)
    assert "127.0.0.1" in str(excinfo.value)


# --------------------------------------------------------------------- credentials


SECRET = "hunter2-secret"


def test_credentials_never_logged(syncws_server, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="syncws")
    caplog.set_level(logging.DEBUG, logger="syncws.trace")
    srv = syncws_server(
        user_handler, process_request=syncws.basic_auth(credentials=("carol", SECRET))
    )
    with syncws.connect(auth_url(srv, f"carol:{SECRET}")) as ws:
        assert ws.get_message(timeout=WAIT) == "carol"
        texts = [repr(ws), str(ws), str(ws.remote), str(ws.local)]
        ws.send_message("bye")
    with pytest.raises(syncws.ConnectionRejected) as excinfo:
        syncws.connect(auth_url(srv, "carol:wrong-" + SECRET))
    texts += [str(excinfo.value), repr(excinfo.value)]
    with pytest.raises(ValueError) as bad_url:
        syncws.connect(f"ws://carol:{SECRET}@127.0.0.1:99999/")
    texts.append(str(bad_url.value))
    encoded = base64.b64encode(f"carol:{SECRET}".encode()).decode()
    everything = caplog.text + "\n".join(texts)
    assert caplog.records, "expected DEBUG records to search"
    assert SECRET not in everything
    assert encoded not in everything
    assert "carol:***@" in str(bad_url.value)


# ------------------------------------------------------------------ header injection


@pytest.mark.parametrize(
    "options",
    [
        {"subprotocols": ["chat\r\nX-Injected: 1"]},
        {"subprotocols": ["chat v2"]},
        {"subprotocols": ["ch\u00e4t"]},
        {"extra_headers": [("X-Name", "caf\u00e9")]},
        {"extra_headers": [("X-Name", "a\x00b")]},
        {"origin": "https://ex\u00e4mple.com"},
    ],
)
def test_injection_through_options_is_refused(echo_server, options) -> None:
    with pytest.raises(ValueError):
        syncws.connect(echo_server.url, **options)
    assert echo_server.record.empty()


@pytest.mark.parametrize("suffix", ["/a\r\nX-Injected: 1", "/a b", "/a\nb", "/\x00", "/?q=\r\n"])
def test_injection_through_the_url_is_refused(echo_server, suffix) -> None:
    with pytest.raises(ValueError):
        syncws.connect(echo_server.url.rstrip("/") + suffix)
