"""Connecting through real proxies: tinyproxy (HTTP CONNECT), pproxy (SOCKS and https://).

The proxies run as child processes on loopback (fixtures ``tinyproxy`` and ``pproxy``
in conftest.py); the servers are syncws's and websockets'. A scripted proxy in this
file answers CONNECT with chosen bytes, for the answers real proxies do not give.
"""

from __future__ import annotations

import base64
import logging
import queue
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import MARGIN, SHORT, WAIT, echo_handler, server_echo, unused_port

import syncws

PASSWORD = "s3cret-Pr0xy-9z"
WRONG = "wr0ng-Pr0xy-4k"
PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


def echo(url: str, message: str | bytes = "hello", **options: Any) -> syncws.Endpoint | str:
    """Connect, check that ``message`` comes back; return the connection's peer address."""
    with syncws.connect(url, **options) as ws:
        ws.send_message(message)
        assert ws.get_message(timeout=WAIT) == message
        return ws.remote


@pytest.fixture
def servers(request: pytest.FixtureRequest, syncws_server: Any, websockets_server: Any) -> Any:
    """``make(tls)`` -> (url, port) of an echo server, syncws's or websockets'."""
    kind = getattr(request, "param", "syncws")

    def make(tls_context: ssl.SSLContext | None = None) -> tuple[str, int]:
        if kind == "syncws":
            srv = syncws_server(server_echo, ssl_context=tls_context)
            return srv.url, srv.port
        srv = websockets_server(echo_handler, ssl=tls_context)
        return (srv.wss_url if tls_context else srv.url), srv.port

    return make


def _check_redacted(exc: BaseException) -> None:
    assert PASSWORD not in str(exc)
    assert WRONG not in str(exc)


# ---------------------------------------------------------------- tinyproxy: HTTP CONNECT


@pytest.mark.parametrize("servers", ["syncws", "websockets"], indirect=True)
@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_through_tinyproxy_with_credentials(
    servers: Any,
    tls: bool,
    tinyproxy: Any,
    tls_server_context: ssl.SSLContext,
    tls_client_context: ssl.SSLContext,
) -> None:
    url, port = servers(tls_server_context if tls else None)
    proxy = tinyproxy([port], credentials=("alice", PASSWORD))
    remote = echo(
        url,
        PAYLOAD,
        proxy=proxy.url(f"alice:{PASSWORD}@"),
        ssl_context=tls_client_context if tls else None,
    )
    assert isinstance(remote, syncws.Endpoint)
    assert remote.port == proxy.port  # The TCP connection went to the proxy.
    assert f"127.0.0.1:{port}" in proxy.text()  # tinyproxy logged the CONNECT.


def test_through_tinyproxy_without_credentials(servers: Any, tinyproxy: Any) -> None:
    url, port = servers()
    proxy = tinyproxy([port])
    remote = echo(url, proxy=proxy.url())
    assert isinstance(remote, syncws.Endpoint)
    assert remote.port == proxy.port


def test_percent_encoded_credentials(servers: Any, tinyproxy: Any) -> None:
    url, port = servers()
    proxy = tinyproxy([port], credentials=("bob", "pass-w0rd"))  # tinyproxy: no "@" or ":"
    echo(url, proxy=proxy.url("b%6Fb:pass%2Dw0rd@"))


def test_missing_credentials_407(servers: Any, tinyproxy: Any) -> None:
    url, port = servers()
    proxy = tinyproxy([port], credentials=("alice", PASSWORD))
    with pytest.raises(syncws.ProxyError) as caught:
        syncws.connect(url, proxy=proxy.url())
    assert caught.value.status_code == 407
    assert isinstance(caught.value, syncws.HandshakeError)
    assert caught.value.proxy == proxy.url()
    assert proxy.url() in str(caught.value)
    assert "407" in str(caught.value)
    assert "user:password@" in str(caught.value)  # Says how to give them.


def test_wrong_credentials_error_hides_the_password(servers: Any, tinyproxy: Any) -> None:
    url, port = servers()
    proxy = tinyproxy([port], credentials=("alice", PASSWORD))
    with pytest.raises(syncws.ProxyError) as caught:
        syncws.connect(url, proxy=proxy.url(f"alice:{WRONG}@"))
    # tinyproxy answers 401 to wrong credentials, 407 to none.
    assert caught.value.status_code in (401, 407)
    assert proxy.url("alice:***@") in str(caught.value)
    assert caught.value.proxy == proxy.url("alice:***@")
    _check_redacted(caught.value)
    _check_redacted(caught.value.__context__ or caught.value)


def test_callback_client_through_the_proxy_logs_no_password(
    servers: Any, tinyproxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="syncws")
    url, port = servers()
    proxy = tinyproxy([port], credentials=("alice", PASSWORD))
    received: queue.Queue[str | bytes] = queue.Queue()

    def on_open(ws: syncws.WebSocketConnection) -> None:
        ws.send_message("via callbacks")

    def on_message(ws: syncws.WebSocketConnection, message: str | bytes) -> None:
        received.put(message)
        ws.close()

    client = syncws.CallbackClient(
        url,
        on_open=on_open,
        on_message=on_message,
        reconnect=None,
        proxy=proxy.url(f"alice:{PASSWORD}@"),
    )
    client.run_forever()
    assert received.get(timeout=WAIT) == "via callbacks"
    assert "through the proxy http://alice:***@" in caplog.text
    assert PASSWORD not in caplog.text


def test_port_not_allowed_403(servers: Any, tinyproxy: Any) -> None:
    url, port = servers()
    proxy = tinyproxy([port + 1 if port < 65535 else port - 1])
    with pytest.raises(syncws.ProxyError) as caught:
        syncws.connect(url, proxy=proxy.url())
    assert caught.value.status_code == 403
    assert caught.value.status_line is not None and "403" in caught.value.status_line
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_unreachable_proxy_raises_oserror_naming_it() -> None:
    port = unused_port()
    proxy = f"http://alice:{PASSWORD}@127.0.0.1:{port}"
    with pytest.raises(ConnectionRefusedError) as caught:
        syncws.connect("ws://127.0.0.1:9/", proxy=proxy, connect_timeout=WAIT)
    assert f"http://alice:***@127.0.0.1:{port}" in str(caught.value)
    _check_redacted(caught.value)


def test_silent_proxy_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # Never accepted: the connection opens, nothing answers.
        port = listener.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(syncws.ConnectionTimeout) as caught:
            syncws.connect(
                "ws://127.0.0.1:9/", proxy=f"http://127.0.0.1:{port}", connect_timeout=SHORT
            )
        assert time.monotonic() - start < SHORT + MARGIN
    assert f"http://127.0.0.1:{port}" in str(caught.value)
    assert isinstance(caught.value, TimeoutError)


# ------------------------------------------------------------------ a scripted proxy


class ScriptedProxy:
    """Accepts one connection, records its request head, answers with ``answer``.

    Then it waits for the client to close; with an empty ``answer`` it closes at once.
    """

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.requests: queue.Queue[bytes] = queue.Queue()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, name="scripted-proxy")
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(WAIT)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                head += chunk
            self.requests.put(head)
            if not self.answer:
                return  # Close without answering.
            conn.sendall(self.answer)
            try:
                while conn.recv(4096):  # Until the client closes.
                    pass
            except OSError:
                pass

    def stop(self) -> None:
        self.listener.close()
        self.thread.join(WAIT)

    def request(self) -> bytes:
        return self.requests.get(timeout=WAIT)


@pytest.fixture
def scripted() -> Iterator[Any]:
    made: list[ScriptedProxy] = []

    def make(answer: bytes) -> ScriptedProxy:
        made.append(ScriptedProxy(answer))
        return made[-1]

    yield make
    for proxy in made:
        proxy.stop()


def test_connect_request_and_502(scripted: Any) -> None:
    proxy = scripted(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
    url = f"http://al%20ice:p%40ss%3Aw0rd@127.0.0.1:{proxy.port}"
    with pytest.raises(syncws.ProxyError) as caught:
        syncws.connect("wss://127.0.0.1:8443/x", proxy=url, user_agent="tester/1")
    assert caught.value.status_code == 502
    assert caught.value.status_line == "HTTP/1.1 502 Bad Gateway"
    assert str(caught.value).startswith(f"the proxy http://al%20ice:***@127.0.0.1:{proxy.port}")
    lines = proxy.request().decode().split("\r\n")
    assert lines[0] == "CONNECT 127.0.0.1:8443 HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    assert headers["Host"] == "127.0.0.1:8443"
    assert headers["User-Agent"] == "tester/1"
    assert base64.b64decode(headers["Proxy-Authorization"].removeprefix("Basic ")) == (
        b"al ice:p@ss:w0rd"
    )


def test_connect_request_names_the_host_unresolved(scripted: Any) -> None:
    proxy = scripted(b"HTTP/1.1 403 Forbidden\r\n\r\n")
    with pytest.raises(syncws.ProxyError):
        # The name is for the proxy to resolve: nothing resolves it here.
        syncws.connect("ws://ws.example.invalid/", proxy=f"http://127.0.0.1:{proxy.port}")
    lines = proxy.request().decode().split("\r\n")
    assert lines[0] == "CONNECT ws.example.invalid:80 HTTP/1.1"
    assert not any(line.startswith("Proxy-Authorization") for line in lines)


def test_connect_request_ipv6_target(scripted: Any) -> None:
    proxy = scripted(b"HTTP/1.1 403 Forbidden\r\n\r\n")
    with pytest.raises(syncws.ProxyError):
        syncws.connect("ws://[::1]:8080/", proxy=f"127.0.0.1:{proxy.port}")  # http:// implied
    assert proxy.request().startswith(b"CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\n")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n", "did not answer CONNECT in HTTP"),
        (b"HTTP/1.1 200 OK\r\n\r\nsurprise", "8 bytes after its answer"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 20000, "over 16384 bytes"),
    ],
    ids=["not-http", "bytes-after-200", "head-too-long"],
)
def test_bad_proxy_answers(scripted: Any, answer: bytes, expected: str) -> None:
    proxy = scripted(answer)
    with pytest.raises(syncws.ProxyError, match=expected):
        syncws.connect("ws://127.0.0.1:9/", proxy=f"http://127.0.0.1:{proxy.port}")


def test_proxy_closing_before_answering(scripted: Any) -> None:
    proxy = scripted(b"")
    with pytest.raises(syncws.ProxyError, match="closed the connection before answering"):
        syncws.connect("ws://127.0.0.1:9/", proxy=f"http://127.0.0.1:{proxy.port}")


# -------------------------------------------------------------------- https:// proxies


@pytest.fixture
def https_proxy(pproxy: Any, tls_ca: Any, tmp_path: Path) -> Any:
    pem = tmp_path / "proxy.pem"
    tls_ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
        str(pem)
    )
    return pproxy("http+ssl", pem=pem)


@pytest.mark.parametrize("servers", ["syncws", "websockets"], indirect=True)
def test_https_proxy_to_ws(
    servers: Any, https_proxy: Any, tls_client_context: ssl.SSLContext
) -> None:
    url, _ = servers()
    remote = echo(
        url, PAYLOAD, proxy=f"https://127.0.0.1:{https_proxy.port}", ssl_context=tls_client_context
    )
    assert isinstance(remote, syncws.Endpoint)
    assert remote.port == https_proxy.port
    assert remote.is_ssl  # TLS to the proxy.


@pytest.mark.parametrize("servers", ["syncws", "websockets"], indirect=True)
def test_https_proxy_to_wss_tls_inside_tls(
    servers: Any,
    https_proxy: Any,
    tls_server_context: ssl.SSLContext,
    tls_client_context: ssl.SSLContext,
) -> None:
    url, _ = servers(tls_server_context)
    with syncws.connect(
        url, proxy=f"https://localhost:{https_proxy.port}", ssl_context=tls_client_context
    ) as ws:
        for _ in range(3):
            ws.send_message(PAYLOAD)
        for _ in range(3):
            assert ws.get_message(timeout=WAIT) == PAYLOAD
        ws.send_message("last")
        assert ws.get_message(timeout=WAIT) == "last"
    assert ws.close_reason is not None and ws.close_reason.code == 1000


def test_https_proxy_to_wss_server_closes_first(
    syncws_server: Any,
    https_proxy: Any,
    tls_server_context: ssl.SSLContext,
    tls_client_context: ssl.SSLContext,
) -> None:
    def bye(request: Any, srv: Any) -> None:
        with request.accept() as ws:
            ws.send_message("bye")
            ws.close(1001, "going away")

    srv = syncws_server(bye, ssl_context=tls_server_context)
    with syncws.connect(
        srv.url, proxy=f"https://127.0.0.1:{https_proxy.port}", ssl_context=tls_client_context
    ) as ws:
        assert ws.get_message(timeout=WAIT) == "bye"
        with pytest.raises(syncws.ConnectionClosedOK):
            ws.get_message(timeout=WAIT)
    assert ws.close_reason is not None and ws.close_reason.code == 1001


def test_https_proxy_to_wss_with_an_untrusted_server_certificate(
    syncws_server: Any, https_proxy: Any, tls_client_context: ssl.SSLContext
) -> None:
    trustme = pytest.importorskip("trustme")
    other = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(other)  # A CA the client ignores.
    srv = syncws_server(server_echo, ssl_context=other)
    with pytest.raises(ssl.SSLCertVerificationError, match=f"127.0.0.1:{srv.port}"):
        # TLS to the proxy succeeds; TLS to the server, inside it, fails. The relay
        # thread ends with the connection (the leak check of conftest.py sees to it).
        syncws.connect(
            srv.url, proxy=f"https://127.0.0.1:{https_proxy.port}", ssl_context=tls_client_context
        )


def test_https_proxy_certificate_is_verified(servers: Any, https_proxy: Any) -> None:
    url, _ = servers()
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        # The default context does not trust the test CA.
        syncws.connect(url, proxy=f"https://u:{PASSWORD}@127.0.0.1:{https_proxy.port}")
    assert f"https://u:***@127.0.0.1:{https_proxy.port}" in str(caught.value)
    _check_redacted(caught.value)


# ----------------------------------------------------------------------- SOCKS: pproxy


#: The pproxy server for each scheme of the client.
SOCKS_SERVERS = {"socks5": "socks5", "socks5h": "socks5", "socks4": "socks4", "socks4a": "socks4"}


@pytest.mark.parametrize(
    ("tls", "scheme"),
    [
        pytest.param(
            tls,
            scheme,
            id=f"{'wss' if tls else 'ws'}-{scheme}",
            # TLS starts once the tunnel is open, whatever its scheme: wss with one
            # scheme by default, with the others under -m slow.
            marks=pytest.mark.slow if tls and scheme != "socks5h" else (),
        )
        for tls in (False, True)
        for scheme in sorted(SOCKS_SERVERS)
    ],
)
def test_through_socks(  # noqa: PLR0917 - fixtures and parameters
    servers: Any, scheme: str, tls: bool, pproxy: Any, tls_ca: Any, tls_server_context: Any
) -> None:
    pytest.importorskip("python_socks")
    url, _ = servers(tls_server_context if tls else None)
    proxy = pproxy(SOCKS_SERVERS[scheme])
    client_context = ssl.create_default_context()
    tls_ca.configure_trust(client_context)
    remote = echo(
        url,
        PAYLOAD,
        proxy=f"{scheme}://127.0.0.1:{proxy.port}",
        ssl_context=client_context if tls else None,
    )
    assert isinstance(remote, syncws.Endpoint)
    assert remote.port == proxy.port


@pytest.mark.parametrize("servers", ["websockets"], indirect=True)
def test_socks_to_websockets(
    servers: Any,
    pproxy: Any,
    tls_server_context: ssl.SSLContext,
    tls_client_context: ssl.SSLContext,
) -> None:
    pytest.importorskip("python_socks")
    proxy = pproxy("socks5")
    echo(servers()[0], proxy=f"socks5h://127.0.0.1:{proxy.port}")
    url, _ = servers(tls_server_context)
    echo(url, proxy=f"socks5://127.0.0.1:{proxy.port}", ssl_context=tls_client_context)


@pytest.mark.parametrize(("scheme", "resolved_here"), [("socks5h", False), ("socks5", True)])
def test_who_resolves_the_name(
    servers: Any,
    pproxy: Any,
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
    resolved_here: bool,
) -> None:
    pytest.importorskip("python_socks")
    _, port = servers()
    proxy = pproxy("socks5")
    names: list[str] = []
    real = socket.getaddrinfo

    def recording(*args: Any, **kwargs: Any) -> Any:
        names.append(kwargs["host"] if "host" in kwargs else args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    echo(f"ws://localhost:{port}/", proxy=f"{scheme}://127.0.0.1:{proxy.port}")
    assert ("localhost" in names) is resolved_here


def test_socks5_with_credentials(servers: Any, pproxy: Any) -> None:
    pytest.importorskip("python_socks")
    url, _ = servers()
    proxy = pproxy("socks5", credentials=("alice", PASSWORD))
    echo(url, proxy=f"socks5h://alice:{PASSWORD}@127.0.0.1:{proxy.port}")
    with pytest.raises((syncws.ProxyError, OSError)) as caught:
        syncws.connect(url, proxy=f"socks5h://alice:{WRONG}@127.0.0.1:{proxy.port}")
    assert f"socks5h://alice:***@127.0.0.1:{proxy.port}" in str(caught.value)
    _check_redacted(caught.value)


def test_unreachable_socks_proxy() -> None:
    pytest.importorskip("python_socks")
    port = unused_port()
    with pytest.raises(ConnectionRefusedError, match=f"socks5://127.0.0.1:{port}"):
        syncws.connect("ws://127.0.0.1:9/", proxy=f"socks5://127.0.0.1:{port}")


def test_socks_without_python_socks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "python_socks", None)  # import python_socks fails
    with pytest.raises(ImportError, match=r"pip install 'syncws\[socks\]'"):
        syncws.connect("ws://127.0.0.1:9/", proxy="socks5://127.0.0.1:1080")


# ------------------------------------------------------------------------ environment


def test_http_proxy_from_the_environment(
    servers: Any, tinyproxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, port = servers()
    proxy = tinyproxy([port])
    monkeypatch.setenv("http_proxy", proxy.url())
    remote = echo(url)
    assert isinstance(remote, syncws.Endpoint) and remote.port == proxy.port
    remote = echo(url, proxy=None)  # Off.
    assert isinstance(remote, syncws.Endpoint) and remote.port == port


@pytest.mark.parametrize("variable", ["ws_proxy", "WS_PROXY", "all_proxy", "ALL_PROXY"])
def test_other_variables(
    servers: Any, tinyproxy: Any, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    url, port = servers()
    proxy = tinyproxy([port])
    monkeypatch.setenv(variable, proxy.url())
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{unused_port()}")  # For wss:// only.
    remote = echo(url)
    assert isinstance(remote, syncws.Endpoint) and remote.port == proxy.port


def test_ws_proxy_before_http_proxy(
    servers: Any, tinyproxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, port = servers()
    proxy = tinyproxy([port])
    monkeypatch.setenv("ws_proxy", proxy.url())
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{unused_port()}")  # Would fail.
    echo(url)


def test_https_proxy_for_wss(
    servers: Any,
    tinyproxy: Any,
    monkeypatch: pytest.MonkeyPatch,
    tls_server_context: ssl.SSLContext,
    tls_client_context: ssl.SSLContext,
) -> None:
    url, port = servers(tls_server_context)
    proxy = tinyproxy([port])
    monkeypatch.setenv("https_proxy", proxy.url())
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{unused_port()}")  # For ws:// only.
    remote = echo(url, ssl_context=tls_client_context)
    assert isinstance(remote, syncws.Endpoint) and remote.port == proxy.port


@pytest.mark.parametrize(
    ("host", "no_proxy"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1", "example.org, 127.0.0.0/8"),
        ("127.0.0.1", "*"),
        ("localhost", "LOCALHOST"),
        ("ws.example.test", "example.test"),
        ("ws.example.test", ".example.test"),
        ("127.0.0.1", "127.0.0.1:{port}"),
    ],
)
def test_no_proxy_bypasses(
    servers: Any, monkeypatch: pytest.MonkeyPatch, host: str, no_proxy: str
) -> None:
    _, port = servers()
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{unused_port()}")  # Would fail.
    monkeypatch.setenv("no_proxy", no_proxy.format(port=port))
    if host.endswith(".test"):
        real = socket.getaddrinfo

        def fake(name: Any, *args: Any, **kwargs: Any) -> Any:
            return real("127.0.0.1" if name == host else name, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", fake)
    remote = echo(f"ws://{host}:{port}/")
    assert isinstance(remote, syncws.Endpoint) and remote.port == port


def test_no_proxy_other_port_goes_through_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    port = unused_port()
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("no_proxy", "127.0.0.1:1")
    with pytest.raises(ConnectionRefusedError, match=f"proxy http://127.0.0.1:{port}"):
        syncws.connect("ws://127.0.0.1:9/")


def test_malformed_proxy_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WS_PROXY", f"ftp://alice:{PASSWORD}@127.0.0.1:21")
    with pytest.raises(ValueError, match="ws_proxy") as caught:
        syncws.connect("ws://127.0.0.1:9/")
    _check_redacted(caught.value)


# ---------------------------------------------------------------------- option checks


@pytest.mark.parametrize("value", [False, 3128, b"http://127.0.0.1:3128"])
def test_proxy_option_type(value: object) -> None:
    with pytest.raises(TypeError, match="proxy must be a proxy URL"):
        syncws.connect("ws://127.0.0.1:9/", proxy=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        "ftp://127.0.0.1:21",
        f"http://alice:{PASSWORD}@127.0.0.1:99999",
        f"http://alice:{PASSWORD}@127.0.0.1:3128/path",
        "http://127.0.0.1:3128?q=1",
        "http://:3128",
        "http://127.0.0.1:3128 ",
    ],
)
def test_proxy_option_value(value: str) -> None:
    with pytest.raises(ValueError, match="invalid proxy URL") as caught:
        syncws.connect("ws://127.0.0.1:9/", proxy=value)
    _check_redacted(caught.value)
