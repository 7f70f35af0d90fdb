"""Running ``python -m syncws`` in child processes: through pipes or on a terminal."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from typing import Any

from helpers import WAIT, ChildProcess, checkout_env

#: An ANSI escape sequence (colours, cursor moves).
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: The timestamp of a line on a terminal.
TIMESTAMP = re.compile(r"\d\d:\d\d:\d\d\.\d\d\d")
#: The line ``serve`` prints for each listening socket.
LISTENING = r"^listening on (wss?://127\.0\.0\.1:\d+/)$"


def child_env() -> dict[str, str]:
    """The environment of a child: this checkout first on the path, output unbuffered."""
    env = checkout_env()
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("NO_COLOR", None)
    return env


class Cli(ChildProcess):
    """``python -m syncws ARGS`` with standard input a pipe the test writes to.

    Like :class:`helpers.ChildProcess`: ``wait_line``, ``wait``, ``output``,
    ``errors``; a context manager that stops the child at the end.
    """

    def __init__(self, *args: str, program: str | None = None) -> None:
        command = [program] if program else [sys.executable, "-m", "syncws"]
        self._start([*command, *args], child_env(), stdin=True, name="cli")

    def write(self, text: str) -> None:
        """Write ``text`` to the child's standard input."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        """End the child's input."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        super().stop()


class ServeCli(Cli):
    """``python -m syncws serve ARGS``; ``url`` is what it printed it listens on."""

    def __init__(self, *args: str) -> None:
        super().__init__(*args)
        try:
            self.url = self.wait_line(LISTENING).group(1)
        except BaseException:
            self.stop()
            raise


class Terminal:
    """``python -m syncws ARGS`` on a pseudo-terminal; what it writes is collected.

    ``expect(pattern)`` waits for ``pattern`` in the output so far (escape sequences
    included); ``write`` types into the terminal. A context manager that stops the
    child at the end.
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        import pty

        master, slave = pty.openpty()
        self._master = master
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "syncws", *args],
                env={**child_env(), **(env or {})},
                stdin=slave,
                stdout=slave,
                stderr=slave,
                close_fds=True,
            )
        finally:
            os.close(slave)
        self._output = bytearray()
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="cli-pty")
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 4096)
            except OSError:  # EIO: the child's side is closed.
                data = b""
            with self._changed:
                if not data:
                    self._changed.notify_all()
                    return
                self._output += data
                self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return self._output.decode("utf-8", "replace")

    def expect(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                match = re.search(pattern, self._output.decode("utf-8", "replace"))
                if match:
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._reader.is_alive():
                    raise AssertionError(f"{pattern!r} not in the terminal: {self.output!r}")
                self._changed.wait(remaining)

    def write(self, data: bytes) -> None:
        os.write(self._master, data)

    def wait(self, timeout: float = WAIT) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(WAIT)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        self._reader.join(WAIT)
        os.close(self._master)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def no_traceback(child: Any) -> None:
    """Assert that the child printed no traceback."""
    assert "Traceback" not in child.errors, child.errors
