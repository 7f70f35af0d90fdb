"""The threaded server: a handler function per client, each in its own thread.

The accept loop (``_accept.py``, run by :meth:`WebSocketServer.serve_forever`) only
accepts sockets. Each client then gets a thread of its own (``_handler_threads.py``)
that runs the TLS handshake, reads the HTTP upgrade request (all within
``connect_timeout``), and calls the handler with a :class:`WebSocketRequest`; the
handler accepts or rejects it. A slow client can therefore never stall the accept loop
or the other clients. This module holds the parts together: where the server listens,
serving, and shutting down, gracefully or after a second interrupt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import threading
import warnings
from typing import TYPE_CHECKING

from ._accept import ACCEPT_PAUSE, ACCEPT_PAUSE_MAX, AcceptLoop  # noqa: F401 - the tests read them here
from ._deadline import Deadline
from ._handler_threads import HandlerThreads
from ._listen import adopt, bind, check_address, listen_unix
from ._options import seconds
from ._signals import SIGTERM_MESSAGE, SecondInterrupt, SignalWakeup
from ._starter import STARTER
from ._transport import endpoint
from ._trouble import WARNING_INTERVAL  # noqa: F401 - the tests read it here
from .connection import WebSocketConnection
from .request import Handler, ServeOptions, check_handler, check_options
from .types import Endpoint

logger = logging.getLogger("syncws")

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["WebSocketServer"]


class WebSocketServer:
    """A WebSocket server that runs ``handler`` in a thread of its own for each client.

    The listening sockets are bound when the server is created, so :attr:`port` is
    known at once. Serve with :meth:`serve_forever`, or use the server as a context
    manager, which serves in a background thread and shuts down on exit::

        with syncws.WebSocketServer(handler, "127.0.0.1", 0) as server:
            with syncws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                ...

    Handler threads are daemon threads named ``syncws-handler-<n>``: a handler that
    never returns cannot keep the interpreter alive once :meth:`shutdown` gave up on
    it. The server itself only starts threads through :meth:`__enter__` and for its
    clients, and :meth:`shutdown` joins them all.

    Where it listens is given by one of: ``host`` and ``port`` (TCP), ``sock`` (a socket
    you bound), or ``unix_path`` (a Unix socket).

    :param handler: called with a :class:`WebSocketRequest` for each client.
    :param host: a host name (every address it resolves to), an IP address, or
        ``None`` (the default) or ``""`` for all interfaces.
    :param port: the TCP port; ``0`` (the default) picks a free one.
    :param ssl_context: for TLS: a server-side :class:`ssl.SSLContext`.
    :param sock: a bound stream socket to serve on, listening already or not, instead
        of ``host`` and ``port``: one with options of your own, or one inherited from a
        service manager. The server takes it over and closes it at shutdown.
    :param unix_path: the path of a Unix socket to listen on, instead of ``host`` and
        ``port``; the socket file is removed at shutdown. Clients connect with
        :func:`~syncws.wrap_client_socket` on a connected ``AF_UNIX`` socket.
        :attr:`port` is then ``0``.
    :param reuse_port: with ``host`` and ``port``: set ``SO_REUSEPORT`` on every
        listening socket, so that other processes (or servers) may listen on the same
        port at once; on Linux the kernel then spreads new connections over them all.
        Default: false.
    :param options: see :class:`ServeOptions`.
    :raises ValueError: when ``sock`` and ``unix_path`` are both given, or either is
        given with ``host``, ``port`` or ``reuse_port``; for ``reuse_port`` where the
        platform has no ``SO_REUSEPORT``; or for a bad option.
    :raises TypeError: for an unknown option or a handler that cannot be called.
    :raises OSError: when the address cannot be listened on.
    """

    def __init__(
        self,
        handler: Handler,
        host: str | None = None,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        *,
        sock: socket.socket | None = None,
        unix_path: str | os.PathLike[str] | None = None,
        reuse_port: bool = False,
        **options: Unpack[ServeOptions],
    ) -> None:
        check_handler(handler)
        check_options(options)
        path = None if unix_path is None else os.fspath(unix_path)
        check_address(host, port, sock, path, reuse_port)
        self._wake_r, self._wake_w = socket.socketpair()
        try:
            if sock is not None:
                listeners = [adopt(sock)]
            elif path is not None:
                listeners = [listen_unix(path)]
            else:
                listeners = bind(host, port, reuse_port=reuse_port)
        except BaseException:
            self._wake_r.close()
            self._wake_w.close()
            raise
        # The socket file to remove at shutdown: the one this server made, if any.
        self._unix_path = path
        self._ssl_context = ssl_context
        self._options = options
        # Guards _stopping, _serving and _closed; never held with the handlers' lock.
        self._lock = threading.Lock()
        self._listeners = listeners
        for listener in self._listeners:
            listener.setblocking(False)
        address = listeners[0].getsockname()
        self._port = int(address[1]) if isinstance(address, tuple) else 0
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)  # A full pipe already holds a wake-up.
        self._stopping = False
        self._serving = False
        self._loop_done = threading.Event()
        self._loop_done.set()
        self._closed = False
        self._shut_down = False
        self._cut_short = False
        self._background: threading.Thread | None = None
        self._handlers = HandlerThreads(handler, ssl_context, options)
        self._loop = AcceptLoop(
            self._listeners, self._wake_r, self._handlers.start, ssl_context is None
        )

    @classmethod
    def unix(
        cls,
        handler: Handler,
        path: str,
        ssl_context: ssl.SSLContext | None = None,
        **options: Unpack[ServeOptions],
    ) -> WebSocketServer:
        """Create a server listening on a Unix socket at ``path`` (deprecated).

        Deprecated: use ``WebSocketServer(handler, unix_path=path)``, which this
        calls after a :class:`DeprecationWarning`.
        """
        warnings.warn(
            "WebSocketServer.unix() is deprecated; use WebSocketServer(handler, unix_path=path)",
            DeprecationWarning,
            stacklevel=2,
        )
        return cls(handler, ssl_context=ssl_context, unix_path=path, **options)

    # -- information -----------------------------------------------------------------

    @property
    def listeners(self) -> list[Endpoint | str]:
        """The listening sockets, as endpoints."""
        is_ssl = self._ssl_context is not None
        return [endpoint(sock, local=True, is_ssl=is_ssl) for sock in self._listeners]

    @property
    def port(self) -> int:
        """The TCP port the server listens on (the real one when 0 was asked; 0 for Unix)."""
        return self._port

    @property
    def connections(self) -> frozenset[WebSocketConnection]:
        """The accepted connections that are still open (a snapshot)."""
        return self._handlers.connections

    @property
    def shutdown_cut_short(self) -> bool:
        """Whether a second interrupt cut the graceful shutdown after Ctrl-C short.

        :meth:`serve_forever` then aborted the connections still open instead of
        waiting for their handlers (see :meth:`serve_forever`).
        """
        return self._cut_short

    def __repr__(self) -> str:
        return f"<WebSocketServer {', '.join(map(str, self.listeners))}>"

    # -- serving -------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept clients until :meth:`shutdown` is called from another thread.

        On :exc:`KeyboardInterrupt` (Ctrl-C) the server shuts down gracefully, then
        the exception propagates. While handlers are still running, a warning says
        how many and how long the shutdown waits for them (``disconnect_timeout``).
        In the main thread, a second Ctrl-C during that wait (or a second SIGTERM
        under :func:`serve_websocket`) stops it at once: the connections still open
        are aborted, handlers get half a second to return, and
        :attr:`shutdown_cut_short` becomes true.

        :raises RuntimeError: when the server is already serving or was shut down.
        """
        with self._lock:
            if self._stopping:
                raise RuntimeError("the server was shut down")
            if self._serving:
                raise RuntimeError("the server is already serving")
            self._serving = True
            self._loop_done.clear()
        try:
            for address in self.listeners:
                logger.info("syncws server listening on %s", address)
            STARTER.watch(self._wake_loop)
            try:
                with SignalWakeup() as wakeup:
                    self._loop.run(wakeup.reader, lambda: self._stopping)
            finally:
                STARTER.unwatch(self._wake_loop)
        except KeyboardInterrupt as exc:
            self._loop_done.set()
            self._shutdown_interrupted(exc)
            raise
        finally:
            self._loop_done.set()

    def _wake_loop(self) -> None:
        """Wake the accept loop from its wait (it then looks at what changed)."""
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _shutdown_interrupted(self, interrupt: KeyboardInterrupt) -> None:
        """Shut down gracefully after an interrupt; a second one stops the waiting."""
        # First of all: from here on, a second interrupt no longer raises anywhere.
        with SecondInterrupt() as hurry:
            sigterm = interrupt.args == (SIGTERM_MESSAGE,)
            timeout = seconds(self._options, "disconnect_timeout")
            running = self._handlers.running
            if running:
                again = ""
                if hurry.installed:
                    again = "; send SIGTERM again" if sigterm else "; press Ctrl-C again"
                    again += " to exit now"
                logger.warning(
                    "%s: waiting up to %g s for %d handler%s%s",
                    "SIGTERM" if sigterm else "interrupted",
                    timeout,
                    running,
                    "" if running == 1 else "s",
                    again,
                )
            else:
                logger.info("%s, shutting down", "SIGTERM" if sigterm else "interrupted")
            self._shutdown(timeout, hurry)

    # -- stopping ------------------------------------------------------------------------

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop serving and close every connection gracefully.

        Stops accepting, sends every open connection a close frame with code 1001
        (going away), and waits up to ``timeout`` seconds for the handlers to return;
        connections still open then are aborted. Messages a handler has received stay
        readable by it. Every thread the server started is joined; a handler that
        ignores its closed connection and never returns is left running as a daemon
        thread and a warning is logged. Idempotent; callable from any thread; once a
        shutdown has finished, later calls return at once.

        :param timeout: seconds to wait for the handlers (default:
            ``disconnect_timeout``).
        """
        self._shutdown(timeout, None)

    def _shutdown(self, timeout: float | None, hurry: SecondInterrupt | None) -> None:
        """Shut down; ``hurry``, after an interrupt, may cut the waits short."""
        if self._shut_down:
            return
        if timeout is None:
            timeout = seconds(self._options, "disconnect_timeout")
        deadline = Deadline(timeout)
        with self._lock:
            self._stopping = True
        self._handlers.stop()
        self._wake_loop()
        if self._background is not threading.current_thread():
            self._loop_done.wait(deadline.remaining())
        with self._lock:
            already_closed, self._closed = self._closed, True
        if not already_closed:
            for listener in self._listeners:
                listener.close()
            if self._unix_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._unix_path)
        self._handlers.close_all()
        if self._handlers.join(deadline, hurry):
            self._cut_short = True
        self._join_background(deadline)
        if not already_closed:
            self._wake_r.close()
            self._wake_w.close()
            logger.info("syncws server stopped")
        self._shut_down = True

    def _join_background(self, deadline: Deadline) -> None:
        background = self._background
        if background is not None and background is not threading.current_thread():
            background.join(deadline.remaining())

    def __enter__(self) -> WebSocketServer:
        """Serve in a background thread named ``syncws-server-<port>``."""
        self._background = threading.Thread(
            target=self.serve_forever, name=f"syncws-server-{self.port}", daemon=True
        )
        self._background.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Shut the server down (see :meth:`shutdown`)."""
        self.shutdown()
