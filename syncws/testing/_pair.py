"""A connected client and server connection with no network: :func:`connection_pair`.

Both ends are real :class:`~syncws.WebSocketConnection` objects over a
:func:`socket.socketpair`; both opening handshakes run for real. Part of
:mod:`syncws.testing`, where every name here is documented.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple, cast

from .. import testing
from .._deadline import Deadline
from .._options import check_options
from ..client import ConnectOptions, wrap_client_socket
from ..connection import ConnectionOptions, WebSocketConnection
from ..exceptions import HandshakeError
from ..request import ServeOptions, WebSocketRequest, receive_request

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ConnectionPair", "connection_pair"]


class ConnectionPair(NamedTuple):
    """The two ends of one connection, as returned by :func:`connection_pair`.

    A tuple, ``(client, server)``, and a context manager that closes both on exit.
    """

    #: The client side (:attr:`~syncws.WebSocketConnection.is_client` is true).
    client: WebSocketConnection
    #: The server side.
    server: WebSocketConnection

    def close(self) -> None:
        """Close both ends: the client first (code 1000), then the server.

        Idempotent, as :meth:`~syncws.WebSocketConnection.close`; every thread of both
        connections has ended when it returns.
        """
        self.client.close()
        self.server.close()

    def __enter__(self) -> ConnectionPair:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close both ends (see :meth:`close`)."""
        self.close()


def connection_pair(
    *,
    path: str = "/",
    subprotocol: str | None = None,
    connect_timeout: float = testing.TEST_TIMEOUT,
    client_options: ConnectOptions | None = None,
    server_options: ConnectionOptions | None = None,
    **options: Unpack[ConnectionOptions],
) -> ConnectionPair:
    """Connect a client and a server connection over a :func:`socket.socketpair`.

    Both opening handshakes run for real, the server's in a helper thread
    (``syncws-testing-handshake``) that has ended when this function returns; no port
    is opened and no handler runs. Use the pair as a context manager, which closes
    both ends on exit, or close both yourself::

        with connection_pair(max_message_size=1024) as (client, server):
            client.send_message("hello")
            assert server.get_message(timeout=5) == "hello"

    Each connection has a reader thread, as a client connection does; once both are
    closed, none of their threads is left.

    :param path: the resource the client asks for (the server's
        :attr:`~syncws.WebSocketConnection.path`).
    :param subprotocol: when given, the client offers it (unless ``client_options``
        gives ``subprotocols``) and the server accepts it.
    :param connect_timeout: seconds for the opening handshake of each side.
    :param client_options: options for the client side only, on top of ``options``:
        any of :class:`~syncws.ConnectOptions`, e.g. ``extra_headers``.
    :param server_options: options for the server side only, on top of ``options``
        (``connect_timeout`` is accepted there too).
    :param options: :class:`~syncws.ConnectionOptions` for both sides:
        ``message_queue_size``, ``max_message_size``, ``disconnect_timeout``,
        ``ping_interval``, ``ping_timeout`` and ``compression`` (permessage-deflate is
        used when both sides ask for it). ``disconnect_timeout`` defaults to
        :data:`TEST_TIMEOUT`.
    :raises TypeError: for an unknown option.
    :raises ValueError: for a bad option value.
    :raises HandshakeError: when a handshake fails.
    """
    check_options(options, "connection")
    shared: ConnectionOptions = {"disconnect_timeout": testing.TEST_TIMEOUT, **options}
    client_args: ConnectOptions = {
        **shared,
        "connect_timeout": connect_timeout,
        **(client_options or {}),
    }
    if subprotocol is not None:
        client_args.setdefault("subprotocols", [subprotocol])
    # The server side takes ServeOptions, of which it uses the connection options
    # and connect_timeout.
    server_args = cast(
        "ServeOptions",
        {**shared, "connect_timeout": connect_timeout, **(server_options or {})},
    )
    check_options(client_args, "client")
    check_options(server_args, "handshake")
    client_sock, server_sock = socket.socketpair()
    handshake = _ServerHandshake(server_sock, subprotocol, server_args)
    try:
        # Closes client_sock if it fails; the server's side then sees the end of input.
        client = wrap_client_socket(client_sock, "localhost", path, **client_args)
    except BaseException:
        handshake.discard()
        raise
    try:
        server = handshake.result()
    except BaseException:
        client.close()
        raise
    return ConnectionPair(client, server)


class _ServerHandshake:
    """The server's side of :func:`connection_pair`'s handshake, in a thread of its own."""

    def __init__(self, sock: socket.socket, subprotocol: str | None, options: ServeOptions) -> None:
        self._sock = sock
        self._subprotocol = subprotocol
        self._options = options
        self._connection: WebSocketConnection | None = None
        self._error: BaseException | None = None
        # Not a daemon: it ends within connect_timeout, and is joined before returning.
        self._thread = threading.Thread(target=self._run, name="syncws-testing-handshake")
        self._thread.start()

    def _run(self) -> None:
        try:
            self._connection = self._accept()
        except BaseException as exc:
            self._error = exc

    def _accept(self) -> WebSocketConnection:
        timeout = self._options.get("connect_timeout", testing.TEST_TIMEOUT)
        try:
            received = receive_request(self._sock, Deadline(timeout))
        except BaseException:
            self._sock.close()
            raise
        if received is None:
            self._sock.close()
            raise HandshakeError("no valid opening handshake from the client")
        request = WebSocketRequest(self._sock, *received, self._options)
        offered = self._subprotocol in request.proposed_subprotocols
        return request.accept(self._subprotocol if offered else None)

    def _join(self) -> None:
        # Every step of the handshake is bounded by connect_timeout: reading the
        # request, then sending the response.
        timeout = self._options.get("connect_timeout", testing.TEST_TIMEOUT)
        self._thread.join(2 * timeout + testing.THREAD_JOIN_TIMEOUT)
        if self._thread.is_alive():  # pragma: no cover - a bug
            raise RuntimeError("the server's handshake thread did not end")

    def result(self) -> WebSocketConnection:
        """Wait for the handshake; return the server connection or raise its error."""
        self._join()
        if self._error is not None:
            raise self._error
        assert self._connection is not None
        return self._connection

    def discard(self) -> None:
        """Wait for the thread after the client's side failed; close what it made."""
        self._join()
        if self._connection is not None:
            self._connection.close()
