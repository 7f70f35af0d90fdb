"""What the client says when it cannot open a connection: URLs, peers that are not what
the URL promised, peers that go away during the opening handshake.

Each message names what happened and, where it can, what to do about it; none shows a
password of the URL.
"""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Callable

import pytest
from helpers import WAIT, Background, unused_port
from rawpeer import MUTE, SILENT, RawPeer, Request

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


@pytest.mark.parametrize("how", ["close", "abort"])
def test_eof_or_reset_during_the_tls_handshake(
    raw_peer: Callable[..., RawPeer], tls_client_context: ssl.SSLContext, how: str
) -> None:
    peer = raw_peer(handshake=MUTE)
    url = f"wss://127.0.0.1:{peer.port}/"
    call = Background(syncws.connect, url, ssl_context=tls_client_context, connect_timeout=WAIT)
    assert peer.handshake_done.wait(WAIT)
    assert peer.conn is not None
    peer.conn.sock.settimeout(WAIT)
    assert peer.conn.sock.recv(65536)[:1] == b"\x16"  # The TLS ClientHello.
    getattr(peer.conn, how)()
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
