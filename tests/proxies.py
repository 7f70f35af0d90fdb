"""Real proxies for the tests, on loopback: tinyproxy (HTTP CONNECT) and pproxy (SOCKS, https).

Each runs as a child process on a free port, its output copied to a log file in the
test's temporary directory by a thread that also reports its "ready" line; it is stopped
by its PID (SIGTERM, then SIGKILL if it does not exit in time).
"""

from __future__ import annotations

import queue
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import WAIT, checkout_env, unused_port

TINYPROXY = shutil.which("tinyproxy")


class ProxyProcess:
    """A proxy server in a child process; ``ready`` is the line it prints once listening."""

    def __init__(self, argv: list[str], ready: str, log: Path) -> None:
        self.log = log
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=checkout_env(),
        )
        self._reader = threading.Thread(target=self._copy, name=f"log-{Path(argv[0]).name}")
        self._reader.start()
        try:
            self._wait_ready(re.compile(ready))
        except BaseException:
            self.stop()
            raise

    def _copy(self) -> None:
        assert self._process.stdout is not None
        with self.log.open("a", encoding="utf-8") as out:
            for line in self._process.stdout:
                out.write(line)
                out.flush()
                self._lines.put(line)
        self._lines.put(None)

    def _wait_ready(self, pattern: re.Pattern[str]) -> None:
        while True:
            try:
                line = self._lines.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"the proxy did not start: {self.text()}") from None
            if line is None:
                raise AssertionError(f"the proxy exited at start: {self.text()}")
            if pattern.search(line):
                return

    def text(self) -> str:
        """What the proxy printed so far."""
        return self.log.read_text(encoding="utf-8") if self.log.exists() else ""

    def stop(self) -> None:
        """Stop the child by its PID and wait for it and for the log copier."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(WAIT)
        self._reader.join(WAIT)
        assert self._process.stdout is not None
        self._process.stdout.close()


class Tinyproxy(ProxyProcess):
    """tinyproxy in the foreground, allowed to CONNECT to ``ports`` only."""

    def __init__(
        self, tmp: Path, ports: list[int], credentials: tuple[str, str] | None = None
    ) -> None:
        if TINYPROXY is None:
            pytest.skip("Debian package tinyproxy is not installed")
        self.port = unused_port()
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Allow 127.0.0.1",
            "Timeout 60",
            "MaxClients 50",
            "LogLevel Info",
            "DisableViaHeader Yes",
            *(f"ConnectPort {port}" for port in ports),
        ]
        if credentials is not None:
            lines.append(f"BasicAuth {credentials[0]} {credentials[1]}")
        config = tmp / f"tinyproxy-{self.port}.conf"
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        # No LogFile: in the foreground (-d) tinyproxy logs to its standard output,
        # which ProxyProcess copies to the log file.
        super().__init__(
            [TINYPROXY, "-d", "-c", str(config)],
            r"Accepting connections",
            tmp / f"tinyproxy-{self.port}.log",
        )

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}"


class Pproxy(ProxyProcess):
    """pproxy listening with ``scheme`` (``socks5``, ``socks4``, ``http+ssl``, ...).

    :param credentials: a user name and password the clients must give.
    :param pem: for ``+ssl`` schemes, the proxy's certificate chain and key (one file).
    """

    def __init__(
        self,
        tmp: Path,
        scheme: str,
        credentials: tuple[str, str] | None = None,
        pem: Path | None = None,
    ) -> None:
        pytest.importorskip("pproxy")
        self.port = unused_port()
        listen = f"{scheme}://127.0.0.1:{self.port}"
        if credentials is not None:
            listen += f"#{credentials[0]}:{credentials[1]}"
        # --auth -1: ask every connection for the credentials (by default pproxy lets
        # an address that authenticated once in without them for 30 days).
        argv = [sys.executable, "-u", "-m", "pproxy", "-l", listen, "--auth", "-1"]
        if pem is not None:
            argv += ["--ssl", str(pem)]
        super().__init__(argv, r"Serving on", tmp / f"pproxy-{self.port}.log")
