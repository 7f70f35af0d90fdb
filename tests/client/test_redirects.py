"""The client follows redirects during the opening handshake (syncws/_redirects.py).

Real servers on loopback: raw peers (tests/rawpeer.py) that answer a 3xx with a
``Location``, syncws servers whose handler rejects with one, a ``websockets`` server
whose ``process_request`` does, and tinyproxy for the proxy picked per hop.
"""

from __future__ import annotations

import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    HAS_IPV6,
    SHORT,
    WAIT,
    SyncwsServer,
    WsServer,
    echo_handler,
    server_echo,
    unused_port,
)
from rawpeer import SILENT, RawPeer, Request, response_101

import syncws
from syncws import Backoff, CallbackClient

PASSWORD = "s3cret-Redir-7q"


def redirect(status: int, location: str, body: bytes = b"") -> Callable[[Request], bytes]:
    """A raw peer's answer: ``status`` with ``Location``."""
    head = (
        f"HTTP/1.1 {status} Redirect\r\nLocation: {location}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return lambda request: head.encode("latin-1") + body


def echo_once(url: str, **options: Any) -> syncws.WebSocketConnection:
    """Connect, check one echo; return the (closed) connection."""
    with syncws.connect(url, **options) as ws:
        ws.send_message("hello")
        assert ws.get_message(timeout=WAIT) == "hello"
    return ws


def routing(routes: dict[str, tuple[int, str]]) -> Callable[[Any, SyncwsServer], None]:
    """A syncws handler: redirect the paths of ``routes``, echo on any other.

    Each request is recorded: (path, its headers as a dict of lower-case names).
    """

    def handler(request: Any, srv: SyncwsServer) -> None:
        headers = {name.decode().lower(): value.decode() for name, value in request.headers}
        srv.record.put((request.path, headers))
        if request.path in routes:
            status, location = routes[request.path]
            request.reject(status, [("Location", location)])
        else:
            server_echo(request, srv)

    return handler


def recorded(srv: SyncwsServer) -> list[tuple[str, dict[str, str]]]:
    seen = []
    while True:
        try:
            seen.append(srv.record.get_nowait())
        except queue.Empty:
            return seen


# ------------------------------------------------------------------ each status


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_each_redirect_status_is_followed_to_another_server(
    status: int, raw_peer: Callable[..., RawPeer], syncws_server: Any
) -> None:
    srv = syncws_server(routing({}))
    first = raw_peer(handshake=redirect(status, srv.url_for("/there?x=1")))
    ws = echo_once(first.url)
    assert first.wait_request().target == "/"
    assert ws.path == "/there?x=1"
    assert [path for path, _ in recorded(srv)] == ["/there?x=1"]


@pytest.mark.parametrize("status", [300, 304, 305, 306])
def test_other_3xx_are_not_followed(status: int, raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(handshake=redirect(status, f"ws://127.0.0.1:{unused_port()}/"))
    with pytest.raises(syncws.ConnectionRejected) as caught:
        syncws.connect(peer.url)
    assert type(caught.value) is syncws.ConnectionRejected
    assert caught.value.status_code == status


def test_a_redirect_without_location_is_a_rejection(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(handshake=lambda r: b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(syncws.ConnectionRejected) as caught:
        syncws.connect(peer.url)
    assert type(caught.value) is syncws.ConnectionRejected
    assert caught.value.status_code == 302


# ---------------------------------------------------------- relative and absolute


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/b/c?q=1", "/b/c?q=1"),  # absolute path
        ("c", "/a/c"),  # relative to the path
        ("../d", "/d"),
        ("?page=2", "/a/x?page=2"),
        ("/e#fragment", "/e"),  # a fragment is not sent
    ],
)
def test_relative_locations_resolve_against_the_url(
    location: str, expected: str, syncws_server: Any
) -> None:
    srv = syncws_server(routing({"/a/x": (302, location)}))
    ws = echo_once(srv.url_for("/a/x"))
    assert ws.path == expected
    assert [path for path, _ in recorded(srv)] == ["/a/x", expected]


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")
def test_redirect_to_an_ipv6_address(raw_peer: Callable[..., RawPeer]) -> None:
    second = raw_peer(host="::1", auto=True, echo=True)
    first = raw_peer(handshake=redirect(302, second.url_for("/six")))
    ws = echo_once(first.url)
    assert ws.path == "/six"
    assert isinstance(ws.remote, syncws.Endpoint) and ws.remote.address == "::1"


def test_scheme_relative_location(raw_peer: Callable[..., RawPeer], syncws_server: Any) -> None:
    srv = syncws_server(server_echo)
    peer = raw_peer(handshake=redirect(307, f"//127.0.0.1:{srv.port}/p"))
    assert echo_once(peer.url).path == "/p"


@pytest.mark.parametrize("scheme", ["http", "HTTP"])
def test_an_http_location_is_followed_as_ws(
    scheme: str, raw_peer: Callable[..., RawPeer], syncws_server: Any
) -> None:
    srv = syncws_server(server_echo)
    peer = raw_peer(handshake=redirect(301, f"{scheme}://127.0.0.1:{srv.port}/h"))
    assert echo_once(peer.url).path == "/h"


@pytest.mark.parametrize(
    "location", ["ftp://127.0.0.1/x", "mailto:someone@example.org", "javascript:alert(1)"]
)
def test_a_location_that_is_not_a_websocket_url_is_refused(
    location: str, raw_peer: Callable[..., RawPeer]
) -> None:
    peer = raw_peer(handshake=redirect(302, location))
    with pytest.raises(syncws.RedirectError, match="not a ws://, wss://") as caught:
        syncws.connect(peer.url)
    assert caught.value.status_code == 302
    assert peer.url in str(caught.value)


@pytest.mark.parametrize("location", ["ws://127.0.0.1:99999/", "ws://[::1/", "//[x/", "/caf\xe9"])
def test_a_malformed_location_is_refused(location: str, raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(handshake=redirect(302, location))
    with pytest.raises(syncws.RedirectError, match="not a valid WebSocket URL") as caught:
        syncws.connect(peer.url)
    assert caught.value.status_code == 302


# ------------------------------------------------------------------------------- TLS


def test_ws_to_wss(
    raw_peer: Callable[..., RawPeer],
    syncws_server: Any,
    tls_server_context: ssl.SSLContext,
    tls_client_context: ssl.SSLContext,
) -> None:
    srv = syncws_server(server_echo, ssl_context=tls_server_context)
    assert srv.url.startswith("wss://")
    peer = raw_peer(handshake=redirect(301, srv.url))
    ws = echo_once(peer.url, ssl_context=tls_client_context)
    assert isinstance(ws.remote, syncws.Endpoint)
    assert ws.remote.is_ssl and ws.remote.port == srv.port


def test_https_location_is_followed_as_wss(
    raw_peer: Callable[..., RawPeer],
    syncws_server: Any,
    tls_server_context: ssl.SSLContext,
    tls_client_context: ssl.SSLContext,
) -> None:
    srv = syncws_server(server_echo, ssl_context=tls_server_context)
    peer = raw_peer(handshake=redirect(301, f"https://127.0.0.1:{srv.port}/s"))
    assert echo_once(peer.url, ssl_context=tls_client_context).path == "/s"


def test_wss_to_wss(
    raw_peer: Callable[..., RawPeer],
    syncws_server: Any,
    tls_server_context: ssl.SSLContext,
    tls_client_context: ssl.SSLContext,
) -> None:
    srv = syncws_server(server_echo, ssl_context=tls_server_context)
    peer = raw_peer(handshake=redirect(308, srv.url), ssl_context=tls_server_context)
    assert peer.url.startswith("wss://")
    ws = echo_once(peer.url, ssl_context=tls_client_context)
    assert isinstance(ws.remote, syncws.Endpoint) and ws.remote.port == srv.port


@pytest.mark.parametrize("scheme", ["ws", "http"])
def test_wss_to_ws_is_refused(
    scheme: str,
    raw_peer: Callable[..., RawPeer],
    syncws_server: Any,
    tls_server_context: ssl.SSLContext,
    tls_client_context: ssl.SSLContext,
) -> None:
    srv = syncws_server(routing({}))
    target = f"{scheme}://127.0.0.1:{srv.port}/"
    peer = raw_peer(handshake=redirect(302, target), ssl_context=tls_server_context)
    with pytest.raises(syncws.RedirectError, match="from wss:// to ws://") as caught:
        syncws.connect(peer.url, ssl_context=tls_client_context)
    assert caught.value.url == f"ws://127.0.0.1:{srv.port}/"
    assert isinstance(caught.value, syncws.ConnectionRejected)
    assert recorded(srv) == []  # Never asked.


# ---------------------------------------------------------------- loops and hops


def test_a_loop_is_refused_naming_the_last_url(raw_peer: Callable[..., RawPeer]) -> None:
    second = raw_peer()
    first = raw_peer(handshake=redirect(302, second.url_for("/b")))
    second.handshake = redirect(302, first.url)  # A -> B -> A
    with pytest.raises(syncws.RedirectError, match="a redirect loop") as caught:
        syncws.connect(first.url)
    assert caught.value.url == first.url
    assert f"the server at {second.url_for('/b')} redirected (302) to {first.url!r}" in str(
        caught.value
    )
    assert second.wait_request().target == "/b"


def test_a_redirect_to_itself_is_a_loop(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer()
    peer.handshake = redirect(307, "/")
    with pytest.raises(syncws.RedirectError, match="a redirect loop"):
        syncws.connect(peer.url)


def chain(count: int) -> dict[str, tuple[int, str]]:
    """Routes /0 -> /1 -> ... -> /count."""
    return {f"/{n}": (302, f"/{n + 1}") for n in range(count)}


def test_ten_redirects_are_followed(syncws_server: Any) -> None:
    srv = syncws_server(routing(chain(10)))
    assert echo_once(srv.url_for("/0")).path == "/10"
    assert len(recorded(srv)) == 11


def test_more_than_ten_redirects_are_refused(syncws_server: Any) -> None:
    srv = syncws_server(routing(chain(11)))
    with pytest.raises(syncws.RedirectError, match="more than 10 redirects") as caught:
        syncws.connect(srv.url_for("/0"))
    assert caught.value.url == srv.url_for("/11")
    assert str(caught.value).startswith(
        f"the server at {srv.url_for('/10')} redirected (302) to {srv.url_for('/11')!r}"
    )
    assert [path for path, _ in recorded(srv)] == [f"/{n}" for n in range(11)]


def test_passwords_are_hidden_in_redirect_errors(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer()
    peer.handshake = redirect(302, f"ftp://bob:{PASSWORD}@127.0.0.1:{peer.port}/")
    with pytest.raises(syncws.RedirectError) as caught:
        syncws.connect(f"ws://alice:{PASSWORD}@127.0.0.1:{peer.port}/")
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in caught.value.url
    assert "bob:***@" in caught.value.url


# ---------------------------------------------------------------- the deadline


def test_the_connect_timeout_covers_every_hop(raw_peer: Callable[..., RawPeer]) -> None:
    # The first server takes most of the time to answer, the second never answers:
    # one deadline for both gives up at connect_timeout, not at the sum of the two.
    timeout = 4 * SHORT
    silent = raw_peer(handshake=SILENT)
    never = threading.Event()

    def slow_redirect(request: Request) -> bytes:
        never.wait(3 * SHORT)  # The server is slow to answer.
        return redirect(302, silent.url)(request)

    first = raw_peer(handshake=slow_redirect)
    started = time.monotonic()
    with pytest.raises(syncws.ConnectionTimeout):
        syncws.connect(first.url, connect_timeout=timeout)
    elapsed = time.monotonic() - started
    assert silent.wait_request().target == "/"  # The second hop was reached.
    assert timeout - 0.05 <= elapsed < timeout + 2 * SHORT  # Not 3 + 4 units.


def test_a_redirect_body_is_read_bounded_and_its_socket_closed_before_the_next_hop(
    raw_peer: Callable[..., RawPeer],
) -> None:
    closed_first: queue.Queue[bool] = queue.Queue()
    second = raw_peer(auto=True, echo=True)
    body = b"x" * (128 * 1024)  # Over MAX_REJECT_BODY: not read to the end.
    first = raw_peer(handshake=redirect(301, second.url_for("/2"), body))

    def answer(request: Request) -> bytes:
        first.connection().wait_eof(WAIT)  # Returns at the client's end of stream.
        closed_first.put(True)
        return response_101(request)

    second.handshake = answer
    echo_once(first.url)
    assert closed_first.get(timeout=WAIT)


# ----------------------------------------------------------------- credentials


def test_credentials_are_not_sent_to_another_host(
    raw_peer: Callable[..., RawPeer], syncws_server: Any
) -> None:
    srv = syncws_server(routing({}))
    first = raw_peer(handshake=redirect(302, srv.url_for("/other")))
    echo_once(
        f"ws://alice:{PASSWORD}@127.0.0.1:{first.port}/",
        extra_headers={"Cookie": "session=1", "X-Trace": "abc"},
    )
    sent_first = first.wait_request()
    assert sent_first.header("Authorization") is not None
    assert sent_first.header("Cookie") == "session=1"
    [(path, headers)] = recorded(srv)
    assert path == "/other"
    assert "authorization" not in headers
    assert "cookie" not in headers
    assert headers["x-trace"] == "abc"  # The other options still apply.


def test_credentials_stay_on_the_same_server(syncws_server: Any) -> None:
    srv = syncws_server(routing({"/a": (302, "/b")}))
    echo_once(
        srv.url_for("/a").replace("ws://", f"ws://alice:{PASSWORD}@"),
        extra_headers={"Cookie": "session=1"},
    )
    (_, first), (_, second) = recorded(srv)
    assert first["authorization"] == second["authorization"]
    assert second["cookie"] == "session=1"


# ------------------------------------------------------------ other servers, APIs


def test_websockets_server_process_request_redirects(
    websockets_server: Callable[..., WsServer], syncws_server: Any
) -> None:
    target = syncws_server(server_echo)

    def process_request(connection: Any, request: Any) -> Any:
        if request.path == "/old":
            response = connection.respond(302, "moved\n")
            response.headers["Location"] = target.url_for("/new")
            return response
        return None

    srv = websockets_server(echo_handler, process_request=process_request)
    assert echo_once(srv.url + "old").path == "/new"


def test_websockets_server_same_server_redirect(
    websockets_server: Callable[..., WsServer],
) -> None:
    def process_request(connection: Any, request: Any) -> Any:
        if request.path == "/old":
            response = connection.respond(301, "moved\n")
            response.headers["Location"] = "/new"
            return response
        return None

    srv = websockets_server(echo_handler, process_request=process_request)
    assert echo_once(srv.url + "old").path == "/new"


def test_connect_websocket_follows_redirects(syncws_server: Any) -> None:
    srv = syncws_server(routing({"/a": (307, "/b")}))
    with syncws.connect_websocket("127.0.0.1", srv.port, "/a", use_ssl=False) as ws:
        assert ws.path == "/b"


def test_wrap_client_socket_does_not_follow_redirects(syncws_server: Any) -> None:
    srv = syncws_server(routing({"/a": (307, "/b")}))
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
    with pytest.raises(syncws.ConnectionRejected) as caught:
        syncws.wrap_client_socket(sock, f"127.0.0.1:{srv.port}", "/a")
    assert type(caught.value) is syncws.ConnectionRejected
    assert caught.value.status_code == 307
    assert [path for path, _ in recorded(srv)] == ["/a"]


# ------------------------------------------------------------------------ proxies


def test_each_hop_picks_its_proxy(
    syncws_server: Any, tinyproxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = syncws_server(server_echo)
    first = syncws_server(routing({"/": (302, target.url_for("/via-proxy"))}))
    proxy = tinyproxy([target.port])  # CONNECT to the second server only.
    monkeypatch.setenv("ws_proxy", proxy.url())
    monkeypatch.setenv("no_proxy", f"127.0.0.1:{first.port}")  # The first: directly.
    ws = echo_once(first.url)
    assert ws.path == "/via-proxy"
    assert isinstance(ws.remote, syncws.Endpoint)
    assert ws.remote.port == proxy.port  # The second hop went through the proxy.
    assert f"127.0.0.1:{target.port}" in proxy.text()
    assert f"127.0.0.1:{first.port}" not in proxy.text()


# ----------------------------------------------------------- CallbackClient retries


def test_a_redirect_error_is_not_retried(syncws_server: Any) -> None:
    srv = syncws_server(routing({"/": (302, "/")}))
    errors: list[Exception] = []
    client = CallbackClient(
        srv.url, on_error=errors.append, reconnect=Backoff(initial=0.001, jitter=0.0)
    )
    with pytest.raises(syncws.RedirectError):
        client.run_forever()
    assert errors == []
    assert len(recorded(srv)) == 1


@pytest.mark.parametrize("credentials", [None, ("alice", "wr0ng")])
def test_a_proxy_refusing_credentials_is_not_retried(
    credentials: tuple[str, str] | None, syncws_server: Any, tinyproxy: Any
) -> None:
    srv = syncws_server(server_echo)
    proxy = tinyproxy([srv.port], credentials=("alice", PASSWORD))
    userinfo = "" if credentials is None else f"{credentials[0]}:{credentials[1]}@"
    errors: list[Exception] = []
    client = CallbackClient(
        srv.url,
        on_error=errors.append,
        reconnect=Backoff(initial=0.001, jitter=0.0),
        proxy=proxy.url(userinfo),
    )
    with pytest.raises(syncws.ProxyError) as caught:
        client.run_forever()
    assert caught.value.status_code in (401, 407)
    assert errors == []


def test_a_proxy_forbidding_the_port_is_not_retried(syncws_server: Any, tinyproxy: Any) -> None:
    srv = syncws_server(server_echo)
    proxy = tinyproxy([unused_port()])  # Not the server's port: 403.
    client = CallbackClient(
        srv.url, reconnect=Backoff(initial=0.001, jitter=0.0), proxy=proxy.url()
    )
    with pytest.raises(syncws.ProxyError) as caught:
        client.run_forever()
    assert caught.value.status_code == 403


@pytest.fixture
def https_proxy(pproxy: Any, tls_ca: Any, tmp_path: Path) -> Any:
    pem = tmp_path / "proxy.pem"
    tls_ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    return pproxy("http+ssl", pem=pem)


def test_redirect_to_wss_through_an_https_proxy(
    raw_peer: Callable[..., RawPeer],
    syncws_server: Any,
    https_proxy: Any,
    tls_server_context: ssl.SSLContext,
    tls_client_context: ssl.SSLContext,
) -> None:
    # The second hop runs TLS to the server inside TLS to the proxy (a relay thread).
    srv = syncws_server(server_echo, ssl_context=tls_server_context)
    first = raw_peer(handshake=redirect(302, srv.url_for("/tls")))
    ws = echo_once(
        first.url, proxy=f"https://127.0.0.1:{https_proxy.port}", ssl_context=tls_client_context
    )
    assert ws.path == "/tls"
    assert first.wait_request().target == "/"
    # Documented (docs/topics/proxies.rst): through the relay, the connection's socket
    # is one end of a socket pair, which has no address.
    assert ws.remote == ""
