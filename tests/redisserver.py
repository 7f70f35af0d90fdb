"""Debian's ``redis-server`` as a child process on a free loopback port, for the tests.

It runs in the foreground without persistence (``--save ''``, ``--appendonly no``), in
the test's temporary directory, and is stopped by its PID. Tests that use it skip where
the ``redis-server`` package (or the ``redis`` Python package) is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import WAIT, made_for_the_test, unused_port, wait_for

_PLACES = ("/usr/bin/redis-server", "/usr/sbin/redis-server")
REDIS_SERVER = shutil.which("redis-server") or next(
    (path for path in _PLACES if os.access(path, os.X_OK)), None
)


def skip_without_redis() -> None:
    """Skip the test unless both ``redis-server`` and the ``redis`` package are here."""
    if REDIS_SERVER is None:
        pytest.skip("Debian package redis-server is not installed")
    pytest.importorskip("redis", reason="the redis package (syncws[redis]) is not installed")


class RedisServer:
    """``redis-server`` listening on ``127.0.0.1:port`` (a free port unless given)."""

    def __init__(self, tmp: Path, port: int | None = None) -> None:
        skip_without_redis()
        assert REDIS_SERVER is not None
        self.port = unused_port() if port is None else port
        self.dir = tmp / f"redis-{self.port}"
        self.dir.mkdir(exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (again, on the same port) and wait until it answers PING."""
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(self._answers, WAIT, "redis-server to answer PING")
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"redis-server exited at start: {self.log()}")
        try:
            return b"+PONG" in self.command(b"PING")
        except OSError:
            return False

    def command(self, *words: bytes) -> bytes:
        """Send one command (RESP) on a connection of its own; return the raw reply."""
        request = b"*%d\r\n" % len(words) + b"".join(
            b"$%d\r\n%s\r\n" % (len(word), word) for word in words
        )
        with socket.create_connection(("127.0.0.1", self.port), WAIT) as sock:
            sock.sendall(request)
            return sock.recv(65536)

    def numsub(self, channel: str) -> int:
        """How many connections are subscribed to ``channel`` (PUBSUB NUMSUB)."""
        reply = self.command(b"PUBSUB", b"NUMSUB", channel.encode())
        return int(reply.split(b"\r\n")[-2].lstrip(b":"))

    def log(self) -> str:
        path = self.dir / "redis.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """Kill the server by its PID (SIGKILL: no goodbye to its clients)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(WAIT)

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM; SIGKILL if it does not exit in time)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(WAIT)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Factory: ``redis_server(port=None)`` -> a running ``redis-server``."""
    yield from made_for_the_test(lambda *a, **k: RedisServer(tmp_path, *a, **k), RedisServer.stop)
