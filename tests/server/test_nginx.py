"""A syncws server behind Debian's nginx, configured as the Deployment page says.

nginx runs in the foreground as a child process, with a configuration, logs, PID file
and temporary directories of its own in the test's ``tmp_path``, on a free loopback
port; it is stopped by its PID. The tests skip where the ``nginx`` package (or
``nginx-light``) is not installed.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import UNIT, WAIT, SyncwsServer, made_for_the_test, unused_port, wait_for
from rawpeer import OP_PING, raw_client

import syncws
from syncws import ConnectionClosed, Endpoint

NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(path, os.X_OK)), None
)

#: The location block of the Deployment page, minus TLS (``{upstream}`` and
#: ``{read_timeout}`` filled in by :class:`Nginx`).
LOCATION = """
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout {read_timeout};
        }}
"""


class Nginx:
    """nginx proxying ``127.0.0.1:port`` (and ``tls_port`` with TLS) to ``upstream``."""

    def __init__(
        self,
        tmp: Path,
        upstream_port: int,
        *,
        read_timeout: float = 2.0 * UNIT,
        pem: Path | None = None,
    ) -> None:
        if NGINX is None:
            pytest.skip("Debian package nginx (or nginx-light) is not installed")
        self.port = unused_port()
        self.tls_port = unused_port() if pem is not None else None
        self.dir = tmp / f"nginx-{self.port}"
        self.dir.mkdir()
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / name).mkdir()
        listen = f"listen 127.0.0.1:{self.port};"
        if pem is not None:
            listen += (
                f"\n        listen 127.0.0.1:{self.tls_port} ssl;"
                f"\n        ssl_certificate {pem};\n        ssl_certificate_key {pem};"
            )
        location = LOCATION.format(
            upstream=f"127.0.0.1:{upstream_port}", read_timeout=f"{round(read_timeout * 1000)}ms"
        )
        # As root, the master process switches its workers to the user of "user"
        # (nobody by default), who could not read the test's directory: stay root.
        user = "user root;\n" if os.geteuid() == 0 else ""
        config = f"""{user}worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {self.dir}/access.log;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    server {{
        {listen}
{location}
    }}
}}
"""
        self.config = self.dir / "nginx.conf"
        self.config.write_text(config, encoding="utf-8")
        self._process = subprocess.Popen(
            [NGINX, "-c", str(self.config), "-p", str(self.dir), "-e", str(self.dir / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(self._listening, WAIT, "nginx to listen")
        except BaseException:
            self.stop()
            raise

    def _listening(self) -> bool:
        if self._process.poll() is not None:
            raise AssertionError(f"nginx exited at start: {self.log()}")
        for port in (self.port, self.tls_port):
            if port is None:
                continue
            try:
                socket.create_connection(("127.0.0.1", port), WAIT).close()
            except ConnectionRefusedError:
                return False
        return True

    def log(self) -> str:
        """nginx's error log so far."""
        path = self.dir / "error.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def wss_url(self) -> str:
        return f"wss://127.0.0.1:{self.tls_port}/"

    def stop(self) -> None:
        """Fast shutdown (SIGTERM) by PID; SIGKILL if it does not exit in time."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(WAIT)


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[..., Nginx]]:
    """Factory: ``nginx(upstream_port, read_timeout=..., pem=None)`` -> a running nginx."""
    yield from made_for_the_test(lambda *a, **k: Nginx(tmp_path, *a, **k), Nginx.stop)


def health_check(request: syncws.WebSocketRequest) -> None:
    if request.path == "/healthz":
        request.respond(200, "ok\n")


def proxied(request: syncws.WebSocketRequest, srv: SyncwsServer) -> None:
    """Record what the handler sees, echo messages; ``"close please"`` closes with 4002."""
    srv.record.put(
        {
            "remote": request.remote,
            "x-forwarded-for": request.header("x-forwarded-for"),
            "x-real-ip": request.header("x-real-ip"),
            "x-forwarded-proto": request.header("x-forwarded-proto"),
        }
    )
    with request.accept() as ws:
        try:
            for message in ws:
                if message == "close please":
                    ws.close(4002, "server bye")
                    break
                ws.send_message(message)
        except ConnectionClosed as exc:
            srv.record.put(("closed by the client", exc.reason.code, exc.reason.reason))


@pytest.fixture
def behind_nginx(syncws_server, nginx) -> tuple[SyncwsServer, Nginx]:
    srv = syncws_server(
        proxied, process_request=health_check, trusted_proxies=["127.0.0.1"], ping_interval=None
    )
    return srv, nginx(srv.port)


def test_messages_both_ways_through_nginx(behind_nginx) -> None:
    srv, proxy = behind_nginx
    with syncws.connect(proxy.url, connect_timeout=WAIT) as ws:
        seen = srv.get()
        for message in ["hello", "é€😀" * 1000, b"\x00\xff" * 40000, b""]:
            ws.send_message(message)
            assert ws.get_message(timeout=WAIT) == message
    assert seen["x-real-ip"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"


def test_close_codes_pass_through_nginx(behind_nginx) -> None:
    srv, proxy = behind_nginx
    with syncws.connect(proxy.url, connect_timeout=WAIT) as ws:
        srv.get()
        ws.close(4001, "bye")
    assert srv.get() == ("closed by the client", 4001, "bye")

    with syncws.connect(proxy.url, connect_timeout=WAIT) as ws:
        srv.get()
        ws.send_message("close please")
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
    assert (excinfo.value.reason.code, excinfo.value.reason.reason) == (4002, "server bye")


def test_forwarded_headers_reach_the_handler(behind_nginx) -> None:
    srv, proxy = behind_nginx
    # A client that claims an address of its own: nginx appends the one it saw.
    headers = [("X-Forwarded-For", "203.0.113.7")]
    with syncws.connect(proxy.url, extra_headers=headers, connect_timeout=WAIT):
        seen = srv.get()
    assert seen["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert seen["x-real-ip"] == "127.0.0.1"
    # nginx is trusted; the client, 127.0.0.1 too, so the walk goes one step further
    # left, to the address the client claimed: trusting 127.0.0.1 makes every local
    # process a proxy. Without the claim, the address nginx saw.
    assert seen["remote"] == Endpoint("203.0.113.7", 0, False)
    with syncws.connect(proxy.url, connect_timeout=WAIT):
        assert srv.get()["remote"] == Endpoint("127.0.0.1", 0, False)


def test_health_check_through_nginx(behind_nginx) -> None:
    srv, proxy = behind_nginx
    client = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=WAIT)
    try:
        client.request("GET", "/healthz")
        response = client.getresponse()
        assert (response.status, response.read()) == (200, b"ok\n")
        client.close()
        client.request("GET", "/elsewhere")
        response = client.getresponse()
        assert response.status == 426
        response.read()
    finally:
        client.close()
    assert srv.record.empty()  # The handler saw neither.


# The keepalive case waits for several pings (4 s): with -m slow, which CI runs.
@pytest.mark.parametrize("keepalive", [pytest.param(True, marks=pytest.mark.slow), False])
def test_keepalive_beats_proxy_read_timeout(syncws_server, nginx, keepalive) -> None:
    """nginx closes a proxied connection on which the server sent nothing for
    ``proxy_read_timeout``; syncws's keepalive pings, more frequent, keep it open."""
    read_timeout = 1.0 * UNIT
    srv = syncws_server(proxied, ping_interval=read_timeout / 4 if keepalive else None)
    proxy = nginx(srv.port, read_timeout=read_timeout)
    conn = raw_client(proxy.port, timeout=WAIT)
    try:
        srv.get()
        if not keepalive:
            # The server is silent: nginx gives up after read_timeout.
            conn.wait_eof(WAIT)
            assert "upstream timed out" in proxy.log()
            return
        # 16 pings, each answered: 4 timeouts' worth of time, the connection open.
        pings = 0
        while pings < 16:
            frame = conn.recv_frame(WAIT)
            assert frame.opcode == OP_PING, frame
            conn.send_pong(frame.payload)
            pings += 1
        conn.send_text("still here")
        assert conn.recv_message(WAIT) == (1, b"still here")
        conn.close_handshake(WAIT)
        assert "upstream timed out" not in proxy.log()
    finally:
        conn.close()


@pytest.fixture
def tls_pem(tls_ca: Any, tmp_path: Path) -> Path:
    pem = tmp_path / "nginx-cert.pem"
    tls_ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(pem)
    return pem


def test_tls_terminated_at_nginx(syncws_server, nginx, tls_pem, tls_client_context) -> None:
    srv = syncws_server(
        proxied, process_request=health_check, trusted_proxies=["127.0.0.1"], ping_interval=None
    )
    proxy = nginx(srv.port, pem=tls_pem)
    with syncws.connect(proxy.wss_url, ssl_context=tls_client_context, connect_timeout=WAIT) as ws:
        seen = srv.get()
        assert ws.remote == Endpoint("127.0.0.1", proxy.tls_port or 0, True)
        ws.send_message("over TLS")
        assert ws.get_message(timeout=WAIT) == "over TLS"
    assert seen["x-forwarded-proto"] == "https"
    # The hop from nginx to syncws is plain: so says the forwarded address.
    assert seen["remote"] == Endpoint("127.0.0.1", 0, False)
    client = http.client.HTTPSConnection(
        "127.0.0.1", proxy.tls_port, timeout=WAIT, context=tls_client_context
    )
    try:
        client.request("GET", "/healthz")
        response = client.getresponse()
        assert (response.status, response.read()) == (200, b"ok\n")
    finally:
        client.close()


def test_without_tls_context_the_certificate_is_refused(nginx, syncws_server, tls_pem) -> None:
    srv = syncws_server(proxied, ping_interval=None)
    proxy = nginx(srv.port, pem=tls_pem)
    with pytest.raises(ssl.SSLCertVerificationError):
        syncws.connect(proxy.wss_url, connect_timeout=WAIT)
    assert srv.record.empty()
