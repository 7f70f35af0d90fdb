"""A TLS handshake that fails on the server is logged at INFO: who, and why.

An operator must see why browsers fail (a certificate they do not trust, a ws:// URL
for a wss:// server) without turning on DEBUG; a client that just disconnects stays
at DEBUG, and a scanner cannot flood the log.
"""

from __future__ import annotations

import logging
import queue
import re
import socket
import ssl
from collections.abc import Callable, Iterator

import pytest
from helpers import WAIT, SyncwsServer, server_echo
from rawpeer import wait_closed

import syncws
import syncws._server_tls

pytest.importorskip("trustme")

Server = Callable[..., SyncwsServer]
FAILED = r"^TLS handshake with wss://127\.0\.0\.1:\d+ failed: "


class Records(logging.Handler):
    """The records of the ``syncws`` logger, in a queue."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.queue: queue.Queue[logging.LogRecord] = queue.Queue()

    def emit(self, record: logging.LogRecord) -> None:
        self.queue.put(record)

    def next(self, pattern: str) -> logging.LogRecord:
        """The next record whose message matches ``pattern``; fail after WAIT."""
        while True:
            try:
                record = self.queue.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"nothing logged matching {pattern!r}") from None
            if re.search(pattern, record.getMessage()):
                return record

    def infos(self) -> list[str]:
        """The INFO (or higher) messages about TLS handshakes so far, taken from the queue.

        (Not "listening on", which the server's thread may log after the test began.)
        """
        messages = []
        while not self.queue.empty():
            record = self.queue.get()
            if record.levelno >= logging.INFO and "TLS handshake" in record.getMessage():
                messages.append(record.getMessage())
        return messages


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[Records]:
    # A fresh budget: failures of earlier tests must not have used it up.
    monkeypatch.setattr(syncws._server_tls, "tls_failures", syncws._server_tls.LogBudget())
    caplog.set_level(logging.DEBUG, logger="syncws")
    handler = Records()
    logger = logging.getLogger("syncws")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def tls_echo(syncws_server: Server, tls_server_context: ssl.SSLContext) -> SyncwsServer:
    return syncws_server(server_echo, ssl_context=tls_server_context)


def test_a_client_that_does_not_trust_the_certificate(
    tls_echo: SyncwsServer, records: Records
) -> None:
    untrusting = ssl.create_default_context()  # The test CA is not in it.
    with pytest.raises(ssl.SSLCertVerificationError):
        syncws.connect(tls_echo.url, ssl_context=untrusting, connect_timeout=WAIT)
    record = records.next(FAILED)
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    message = record.getMessage()
    assert message.endswith(
        "TLSV1_ALERT_UNKNOWN_CA (the client does not accept the server's certificate)"
    ), message
    assert "\n" not in message


def test_a_plain_http_client_on_the_tls_port(tls_echo: SyncwsServer, records: Records) -> None:
    with pytest.raises((syncws.HandshakeError, OSError)):
        syncws.connect(f"ws://127.0.0.1:{tls_echo.port}/", connect_timeout=WAIT)
    record = records.next(FAILED)
    assert record.levelno == logging.INFO
    assert "failed: not TLS: HTTP_REQUEST (plain HTTP" in record.getMessage()


def test_a_client_that_just_disconnects_is_debug_only(
    tls_echo: SyncwsServer, records: Records
) -> None:
    with socket.create_connection(("127.0.0.1", tls_echo.port), WAIT):
        pass
    record = records.next(FAILED)
    assert record.levelno == logging.DEBUG
    assert records.infos() == []


def garbage_client(port: int) -> None:
    """Send bytes that are not TLS; wait until the server has answered by closing."""
    with socket.create_connection(("127.0.0.1", port), WAIT) as sock:
        sock.sendall(b"hello, is this TLS?\r\n")
        wait_closed(sock, WAIT)


def test_a_scanner_cannot_flood_the_log(
    tls_echo: SyncwsServer, records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(syncws._server_tls, "TLS_LOG_BURST", 2)
    for _ in range(5):
        garbage_client(tls_echo.port)  # The server logged or counted it before closing.
    infos = records.infos()
    assert len(infos) == 2, infos
    assert all("not TLS: WRONG_VERSION_NUMBER" in line for line in infos), infos
    # Once the interval is over, the count of the lines left out comes first.
    monkeypatch.setattr(syncws._server_tls, "TLS_LOG_INTERVAL", 0.0)
    garbage_client(tls_echo.port)
    infos = records.infos()
    assert len(infos) == 2, infos
    assert infos[0].startswith("3 more TLS handshakes failed and were not logged one by one")
    assert re.search(FAILED + "not TLS", infos[1]), infos
