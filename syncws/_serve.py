"""``serve_websocket``: serve until interrupted, in this process or in worker processes.

One process runs a :class:`~syncws.WebSocketServer` in the calling thread; several run
one each under a :class:`~syncws.WorkerPool` supervisor (see :mod:`._workers`).
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import TYPE_CHECKING

from ._signals import sigterm_interrupts
from ._workers import WorkerPool, check_workers
from .request import Handler, ServeOptions
from .server import WebSocketServer

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["serve_websocket"]


def serve_websocket(
    handler: Handler,
    host: str | None = None,
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    *,
    sock: socket.socket | None = None,
    unix_path: str | os.PathLike[str] | None = None,
    reuse_port: bool = False,
    workers: int = 1,
    **options: Unpack[ServeOptions],
) -> None:
    """Serve WebSocket clients until interrupted.

    Creates a :class:`WebSocketServer` and serves in the calling thread. Ctrl-C
    (:exc:`KeyboardInterrupt`) shuts the server down gracefully and returns; a second
    Ctrl-C during that shutdown aborts the connections still open and returns at once
    (see :meth:`WebSocketServer.serve_forever`).

    In the main thread, SIGTERM, what service managers and container runtimes send to
    stop a process, does the same as Ctrl-C while the server runs: the handler that was
    in place before is restored on return. An ignored SIGTERM stays ignored.

    :param handler: called with a :class:`WebSocketRequest` for each client, in a
        thread of its own.
    :param host: a host name, an IP address, or ``None`` (the default) for all
        interfaces.
    :param port: the TCP port; ``0`` (the default) picks a free one.
    :param ssl_context: for TLS: a server-side :class:`ssl.SSLContext`.
    :param sock: a bound socket to serve on instead of ``host`` and ``port``, as for
        :class:`WebSocketServer`.
    :param unix_path: the path of a Unix socket to listen on instead, as for
        :class:`WebSocketServer`.
    :param reuse_port: set ``SO_REUSEPORT``, as for :class:`WebSocketServer`.
    :param workers: how many processes serve: ``1`` (the default) serves in this
        process; more makes this process the supervisor of that many forked worker
        processes sharing the port, and returns once they have stopped (see
        :class:`WorkerPool`, POSIX only, not with ``unix_path``). Options such as
        ``max_connections`` then apply to each worker.
    :param options: see :class:`ServeOptions`.
    :raises ValueError, TypeError, OSError: as :class:`WebSocketServer`, and for a
        bad ``workers``.
    """
    if check_workers(workers) > 1:
        if unix_path is not None:
            raise ValueError("unix_path cannot be given with workers")
        pool = WorkerPool(
            handler,
            host,
            port,
            ssl_context,
            workers=workers,
            sock=sock,
            reuse_port=reuse_port,
            **options,
        )
        pool.serve_forever()
        return
    server = WebSocketServer(
        handler,
        host,
        port,
        ssl_context,
        sock=sock,
        unix_path=unix_path,
        reuse_port=reuse_port,
        **options,
    )
    try:
        with sigterm_interrupts():
            server.serve_forever()
    except KeyboardInterrupt:
        pass  # serve_forever() has shut the server down.
    finally:
        server.shutdown()  # Returns at once when serve_forever() did it.
