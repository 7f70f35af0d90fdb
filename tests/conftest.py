"""Fixtures: leak checking, peers (websockets server, raw peer) and TLS material.

The fixtures of syncws's own pytest plugin (``ws_server``, ``ws_echo_server``,
``ws_connect``) are loaded here too, for runs where syncws is not installed (its entry
point then does not exist); when it is, pytest has loaded the plugin already.
"""

from __future__ import annotations

import compileall
import gc
import logging
import os
import queue
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import WAIT, SyncwsServer, WsServer, made_for_the_test
from rawpeer import RawPeer

import syncws

pytest_plugins = ["syncws.pytest_plugin"]

DEFAULT_TEST_TIMEOUT = 30
LEAK_JOIN_BUDGET = 5.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "allow_syncws_errors(*levels): syncws may log at these levels (default: ERROR) during "
        "this test, e.g. for an expected handler exception; the test checks the records itself.",
    )
    _bytecode_for_children()


def _bytecode_for_children() -> None:
    """Compile syncws once for the child Pythons the tests start, where nothing caches it.

    With ``PYTHONDONTWRITEBYTECODE`` set, no Python writes syncws's bytecode, so each
    child Python (the CLI, the examples, the servers of the process tests: a few
    hundred in a run) would compile syncws from source, about 0.1 s each. It goes
    where Python itself would put it, ``__pycache__`` beside the sources (ignored by
    git), and is used only while it matches them.
    """
    if sys.dont_write_bytecode:
        compileall.compile_dir(os.path.dirname(syncws.__file__), quiet=1)


# ------------------------------------------------------------------ leak checking


def _socket_fds() -> dict[int, str]:
    fds = {}
    for entry in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:
            continue
        if target.startswith("socket:"):
            fds[int(entry)] = target
    return fds


def _new_sockets(before: dict[int, str]) -> dict[int, str]:
    return {fd: t for fd, t in _socket_fds().items() if before.get(fd) != t}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a thread running or a socket open.

    Autouse and function scoped, so it is set up before (and torn down after) every
    other fixture of the test.  The garbage collector is off during the test, so a
    socket that only the collector would close is reported deterministically.
    It also fails a test during which syncws logged a warning or an error (such as
    a crash of a reader thread), which the application would otherwise never see;
    tests marked ``allow_syncws_errors`` may make syncws log at ERROR (or at the levels
    given as the marker's arguments).
    """
    collect = _Collect()
    marker = request.node.get_closest_marker("allow_syncws_errors")
    if marker is not None:
        allowed = set(marker.args or (logging.ERROR,))
        collect.addFilter(lambda record: record.levelno not in allowed)
    syncws_logger = logging.getLogger("syncws")
    syncws_logger.addHandler(collect)
    threads_before = set(threading.enumerate())
    sockets_before = _socket_fds()
    gc_enabled = gc.isenabled()
    gc.disable()
    yield
    try:
        problems = _problems(collect, threads_before, sockets_before)
    finally:
        syncws_logger.removeHandler(collect)
        if gc_enabled:
            gc.enable()
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def _problems(
    collect: _Collect, threads_before: set[threading.Thread], sockets_before: dict[int, str]
) -> list[str]:
    problems = []
    deadline = time.monotonic() + LEAK_JOIN_BUDGET
    new_threads = [t for t in threading.enumerate() if t not in threads_before]
    for thread in new_threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    for record in collect.records:
        problems.append(f"syncws logged {record.levelname}: {record.getMessage()}")
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            problems[-1] += f" ({type(exc).__name__}: {exc})"
    alive = [t.name for t in new_threads if t.is_alive()]
    if alive:
        problems.append(f"leaked threads, still running after the test: {alive}")
    leaked = _new_sockets(sockets_before)
    if leaked:
        gc.collect()
        still_open = _new_sockets(sockets_before)
        if still_open:
            problems.append(f"leaked socket fds, still open after the test: {sorted(still_open)}")
        else:
            problems.append(
                f"leaked socket fds {sorted(leaked)}: not closed explicitly "
                "(only the garbage collector released them)"
            )
    return problems


# ------------------------------------------------------------------------- peers


@pytest.fixture
def websockets_server() -> Iterator[Callable[..., WsServer]]:
    """Factory: ``websockets_server(handler, **serve_kwargs)`` -> a running websockets server."""
    yield from made_for_the_test(WsServer, WsServer.stop)


@pytest.fixture
def raw_peer() -> Iterator[Callable[..., RawPeer]]:
    """Factory: ``raw_peer(**options)`` -> a started :class:`rawpeer.RawPeer`."""
    yield from made_for_the_test(RawPeer, RawPeer.close)


@pytest.fixture
def syncws_server() -> Iterator[Callable[..., SyncwsServer]]:
    """Factory: ``syncws_server(handler, host="127.0.0.1", port=0, **options)``.

    A :class:`helpers.SyncwsServer` serving in the background; shut down at teardown.
    """
    yield from made_for_the_test(SyncwsServer, SyncwsServer.stop)


@pytest.fixture(params=["client", "server"])
def pair(
    request: pytest.FixtureRequest, syncws_server: Callable[..., SyncwsServer]
) -> Iterator[tuple[syncws.WebSocketConnection, syncws.WebSocketConnection]]:
    """``(local, remote)``: both ends of one syncws connection, local being either side.

    The server end comes out of a ``WebSocketServer`` handler, which then waits for the
    test to end; the client end is ``syncws.connect``'s.
    """
    accepted: queue.Queue[syncws.WebSocketConnection] = queue.Queue()

    def handler(req: Any, srv: SyncwsServer) -> None:
        accepted.put(req.accept())
        srv.release.wait(LEAK_JOIN_BUDGET + DEFAULT_TEST_TIMEOUT)

    srv = syncws_server(handler)
    client = syncws.connect(srv.url, disconnect_timeout=WAIT)
    try:
        server_side = accepted.get(timeout=WAIT)
        if request.param == "client":
            yield client, server_side
        else:
            yield server_side, client
    finally:
        client.close()


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="session")
def tls_ca() -> Any:
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_server_context(tls_ca: Any) -> ssl.SSLContext:
    cert = tls_ca.issue_cert("localhost", "127.0.0.1", "::1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    return context


@pytest.fixture(scope="session")
def tls_client_context(tls_ca: Any) -> ssl.SSLContext:
    context = ssl.create_default_context()
    tls_ca.configure_trust(context)
    return context


# ------------------------------------------------------------------------- proxies

#: The variables that name proxies for syncws (and curl, requests, urllib, websockets).
PROXY_VARIABLES = [
    f"{prefix}_proxy" for prefix in ("ws", "wss", "http", "https", "all", "no", "socks")
]


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without proxy variables, whatever the shell that runs pytest set.

    syncws (like websockets) reads them by default: a developer's ``https_proxy`` must
    not send the tests' loopback connections to a proxy. Tests that want them set them.
    """
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def tinyproxy(tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """Factory: ``tinyproxy(ports, credentials=None)`` -> a running :class:`proxies.Tinyproxy`.

    It allows CONNECT to ``ports`` only; with ``credentials`` (user, password) it
    requires them. Skips when the Debian package tinyproxy is not installed.
    """
    from proxies import Tinyproxy

    yield from made_for_the_test(lambda *a, **k: Tinyproxy(tmp_path, *a, **k), Tinyproxy.stop)


@pytest.fixture
def pproxy(tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """Factory: ``pproxy(scheme, credentials=None, pem=None)`` -> a running pproxy.

    See :class:`proxies.Pproxy`; skips when the PyPI package pproxy is not installed.
    """
    from proxies import Pproxy

    yield from made_for_the_test(lambda *a, **k: Pproxy(tmp_path, *a, **k), Pproxy.stop)
