"""What the client says when it cannot open a connection: URLs, peers that are not what
the URL promised, peers that go away during the opening handshake.

Each message names what happened and, where it can, what to do about it; none shows a
password of the URL.
"""

from __future__ import annotations

import http.server
import select
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import (
    SHORT,
    WAIT,
    Background,
    SyncwsServer,
    WsServer,
    echo_handler,
    server_echo,
    unused_port,
)
from rawpeer import MUTE, SILENT, PeerConnection, RawPeer, Request

import syncws

# ------------------------------------------------------------------ URL schemes


@pytest.mark.parametrize(
    ("url", "suggestion"),
    [
        ("localhost:{port}/", "'ws://localhost:{port}/'"),
        ("localhost:{port}", "'ws://localhost:{port}'"),
        ("127.0.0.1:{port}", "'ws://127.0.0.1:{port}'"),
        ("[::1]:{port}/chat", "'ws://[::1]:{port}/chat'"),
        ("//127.0.0.1:{port}/", "'ws://127.0.0.1:{port}/'"),
    ],
)
def test_url_without_scheme_says_it_needs_one(url: str, suggestion: str) -> None:
    port = unused_port()
    with pytest.raises(ValueError) as excinfo:
        syncws.connect(url.format(port=port))
    message = str(excinfo.value)
    assert message.startswith("URL needs a ws:// or wss:// scheme: ")
    assert repr(url.format(port=port)) in message
    assert suggestion.format(port=port) in message
    assert "unsupported" not in message


@pytest.mark.parametrize(("scheme", "instead"), [("http", "ws"), ("https", "wss"), ("HTTP", "ws")])
def test_http_url_says_which_scheme_to_use(scheme: str, instead: str) -> None:
    port = unused_port()
    with pytest.raises(ValueError) as excinfo:
        syncws.connect(f"{scheme}://127.0.0.1:{port}/chat?room=1")
    message = str(excinfo.value)
    assert f"use {instead}://, not {scheme.lower()}://" in message
    assert f"'{instead}://127.0.0.1:{port}/chat?room=1'" in message


def test_other_scheme_is_unsupported() -> None:
    with pytest.raises(ValueError, match=r"unsupported URL scheme 'ftp'.*use ws:// or wss://"):
        syncws.connect(f"ftp://127.0.0.1:{unused_port()}/")


@pytest.mark.parametrize(
    "url",
    [
        "alice:s3cret@localhost:{port}/",
        "//alice:s3cret@localhost:{port}/",
        "http://alice:s3cret@localhost:{port}/",
        "https://alice:s3cret@localhost:{port}/",
        "alice:s3{{cret}}@localhost:{port}/",
    ],
)
def test_scheme_messages_hide_the_password(url: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        syncws.connect(url.format(port=unused_port()))
    message = str(excinfo.value)
    assert "s3" not in message
    assert "***" in message
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__context__ is None


# ------------------------------------------------- peers that go away mid-handshake


def assert_lost(exc: BaseException | None, *words: str) -> None:
    """One exception type for every way the peer can go away, whatever the old type."""
    assert isinstance(exc, syncws.ConnectionLost), repr(exc)
    assert isinstance(exc, syncws.HandshakeError)
    assert isinstance(exc, ConnectionError)  # An OSError, as ConnectionResetError was.
    assert not isinstance(exc, TimeoutError)
    for word in words:
        assert word in str(exc), str(exc)


def test_eof_before_any_response(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(handshake=lambda request: b"", close_after_handshake=True)
    with pytest.raises(syncws.ConnectionLost) as excinfo:
        syncws.connect(peer.url, connect_timeout=WAIT)
    assert_lost(excinfo.value, f"127.0.0.1:{peer.port}", "closed the connection", "before")


def test_eof_in_the_middle_of_the_response(raw_peer: Callable[..., RawPeer]) -> None:
    def half(request: Request) -> bytes:
        return b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"

    peer = raw_peer(handshake=half, close_after_handshake=True)
    with pytest.raises(syncws.ConnectionLost) as excinfo:
        syncws.connect(peer.url, connect_timeout=WAIT)
    assert_lost(excinfo.value, "closed the connection", "during its handshake response")


def test_reset_before_the_request_is_sent(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(handshake=MUTE)
    sock = socket.create_connection((peer.host, peer.port), timeout=WAIT)
    try:
        assert peer.handshake_done.wait(WAIT)
        assert peer.conn is not None
        peer.conn.abort()
        # The reset has arrived once the socket is readable; nothing was sent yet.
        readable, _, _ = select.select([sock], [], [], WAIT)
        assert readable
    except BaseException:
        sock.close()
        raise
    with pytest.raises(syncws.ConnectionLost) as excinfo:
        syncws.wrap_client_socket(sock, "example.test", "/", connect_timeout=WAIT)
    assert_lost(excinfo.value, "the server at example.test", "reset the connection")
    assert isinstance(excinfo.value.__cause__, ConnectionError)
    assert sock.fileno() == -1


def test_reset_after_the_request_was_sent(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(handshake=SILENT)
    call = Background(syncws.connect, peer.url, connect_timeout=WAIT)
    peer.wait_request()
    assert peer.conn is not None
    peer.conn.abort()
    error = call.exception()
    assert_lost(error, f"127.0.0.1:{peer.port}", "reset the connection", "before")
    assert isinstance(error.__cause__, ConnectionResetError)


def wss_connect(peer: RawPeer, context: ssl.SSLContext) -> Background:
    """``syncws.connect`` to ``wss://`` at ``peer``, in the background."""
    url = f"wss://127.0.0.1:{peer.port}/"
    return Background(syncws.connect, url, ssl_context=context, connect_timeout=WAIT)


def take_client_hello(peer: RawPeer) -> PeerConnection:
    """The connection at ``peer`` once the TLS ClientHello of a wss:// client came in."""
    assert peer.handshake_done.wait(WAIT)
    assert peer.conn is not None
    peer.conn.sock.settimeout(WAIT)
    assert peer.conn.sock.recv(65536)[:1] == b"\x16"  # A TLS handshake record.
    return peer.conn


@pytest.mark.parametrize("how", ["close", "abort"])
def test_eof_or_reset_during_the_tls_handshake(
    raw_peer: Callable[..., RawPeer], tls_client_context: ssl.SSLContext, how: str
) -> None:
    peer = raw_peer(handshake=MUTE)
    call = wss_connect(peer, tls_client_context)
    getattr(take_client_hello(peer), how)()
    error = call.exception()
    assert_lost(error, f"127.0.0.1:{peer.port}", "during the TLS handshake")
    assert isinstance(error.__cause__, (ssl.SSLEOFError, ConnectionResetError))


def rejection_head(length: int) -> bytes:
    return b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n" % length


@pytest.mark.parametrize("how", ["close", "abort"])
def test_rejection_cut_short_keeps_what_arrived(raw_peer: Callable[..., RawPeer], how: str) -> None:
    # The status says what happened; the body, cut short, is what arrived of it.
    peer = raw_peer(handshake=SILENT)
    call = Background(syncws.connect, peer.url, connect_timeout=WAIT)
    peer.wait_request()
    assert peer.conn is not None
    peer.conn.send_raw(rejection_head(100) + b"go away")
    if how == "abort":
        # The rejection must have arrived before the reset, or the reset destroys it.
        peer.conn.sock.shutdown(socket.SHUT_WR)
    getattr(peer.conn, how)()
    error = call.exception()
    assert isinstance(error, syncws.ConnectionRejected), repr(error)
    assert error.status_code == 403
    assert error.body == b"go away"


# ------------------------------------------------------ servers that do not upgrade


class PlainPage(http.server.BaseHTTPRequestHandler):
    """An HTTP server's answer to any GET: a web page, 200 OK."""

    PAGE = b"<!DOCTYPE html>\n<html><title>Not a WebSocket</title>" + b"<p>text</p>" * 20

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.PAGE)))
        self.end_headers()
        self.wfile.write(self.PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[http.server.HTTPServer]:
    """A plain HTTP server (the standard library's) on loopback."""
    server = http.server.HTTPServer(("127.0.0.1", 0), PlainPage)
    thread = threading.Thread(target=server.serve_forever, name="test-http-server")
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(WAIT)
        server.server_close()


def test_http_server_answering_200_did_not_upgrade(web_server: http.server.HTTPServer) -> None:
    port = web_server.server_address[1]
    with pytest.raises(syncws.ConnectionRejected) as excinfo:
        syncws.connect(f"ws://127.0.0.1:{port}/", connect_timeout=WAIT)
    error = excinfo.value
    assert error.status_code == 200
    assert error.status_line == "HTTP/1.0 200 OK"
    assert error.body == PlainPage.PAGE
    message = str(error)
    assert message.startswith(
        "the server did not upgrade to WebSocket: it answered 'HTTP/1.0 200 OK' with the body "
        "'<!DOCTYPE html>\\n<html><title>Not a WebSocket</title><p>text</p>"
    )
    assert message.endswith("'...")
    assert len(message) < 250


def rejected(raw_peer: Callable[..., RawPeer], response: bytes) -> syncws.ConnectionRejected:
    """What ``syncws.connect`` raises when the server answers ``response``."""
    peer = raw_peer(handshake=lambda request: response)
    with pytest.raises(syncws.ConnectionRejected) as excinfo:
        syncws.connect(peer.url, connect_timeout=WAIT)
    return excinfo.value


def test_a_rejection_shows_its_status_line_and_body(raw_peer: Callable[..., RawPeer]) -> None:
    response = b"HTTP/1.1 401 Who Are You\r\nContent-Length: 13\r\n\r\nwho are you?\n"
    assert str(rejected(raw_peer, response)) == (
        "server rejected WebSocket connection: HTTP 401 Who Are You, with the body "
        "'who are you?\\n'"
    )


def test_a_rejection_without_body(raw_peer: Callable[..., RawPeer]) -> None:
    error = rejected(raw_peer, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert str(error) == "server rejected WebSocket connection: HTTP 404 Not Found"


def test_a_redirect_did_not_upgrade(raw_peer: Callable[..., RawPeer]) -> None:
    # Without a Location: one with a Location is followed (tests/client/test_redirects.py).
    response = b"HTTP/1.1 301 Moved Permanently\r\nContent-Length: 0\r\n\r\n"
    assert str(rejected(raw_peer, response)) == (
        "the server did not upgrade to WebSocket: it answered 'HTTP/1.1 301 Moved Permanently'"
    )


def test_a_body_that_never_ends_times_out_saying_what_the_server_answered(
    raw_peer: Callable[..., RawPeer],
) -> None:
    # A stream (server-sent events, say): still a timeout, whose cause is the rejection.
    def stream(request: Request) -> bytes:
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nevent:\r\n"

    peer = raw_peer(handshake=stream)
    with pytest.raises(syncws.ConnectionTimeout) as excinfo:
        syncws.connect(peer.url, connect_timeout=SHORT)
    assert str(excinfo.value) == (
        "timed out waiting for the end of the server's response; the server did not upgrade "
        "to WebSocket: it answered 'HTTP/1.1 200 OK' with the body 'event:'"
    )
    rejection = excinfo.value.__cause__
    assert isinstance(rejection, syncws.ConnectionRejected)
    assert rejection.status_code == 200
    assert rejection.body == b"event:"


# ------------------------------------------------------- TLS on one side only

TO_WS = "is it ws:// rather than wss://?"
TO_WSS = "is it wss:// rather than ws://?"


def wss_answered(peer: RawPeer, context: ssl.SSLContext, answer: bytes) -> BaseException | None:
    """What a wss:// client raises when ``peer`` (started with ``handshake=MUTE``) answers
    its TLS ClientHello with ``answer``, then closes."""
    call = wss_connect(peer, context)
    conn = take_client_hello(peer)
    conn.send_raw(answer)
    conn.close()  # The client may have reset the connection already: no error.
    return call.exception()


def wss_url(port: int) -> str:
    return f"wss://127.0.0.1:{port}/"


def test_wss_to_a_server_that_answers_http(
    raw_peer: Callable[..., RawPeer], tls_client_context: ssl.SSLContext
) -> None:
    peer = raw_peer(handshake=MUTE)
    answer = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    error = wss_answered(peer, tls_client_context, answer)
    assert isinstance(error, ssl.SSLError), repr(error)  # As before: catchable as such.
    assert not isinstance(error, syncws.WebSocketError)
    message = str(error)
    assert f"the server at 127.0.0.1:{peer.port} did not answer the TLS handshake" in message
    assert TO_WS in message
    assert error.reason == "WRONG_VERSION_NUMBER"
    assert error.library == "SSL"
    assert isinstance(error.__cause__, ssl.SSLError)


def test_wss_to_a_server_that_closes_says_it_may_be_ws(
    raw_peer: Callable[..., RawPeer], tls_client_context: ssl.SSLContext
) -> None:
    error = wss_answered(raw_peer(handshake=MUTE), tls_client_context, b"")
    assert_lost(error, "during the TLS handshake", TO_WS)


def test_wss_to_a_silent_server_says_it_may_be_ws(
    raw_peer: Callable[..., RawPeer], tls_client_context: ssl.SSLContext
) -> None:
    # A plain server waits for the end of a request head that never comes.
    peer = raw_peer(handshake=MUTE)
    with pytest.raises(syncws.ConnectionTimeout) as excinfo:
        syncws.connect(wss_url(peer.port), ssl_context=tls_client_context, connect_timeout=SHORT)
    assert "timed out during the TLS handshake" in str(excinfo.value)
    assert TO_WS in str(excinfo.value)


@pytest.fixture(params=["syncws", "websockets"])
def echo_server(
    request: pytest.FixtureRequest,
    syncws_server: Callable[..., SyncwsServer],
    websockets_server: Callable[..., WsServer],
) -> Callable[..., int]:
    """Factory: ``echo_server(tls_context=None)`` starts a syncws or a websockets echo
    server (over TLS with a context) and returns its port."""

    def start(tls_context: ssl.SSLContext | None = None) -> int:
        if request.param == "syncws":
            return syncws_server(server_echo, ssl_context=tls_context).port
        return websockets_server(echo_handler, ssl=tls_context).port

    return start


def test_wss_to_a_plain_websocket_server(
    echo_server: Callable[..., int], tls_client_context: ssl.SSLContext
) -> None:
    port = echo_server()
    with pytest.raises((ssl.SSLError, syncws.ConnectionLost)) as excinfo:
        syncws.connect(wss_url(port), ssl_context=tls_client_context, connect_timeout=WAIT)
    assert f"the server at 127.0.0.1:{port}" in str(excinfo.value)
    assert TO_WS in str(excinfo.value)


def test_ws_to_a_tls_websocket_server(
    echo_server: Callable[..., int], tls_server_context: ssl.SSLContext
) -> None:
    port = echo_server(tls_server_context)
    # A TLS server reads "GET / HTTP/1.1" as a bad TLS record and drops the connection.
    with pytest.raises(syncws.ConnectionLost) as excinfo:
        syncws.connect(f"ws://127.0.0.1:{port}/", connect_timeout=WAIT)
    assert_lost(excinfo.value, f"the server at 127.0.0.1:{port}", "before answering", TO_WSS)


@pytest.mark.parametrize("then_close", [False, True])
def test_ws_to_a_server_that_answers_a_tls_alert(
    raw_peer: Callable[..., RawPeer], then_close: bool
) -> None:
    # A fatal "protocol_version" alert, as some TLS servers send for a plain request.
    alert = b"\x15\x03\x03\x00\x02\x02\x46"
    peer = raw_peer(handshake=lambda request: alert, close_after_handshake=then_close)
    with pytest.raises(syncws.HandshakeError) as excinfo:
        syncws.connect(peer.url, connect_timeout=WAIT)
    assert not isinstance(excinfo.value, syncws.ConnectionLost)
    assert not isinstance(excinfo.value, syncws.ConnectionTimeout)
    assert str(excinfo.value) == (
        f"the server at 127.0.0.1:{peer.port} answered in TLS, not HTTP; {TO_WSS}"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"<html><head><title>400 The plain HTTP request was sent to HTTPS port</title>",
        b"Client sent an HTTP request to an HTTPS server.\n",
    ],
)
def test_ws_to_an_https_port_that_answers_400(
    raw_peer: Callable[..., RawPeer], body: bytes
) -> None:
    response = b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    error = rejected(raw_peer, response)
    assert error.status_code == 400
    assert error.body == body
    assert str(error).endswith(f"; {TO_WSS}")


def test_a_plain_400_has_no_tls_hint(raw_peer: Callable[..., RawPeer]) -> None:
    response = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\n\r\nbad request\n"
    assert "wss://" not in str(rejected(raw_peer, response))
