"""Where a server listens: host and port, a socket bound by the caller, or a Unix socket."""

from __future__ import annotations

import inspect
import os
import socket
from pathlib import Path

import pytest
from helpers import WAIT

import syncws
from syncws.testing import echo


def round_trip(ws: syncws.WebSocketConnection) -> None:
    ws.send_message("over the given socket")
    assert ws.get_message(timeout=WAIT) == "over the given socket"


def loopback_socket(*, listening: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    if listening:
        sock.listen(5)
    return sock


@pytest.mark.parametrize("listening", [False, True])
def test_a_server_on_a_socket_bound_by_the_caller(listening: bool) -> None:
    sock = loopback_socket(listening=listening)
    port = sock.getsockname()[1]
    with syncws.WebSocketServer(echo, sock=sock, disconnect_timeout=WAIT) as server:
        assert server.port == port
        assert server.listeners == [syncws.Endpoint("127.0.0.1", port, False)]
        with syncws.connect(f"ws://127.0.0.1:{port}/", connect_timeout=WAIT) as ws:
            round_trip(ws)
    # The server took the socket over: it closed it at shutdown.
    assert sock.fileno() == -1


def test_serve_websocket_and_the_server_take_the_same_keywords() -> None:
    server = inspect.signature(syncws.WebSocketServer).parameters
    serve = inspect.signature(syncws.serve_websocket).parameters
    # serve_websocket also takes workers (see test_workers.py).
    assert list(server) == [name for name in serve if name != "workers"]
    assert serve["workers"].default == 1
    for name in ("host", "port", "ssl_context", "sock", "unix_path", "reuse_port"):
        assert server[name].default == serve[name].default
    assert server["host"].default is None
    assert server["port"].default == 0
    assert server["sock"].kind is inspect.Parameter.KEYWORD_ONLY
    assert server["unix_path"].kind is inspect.Parameter.KEYWORD_ONLY
    assert server["reuse_port"].kind is inspect.Parameter.KEYWORD_ONLY


def connect_unix(path: str | Path) -> syncws.WebSocketConnection:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.settimeout(WAIT)
        client.connect(os.fspath(path))
    except BaseException:
        client.close()
        raise
    return syncws.wrap_client_socket(client, "localhost", "/unix", connect_timeout=WAIT)


@pytest.mark.parametrize("as_path", [False, True])
def test_a_server_on_a_unix_path(tmp_path: Path, as_path: bool) -> None:
    path = tmp_path / "ws.sock"
    unix_path = path if as_path else str(path)
    with syncws.WebSocketServer(echo, unix_path=unix_path, disconnect_timeout=WAIT) as server:
        assert server.port == 0
        assert path.is_socket()
        with connect_unix(path) as ws:
            round_trip(ws)
    # The server made the socket file: it removed it at shutdown.
    assert not path.exists()


def test_a_unix_socket_bound_by_the_caller_is_left_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "mine.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    with syncws.WebSocketServer(echo, sock=sock, disconnect_timeout=WAIT) as server:
        assert server.port == 0
        with connect_unix(path) as ws:
            round_trip(ws)
    assert sock.fileno() == -1
    assert path.is_socket()  # Not the server's to remove.


@pytest.mark.parametrize("start", [syncws.WebSocketServer, syncws.serve_websocket])
@pytest.mark.parametrize(
    ("address", "match"),
    [
        ({"host": "127.0.0.1"}, "host and port cannot be given with sock"),
        ({"port": 8765}, "host and port cannot be given with sock"),
        ({"unix_path": "ws.sock"}, "give sock or unix_path, not both"),
    ],
)
def test_two_addresses_with_sock_are_refused_at_the_call(
    start: object, address: dict[str, object], match: str
) -> None:
    with loopback_socket(listening=False) as sock:
        with pytest.raises(ValueError, match=match):
            start(echo, sock=sock, **address)  # type: ignore[operator]
        # The caller still owns its socket, untouched.
        assert sock.fileno() != -1
        assert sock.getsockname()[0] == "127.0.0.1"


@pytest.mark.parametrize("start", [syncws.WebSocketServer, syncws.serve_websocket])
@pytest.mark.parametrize("address", [{"host": "127.0.0.1"}, {"port": 8765}])
def test_host_or_port_with_unix_path_are_refused_at_the_call(
    tmp_path: Path, start: object, address: dict[str, object]
) -> None:
    path = tmp_path / "ws.sock"
    with pytest.raises(ValueError, match="host and port cannot be given with unix_path"):
        start(echo, unix_path=path, **address)  # type: ignore[operator]
    assert not path.exists()


def test_host_and_port_positionally_with_sock_are_refused() -> None:
    with loopback_socket(listening=False) as sock, pytest.raises(ValueError, match="with sock"):
        syncws.WebSocketServer(echo, "127.0.0.1", 0, sock=sock)


def test_a_datagram_socket_is_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        with pytest.raises(ValueError, match="stream socket"):
            syncws.WebSocketServer(echo, sock=sock)


def test_something_else_than_a_socket_is_refused() -> None:
    with pytest.raises(TypeError, match="sock must be a socket"):
        syncws.WebSocketServer(echo, sock=3)  # type: ignore[arg-type]


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_unix_path_that_cannot_be_bound_raises_and_leaves_nothing_open(tmp_path: Path) -> None:
    path = tmp_path / "missing-directory" / "ws.sock"
    before = open_descriptors()
    with pytest.raises(FileNotFoundError):
        syncws.WebSocketServer(echo, unix_path=path)
    assert open_descriptors() == before


def test_the_unix_classmethod_still_works_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "old.sock"
    with pytest.warns(DeprecationWarning, match=r"use WebSocketServer\(handler, unix_path=path\)"):
        server = syncws.WebSocketServer.unix(echo, str(path), disconnect_timeout=WAIT)
    with server, connect_unix(path) as ws:
        round_trip(ws)
    assert not path.exists()
