"""What the pytest fixtures are made of: :class:`ServerFactory` and :class:`ConnectionFactory`.

Each makes servers or connections on demand and ends them all at once; the fixtures of
:mod:`syncws.pytest_plugin` are these, and they work without pytest too. Part of
:mod:`syncws.testing`, where every name here is documented.
"""

from __future__ import annotations

import ssl
import traceback
from typing import TYPE_CHECKING

from .. import testing
from ..client import ConnectOptions, connect
from ..connection import WebSocketConnection
from ..request import Handler, ServeOptions
from ._server_thread import ServerThread

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ConnectionFactory", "ServerFactory"]


class ServerFactory:
    """Start :class:`ServerThread` servers and stop them all later: the ``ws_server`` fixture.

    Not thread-safe: call it from the test's thread.
    """

    def __init__(self) -> None:
        #: Every server started, in order (the last one: ``servers[-1]``).
        self.servers: list[ServerThread] = []

    def __call__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        **options: Unpack[ServeOptions],
    ) -> str:
        """Start a server with ``handler``; return its URL, e.g. ``ws://127.0.0.1:43210/``.

        The arguments are those of :class:`ServerThread`; with an ``ssl_context`` the
        URL is a ``wss://`` one. ``connect_timeout`` and ``disconnect_timeout`` default
        to :data:`TEST_TIMEOUT`.
        """
        server = ServerThread(handler, host, port, ssl_context, **options)
        self.servers.append(server)
        return server.start().url

    def stop_all(self) -> list[str]:
        """Stop every server, the last started first; return the problems found.

        A problem is a thread still running after a server stopped (see
        :meth:`ServerThread.stop`), or an exception in a server's :attr:`ServerThread.errors`.
        """
        problems = []
        for server in reversed(self.servers):
            try:
                server.stop()
            except AssertionError as exc:
                problems.append(str(exc))
            for error in server.errors:
                trace = "".join(traceback.format_exception(error)).rstrip()
                problems.append(f"the handler of the server at {server.url} raised:\n{trace}")
        return problems


class ConnectionFactory:
    """Open client connections and close them all later: the ``ws_connect`` fixture.

    Not thread-safe: call it from the test's thread.
    """

    def __init__(self) -> None:
        #: Every connection opened, in order.
        self.connections: list[WebSocketConnection] = []

    def __call__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        **options: Unpack[ConnectOptions],
    ) -> WebSocketConnection:
        """Open a connection to ``url`` with :func:`~syncws.connect`; return it.

        ``connect_timeout`` and ``disconnect_timeout`` default to
        :data:`TEST_TIMEOUT`. The test may close it itself.
        """
        arguments: ConnectOptions = {
            "connect_timeout": testing.TEST_TIMEOUT,
            "disconnect_timeout": testing.TEST_TIMEOUT,
        }
        arguments.update(options)
        ws = connect(url, ssl_context=ssl_context, **arguments)
        self.connections.append(ws)
        return ws

    def close_all(self) -> None:
        """Close every connection (code 1000), the last opened first."""
        for ws in reversed(self.connections):
            ws.close()
