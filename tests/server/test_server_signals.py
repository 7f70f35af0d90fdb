"""SIGTERM and a second interrupt, for a server in a child process.

SIGTERM, what systemd, Docker and Kubernetes send, stops :func:`syncws.serve_websocket`
as Ctrl-C does (every client gets 1001), and the handler in place before is restored.
A second Ctrl-C (or SIGTERM) during the graceful shutdown stops waiting for handlers
that do not return.
"""

from __future__ import annotations

import signal
import socket
import sys
import time

import pytest
from helpers import (
    CHILD_ECHO_HANDLER,
    LISTENING_ON,
    MARGIN,
    WAIT,
    Background,
    ChildProcess,
    echo_once,
)
from rawpeer import OP_CLOSE, raw_client

import syncws
from syncws import ConnectionClosed

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

#: The child's preamble: SIGINT back to Python's handler (a child started in the
#: background of a shell inherits it ignored), an echo handler, and a handler that is
#: stuck in something other than syncws until the process ends.
PREAMBLE = (
    """
import logging, signal, sys, threading, syncws

signal.signal(signal.SIGINT, signal.default_int_handler)
logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(levelname)s %(name)s: %(message)s")
"""
    + CHILD_ECHO_HANDLER
    + """
def stuck(request):
    request.accept()
    print("stuck", flush=True)
    threading.Event().wait()

def elsewhere(request):
    # Each line of standard input: the signal in argv[3], delivered to this thread, not
    # to the main thread (the kernel may pick any thread for a process's signal).
    request.accept()
    print("stuck", flush=True)
    for line in sys.stdin:
        signal.pthread_kill(threading.get_ident(), int(sys.argv[3]))
    threading.Event().wait()
"""
)

SERVE_WEBSOCKET = (
    PREAMBLE
    + """
handler = {"stuck": stuck, "elsewhere": elsewhere}.get(sys.argv[1], echo)
syncws.serve_websocket(handler, "127.0.0.1", 0, disconnect_timeout=float(sys.argv[2]))
print("serve_websocket returned", flush=True)
"""
)


def start(*args: str, stdin: bool = False) -> tuple[ChildProcess, int]:
    child = ChildProcess(SERVE_WEBSOCKET, *args, stdin=stdin)
    try:
        port = child.wait_number(LISTENING_ON)
    except BaseException:
        child.stop()
        raise
    return child, port


def test_sigterm_closes_every_client_with_1001_and_exits_0() -> None:
    child, port = start("echo", str(WAIT))
    try:
        url = f"ws://127.0.0.1:{port}/"
        with syncws.connect(url) as first, syncws.connect(url) as second:
            for ws in (first, second):
                ws.send_message("before SIGTERM")
                assert ws.get_message(timeout=WAIT) == "before SIGTERM"
            waiters = [Background(ws.get_message, WAIT) for ws in (first, second)]
            child.proc.send_signal(signal.SIGTERM)
            errors = [waiter.exception() for waiter in waiters]
        assert child.wait() == 0, child.errors
    finally:
        child.stop()
    for error in errors:
        assert isinstance(error, ConnectionClosed), error
        assert error.reason.code == 1001
    assert "serve_websocket returned" in child.output
    assert "Traceback" not in child.errors
    assert "KeyboardInterrupt" not in child.errors


# The two signals cross between this test and test_a_second_interrupt_stops_waiting_for_
# a_stuck_handler: by default SIGTERM goes to a handler thread here and Ctrl-C to the
# main thread there, each signal twice; the other two combinations run under -m slow.
@pytest.mark.parametrize(
    "signum",
    [pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGTERM],
    ids=["ctrl-c", "sigterm"],
)
def test_signals_delivered_to_another_thread_are_not_missed(signum: int) -> None:
    # The kernel delivers a process's signal to any thread that does not block it.
    # Landing on a handler thread, the first one must still wake the accept loop (it
    # waits in select() with no timeout), and the second one the wait for handlers.
    child, port = start("elsewhere", "60", str(int(signum)), stdin=True)
    try:
        client = raw_client(port)
        try:
            child.wait_line("^stuck$")
            child.send_line("signal")
            child.wait_line("waiting up to 60 s for 1 handler; .* to exit now$")
            assert client.recv_frame(WAIT).opcode == OP_CLOSE  # 1001, not answered
            child.send_line("signal")
            assert child.wait() == 0, child.errors
        finally:
            client.close()
    finally:
        child.stop()
    assert "aborted 1 connection; 1 handler left running" in child.errors
    assert "serve_websocket returned" in child.output


RESTORED = (
    PREAMBLE
    + """
def own(signum, frame):
    print("own handler", signum, flush=True)
    sys.exit(0)

previous = own if sys.argv[1] == "own" else signal.SIG_IGN
signal.signal(signal.SIGTERM, previous)
syncws.serve_websocket(echo, "127.0.0.1", 0, disconnect_timeout=5)
print("restored:", signal.getsignal(signal.SIGTERM) is previous, flush=True)
print("waiting", flush=True)
threading.Event().wait(float(sys.argv[2]))
print("wait over", flush=True)
"""
)


def test_the_previous_sigterm_handler_is_restored() -> None:
    with ChildProcess(RESTORED, "own", str(WAIT)) as child:
        url = f"ws://127.0.0.1:{child.wait_number(LISTENING_ON)}/"
        echo_once(url)  # The accept loop runs.
        child.proc.send_signal(signal.SIGTERM)  # serve_websocket's handler: it returns.
        child.wait_line("^waiting$")
        child.proc.send_signal(signal.SIGTERM)  # The program's own handler again.
        assert child.wait() == 0, child.errors
    assert "serve_websocket returned" not in child.output
    assert "restored: True" in child.output
    assert "own handler 15" in child.output
    assert "wait over" not in child.output
    assert "Traceback" not in child.errors


def test_an_ignored_sigterm_stays_ignored() -> None:
    with ChildProcess(RESTORED, "ignored", "0") as child:
        url = f"ws://127.0.0.1:{child.wait_number(LISTENING_ON)}/"
        echo_once(url)
        child.proc.send_signal(signal.SIGTERM)  # Discarded by the kernel at once.
        echo_once(url)  # Still serving.
        child.proc.send_signal(signal.SIGINT)
        assert child.wait() == 0, child.errors
    assert "restored: True" in child.output
    assert "wait over" in child.output
    assert "Traceback" not in child.errors


@pytest.mark.parametrize(
    "signum",
    [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
    ids=["ctrl-c", "sigterm"],
)
def test_a_second_interrupt_stops_waiting_for_a_stuck_handler(signum: int) -> None:
    # The handler never returns and the client never answers the close frame: the
    # first interrupt would wait the whole disconnect_timeout (a minute); the second
    # one aborts the connection and serve_websocket returns at once.
    child, port = start("stuck", "60")
    try:
        client = raw_client(port)
        try:
            child.wait_line("^stuck$")
            child.proc.send_signal(signum)
            again = "press Ctrl-C again" if signum == signal.SIGINT else "send SIGTERM again"
            child.wait_line(f"waiting up to 60 s for 1 handler; {again} to exit now$")
            assert client.recv_frame(WAIT).opcode == OP_CLOSE  # 1001, not answered
            started = time.monotonic()
            child.proc.send_signal(signum)
            assert child.wait() == 0, child.errors
            elapsed = time.monotonic() - started
            client.wait_eof(WAIT)  # Aborted.
        finally:
            client.close()
    finally:
        child.stop()
    assert elapsed < 2 * MARGIN, f"exited {elapsed:.2f}s after the second interrupt"
    assert "aborted 1 connection; 1 handler left running" in child.errors
    assert "serve_websocket returned" in child.output
    assert "Traceback" not in child.errors


SERVE_FOREVER = (
    PREAMBLE
    + """
server = syncws.WebSocketServer(stuck, "127.0.0.1", 0, disconnect_timeout=60)
print("port", server.port, flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    print("KeyboardInterrupt; cut short:", server.shutdown_cut_short, flush=True)
"""
)


def test_serve_forever_after_a_second_ctrl_c() -> None:
    with ChildProcess(SERVE_FOREVER) as child:
        port = child.wait_number(r"^port (\d+)")
        with syncws.connect(f"ws://127.0.0.1:{port}/", disconnect_timeout=WAIT) as ws:
            child.wait_line("^stuck$")
            child.proc.send_signal(signal.SIGINT)
            child.wait_line("press Ctrl-C again to exit now")
            with pytest.raises(ConnectionClosed) as caught:
                ws.get_message(timeout=WAIT)
            assert caught.value.reason.code == 1001
            child.proc.send_signal(signal.SIGINT)
            assert child.wait() == 0, child.errors
    assert "KeyboardInterrupt; cut short: True" in child.output
    assert "1 handler left running" in child.errors
    assert "Traceback" not in child.errors


def test_one_ctrl_c_without_a_stuck_handler_is_not_cut_short() -> None:
    code = SERVE_FOREVER.replace("syncws.WebSocketServer(stuck,", "syncws.WebSocketServer(echo,")
    with ChildProcess(code) as child:
        port = child.wait_number(r"^port (\d+)")
        with syncws.connect(f"ws://127.0.0.1:{port}/") as ws:
            ws.send_message("x")
            assert ws.get_message(timeout=WAIT) == "x"
            child.proc.send_signal(signal.SIGINT)
            assert child.wait() == 0, child.errors
    assert "KeyboardInterrupt; cut short: False" in child.output
    assert "waiting up to 60 s for 1 handler; press Ctrl-C again to exit now" in child.errors
    assert "interrupted again" not in child.errors
    assert "did not return" not in child.errors


def _serve_in_main_thread_until_a_client_echoes() -> None:
    server = syncws.WebSocketServer(_echo, "127.0.0.1", 0)

    def client() -> None:
        try:
            echo_once(f"ws://127.0.0.1:{server.port}/")
        finally:
            server.shutdown()

    background = Background(client)
    server.serve_forever()
    background.result()


def _echo(request: syncws.WebSocketRequest) -> None:
    ws = request.accept()
    for message in ws:
        ws.send_message(message)


def test_serve_forever_leaves_no_signal_wakeup_descriptor_behind() -> None:
    assert signal.set_wakeup_fd(-1) == -1
    _serve_in_main_thread_until_a_client_echoes()
    assert signal.set_wakeup_fd(-1) == -1


def test_serve_forever_leaves_an_event_loops_wakeup_descriptor_alone() -> None:
    reader, writer = socket.socketpair()
    with reader, writer:
        writer.setblocking(False)
        previous = signal.set_wakeup_fd(writer.fileno())
        try:
            _serve_in_main_thread_until_a_client_echoes()
            assert signal.set_wakeup_fd(previous) == writer.fileno()
        finally:
            signal.set_wakeup_fd(previous)
