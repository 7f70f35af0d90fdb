"""Both ends of a streamed message, each in a child process, for the tests.

Each end is the streaming benchmark's program, ``python -m benchmarks.streamend LIB SIDE
ACTION [options]`` (its docstring says what it does and prints): syncws or websockets,
server or client, sending a message from a generator of chunks or reading it as a
stream, counting bytes and CRC-32 and measuring its own peak RSS growth. A run that
hangs prints every thread's stack shortly before its waits give up.

:func:`run_pair` runs both ends; :class:`StreamPeer` one (stopped by its process id).
The payload functions are re-exported for the tests' own checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from benchmarks.streamend import HOST, MIB, Counter, chunks, expected_crc

__all__ = ["MIB", "Counter", "StreamPeer", "chunks", "expected_crc", "run_pair"]


# ------------------------------------------------------------------------ test side


class StreamPeer:
    """A running ``benchmarks.streamend`` child: ``stop()`` kills it if it still runs (by PID)."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        command = [sys.executable, "-m", "benchmarks.streamend", *args]
        self.proc = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
        )

    def line(self, prefix: str) -> str:
        """The rest of the next stdout line starting with ``prefix`` ('' at its end)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        return ""

    def result(self, timeout: float) -> dict[str, Any]:
        """Its ``result`` line, once it exited with status 0."""
        text = self.line("result ")
        code = self.proc.wait(timeout)
        assert code == 0 and text, f"the stream peer {self.proc.args[3:]} failed ({code})"
        value: dict[str, Any] = json.loads(text)
        return value

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, 9)
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def run_pair(
    server: tuple[str, str],
    client: tuple[str, str],
    *options: str,
    env: dict[str, str],
    timeout: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a server child (LIB, ACTION) and a client child against it; their results.

    ``options`` (``--size``, ``--chunk``...) go to both; every child is gone on return.
    """
    peers: list[StreamPeer] = []
    try:
        peers.append(StreamPeer(*server[:1], "server", *server[1:], *options, env=env))
        port = peers[0].line("listening ")
        assert port, "the stream peer server did not start"
        url = f"ws://{HOST}:{port}/"
        peers.append(
            StreamPeer(*client[:1], "client", *client[1:], "--url", url, *options, env=env)
        )
        client_result = peers[1].result(timeout)
        server_result = peers[0].result(timeout)
        return server_result, client_result
    finally:
        for peer in peers:
            peer.stop()
