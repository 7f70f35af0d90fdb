"""Shared test helpers: timing scale, background calls and a websockets server."""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

#: Every duration the tests exercise is a multiple of this; raise it on slow machines.
UNIT = float(os.environ.get("SYNCWS_TEST_TIME_UNIT", "1"))
#: A short timeout that is expected to expire.
SHORT = 0.3 * UNIT
#: Slack allowed on top of a timeout before a test calls it late.
MARGIN = 1.5 * UNIT
#: Bound for waits that should succeed quickly.
WAIT = 10.0 * UNIT

#: The root of this checkout (setup.cfg, examples/, docs/).
ROOT = Path(__file__).resolve().parent.parent


def checkout_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``environ`` (default: ours) with this checkout first on PYTHONPATH.

    A child Python started with it imports this checkout's syncws (and the test
    helpers' packages under ``tests``), whether or not syncws is installed.
    """
    env = dict(os.environ if environ is None else environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


class Background:
    """Run ``fn(*args, **kwargs)`` in a thread; collect its result or exception."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.started = threading.Event()
        self.finished_at: float | None = None
        self._thread = threading.Thread(
            target=self._run, args=(fn, args, kwargs), name=f"test-bg-{fn.__name__}"
        )
        self._thread.start()
        self.started.wait(WAIT)

    def _run(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
        self.started.set()
        try:
            self.value = fn(*args, **kwargs)
        except BaseException as exc:
            self.error = exc
        finally:
            self.finished_at = time.monotonic()

    def join(self, timeout: float = WAIT) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "background call still running"

    def result(self, timeout: float = WAIT) -> Any:
        self.join(timeout)
        if self.error is not None:
            raise self.error
        return self.value

    def exception(self, timeout: float = WAIT) -> BaseException | None:
        self.join(timeout)
        return self.error

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


def off_main_thread(test: Callable[..., None]) -> Callable[..., None]:
    """Run a test's body on a thread other than the main one.

    On the main thread, where Ctrl-C can interrupt any step, ``get_message`` never
    reads the socket itself: tests of reading on the caller's thread run elsewhere.
    """

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        Background(test, *args, **kwargs).result(timeout=60)

    return run


_Made = TypeVar("_Made")


def made_for_the_test(
    make: Callable[..., _Made], stop: Callable[[_Made], object]
) -> Iterator[Callable[..., _Made]]:
    """The body of a factory fixture (``yield from`` it): the test gets a function that
    makes one (``make(*args, **kwargs)``); each one made is stopped with ``stop`` at
    teardown, the last one first."""
    made: list[_Made] = []

    def start(*args: Any, **kwargs: Any) -> _Made:
        made.append(make(*args, **kwargs))
        return made[-1]

    yield start
    for thing in reversed(made):
        stop(thing)


def wait_for(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "") -> None:
    """Poll ``predicate`` (for state that has no event to wait on) until true or timeout."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        pause.wait(0.01)


Handler = Callable[[ServerConnection, "WsServer"], None]


class _PeerServer:
    """What both test servers offer their handlers: ``release``, ``record``, ``errors``."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.release = threading.Event()
        self.record: queue.Queue[Any] = queue.Queue()
        self.errors: list[BaseException] = []

    def _call(self, arg: Any) -> None:
        try:
            self.handler(arg, self)
        except BaseException as exc:
            self.errors.append(exc)
            raise

    def get(self, timeout: float = WAIT) -> Any:
        """Next item a handler put in ``record``."""
        try:
            return self.record.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the server handler reported nothing in time") from None


class WsServer(_PeerServer):
    """A ``websockets`` threaded server on 127.0.0.1 with a port chosen by the OS.

    The handler receives the connection and this object, which offers ``release``
    (set when the server stops: handlers waiting on it must return), ``record``
    (a queue for handlers to report what they saw) and ``errors``.
    """

    def __init__(self, handler: Handler, port: int = 0, **kwargs: Any) -> None:
        kwargs.setdefault("compression", None)
        kwargs.setdefault("ping_interval", None)
        kwargs.setdefault("close_timeout", UNIT)
        kwargs.setdefault("max_size", None)
        super().__init__(handler)
        self.connected = threading.Event()
        self.server = serve(self._handle, "127.0.0.1", port, **kwargs)
        self.port = self.server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="ws-server")
        self._thread.start()

    @property
    def url(self) -> str:
        scheme = "ws"
        return f"{scheme}://127.0.0.1:{self.port}/"

    @property
    def wss_url(self) -> str:
        return f"wss://127.0.0.1:{self.port}/"

    def _handle(self, ws: ServerConnection) -> None:
        self.connected.set()
        self._call(ws)

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "websockets server thread did not stop"


# ---------------------------------------------------------------- common handlers


def echo_handler(ws: ServerConnection, srv: WsServer) -> None:
    for message in ws:
        ws.send(message)


def record_close_handler(ws: ServerConnection, srv: WsServer) -> None:
    """Record every message, then the close code and reason the client sent."""
    try:
        for message in ws:
            srv.record.put(("message", message))
    except ConnectionClosed:
        pass
    srv.record.put(("closed", ws.close_code, ws.close_reason))


def get_close(srv: WsServer) -> tuple[int | None, str | None]:
    """Skip recorded messages until the recorded close; return (code, reason)."""
    while True:
        item = srv.get()
        if item[0] == "closed":
            return item[1], item[2]


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6 = _has_ipv6_loopback()


def unused_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ a syncws server

#: Handler of a :class:`SyncwsServer`: the request and the server wrapper.
SyncwsHandler = Callable[[Any, "SyncwsServer"], None]


class SyncwsServer(_PeerServer):
    """A ``syncws.WebSocketServer`` serving in the background (its context manager form).

    Like :class:`WsServer`, the handler gets this object as second argument, with
    ``release`` (set when the test ends: handlers waiting on it must return),
    ``record`` (a queue to report what they saw) and ``errors``.
    ``disconnect_timeout`` defaults to :data:`WAIT` so a teardown is always bounded.
    """

    def __init__(
        self,
        handler: SyncwsHandler,
        host: str | None = "127.0.0.1",
        port: int = 0,
        **options: Any,
    ) -> None:
        import syncws

        options.setdefault("disconnect_timeout", WAIT)
        super().__init__(handler)
        self.host = host
        self.tls = options.get("ssl_context") is not None
        self.server = syncws.WebSocketServer(self._handle, host, port, **options)
        self.port = self.server.port
        self._stopped = False
        try:
            self.server.__enter__()
        except BaseException:
            self.server.shutdown()
            raise

    @property
    def url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/"

    def url_for(self, resource: str) -> str:
        return self.url[:-1] + resource

    def _handle(self, request: Any) -> None:
        self._call(request)

    def stop(self) -> None:
        """Release waiting handlers, then shut the server down (idempotent)."""
        if not self._stopped:
            self._stopped = True
            self.release.set()
            self.server.__exit__(None, None, None)


def echo_messages(ws: Any) -> None:
    """Send every message of the connection ``ws`` back until the peer closes."""
    from syncws import ConnectionClosed

    try:
        for message in ws:
            ws.send_message(message)
    except ConnectionClosed:
        pass


def plain_echo(request: Any) -> None:
    """A handler of a plain ``syncws.WebSocketServer``: accept, then echo every message."""
    echo_messages(request.accept())


def server_echo(request: Any, srv: SyncwsServer) -> None:
    """A :class:`SyncwsServer` handler: accept, then echo every message."""
    plain_echo(request)


def server_record_close(request: Any, srv: SyncwsServer) -> None:
    """Accept, wait for the client's close; record the reason ``get_message`` raised
    with, then the connection's ``close_reason``."""
    from syncws import ConnectionClosed

    ws = request.accept()
    try:
        ws.get_message(timeout=WAIT)
    except ConnectionClosed as exc:
        srv.record.put(exc.reason)
    else:
        srv.record.put("a message instead of the close")
    srv.record.put(ws.close_reason)


def syncws_threads() -> list[threading.Thread]:
    """Live threads started by syncws (reader and handler threads, accept loops)."""
    return [t for t in threading.enumerate() if t.name.startswith("syncws-") and t.is_alive()]


# -------------------------------------------------------------------- child processes


class ChildProcess:
    """A Python child process whose output lines are collected by two threads.

    ``wait_line(pattern)`` waits (bounded) for a line of stdout or stderr matching
    ``pattern``; with ``stdin``, ``send_line(text)`` writes a line to its standard
    input. ``stop()`` kills the child if it is still running and joins the reader
    threads; use it as a context manager (or call ``stop()`` in a ``finally``).
    """

    def __init__(self, code: str, *args: str, stdin: bool = False) -> None:
        env = checkout_env()
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT dumps every thread's stack (see wait).
        command = [sys.executable, *(["-c", code] if code else []), *args]
        self._start(command, env, stdin=stdin, name="child")

    def _start(self, command: list[str], env: dict[str, str], *, stdin: bool, name: str) -> None:
        """Start ``command`` and the threads that collect its output lines."""
        self.proc = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(
                target=self._read, args=(self.proc.stdout, self.stdout, "out"), name=f"{name}-out"
            ),
            threading.Thread(
                target=self._read, args=(self.proc.stderr, self.stderr, "err"), name=f"{name}-err"
            ),
        ]
        for reader in self._readers:
            reader.start()

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _read(self, stream: Any, store: list[str], tag: str) -> None:
        for line in stream:
            store.append(line)
            self.lines.put((tag, line))
        stream.close()

    def wait_line(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                _tag, line = self.lines.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {pattern!r} from the child; stderr: {self.stderr}"
                ) from None
            match = re.search(pattern, line)
            if match:
                return match

    def send_line(self, text: str) -> None:
        assert self.proc.stdin is not None, "started without stdin=True"
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def wait_number(self, pattern: str) -> int:
        """Wait for a line matching ``pattern``; return its first group, a whole number."""
        return int(self.wait_line(pattern).group(1))

    def wait(self, timeout: float = WAIT) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # Show where it hangs: the fault handler prints each thread's stack.
            self.proc.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(WAIT)
            for reader in self._readers:
                reader.join(WAIT)
            raise AssertionError(
                f"the child did not exit in {timeout}s; stderr:\n{self.errors}"
            ) from None
        for reader in self._readers:
            reader.join(WAIT)
        return code

    @property
    def output(self) -> str:
        return "".join(self.stdout)

    @property
    def errors(self) -> str:
        return "".join(self.stderr)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        for reader in self._readers:
            reader.join(WAIT)


#: A syncws handler for a server in a child process, as Python source: ``echo(request)``
#: sends every message back until the client closes (the program imports syncws).
CHILD_ECHO_HANDLER = """
def echo(request):
    ws = request.accept()
    try:
        for message in ws:
            ws.send_message(message)
    except syncws.ConnectionClosed:
        pass
"""

#: The line a server logs once it listens (INFO, plain ws:// on 127.0.0.1); group 1: the port.
LISTENING_ON = r"listening on ws://127\.0\.0\.1:(\d+)"


def echo_once(url: str, message: str | bytes = "x", **options: Any) -> None:
    """Connect to the echo server at ``url`` (``syncws.connect`` options: ``options``),
    send ``message``: it must come back. The connection closes normally."""
    import syncws

    with syncws.connect(url, **options) as ws:
        ws.send_message(message)
        assert ws.get_message(timeout=WAIT) == message


def ping_in_flight(ws: Any, conn: Any, payload: bytes, **options: Any) -> Background:
    """``ws.ping(payload, **options)`` in the background, returned once the raw peer
    ``conn`` received the ping (and nothing else before it)."""
    from rawpeer import OP_PING

    pinger = Background(ws.ping, payload, **options)
    frame = conn.recv_frame()
    assert (frame.opcode, frame.payload) == (OP_PING, payload), frame
    return pinger


def finish(ws: Any, conn: Any) -> None:
    """Close ``ws`` while the raw peer ``conn`` completes the closing handshake."""
    closer = Background(ws.close)
    conn.close_handshake()
    closer.result()
