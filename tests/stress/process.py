"""The stress server (``server_main.py``) in a child process, seen from the test process.

Used by the stress tests and by the quick tests of ``tests/server/test_server_process.py``.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from helpers import ROOT, WAIT, checkout_env

import syncws

#: Bound of one blocking call while the server is under load.
LOADED = 3 * WAIT
#: The server's disconnect_timeout, so that its shutdown is always bounded.
SERVER_DISCONNECT = WAIT / 2


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) that process ``pid`` has used, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # utime and stime: fields 14 and 15 of proc(5), in clock ticks.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServerProcess:
    """``python -m tests.stress.server_main`` in a child process.

    The child serves until its standard input is closed; :meth:`stop` closes it,
    waits (bounded), and kills the child if it is still running. :meth:`command`
    sends it a command line and returns its answer; :meth:`log_lines` reads what it
    logged so far.
    """

    def __init__(self, mode: str, *options: str) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        command = [sys.executable, "-m", "tests.stress.server_main", "--mode", mode]
        command += ["--disconnect-timeout", str(SERVER_DISCONNECT), *options]
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=checkout_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.returncode: int | None = None
        self.stopped = False
        self.errors = ""
        self._output = b""
        try:
            words = self._read_line(WAIT).split()
            assert words[:1] == [b"PORT"], f"unexpected first line: {words!r}"
            self.port = int(words[1])
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_line(self, timeout: float) -> bytes:
        """The next line of the child's standard output (bounded wait)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._output:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(remaining, 0.0))
            chunk = os.read(fd, 4096) if readable else b""
            if not chunk:
                raise AssertionError(
                    f"no line from the server process: {self._output!r}; {self.log_lines()}"
                )
            self._output += chunk
        line, self._output = self._output.split(b"\n", 1)
        return line

    def command(self, text: str, timeout: float = WAIT) -> str:
        """Send one command line (see server_main.py); return the line it answers."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()
        return self._read_line(timeout).decode()

    def log_lines(self) -> list[str]:
        """What the child logged to standard error so far, line by line."""
        if self._stderr.closed:
            return self.errors.splitlines()
        return os.pread(self._stderr.fileno(), 1 << 24, 0).decode(errors="replace").splitlines()

    def url(self, resource: str) -> str:
        return f"ws://127.0.0.1:{self.port}{resource}"

    def stats(self) -> dict[str, Any]:
        """The server's current figures (the /stats connection included)."""
        with syncws.connect(
            self.url("/stats"), connect_timeout=LOADED, disconnect_timeout=WAIT
        ) as ws:
            figures: dict[str, Any] = json.loads(ws.get_message(timeout=LOADED))
        return figures

    def settled_stats(self, what: str) -> dict[str, Any]:
        """Figures once only the /stats connection is open and two snapshots agree."""
        key = ("threads", "python_threads", "fds", "connections")
        previous = self.stats()
        deadline = time.monotonic() + WAIT
        while True:
            current = self.stats()
            settled = current["connections"] == 1
            if settled and all(current[k] == previous[k] for k in key):
                return current
            assert time.monotonic() < deadline, f"the server did not settle ({what}): {current}"
            previous = current

    def stats_until(self, predicate: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Poll /stats (bounded) until ``predicate`` holds; return those figures."""
        deadline = time.monotonic() + LOADED
        while True:
            figures = self.stats()
            if predicate(figures):
                return figures
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {figures}"

    def stop(self) -> None:
        """Close stdin, wait for the exit (bounded), kill if needed; keep stderr."""
        if self.stopped:
            return
        self.stopped = True
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.returncode = self.proc.wait(WAIT + SERVER_DISCONNECT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(WAIT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.seek(0)
        self.errors = self._stderr.read().decode(errors="replace")
        self._stderr.close()

    def check_clean_exit(self) -> None:
        """After :meth:`stop`: exit status 0 and nothing logged at WARNING or above."""
        assert self.returncode == 0, f"server exit status {self.returncode}: {self.errors}"
        assert self.errors == "", f"the server logged: {self.errors}"
