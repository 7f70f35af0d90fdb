"""Plain HTTP requests on the WebSocket port: a ``process_request`` hook answers them
(a health check), and the server refuses the others with 426, as it always did."""

from __future__ import annotations

import http.client
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from helpers import WAIT, SyncwsServer, echo_once, server_echo
from rawpeer import read_http_response

import syncws


def health_check(request: syncws.WebSocketRequest) -> None:
    """Answer ``/healthz`` whatever the request; let every other request through."""
    if request.path == "/healthz":
        request.respond(200, "ok\n")


@contextmanager
def http_client(port: int) -> Iterator[http.client.HTTPConnection]:
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        yield client
    finally:
        client.close()


def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    with http_client(port) as client:
        client.request(method, path)
        response = client.getresponse()
        return response.status, dict(response.getheaders()), response.read()


@pytest.fixture
def healthy_server(syncws_server) -> SyncwsServer:
    return syncws_server(server_echo, process_request=health_check)


def test_hook_answers_a_plain_get(healthy_server) -> None:
    status, headers, body = get(healthy_server.port, "/healthz")
    assert (status, body) == (200, b"ok\n")
    assert headers["Content-Length"] == "3"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Connection"] == "close"
    assert healthy_server.record.empty()  # The handler never ran.
    echo_once(healthy_server.url)  # WebSocket clients are served as before.


def test_hook_answers_head_without_a_body(healthy_server) -> None:
    with socket.create_connection(("127.0.0.1", healthy_server.port), WAIT) as sock:
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        response = read_http_response(sock, WAIT)
    assert response.status == 200
    assert response.header("Content-Length") == "3"
    assert response.body == b""  # No body: the server closed right after the head.
    assert response.closed


def test_plain_get_the_hook_leaves_alone_gets_426(healthy_server) -> None:
    status, headers, body = get(healthy_server.port, "/chat")
    assert status == 426
    assert headers["Upgrade"] == "websocket"
    assert b"send a WebSocket upgrade request" in body
    assert healthy_server.record.empty()


def test_hook_sees_a_plain_request(syncws_server) -> None:
    seen: list[tuple[Any, ...]] = []

    def hook(request: syncws.WebSocketRequest) -> None:
        seen.append(
            (request.is_upgrade, request.path, request.header("x-probe"), request.header("host"))
        )
        seen.append((request.proposed_subprotocols, request.origin))
        if not request.is_upgrade:
            request.respond(204, extra_headers={"X-Probe": "seen"})

    srv = syncws_server(server_echo, process_request=hook)
    with http_client(srv.port) as client:
        client.request("GET", "/status?full=1", headers={"X-Probe": "yes"})
        response = client.getresponse()
        assert response.status == 204
        assert response.getheader("X-Probe") == "seen"
        assert response.read() == b""
    assert seen == [(False, "/status?full=1", "yes", f"127.0.0.1:{srv.port}"), ((), None)]
    seen.clear()
    echo_once(srv.url)
    assert seen[0][0] is True


def test_http_1_0_request_without_host(healthy_server) -> None:
    with socket.create_connection(("127.0.0.1", healthy_server.port), WAIT) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        response = read_http_response(sock, WAIT)
    assert (response.status, response.body) == (200, b"ok\n")


def test_origin_allow_list_does_not_apply_to_plain_requests(syncws_server) -> None:
    srv = syncws_server(server_echo, origins=["https://example.com"], process_request=health_check)
    assert get(srv.port, "/healthz")[:1] == (200,)
    with pytest.raises(syncws.ConnectionRejected) as excinfo:
        syncws.connect(srv.url_for("/healthz"), connect_timeout=WAIT)
    assert excinfo.value.status_code == 403  # A WebSocket client without Origin.


def test_post_is_refused_before_the_hook(syncws_server) -> None:
    calls: list[str] = []
    srv = syncws_server(server_echo, process_request=lambda request: calls.append(request.path))
    status, _, _ = get(srv.port, "/healthz", method="POST")
    assert status == 400
    assert calls == []


@pytest.mark.allow_syncws_errors
def test_hook_that_fails_on_a_plain_request_gives_500(syncws_server, caplog) -> None:
    def hook(request: syncws.WebSocketRequest) -> None:
        raise RuntimeError("hook bug")

    srv = syncws_server(server_echo, process_request=hook)
    assert get(srv.port, "/healthz")[0] == 500
    assert "process_request hook failed" in caplog.text


def test_basic_auth_asks_plain_requests_for_credentials(syncws_server) -> None:
    auth = syncws.basic_auth(credentials=("alice", "secret"))
    srv = syncws_server(server_echo, process_request=auth)
    status, headers, _ = get(srv.port, "/healthz")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic")


def test_respond_checks_its_status(syncws_server) -> None:
    errors: list[str] = []
    done = threading.Event()

    def hook(request: syncws.WebSocketRequest) -> None:
        for status in (101, 99, 600):
            try:
                request.respond(status)
            except ValueError as exc:
                errors.append(str(exc))
        request.respond(503, b"draining\n", extra_headers=[("Retry-After", "5")])
        try:
            request.respond(200)
        except RuntimeError as exc:
            errors.append(str(exc))
        done.set()

    srv = syncws_server(server_echo, process_request=hook)
    status, headers, body = get(srv.port, "/healthz")
    assert (status, headers["Retry-After"], body) == (503, "5", b"draining\n")
    assert done.wait(WAIT)
    assert len(errors) == 4
    assert "already accepted or rejected" in errors[-1]


def test_unanswered_plain_request_is_logged_at_debug(syncws_server, caplog) -> None:
    srv = syncws_server(server_echo, process_request=health_check)
    with caplog.at_level(logging.DEBUG, logger="syncws"):
        assert get(srv.port, "/")[0] == 426
    assert "send a WebSocket upgrade request" in caplog.text
