"""Several processes on one port: ``reuse_port=True``, and ``workers=N`` with its supervisor.

The supervisor runs in a child process (``serve_websocket(..., workers=2)`` or
``syncws serve --workers 2``): forking the test process, which runs threads, would copy
them half-way. Every handler sends its process ID first, so the tests see which worker
took each connection. Every process started is stopped by its PID at the end.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import sys
from collections.abc import Iterator

import pytest
from clihelpers import LISTENING, ServeCli, no_traceback
from helpers import MARGIN, WAIT, ChildProcess, wait_for

import syncws
import syncws.testing
from syncws import ConnectionClosed

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals"),
    pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT"),
]

#: Connections opened to see both workers: SO_REUSEPORT hashes each client's address and
#: port, so all of them land on one of two workers with a chance of 2**-39.
SPREAD = 40

SUPERVISOR = """
import logging, os, signal, sys, threading, syncws

signal.signal(signal.SIGINT, signal.default_int_handler)
logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(levelname)s %(name)s: %(message)s")

def handler(request):
    ws = request.accept()
    ws.send_message(str(os.getpid()))
    if sys.argv[2] == "stuck":
        threading.Event().wait()
    try:
        for message in ws:
            ws.send_message(message)
    except syncws.ConnectionClosed:
        pass

if len(sys.argv) > 3 and sys.argv[3] == "sock":
    # The shared-socket path (used where SO_REUSEPORT does not balance): one socket
    # bound here, accepted from by every worker.
    import socket
    sock = socket.create_server(("127.0.0.1", 0))
    syncws.serve_websocket(handler, sock=sock, workers=2, disconnect_timeout=float(sys.argv[1]))
else:
    syncws.serve_websocket(
        handler, "127.0.0.1", 0, workers=2, disconnect_timeout=float(sys.argv[1])
    )
print("serve_websocket returned", flush=True)
"""


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (and been reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class Supervisor:
    """The supervisor in a child process; ``pids``: its workers; ``url``: where they listen."""

    def __init__(self, child: ChildProcess) -> None:
        self.child = child
        self.pids: set[int] = set()
        self.seen: set[int] = set()  # every worker PID ever reported, for the clean-up
        for _ in range(2):
            self.pids.add(self.next_worker())
        port = child.wait_number(r"2 workers listening on ws://127\.0\.0\.1:(\d+)")
        self.url = f"ws://127.0.0.1:{port}/"

    def next_worker(self) -> int:
        """Wait for the next "worker N listening (pid P)" line; return P."""
        pid = self.child.wait_number(r"worker \d+ listening \(pid (\d+)\)")
        self.seen.add(pid)
        return pid

    def stop(self) -> None:
        self.child.stop()
        for pid in self.seen:
            kill(pid)


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    child = ChildProcess(SUPERVISOR, str(WAIT), "echo")
    try:
        started = Supervisor(child)
    except BaseException:
        child.stop()
        raise
    try:
        yield started
    finally:
        started.stop()


def worker_of(url: str) -> int:
    """Open a connection, read the PID of the worker that took it, close."""
    with syncws.connect(url, connect_timeout=WAIT, disconnect_timeout=WAIT) as ws:
        return int(ws.get_message(timeout=WAIT))


def close_code(ws: syncws.WebSocketConnection) -> int | None:
    """Read until the connection closes (within WAIT); return the close code."""
    with pytest.raises(ConnectionClosed) as caught:
        while True:
            ws.get_message(timeout=WAIT)
    return caught.value.reason.code


# ------------------------------------------------------------------ reuse_port


def test_two_servers_with_reuse_port_share_a_port() -> None:
    seen: queue.Queue[str] = queue.Queue()

    def handler_of(name: str) -> syncws.Handler:
        def handler(request: syncws.WebSocketRequest) -> None:
            seen.put(name)
            request.accept().send_message(name)

        return handler

    with syncws.WebSocketServer(handler_of("a"), "127.0.0.1", 0, reuse_port=True) as first:
        port = first.port
        with syncws.WebSocketServer(handler_of("b"), "127.0.0.1", port, reuse_port=True):
            names = set()
            for _ in range(SPREAD):
                with syncws.connect(f"ws://127.0.0.1:{port}/", connect_timeout=WAIT) as ws:
                    names.add(ws.get_message(timeout=WAIT))
    assert names == {"a", "b"}


def test_without_reuse_port_a_second_server_cannot_bind() -> None:
    with (
        syncws.WebSocketServer(syncws.testing.echo, "127.0.0.1", 0, reuse_port=True) as first,
        pytest.raises(OSError),
    ):
        syncws.WebSocketServer(syncws.testing.echo, "127.0.0.1", first.port)


def test_reuse_port_is_for_host_and_port_only() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        with pytest.raises(ValueError, match="reuse_port cannot be given with sock"):
            syncws.WebSocketServer(syncws.testing.echo, sock=sock, reuse_port=True)
    with pytest.raises(ValueError, match="reuse_port cannot be given with unix_path"):
        syncws.WebSocketServer(syncws.testing.echo, unix_path="/nonexistent/x", reuse_port=True)


def test_reuse_port_where_the_platform_lacks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(socket, "SO_REUSEPORT")
    with pytest.raises(ValueError, match="SO_REUSEPORT"):
        syncws.WebSocketServer(syncws.testing.echo, "127.0.0.1", 0, reuse_port=True)


@pytest.mark.parametrize("workers", [0, -1, True, 1.5])
def test_bad_workers(workers: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        syncws.serve_websocket(syncws.testing.echo, "127.0.0.1", 0, workers=workers)  # type: ignore[arg-type]


def test_workers_with_a_unix_socket_is_refused() -> None:
    with pytest.raises(ValueError, match="unix_path"):
        syncws.serve_websocket(syncws.testing.echo, unix_path="/nonexistent/x", workers=2)


# --------------------------------------------------------------------- workers


def test_connections_spread_over_the_workers(supervisor: Supervisor) -> None:
    pids = {worker_of(supervisor.url) for _ in range(SPREAD)}
    assert pids == supervisor.pids
    assert os.getpid() not in pids and supervisor.child.proc.pid not in pids


def test_a_killed_worker_is_started_again(supervisor: Supervisor) -> None:
    victim = min(supervisor.pids)
    os.kill(victim, signal.SIGKILL)
    supervisor.child.wait_line(rf"worker \d+ \(pid {victim}\) died \(signal 9\)")
    replacement = supervisor.next_worker()
    assert replacement not in supervisor.pids
    survivors = (supervisor.pids - {victim}) | {replacement}
    pids = {worker_of(supervisor.url) for _ in range(SPREAD)}
    assert pids == survivors
    wait_for(lambda: gone(victim), what="the killed worker reaped")


# Ctrl-C of a pool: tests/test_examples.py (workers.py), by default; here under -m slow.
@pytest.mark.parametrize(
    "signum",
    [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)],
    ids=["sigterm", "ctrl-c"],
)
def test_a_signal_stops_every_worker_gracefully(supervisor: Supervisor, signum: int) -> None:
    clients = [
        syncws.connect(supervisor.url, connect_timeout=WAIT, disconnect_timeout=WAIT)
        for _ in range(SPREAD // 4)
    ]
    try:
        served_by = {int(ws.get_message(timeout=WAIT)) for ws in clients}
        assert served_by <= supervisor.pids
        supervisor.child.proc.send_signal(signum)
        assert {close_code(ws) for ws in clients} == {1001}
        assert supervisor.child.wait(WAIT) == 0, supervisor.child.errors
    finally:
        for ws in clients:
            ws.close()
    assert "serve_websocket returned" in supervisor.child.output
    no_traceback(supervisor.child)
    for pid in supervisor.pids:
        wait_for(lambda pid=pid: gone(pid), what=f"worker {pid} gone")


def test_a_second_signal_hurries_workers_stuck_in_handlers() -> None:
    # disconnect_timeout=60: only the second SIGTERM can make the supervisor exit in time.
    child = ChildProcess(SUPERVISOR, "60", "stuck")
    try:
        started = Supervisor(child)
    except BaseException:
        child.stop()
        raise
    try:
        with syncws.connect(started.url, connect_timeout=WAIT) as ws:
            ws.get_message(timeout=WAIT)
            child.proc.send_signal(signal.SIGTERM)
            child.wait_line(r"waiting up to 60 s for 1 handler")
            child.proc.send_signal(signal.SIGTERM)
            assert child.wait(WAIT) == 0, child.errors
        assert re.search(r"interrupted again|killing", child.errors), child.errors
        for pid in started.pids:
            wait_for(lambda pid=pid: gone(pid), what=f"worker {pid} gone")
    finally:
        started.stop()


def test_workers_stop_when_the_supervisor_is_killed(supervisor: Supervisor) -> None:
    with syncws.connect(supervisor.url, connect_timeout=WAIT) as ws:
        ws.get_message(timeout=WAIT)
        os.kill(supervisor.child.proc.pid, signal.SIGKILL)
        supervisor.child.wait(WAIT)
        assert close_code(ws) == 1001  # The worker saw its supervisor go and shut down.
    for pid in supervisor.pids:
        wait_for(lambda pid=pid: gone(pid), timeout=WAIT + MARGIN, what=f"worker {pid} gone")


# ------------------------------------------------------------------------- CLI


def test_cli_serve_with_workers() -> None:
    def pids() -> list[int]:
        return [int(p) for p in re.findall(r"worker \d+ listening \(pid (\d+)\)", server.errors)]

    with ServeCli("serve", "--port", "0", "--workers", "2") as server:
        wait_for(lambda: len(pids()) == 2, what="two workers logged")
        try:
            with syncws.connect(server.url, connect_timeout=WAIT, disconnect_timeout=WAIT) as ws:
                ws.send_message("over a worker")
                assert ws.get_message(timeout=WAIT) == "over a worker"
                server.proc.send_signal(signal.SIGTERM)
                assert close_code(ws) == 1001
            assert server.wait() == 0, server.errors
        finally:
            for pid in pids():
                kill(pid)
    lines = server.output.splitlines()
    assert len(lines) == 1 and re.match(LISTENING, lines[0]), lines  # printed once
    no_traceback(server)
    for pid in pids():
        wait_for(lambda pid=pid: gone(pid), what=f"worker {pid} gone")


def test_workers_share_a_socket_given_with_sock() -> None:
    # Outside Linux the workers accept from one socket; sock= takes that path here too.
    child = ChildProcess(SUPERVISOR, str(WAIT), "echo", "sock")
    try:
        pool = Supervisor(child)
        try:
            clients = [
                syncws.connect(pool.url, connect_timeout=WAIT, disconnect_timeout=WAIT)
                for _ in range(SPREAD)
            ]
            try:
                served = {int(ws.get_message(timeout=WAIT)) for ws in clients}
                assert served <= pool.pids, (served, pool.pids)
                clients[0].send_message("through the shared socket")
                assert clients[0].get_message(timeout=WAIT) == "through the shared socket"
                child.proc.send_signal(signal.SIGTERM)
                assert {close_code(ws) for ws in clients} == {1001}
            finally:
                for ws in clients:
                    ws.close()
            assert child.wait() == 0, child.stderr
        finally:
            pool.stop()
    finally:
        child.stop()
    for pid in pool.seen:
        wait_for(lambda pid=pid: gone(pid), what=f"worker {pid} gone")
