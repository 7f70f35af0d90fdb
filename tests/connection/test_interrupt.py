"""Ctrl-C (SIGINT) interrupts blocking calls of a program's main thread promptly.

Each test runs a small program in a child process: it connects to a peer run by the
test, prints ``blocking`` and blocks in one call. Once the line arrived and the child's
main thread sleeps, the test sends SIGINT and checks that the child ends with
:exc:`KeyboardInterrupt` (status -SIGINT) within :data:`PROMPT` seconds, with no
traceback other than the KeyboardInterrupt's and nothing logged by syncws.
"""

from __future__ import annotations

import queue
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from helpers import UNIT, WAIT, ChildProcess, SyncwsServer, wait_for
from rawpeer import RawPeer

import syncws

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

#: How soon after SIGINT the child must have exited, in seconds.
PROMPT = 2.0 * UNIT

#: The child program: ``MODE URL``. Ctrl-C is restored to its default handler, since a
#: child inherits an ignored SIGINT when the tests run in the background of a shell.
CHILD = """
import logging, signal, sys, threading
import syncws

signal.signal(signal.SIGINT, signal.default_int_handler)
logging.basicConfig(level=logging.WARNING, format="LOGGED %(levelname)s %(name)s %(message)s")
mode, url = sys.argv[1], sys.argv[2]

def blocking():
    print("blocking", flush=True)

if mode == "serve_forever":
    server = syncws.WebSocketServer(lambda request: request.accept().close(), "127.0.0.1", 0)
    blocking()
    server.serve_forever()
elif mode == "run_forever":
    client = syncws.CallbackClient(
        url, on_open=lambda ws: blocking(), reconnect=syncws.Backoff(), disconnect_timeout=1
    )
    client.run_forever()

with syncws.connect(url, connect_timeout=10, disconnect_timeout=1) as ws:
    if mode == "get_message":  # waits for the reader thread to queue a message
        blocking()
        ws.get_message()
    elif mode == "get_message_reading":  # reads the socket itself, on this thread
        print("first:", ws.get_message(timeout=10), flush=True)
        blocking()
        ws.get_message()
    elif mode == "ping":
        blocking()
        ws.ping()
    elif mode == "send_message":
        data = b"x" * (32 << 20)  # far more than the socket buffers hold
        blocking()
        ws.send_message(data)
    elif mode == "resume":  # interrupted while reading the socket, then goes on
        print("first:", ws.get_message(timeout=10), flush=True)
        try:
            blocking()
            ws.get_message()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        print("after:", ws.get_message(timeout=10), flush=True)
        ws.close()
        print("closed:", ws.close_reason, flush=True)
        sys.exit(0)
    elif mode == "send_message_resume":  # the connection is aborted, not left half-sent
        data = b"x" * (32 << 20)
        try:
            blocking()
            ws.send_message(data)
        except KeyboardInterrupt:
            print("interrupted:", ws.is_closed, flush=True)
        ws.close()
        print("closed:", ws.close_reason, flush=True)
        sys.exit(0)
print("returned", flush=True)
"""


def main_thread_sleeps(pid: int) -> bool:
    """Whether the child's main thread is asleep in the kernel (always true without /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "S"
    except OSError:
        return True


def start(mode: str, url: str) -> ChildProcess:
    return ChildProcess(CHILD, mode, url)


def send_sigint(child: ChildProcess, ready: Callable[[], bool] = lambda: True) -> float:
    """Send SIGINT once the child blocks and ``ready()``; return when it was sent."""
    child.wait_line(r"^blocking$")
    wait_for(lambda: ready() and main_thread_sleeps(child.proc.pid), what="the child to block")
    child.proc.send_signal(signal.SIGINT)
    return time.monotonic()


def interrupt(child: ChildProcess, ready: Callable[[], bool] = lambda: True) -> float:
    """Send SIGINT once the child blocks and ``ready()``; return how long it took to exit."""
    sent = send_sigint(child, ready)
    child.wait(WAIT)
    return time.monotonic() - sent


def check_interrupted(child: ChildProcess, elapsed: float) -> None:
    """The child ended with KeyboardInterrupt, promptly, and with nothing else to report."""
    errors = child.errors
    assert child.proc.returncode == -signal.SIGINT, (child.proc.returncode, errors)
    assert errors.rstrip().endswith("KeyboardInterrupt"), errors
    assert errors.count("Traceback") == 1, errors
    assert "LOGGED" not in errors, errors
    assert "returned" not in child.output, child.output
    assert elapsed < PROMPT, f"exited {elapsed:.2f}s after SIGINT"


def hold(request: Any, srv: SyncwsServer) -> None:
    """Accept; hand the connection to the test; read until the client closes."""
    ws = request.accept()
    srv.record.put(ws)
    try:
        for _ in ws:
            pass
    except syncws.ConnectionClosed:
        pass


def test_get_message_waiting_for_the_reader_thread(syncws_server: Any) -> None:
    srv = syncws_server(hold)
    with start("get_message", srv.url) as child:
        elapsed = interrupt(child)
    check_interrupted(child, elapsed)
    assert srv.get().close_reason.code == 1001  # the with block closed on the way out: going away


def test_get_message_reading_the_socket(syncws_server: Any) -> None:
    srv = syncws_server(hold)
    with start("get_message_reading", srv.url) as child:
        srv.get().send_message("one")
        child.wait_line(r"^first: one$")
        elapsed = interrupt(child)
    check_interrupted(child, elapsed)


def test_get_message_works_after_an_interrupt(syncws_server: Any) -> None:
    """The interrupted call gave the socket back: the next call receives, then closes."""
    srv = syncws_server(hold)
    with start("resume", srv.url) as child:
        server_side = srv.get()
        server_side.send_message("one")
        child.wait_line(r"^first: one$")
        send_sigint(child)
        child.wait_line(r"^interrupted$")
        server_side.send_message("two")
        child.wait_line(r"^after: two$")
        assert child.wait(WAIT) == 0, child.errors
    assert "Traceback" not in child.errors and "LOGGED" not in child.errors, child.errors
    assert "closed: 1000" in child.output, child.output
    wait_for(lambda: server_side.close_reason is not None)
    assert server_side.close_reason.code == 1000


def test_ping_without_pong(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(auto=True, auto_pong=False)
    child = start("ping", peer.url)
    pings: queue.Queue[bool] = queue.Queue()

    def ping_seen() -> bool:
        try:
            frame = peer.frames.get_nowait()
        except queue.Empty:
            return not pings.empty()
        if frame.opcode == 0x9:
            pings.put(True)
        return not pings.empty()

    try:
        elapsed = interrupt(child, ping_seen)
    finally:
        child.stop()
    check_interrupted(child, elapsed)


def test_send_message_to_a_peer_that_does_not_read(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(rcvbuf=16384)
    with start("send_message", peer.url) as child:
        conn = peer.connection()  # and never read from
        elapsed = interrupt(child)
    conn.close()
    check_interrupted(child, elapsed)


def test_callback_client_run_forever(syncws_server: Any) -> None:
    srv = syncws_server(hold)
    with start("run_forever", srv.url) as child:
        server_side = srv.get()
        elapsed = interrupt(child)
    check_interrupted(child, elapsed)
    wait_for(lambda: server_side.close_reason is not None)
    assert server_side.close_reason.code == 1001  # going away


def test_serve_forever() -> None:
    with start("serve_forever", "") as child:
        elapsed = interrupt(child)
    check_interrupted(child, elapsed)


def test_send_message_interrupted_aborts_the_connection(raw_peer: Callable[..., RawPeer]) -> None:
    """Part of the message may be on the wire: the connection ends (1006), at once."""
    peer = raw_peer(rcvbuf=16384)
    with start("send_message_resume", peer.url) as child:
        conn = peer.connection()
        elapsed = interrupt(child)
    conn.close()
    assert child.proc.returncode == 0, child.errors
    assert "Traceback" not in child.errors and "LOGGED" not in child.errors, child.errors
    assert "interrupted: True" in child.output, child.output
    assert "closed: 1006 (ABNORMAL_CLOSURE): send interrupted" in child.output
    assert elapsed < PROMPT, f"exited {elapsed:.2f}s after SIGINT"
