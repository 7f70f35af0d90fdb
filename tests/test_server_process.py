"""The server in a child process: Ctrl-C, serve_forever's KeyboardInterrupt, the CLI."""

from __future__ import annotations

import signal
import sys
import time

import pytest
from helpers import MARGIN, WAIT, Background, ChildProcess

import syncws
from syncws import ConnectionClosed

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ECHO = """
import logging, sys, threading, syncws

def echo(request):
    ws = request.accept()
    try:
        for message in ws:
            ws.send_message(message)
    except syncws.ConnectionClosed:
        pass
"""

SERVE_WEBSOCKET = (
    ECHO
    + """
logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(levelname)s %(name)s: %(message)s")
syncws.serve_websocket(echo, "127.0.0.1", 0, disconnect_timeout=5)
print("serve_websocket returned", flush=True)
"""
)

SERVE_FOREVER = (
    ECHO
    + """
server = syncws.WebSocketServer(echo, "127.0.0.1", 0, disconnect_timeout=5)
print("port", server.port, flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    left = sorted(t.name for t in threading.enumerate() if t.name.startswith("syncws-"))
    print("KeyboardInterrupt propagated; syncws threads left:", left, flush=True)
else:
    print("serve_forever returned normally", flush=True)
"""
)

LISTENING = r"listening on ws://127\.0\.0\.1:(\d+)"


def interrupt_with_client(child: ChildProcess, port: int) -> BaseException | None:
    """Connect, echo once, send SIGINT while the client waits; return what the wait raised."""
    with syncws.connect(f"ws://127.0.0.1:{port}/", connect_timeout=WAIT) as ws:
        ws.send_message("before ctrl-c")
        assert ws.get_message(timeout=WAIT) == "before ctrl-c"
        waiter = Background(ws.get_message, WAIT)
        child.proc.send_signal(signal.SIGINT)
        return waiter.exception()


def test_ctrl_c_stops_serve_websocket_gracefully() -> None:
    child = ChildProcess(SERVE_WEBSOCKET)
    try:
        port = int(child.wait_line(LISTENING).group(1))
        assert port != 0
        error = interrupt_with_client(child, port)
        assert child.wait(WAIT) == 0, child.errors
    finally:
        child.stop()
    assert isinstance(error, ConnectionClosed), error
    assert error.reason.code == 1001
    assert "serve_websocket returned" in child.output
    assert "Traceback" not in child.errors
    assert "KeyboardInterrupt" not in child.errors


def test_ctrl_c_in_serve_forever_shuts_down_then_propagates() -> None:
    child = ChildProcess(SERVE_FOREVER)
    try:
        port = int(child.wait_line(r"^port (\d+)").group(1))
        error = interrupt_with_client(child, port)
        assert child.wait(WAIT) == 0, child.errors
    finally:
        child.stop()
    assert isinstance(error, ConnectionClosed), error
    assert error.reason.code == 1001
    assert "KeyboardInterrupt propagated; syncws threads left: []" in child.output
    assert "Traceback" not in child.errors


def test_ctrl_c_without_clients() -> None:
    child = ChildProcess(SERVE_WEBSOCKET)
    try:
        port = int(child.wait_line(LISTENING).group(1))
        # Once a client was served the accept loop is surely running; none is left.
        with syncws.connect(f"ws://127.0.0.1:{port}/") as ws:
            ws.send_message("x")
            assert ws.get_message(timeout=WAIT) == "x"
        child.proc.send_signal(signal.SIGINT)
        assert child.wait(WAIT) == 0, child.errors
    finally:
        child.stop()
    assert "serve_websocket returned" in child.output
    assert "Traceback" not in child.errors


def test_ctrl_c_while_the_start_is_being_logged() -> None:
    """Ctrl-C at any moment of serve_forever, even before the accept loop runs, is prompt.

    A logging handler that dawdles on the "listening on" record holds serve_forever
    there, and the interrupt lands inside the logging call.
    """
    code = (
        ECHO
        + """
class SlowStart(logging.StreamHandler):
    def emit(self, record):
        super().emit(record)
        self.flush()
        if "listening on" in record.getMessage():
            threading.Event().wait(5)  # the SIGINT arrives in here

logging.getLogger("syncws").addHandler(SlowStart(sys.stderr))
logging.getLogger("syncws").setLevel(logging.INFO)
syncws.serve_websocket(echo, "127.0.0.1", 0, disconnect_timeout=3 * float(sys.argv[1]))
print("serve_websocket returned", flush=True)
"""
    )
    child = ChildProcess(code, str(MARGIN))
    try:
        child.wait_line(LISTENING)
        child.proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert child.wait(WAIT) == 0, child.errors
        elapsed = time.monotonic() - started
    finally:
        child.stop()
    assert "serve_websocket returned" in child.output
    assert "Traceback" not in child.errors
    assert elapsed < 2 * MARGIN, f"exited {elapsed:.2f}s after Ctrl-C"


def test_echo_server_command_until_ctrl_c() -> None:
    child = ChildProcess("", "-m", "syncws", "echo-server", "--host", "127.0.0.1", "--port", "0")
    try:
        port = int(child.wait_line(LISTENING).group(1))
        error = interrupt_with_client(child, port)
        assert child.wait(WAIT) == 0, child.errors
    finally:
        child.stop()
    assert isinstance(error, ConnectionClosed), error
    assert error.reason.code == 1001
    assert "Traceback" not in child.errors


def test_demo_command() -> None:
    child = ChildProcess("", "-m", "syncws", "demo")
    try:
        assert child.wait(3 * WAIT) == 0, child.errors
    finally:
        child.stop()
    assert "Traceback" not in child.errors
    # Three messages, each printed when sent and when received back.
    assert len(child.output.splitlines()) >= 3, child.output
