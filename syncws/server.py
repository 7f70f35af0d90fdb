"""The threaded server: a handler function per client, each in its own thread.

The accept loop (:meth:`WebSocketServer.serve_forever`) only accepts sockets. Each
client then gets a thread of its own that runs the TLS handshake, reads the HTTP
upgrade request (all within ``connect_timeout``), and calls the handler with a
:class:`WebSocketRequest`; the handler accepts or rejects it. A slow client can
therefore never stall the accept loop or the other clients.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import logging
import os
import selectors
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._deadline import Deadline
from ._http import response
from ._listen import adopt, bind, check_address, listen_unix
from ._options import seconds
from ._signals import SIGTERM_MESSAGE, SecondInterrupt, SignalWakeup, sigterm_interrupts
from ._transport import endpoint
from ._trouble import WARNING_INTERVAL, Trouble  # noqa: F401 - WARNING_INTERVAL: the tests read it here
from .connection import WebSocketConnection
from .request import Handler, ServeOptions, check_handler, check_options, serve_socket
from .types import Endpoint

logger = logging.getLogger("syncws")

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["WebSocketServer", "serve_websocket"]

#: Clients over ``max_connections`` that may wait at once for their 503 answer.
_MAX_OVERFLOW = 64
#: accept() errors that mean the process or the system is out of a resource. The accept
#: loop then stops watching its listeners for a while (clients wait in the backlog):
#: first ACCEPT_PAUSE seconds, doubling up to ACCEPT_PAUSE_MAX while the errors last.
_OUT_OF_RESOURCES = frozenset([errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM])
ACCEPT_PAUSE = 0.1
ACCEPT_PAUSE_MAX = 1.0
#: accept() errors about one connection that failed before it was taken: try the next
#: (Linux passes pending network errors on, see accept(2); ECONNABORTED elsewhere).
_CONNECTION_FAILED = frozenset(
    [
        errno.ECONNABORTED,
        errno.EPROTO,
        errno.ENOPROTOOPT,
        errno.EHOSTDOWN,
        errno.ENONET,
        errno.EHOSTUNREACH,
        errno.EOPNOTSUPP,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.EPERM,
    ]
)
#: Clients refused because their thread could not start, whose 503 the accept loop
#: sees through at once, each for at most _REFUSAL_LINGER seconds; beyond it, new
#: ones are closed without an answer.
_MAX_REFUSED = 64
_REFUSAL_LINGER = 2.0
_REFUSAL = response(
    503, [(b"Retry-After", b"1")], b"503 the server cannot serve more clients now\n"
)
#: The selector's mark on the sockets of refused clients.
_REFUSED = "refused"
#: After shutdown()'s timeout, how long aborted handlers get to return.
_SHUTDOWN_GRACE = 0.5
#: Seconds between two checks for a signal while the main thread waits for handlers
#: after an interrupt (see :meth:`WebSocketServer._wait_for_handlers`).
_SIGNAL_CHECK = 0.1
_handler_ids = itertools.count(1)


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
    :param options: see :class:`ServeOptions`.
    :raises ValueError: when ``sock`` and ``unix_path`` are both given, or either is
        given with ``host`` or ``port``, or for a bad option.
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
        **options: Unpack[ServeOptions],
    ) -> None:
        check_handler(handler)
        check_options(options)
        path = None if unix_path is None else os.fspath(unix_path)
        check_address(host, port, sock, path)
        self._wake_r, self._wake_w = socket.socketpair()
        try:
            if sock is not None:
                listeners = [adopt(sock)]
            elif path is not None:
                listeners = [listen_unix(path)]
            else:
                listeners = bind(host, port)
        except BaseException:
            self._wake_r.close()
            self._wake_w.close()
            raise
        # The socket file to remove at shutdown: the one this server made, if any.
        self._unix_path = path
        self._handler = handler
        self._ssl_context = ssl_context
        self._options = options
        self._max_connections = options.get("max_connections")
        self._lock = threading.Lock()
        self._listeners = listeners
        for listener in self._listeners:
            listener.setblocking(False)
        address = listeners[0].getsockname()
        self._port = int(address[1]) if isinstance(address, tuple) else 0
        self._wake_r.setblocking(False)
        self._stopping = False
        self._serving = False
        self._loop_done = threading.Event()
        self._loop_done.set()
        self._closed = False
        self._shut_down = False
        self._cut_short = False
        self._background: threading.Thread | None = None
        # Guarded by _lock.
        self._threads: set[threading.Thread] = set()
        # Notified when a thread leaves _threads.
        self._threads_changed = threading.Condition(self._lock)
        self._sockets: dict[threading.Thread, socket.socket] = {}
        self._connections: set[WebSocketConnection] = set()
        # New connections, with the time to check whether they need a reader thread.
        self._overflow = 0
        # The accept loop's own (no lock): its back-off, the sockets of refused
        # clients with their deadlines, and its troubles.
        self._pause = 0.0
        self._paused_until: float | None = None
        self._last_failure = 0.0
        self._refused: dict[socket.socket, float] = {}
        self._no_accept = Trouble(
            "cannot accept clients: %s (failed attempts since the last warning: %d); "
            "they wait in the backlog, and accepting pauses (up to "
            f"{ACCEPT_PAUSE_MAX:g} s at a time) until it works again",
            "accepting clients again after %.1f s (failed attempts: %d)",
        )
        self._no_thread = Trouble(
            "cannot start a thread for a client (%s): refused it "
            "(clients refused since the last warning: %d)",
            "handler threads start again after %.1f s (clients refused: %d)",
        )
        self._bug = Trouble(
            "unexpected error in the accept loop, which goes on: %r "
            "(errors since the last report: %d)"
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
        with self._lock:
            return frozenset(c for c in self._connections if not c.is_closed)

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
            with SignalWakeup() as wakeup:
                self._accept_loop(wakeup.reader)
        except KeyboardInterrupt as exc:
            self._loop_done.set()
            self._shutdown_interrupted(exc)
            raise
        finally:
            self._loop_done.set()

    def _shutdown_interrupted(self, interrupt: KeyboardInterrupt) -> None:
        """Shut down gracefully after an interrupt; a second one stops the waiting."""
        # First of all: from here on, a second interrupt no longer raises anywhere.
        with SecondInterrupt() as hurry:
            sigterm = interrupt.args == (SIGTERM_MESSAGE,)
            timeout = seconds(self._options, "disconnect_timeout")
            with self._lock:
                running = len(self._threads)
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

    def _accept_loop(self, signals: socket.socket | None) -> None:
        """Accept clients until shut down; ``signals`` is readable when a signal came."""
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ)
            if signals is not None:
                selector.register(signals, selectors.EVENT_READ)
            for listener in self._listeners:
                selector.register(listener, selectors.EVENT_READ)
            try:
                while not self._stopping:
                    events = selector.select(self._select_timeout())
                    if self._paused_until is not None and time.monotonic() >= self._paused_until:
                        self._paused_until = None
                        for listener in self._listeners:
                            selector.register(listener, selectors.EVENT_READ)
                    for key, _ in events:
                        if key.fileobj is self._wake_r or key.fileobj is signals:
                            # Drained; a signal's handler runs as this thread goes on.
                            with contextlib.suppress(OSError):
                                key.fileobj.recv(4096)
                        elif key.data == _REFUSED:
                            self._read_refused(key.fileobj, selector)  # type: ignore[arg-type]
                        elif self._paused_until is None:
                            self._accept(key.fileobj, selector)  # type: ignore[arg-type]
                    self._expire_refused(selector)
            finally:
                for sock in self._refused:
                    sock.close()
                self._refused.clear()

    def _select_timeout(self) -> float | None:
        """Return the time until the accept loop has something to do (None: nothing)."""
        due = []
        if self._paused_until is not None:
            due.append(self._paused_until)
        if self._refused:
            due.append(next(iter(self._refused.values())))  # the oldest one
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _accept(self, listener: socket.socket, selector: selectors.BaseSelector) -> None:
        """Accept one client; no exception ends the accept loop."""
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno in _CONNECTION_FAILED:
                logger.debug("a client's connection failed before it was accepted: %s", exc)
            elif exc.errno in _OUT_OF_RESOURCES:
                self._no_accept.happened(exc)
                self._back_off(selector)
            else:
                self._bug.happened(exc, logging.ERROR, exc_info=True)
                self._back_off(selector)
            return
        self._pause = 0.0
        self._no_accept.over()
        try:
            self._start_client(sock, selector)
        except Exception as exc:
            # A bug: it must show, but it must not stop the server.
            self._bug.happened(exc, logging.ERROR, exc_info=True)

    def _back_off(self, selector: selectors.BaseSelector) -> None:
        """Stop watching the listeners for a while: a growing pause while accept fails."""
        now = time.monotonic()
        if self._pause and now - self._last_failure > 2 * ACCEPT_PAUSE_MAX:
            self._pause = 0.0  # A failure long after the last one: start small again.
        self._pause = min(2 * self._pause, ACCEPT_PAUSE_MAX) if self._pause else ACCEPT_PAUSE
        self._last_failure = now
        self._paused_until = now + self._pause
        for listener in self._listeners:
            selector.unregister(listener)

    def _start_client(self, sock: socket.socket, selector: selectors.BaseSelector) -> None:
        """Start the client's thread; close or refuse its socket if that fails."""
        try:
            with self._lock:
                if self._stopping:
                    sock.close()
                    return
                overloaded = (
                    self._max_connections is not None
                    and len(self._threads) - self._overflow >= self._max_connections
                )
                if overloaded and self._overflow >= _MAX_OVERFLOW:
                    sock.close()
                    return
                thread = threading.Thread(
                    target=self._client_main,
                    args=(sock, overloaded),
                    name=f"syncws-handler-{next(_handler_ids)}",
                    # A daemon, so that a handler that never returns cannot keep the
                    # interpreter alive; shutdown() joins it within its timeout.
                    daemon=True,
                )
                if overloaded:
                    self._overflow += 1
                self._threads.add(thread)
                self._sockets[thread] = sock
        except BaseException:
            sock.close()
            raise
        try:
            thread.start()
        except BaseException as exc:
            if thread.ident is not None:
                raise  # It did start (the wait for it was interrupted): the socket is its.
            with self._lock:
                self._threads.discard(thread)
                self._sockets.pop(thread, None)
                if overloaded:
                    self._overflow -= 1
            self._refuse(sock, selector)
            if not isinstance(exc, RuntimeError):
                raise
            # "can't start new thread": out of memory for its stack, or over a limit
            # on threads or processes (a container's pids limit, RLIMIT_NPROC).
            self._no_thread.happened(exc)
            return
        self._no_thread.over()

    def _refuse(self, sock: socket.socket, selector: selectors.BaseSelector) -> None:
        """Answer a client that no thread can serve: a 503 if it goes without blocking.

        The socket stays open until the client closes it (read and discarded by the
        accept loop), at most _REFUSAL_LINGER seconds: closed at once, with the
        request unread, it would send a reset that may destroy the answer.
        """
        if self._ssl_context is None and len(self._refused) < _MAX_REFUSED:
            try:
                sock.setblocking(False)
                if sock.send(_REFUSAL) == len(_REFUSAL):
                    socket.socket.shutdown(sock, socket.SHUT_WR)
                    selector.register(sock, selectors.EVENT_READ, _REFUSED)
                    self._refused[sock] = time.monotonic() + _REFUSAL_LINGER
                    return
            except OSError as exc:
                logger.debug("could not answer a refused client: %s", exc)
        sock.close()

    def _read_refused(self, sock: socket.socket, selector: selectors.BaseSelector) -> None:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop_refused(sock, selector)

    def _expire_refused(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        for sock, deadline in list(self._refused.items()):
            if deadline > now:
                break
            self._drop_refused(sock, selector)

    def _drop_refused(self, sock: socket.socket, selector: selectors.BaseSelector) -> None:
        selector.unregister(sock)
        del self._refused[sock]
        sock.close()

    def _client_main(self, sock: socket.socket, overloaded: bool) -> None:
        me = threading.current_thread()
        try:
            serve_socket(
                sock,
                self._handler,
                self._ssl_context,
                self._options,
                overloaded=overloaded,
                on_socket=lambda tls: self._track_socket(me, tls),
                on_accept=self._track_connection,
                reader_on_demand=True,
            )
        except SystemExit:
            pass  # A handler's sys.exit() ends its own thread, as in any thread.
        except Exception:
            logger.exception("error while serving a client")
        finally:
            with self._lock:
                self._threads.discard(me)
                self._sockets.pop(me, None)
                if overloaded:
                    self._overflow -= 1
                self._connections = {c for c in self._connections if not c.is_closed}
                self._threads_changed.notify_all()

    def _track_socket(self, thread: threading.Thread, sock: socket.socket) -> None:
        with self._lock:
            self._sockets[thread] = sock

    def _track_connection(self, connection: WebSocketConnection) -> None:
        with self._lock:
            self._sockets.pop(threading.current_thread(), None)
            self._connections.add(connection)
            stopping = self._stopping
        if stopping:
            connection.start_close(1001, "server shutting down")

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
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._background is not threading.current_thread():
            self._loop_done.wait(deadline.remaining())
        with self._lock:
            already_closed, self._closed = self._closed, True
            sockets = list(self._sockets.values())
            connections = list(self._connections)
        if not already_closed:
            for listener in self._listeners:
                listener.close()
            if self._unix_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._unix_path)
        # Wake handshakes in progress; their threads close their sockets.
        for sock in sockets:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        for connection in connections:
            connection.start_close(1001, "server shutting down")
        self._join_handlers(deadline, hurry)
        self._join_background(deadline)
        if not already_closed:
            self._wake_r.close()
            self._wake_w.close()
            logger.info("syncws server stopped")
        self._shut_down = True

    def _join_handlers(self, deadline: Deadline, hurry: SecondInterrupt | None) -> None:
        me = threading.current_thread()
        with self._lock:
            threads = [t for t in self._threads if t is not me]
        # Any interrupt since the shutdown began (hurry counts from there) ends the wait.
        watch = hurry is not None and hurry.installed
        _wait(hurry, 0, functools.partial(self._wait_for_handlers, threads, deadline, watch))
        cut_short = hurry is not None and hurry.count > 0
        with self._lock:
            # Not is_closed: that is already true for the connections this shutdown
            # began to close, which may be stuck in their closing handshake.
            late = [c for c in self._connections if not c.has_ended]
        for connection in late:
            connection.abort("server shut down")
        # Aborted connections wake their handlers at once, as closed sockets wake
        # handshakes: a short grace suffices (and a further interrupt ends it).
        grace = Deadline(_SHUTDOWN_GRACE)
        since = 0 if hurry is None else hurry.count
        _wait(hurry, since, functools.partial(self._wait_for_handlers, threads, grace, watch))
        with self._lock:
            left = [thread for thread in threads if thread in self._threads]
        for thread in threads:
            if thread not in left:
                # Its handler is done: the thread is only returning.
                thread.join(_SHUTDOWN_GRACE)
        if cut_short:
            self._cut_short = True
            logger.warning(
                "interrupted again: stopped waiting, aborted %d connection%s; "
                "%d handler%s left running",
                len(late),
                "" if len(late) == 1 else "s",
                len(left),
                "" if len(left) == 1 else "s",
            )
            return
        for thread in left:
            logger.warning("handler thread %s did not return after shutdown", thread.name)

    def _wait_for_handlers(
        self, threads: list[threading.Thread], deadline: Deadline, watch: bool = False
    ) -> None:
        """Wait until each of ``threads`` is done with its client, or the deadline.

        A wait on a condition rather than :meth:`threading.Thread.join`: an exception
        raised inside ``join()`` by a signal handler (the second interrupt) can leave
        the thread marked as stopped while it still runs (seen with Python 3.11).

        :param watch: wake every ``_SIGNAL_CHECK`` seconds, so that the main thread
            runs the handler of a signal the kernel delivered to another thread (a
            condition's wait is only cut short by a signal delivered to its own thread).
        """
        with self._threads_changed:
            while not self._threads.isdisjoint(threads):
                remaining = deadline.remaining()
                if remaining == 0:
                    return
                if watch and (remaining is None or remaining > _SIGNAL_CHECK):
                    remaining = _SIGNAL_CHECK
                self._threads_changed.wait(remaining)

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


def serve_websocket(
    handler: Handler,
    host: str | None = None,
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    *,
    sock: socket.socket | None = None,
    unix_path: str | os.PathLike[str] | None = None,
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
    :param options: see :class:`ServeOptions`.
    :raises ValueError, TypeError, OSError: as :class:`WebSocketServer`.
    """
    server = WebSocketServer(
        handler, host, port, ssl_context, sock=sock, unix_path=unix_path, **options
    )
    try:
        with sigterm_interrupts():
            server.serve_forever()
    except KeyboardInterrupt:
        pass  # serve_forever() has shut the server down.
    finally:
        server.shutdown()  # Returns at once when serve_forever() did it.


def _wait(hurry: SecondInterrupt | None, since: int, wait: Callable[[], object]) -> bool:
    """Call ``wait()`` unless ``hurry`` says to stop; see :meth:`SecondInterrupt.wait`."""
    if hurry is None:
        wait()
        return True
    return hurry.wait(wait, since)
