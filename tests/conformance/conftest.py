"""Fixtures of the conformance suite: one syncws echo server per test module.

The server is started before the first test's leak snapshot (module scope), so the
per-test leak check only sees what each case starts: the connection, its reader and
handler threads, the raw peer. It is shut down when the module is done, before
other test modules (some of which count every live syncws thread) run.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import WAIT, SyncwsServer, echo_messages

from .cases import LIMIT


class EchoServer:
    """A syncws echo server reporting each connection's close reason by path."""

    def __init__(self, **options: Any) -> None:
        self.reasons: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.server = SyncwsServer(
            self._handle, max_message_size=LIMIT, disconnect_timeout=WAIT, **options
        )
        self.port = self.server.port

    def _handle(self, request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        echo_messages(ws)
        self.reasons.put((ws.path, ws.close_reason))

    def close_reason(self, path: str) -> Any:
        """The close reason of the connection to ``path`` (stale entries skipped)."""
        while True:
            try:
                got, reason = self.reasons.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError("the echo handler reported no close reason") from None
            if got == path:
                return reason


@pytest.fixture(scope="module")
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.server.stop()


@pytest.fixture(scope="module")
def deflate_echo_server() -> Iterator[EchoServer]:
    """The same echo server with permessage-deflate enabled (categories 12 and 13)."""
    server = EchoServer(compression="deflate")
    yield server
    server.server.stop()
