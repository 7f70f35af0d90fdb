"""Benchmark servers, each in a process of its own: ``python -m benchmarks.servers LIB``.

The server prints ``PORT <n>`` once it listens on 127.0.0.1, then serves until its
standard input is closed. Every server runs the same :func:`serve_loop`: echo each
message, except that a short ``count N`` message makes it read N messages without
answering and then send ``done`` (the pipelined workload).

``compression`` is ``False`` (off), ``True`` (permessage-deflate asked for explicitly)
or ``None``: no compression argument at all, so that the library's own default applies
(websockets: permessage-deflate with its default settings; syncws: off).

The parent side is :class:`ServerProcess`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from . import HOST, MAX_SIZE, ROOT, TIMEOUT
from .sysinfo import raise_fd_limit

SERVER_LIBS = ("syncws", "websockets", "simple-websocket", "raw-tcp")
_COUNT = ("count ", b"count ")

Recv = Callable[[], Any]
Send = Callable[[Any], None]


def serve_loop(recv: Recv, send: Send) -> None:
    """Echo messages until the connection ends (the caller catches the library's error)."""
    while True:
        message = recv()
        if len(message) <= 16 and message[:6] in _COUNT:
            for _ in range(int(message[6:])):
                recv()
            send("done" if isinstance(message, str) else b"done")
        else:
            send(message)


def _background(target: Callable[[], object]) -> None:
    threading.Thread(target=target, name="accept-loop", daemon=True).start()


#: What to call before the process exits (a worker pool's shutdown).
_CLEANUPS: list[Callable[[], object]] = []


def start_syncws(compression: bool | None, workers: int = 1) -> int:
    import syncws

    def handler(request: syncws.WebSocketRequest) -> None:
        ws = request.accept()
        with contextlib.suppress(syncws.ConnectionClosed):
            serve_loop(ws.get_message, ws.send_message)

    options: Any = {
        "max_message_size": MAX_SIZE,
        "ping_interval": None,  # no keepalive, like every library here
    }
    if compression is not None:  # None: syncws's default
        options["compression"] = "deflate" if compression else None
    if workers > 1:
        # The workers serve by themselves once started; stopped before the exit.
        pool = syncws.WorkerPool(handler, HOST, 0, workers=workers, **options)
        pool.start()
        _CLEANUPS.append(lambda: pool.shutdown(1.0))
        return pool.port
    server = syncws.WebSocketServer(handler, HOST, 0, **options)
    server.__enter__()  # serves in a background thread until the process exits
    return server.port


def start_websockets(compression: bool | None) -> int:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.server import ServerConnection, serve

    def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            serve_loop(ws.recv, ws.send)

    options: dict[str, Any] = {}
    if compression is not None:  # None: websockets' default: permessage-deflate
        options["compression"] = "deflate" if compression else None
    server = serve(handler, HOST, 0, ping_interval=None, max_size=MAX_SIZE, **options)
    _background(server.serve_forever)
    return int(server.socket.getsockname()[1])


def _read_head(sock: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk or len(head) > 65536:
            raise ConnectionError("bad HTTP request")
        head += chunk
    return head


def _environ(head: bytes, sock: socket.socket) -> dict[str, Any]:
    """The part of a WSGI environ that simple_websocket.Server reads."""
    request_line, *lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path}
    for line in lines:
        name, _, value = line.partition(":")
        environ["HTTP_" + name.strip().upper().replace("-", "_")] = value.strip()
    environ["werkzeug.socket"] = sock  # where Werkzeug puts it; simple-websocket looks there
    return environ


def start_simple_websocket(compression: bool | None) -> int:
    """A minimal threaded HTTP server in front of simple_websocket.Server (no WSGI server)."""
    import simple_websocket

    listener = socket.create_server((HOST, 0), backlog=1024)

    def client_main(sock: socket.socket) -> None:
        try:
            sock.settimeout(TIMEOUT)
            environ = _environ(_read_head(sock), sock)
            sock.settimeout(None)
            ws = simple_websocket.Server(environ, max_message_size=MAX_SIZE)
            with contextlib.suppress(simple_websocket.ConnectionClosed):
                serve_loop(ws.receive, ws.send)
        except (OSError, ValueError):
            sock.close()

    def accept_loop() -> None:
        while True:
            sock, _ = listener.accept()
            threading.Thread(target=client_main, args=(sock,), daemon=True).start()

    _background(accept_loop)
    return int(listener.getsockname()[1])


def start_raw(compression: bool | None) -> int:
    from .rawtcp import serve_raw

    listener = socket.create_server((HOST, 0), backlog=1024)
    _background(lambda: serve_raw(listener, serve_loop))
    return int(listener.getsockname()[1])


_STARTERS: dict[str, Callable[[bool | None], int]] = {
    "syncws": start_syncws,
    "websockets": start_websockets,
    "simple-websocket": start_simple_websocket,
    "raw-tcp": start_raw,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.servers")
    parser.add_argument("lib", choices=SERVER_LIBS)
    parser.add_argument("--port", type=int, default=0, help="only 0 (a free port) is supported")
    parser.add_argument(
        "--compression",
        action="store_const",
        const=True,
        default=False,
        help="accept permessage-deflate",
    )
    parser.add_argument(
        "--default-compression",
        dest="compression",
        action="store_const",
        const=None,
        help="pass no compression option: the library's own default",
    )
    parser.add_argument("--workers", type=int, default=1, help="syncws only: worker processes")
    args = parser.parse_args()
    if args.port != 0:
        parser.error("only --port 0 is supported")
    if args.workers != 1 and args.lib != "syncws":
        parser.error("--workers is for syncws only")
    raise_fd_limit()
    if args.lib == "syncws":
        port = start_syncws(args.compression, args.workers)
    else:
        port = _STARTERS[args.lib](args.compression)
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the parent closes our stdin
    for cleanup in _CLEANUPS:
        cleanup()
    os._exit(0)  # no graceful shutdown: the parent has closed its connections


class ServerProcess:
    """Run ``python -m benchmarks.servers LIB`` as a child process (a context manager).

    ``compression``: ``False`` off, ``True`` on, ``None`` the library's default.
    """

    def __init__(self, lib: str, compression: bool | None = False, workers: int = 1) -> None:
        self.lib = lib
        command = [sys.executable, "-m", "benchmarks.servers", lib, "--port", "0"]
        if compression:
            command.append("--compression")
        elif compression is None:
            command.append("--default-compression")
        if workers != 1:
            command += ["--workers", str(workers)]
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop())
        self._proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        try:
            self.port = self._read_port()
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read_port(self) -> int:
        assert self._proc.stdout is not None
        deadline = time.monotonic() + TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(self._proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if selector.select(deadline - time.monotonic()):
                    line = self._proc.stdout.readline()
                    if line.startswith("PORT "):
                        return int(line.split()[1])
                    if not line:
                        break
        raise RuntimeError(f"{self.lib} server did not start: {self.log_tail()}")

    def log_tail(self) -> str:
        self._log.seek(0)
        return self._log.read()[-2000:].strip() or "(no output)"

    def stop(self) -> None:
        proc = self._proc
        try:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
            self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is not None:  # a failed sample: show what the server said
            sys.stderr.write(f"{self.lib} server log: {self.log_tail()}\n")
        self.stop()


if __name__ == "__main__":
    main()
