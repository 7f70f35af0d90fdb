"""The server in a child process: Ctrl-C, serve_forever's KeyboardInterrupt, the CLI,
and the accept loop when the process runs out of file descriptors or threads."""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time

import pytest
from helpers import (
    CHILD_ECHO_HANDLER,
    LISTENING_ON,
    MARGIN,
    UNIT,
    WAIT,
    Background,
    ChildProcess,
    echo_once,
    wait_for,
)
from rawpeer import upgrade_request
from stress.process import ServerProcess, cpu_seconds

import syncws
from syncws import ConnectionClosed
from syncws.server import WARNING_INTERVAL

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ECHO = "import logging, sys, threading, syncws\n" + CHILD_ECHO_HANDLER

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


def ctrl_c_with_a_client(child: ChildProcess, listening: str) -> None:
    """Once ``child`` prints ``listening`` (group 1: its port), connect and echo once,
    then send SIGINT while the client waits: the client gets 1001 and the child exits 0
    without a traceback."""
    port = child.wait_number(listening)
    assert port != 0
    with syncws.connect(f"ws://127.0.0.1:{port}/", connect_timeout=WAIT) as ws:
        ws.send_message("before ctrl-c")
        assert ws.get_message(timeout=WAIT) == "before ctrl-c"
        waiter = Background(ws.get_message, WAIT)
        child.proc.send_signal(signal.SIGINT)
        error = waiter.exception()
    assert child.wait(WAIT) == 0, child.errors
    assert isinstance(error, ConnectionClosed), error
    assert error.reason.code == 1001
    assert "Traceback" not in child.errors


def test_ctrl_c_stops_serve_websocket_gracefully() -> None:
    with ChildProcess(SERVE_WEBSOCKET) as child:
        ctrl_c_with_a_client(child, LISTENING_ON)
    assert "serve_websocket returned" in child.output
    assert "KeyboardInterrupt" not in child.errors


def test_ctrl_c_in_serve_forever_shuts_down_then_propagates() -> None:
    with ChildProcess(SERVE_FOREVER) as child:
        ctrl_c_with_a_client(child, r"^port (\d+)")
    assert "KeyboardInterrupt propagated; syncws threads left: []" in child.output


def test_ctrl_c_without_clients() -> None:
    with ChildProcess(SERVE_WEBSOCKET) as child:
        port = child.wait_number(LISTENING_ON)
        # Once a client was served the accept loop is surely running; none is left.
        echo_once(f"ws://127.0.0.1:{port}/")
        child.proc.send_signal(signal.SIGINT)
        assert child.wait(WAIT) == 0, child.errors
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
    with ChildProcess(code, str(MARGIN)) as child:
        child.wait_line(LISTENING_ON)
        child.proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert child.wait(WAIT) == 0, child.errors
        elapsed = time.monotonic() - started
    assert "serve_websocket returned" in child.output
    assert "Traceback" not in child.errors
    assert elapsed < 2 * MARGIN, f"exited {elapsed:.2f}s after Ctrl-C"


def test_echo_server_command_until_ctrl_c() -> None:
    with ChildProcess(
        "", "-m", "syncws", "echo-server", "--host", "127.0.0.1", "--port", "0"
    ) as child:
        ctrl_c_with_a_client(child, LISTENING_ON)


# The demo also runs by default as `python -m syncws` without a command
# (tests/cli/test_cli_bench.py); by its name, under -m slow.
@pytest.mark.slow
def test_demo_command() -> None:
    with ChildProcess("", "-m", "syncws", "demo") as child:
        assert child.wait(3 * WAIT) == 0, child.errors
    assert "Traceback" not in child.errors
    # Three messages, each printed when sent and when received back.
    assert len(child.output.splitlines()) >= 3, child.output


# ------------------------------------------------- out of file descriptors, of threads

#: The child's soft limit on open files, and the clients that hold connections: about
#: 55 are served, the others wait in the backlog while accept() fails with EMFILE.
FD_LIMIT = 64
FD_CLIENTS = 100
#: How long the quick test watches the server while it is out of descriptors.
EPISODE = 1.0 * UNIT
#: The most CPU the child may use meanwhile, as a fraction of one core.
MAX_CPU = 0.1


def accept_trouble(server: ServerProcess) -> list[str]:
    """What the child logged at WARNING or above about accepting clients."""
    return [
        line
        for line in server.log_lines()
        if line.startswith(("WARNING", "ERROR")) and "accept" in line
    ]


def test_out_of_file_descriptors_the_accept_loop_backs_off() -> None:
    # With RLIMIT_NOFILE 64 and 100 clients, accept() fails with EMFILE while the
    # listener stays readable: the accept loop used to spin on it (a whole core,
    # thousands of ERROR lines a second). It stops watching the listener for a
    # while instead, warns once, and accepts again once descriptors are free.
    server = ServerProcess("echo", "--max-fds", str(FD_LIMIT), "--log-level", "INFO")
    socks: list[socket.socket] = []
    try:
        request = upgrade_request(f"127.0.0.1:{server.port}", "/echo")
        for _ in range(FD_CLIENTS):
            socks.append(socket.create_connection(("127.0.0.1", server.port), WAIT))
            socks[-1].sendall(request)
        wait_for(lambda: accept_trouble(server), what="the server to run out of descriptors")
        cpu_before, started = cpu_seconds(server.pid), time.monotonic()
        threading.Event().wait(EPISODE)  # the window measured
        cpu = (cpu_seconds(server.pid) - cpu_before) / (time.monotonic() - started)
        assert cpu < MAX_CPU, f"the server used {cpu:.0%} of a core while out of descriptors"
        trouble = accept_trouble(server)
        assert len(trouble) <= 1 + (EPISODE + MARGIN) / WARNING_INTERVAL, trouble
        assert all(line.startswith("WARNING") for line in trouble), trouble
        while socks:
            socks.pop().close()
        echo_once(
            server.url("/echo"), "still serving", connect_timeout=WAIT
        )  # served once descriptors are free
        wait_for(
            lambda: any("accepting clients again" in line for line in server.log_lines()),
            what="the server to log that it accepts again",
        )
    finally:
        for sock in socks:
            sock.close()
        server.stop()
    assert server.returncode == 0, server.errors
    assert "Traceback" not in server.errors


#: Clients refused while no thread can start.
REFUSED_CLIENTS = 10


def test_a_thread_that_cannot_start_refuses_its_client_and_the_server_goes_on() -> None:
    # Thread.start() raising RuntimeError (a container's memory or pids limit) used to
    # end the accept loop: a server in a with block kept its listener open and new
    # clients hung in the backlog. Now each such client gets a 503, one warning is
    # logged, and the server serves normally once threads start again.
    server = ServerProcess("echo", "--log-level", "INFO")
    try:
        answer = server.command("threads off")
        if answer != "threads off":
            pytest.skip(f"cannot make Thread.start() fail here: {answer}")
        for _ in range(REFUSED_CLIENTS):
            with pytest.raises(syncws.ConnectionRejected) as excinfo:
                syncws.connect(server.url("/echo"), connect_timeout=WAIT)
            assert excinfo.value.status_code == 503
        assert server.command("threads on") == "threads on"
        echo_once(server.url("/echo"), "still serving", connect_timeout=WAIT)
        wait_for(
            lambda: any("threads start again" in line for line in server.log_lines()),
            what="the server to log that threads start again",
        )
    finally:
        server.stop()
    assert server.returncode == 0, server.errors
    warnings = [line for line in server.errors.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, warnings
    assert "cannot start a thread" in warnings[0]
    assert "ERROR" not in server.errors
    assert "Traceback" not in server.errors
