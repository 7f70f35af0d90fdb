"""Server handlers for tests: :func:`echo`, and :class:`RecordingHandler`, which records.

Part of :mod:`syncws.testing`, where every name here is documented.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from .. import testing
from ..connection import WebSocketConnection
from ..exceptions import ConnectionClosed
from ..request import WebSocketRequest
from ..types import CloseReason

__all__ = ["RecordingHandler", "echo"]

_T = TypeVar("_T")
#: What a reply callback of :class:`RecordingHandler` gets and may return.
Reply = Callable[[str | bytes], str | bytes | None]


def echo(request: WebSocketRequest) -> None:
    """Accept, then send every message back until the client closes (a handler)."""
    try:
        ws = request.accept()
    except OSError:
        return  # The client went away before the end of the handshake.
    for message in ws:
        ws.send_message(message)


class RecordingHandler:
    """A server handler that records what clients send, for assertions.

    It accepts every request (with ``subprotocol`` when the client offers it), records
    each message, and the close reason once the connection has closed. With
    ``echo=True`` it sends each message back; with ``reply``, it sends back what
    ``reply(message)`` returns, unless that is ``None``. Use one instance for one
    server; it serves any number of clients at once.

    The recorded lists are snapshots, safe to read from any thread; the ``wait_for_*``
    methods wait (without polling) until enough has been recorded::

        handler = RecordingHandler(echo=True)
        url = ws_server(handler)
        with syncws.connect(url) as ws:
            ws.send_message("hi")
            assert ws.get_message(timeout=5) == "hi"
        assert handler.wait_closed()[0].code == 1000

    :param echo: send every message back.
    :param reply: called with each message, in the handler's thread; what it returns,
        if not ``None``, is sent back. An exception fails the connection (code 1011)
        and is logged by the server (and reported by the ``ws_server`` fixture).
    :param subprotocol: the subprotocol to accept when a client offers it.
    :raises ValueError: when both ``echo`` and ``reply`` are given.
    """

    def __init__(
        self,
        *,
        echo: bool = False,
        reply: Reply | None = None,
        subprotocol: str | None = None,
    ) -> None:
        if echo and reply is not None:
            raise ValueError("give echo=True or a reply function, not both")
        self._reply: Reply | None = (lambda message: message) if echo else reply
        self._subprotocol = subprotocol
        self._changed = threading.Condition()
        # Guarded by _changed.
        self._connections: list[WebSocketConnection] = []
        self._messages: list[str | bytes] = []
        self._close_reasons: list[CloseReason] = []

    def __call__(self, request: WebSocketRequest) -> None:
        """Serve one client (called by the server, in the client's thread)."""
        offered = self._subprotocol in request.proposed_subprotocols
        try:
            ws = request.accept(self._subprotocol if offered else None)
        except OSError:
            return  # The client went away before the end of the handshake.
        self._record(self._connections, ws)
        failed = True
        try:
            for message in ws:
                self._record(self._messages, message)
                answer = None if self._reply is None else self._reply(message)
                if answer is not None:
                    ws.send_message(answer)
            failed = False
        except ConnectionClosed:
            failed = False
        finally:
            # Close here rather than leave it to the server, to know the reason.
            ws.close(1011 if failed else 1000)
            reason = ws.close_reason
            assert reason is not None  # The connection is closed.
            self._record(self._close_reasons, reason)

    def _record(self, into: list[_T], item: _T) -> None:
        with self._changed:
            into.append(item)
            self._changed.notify_all()

    @property
    def connections(self) -> list[WebSocketConnection]:
        """The server side of every connection accepted so far, in order."""
        with self._changed:
            return list(self._connections)

    @property
    def messages(self) -> list[str | bytes]:
        """Every message received so far, from all connections, in arrival order."""
        with self._changed:
            return list(self._messages)

    @property
    def close_reasons(self) -> list[CloseReason]:
        """The close reason of every connection that has closed, in closing order."""
        with self._changed:
            return list(self._close_reasons)

    def _wait(self, items: list[_T], count: int, what: str, timeout: float) -> list[_T]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(items) >= count, timeout):
                raise TimeoutError(
                    f"{len(items)} of {count} {what} after {timeout}s: {items!r}"[:500]
                )
            return list(items)

    def wait_for_connections(
        self, count: int = 1, timeout: float = testing.TEST_TIMEOUT
    ) -> list[WebSocketConnection]:
        """Wait until ``count`` connections were accepted; return :attr:`connections`.

        :raises TimeoutError: when fewer were accepted within ``timeout`` seconds.
        """
        return self._wait(self._connections, count, "connections", timeout)

    def wait_for_messages(
        self, count: int, timeout: float = testing.TEST_TIMEOUT
    ) -> list[str | bytes]:
        """Wait until ``count`` messages were received; return :attr:`messages`.

        :raises TimeoutError: when fewer arrived within ``timeout`` seconds.
        """
        return self._wait(self._messages, count, "messages", timeout)

    def wait_closed(
        self, count: int = 1, timeout: float = testing.TEST_TIMEOUT
    ) -> list[CloseReason]:
        """Wait until ``count`` connections have closed; return :attr:`close_reasons`.

        :raises TimeoutError: when fewer closed within ``timeout`` seconds.
        """
        return self._wait(self._close_reasons, count, "closed connections", timeout)
