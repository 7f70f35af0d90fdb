"""Headless Chromium for the browser tests: started, driven over DevTools, stopped.

:class:`Chromium` starts Debian's ``chromium`` in a process group of its own, with a
profile in a temporary directory, no sandbox (the tests may run as root), DevTools on a
loopback port it picks itself, and every background service that can be switched off
switched off. Name resolution is blocked (``--host-resolver-rules``), so whatever
Chromium still tries to fetch by itself fails before any packet leaves; a net log lets
the test check that afterwards (:func:`outside_loopback`).

:class:`DevTools` speaks the Chrome DevTools Protocol (JSON over a WebSocket) with
syncws's own client: commands to the browser or, with a session id, to one page.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helpers import WAIT, wait_for

import syncws

__all__ = [
    "Chromium",
    "DevTools",
    "DevToolsError",
    "find_chromium",
    "net_log_events",
    "outside_loopback",
    "spki_sha256",
    "tcp_connections",
]

#: Where Debian's package puts the browser itself; ``/usr/bin/chromium`` is a shell
#: script that adds flags and Google API keys from ``/etc/chromium.d`` before it runs it.
DEBIAN_BINARY = Path("/usr/lib/chromium/chromium")

#: Flags that keep the browser quiet: no first-run or default-browser questions, no
#: component, extension, sync, metrics, safe-browsing, time or translation traffic.
QUIET_FLAGS = [
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--no-pings",
    "--metrics-recording-only",
    "--password-store=basic",
    "--mute-audio",
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
    # Every host name resolves to nothing, so no DNS query is ever made; 127.0.0.1,
    # the only address the tests use, is an IP literal and needs no resolution.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


def find_chromium() -> str | None:
    """The browser to run: Debian's binary, or ``chromium`` on the PATH; ``None``."""
    if shutil.which("chromium") is None:
        return None
    if DEBIAN_BINARY.is_file() and os.access(DEBIAN_BINARY, os.X_OK):
        return str(DEBIAN_BINARY)
    return shutil.which("chromium")


def spki_sha256(cert_pem: bytes) -> str:
    """Base64 of the SHA-256 of a certificate's SubjectPublicKeyInfo (for
    ``--ignore-certificate-errors-spki-list``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(cert_pem).public_key()
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


class DevToolsError(AssertionError):
    """A DevTools command failed, or an awaited event did not come in time."""


class DevTools:
    """A DevTools Protocol client over a syncws connection (flat sessions).

    Events that arrive while a command waits for its answer are kept for
    :meth:`wait_event`.
    """

    def __init__(self, url: str) -> None:
        # Screenshots and results come as one JSON message each: no size limit.
        self.ws = syncws.connect(
            url, max_message_size=None, ping_interval=None, disconnect_timeout=WAIT
        )
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.ws.close()

    def _receive(self, deadline: float, what: str) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DevToolsError(f"no {what} from Chromium in time; events: {self.events}")
        try:
            message = self.ws.get_message(timeout=remaining)
        except TimeoutError:
            raise DevToolsError(f"no {what} from Chromium in time; events: {self.events}") from None
        result: dict[str, Any] = json.loads(message)
        return result

    def call(
        self, method: str, session: str | None = None, timeout: float = WAIT, **params: Any
    ) -> dict[str, Any]:
        """Send a command; return its result (raise :class:`DevToolsError` on error)."""
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            command["sessionId"] = session
        self.ws.send_message(json.dumps(command))
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline, f"answer to {method}")
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise DevToolsError(f"{method} failed: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result
            if "method" in message:
                self.events.append(message)

    def wait_event(
        self, methods: tuple[str, ...], session: str | None = None, timeout: float = WAIT
    ) -> tuple[str, dict[str, Any]]:
        """The first event of one of ``methods`` (of ``session``), kept or to come:
        ``(method, params)``."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event["method"] in methods and event.get("sessionId") == session:
                    self.events.remove(event)
                    return event["method"], event.get("params", {})
            message = self._receive(deadline, f"event {' or '.join(methods)}")
            if "method" in message:
                self.events.append(message)

    def open_page(self) -> str:
        """Open a blank tab; return the session id of its flat session."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session: str = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        return session


class Chromium:
    """A headless Chromium with DevTools on a loopback port; :meth:`stop` ends it.

    :param binary: the browser program (see :func:`find_chromium`).
    :param directory: a directory of the test's own, for the profile and the logs.
    :param flags: more command-line flags.
    """

    def __init__(self, binary: str, directory: Path, *flags: str) -> None:
        self.directory = directory
        self.profile = directory / "profile"
        self.log_path = directory / "chromium.log"
        self.net_log_path = directory / "netlog.json"
        command = [
            binary,
            "--headless=new",
            "--no-sandbox",  # Chromium refuses to run as root with its sandbox.
            "--disable-gpu",
            "--disable-dev-shm-usage",  # containers have a small /dev/shm
            "--window-size=800,600",
            f"--user-data-dir={self.profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--log-net-log={self.net_log_path}",
            *QUIET_FLAGS,
            *flags,
            "about:blank",
        ]
        # Its temporary files (the profile's lock socket, which a browser stopped by a
        # signal leaves behind) go in the test's directory too.
        temp = directory / "tmp"
        temp.mkdir(exist_ok=True)
        env = dict(os.environ, TMPDIR=str(temp))
        with self.log_path.open("wb") as log:
            # A process group of its own: stop() can end the helper processes too.
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        try:
            self.devtools_url = self._devtools_url()
        except BaseException:
            self.stop()
            raise

    def _devtools_url(self) -> str:
        """Wait for the port file Chromium writes once DevTools listens."""
        port_file = self.profile / "DevToolsActivePort"
        lines: list[str] = []

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"chromium exited with {self.proc.returncode}: {self.log_tail()}"
                )
            with contextlib.suppress(FileNotFoundError):
                lines[:] = port_file.read_text().splitlines()
            return len(lines) >= 2 and lines[0].isdigit() and lines[1].startswith("/")

        wait_for(listening, what="Chromium's DevToolsActivePort file")
        return f"ws://127.0.0.1:{lines[0]}{lines[1]}"

    def log_tail(self, size: int = 2000) -> str:
        """The end of Chromium's own output, for failure messages."""
        return self.log_path.read_text(errors="replace")[-size:]

    def stop(self) -> None:
        """Terminate, wait (bounded), kill if needed; then end what is left of its group."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WAIT)
        # The group's id is the browser's process id; helpers that outlived it go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


# ------------------------------------------------------------------ the net log


def net_log_events(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(event type name, params)`` of every event in a net log Chromium wrote.

    Chromium writes one event a line and, when it is stopped by a signal, may leave
    the closing brackets out: the log is read line by line.
    """
    with path.open() as log:
        header = log.readline().rstrip().rstrip(",")
        constants = json.loads(header + "}")["constants"]
        names = {number: name for name, number in constants["logEventTypes"].items()}
        for raw in log:
            line = raw.rstrip().rstrip(",")
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue  # the last line, cut short
            yield names.get(event["type"], str(event["type"])), event.get("params", {})


def tcp_connections(path: Path) -> list[str]:
    """Every address the net log shows a TCP connection attempt to."""
    return [
        address
        for name, params in net_log_events(path)
        if name == "TCP_CONNECT"
        for address in params.get("address_list", [])
    ]


def outside_loopback(path: Path) -> list[str]:
    """What a net log shows of traffic that could have left the loopback interface.

    Listed: a TCP connection attempt to an address that is not a loopback one, a
    UDP datagram sent anywhere (the tests use no UDP), and a host name resolved
    other than to nothing (``~NOTFOUND``). Not listed: the UDP ``connect`` with
    which Chromium asks the kernel for its route to the IPv6 internet (to
    2001:4860:4860::8888), which sends nothing.
    """
    found = [f"TCP connection to {address}" for address in tcp_connections(path)]
    found = [line for line in found if not _is_loopback(line.rsplit(" ", 1)[1])]
    for name, params in net_log_events(path):
        if name == "UDP_BYTES_SENT":
            found.append(f"UDP datagram: {params}")
        elif name == "HOST_RESOLVER_MANAGER_REQUEST" and "host" in params:
            host = params["host"].rsplit("/", 1)[-1]  # "https://name:port", "name:port"
            if not host.lower().startswith("~notfound") and not _is_loopback(host):
                found.append(f"name resolved: {params['host']}")
    return found


def _is_loopback(address: str) -> bool:
    """Whether ``host``, ``host:port`` or ``[v6]:port`` is a loopback address."""
    host = address
    if address.startswith("["):
        host = address[1 : address.index("]")]
    elif address.count(":") == 1:
        host = address.split(":", maxsplit=1)[0]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"
