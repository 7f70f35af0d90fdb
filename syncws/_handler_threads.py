"""The server's handler threads: one per client, tracked until they return.

:class:`HandlerThreads` starts a thread for each accepted socket, which serves the
client with :func:`~syncws.request.serve_socket`; it counts the clients over
``max_connections`` (they get a 503), knows each thread's socket until its handshake
is done and the connections the handlers accepted, and at shutdown closes them and
waits for the threads, aborting the connections still open after the timeout.

Its lock guards all of that; no connection method is called and no thread is
started while it is held.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import socket
import ssl
import threading
from collections.abc import Callable

from ._deadline import Deadline
from ._signals import SecondInterrupt
from ._trouble import Trouble
from .connection import WebSocketConnection
from .request import Handler, ServeOptions, serve_socket

logger = logging.getLogger("syncws")

__all__ = ["HandlerThreads"]

#: Clients over ``max_connections`` that may wait at once for their 503 answer.
_MAX_OVERFLOW = 64
#: After shutdown()'s timeout, how long aborted handlers get to return.
_SHUTDOWN_GRACE = 0.5
#: Seconds between two checks for a signal while the main thread waits for handlers
#: after an interrupt (see :meth:`HandlerThreads._wait_for_handlers`).
_SIGNAL_CHECK = 0.1
_handler_ids = itertools.count(1)


class HandlerThreads:
    """The threads that serve the clients of one server, and their connections.

    :param handler: the server's handler.
    :param ssl_context: the server's TLS context, if any.
    :param options: the server's options, checked.
    """

    def __init__(
        self, handler: Handler, ssl_context: ssl.SSLContext | None, options: ServeOptions
    ) -> None:
        self._handler = handler
        self._ssl_context = ssl_context
        self._options = options
        self._max_connections = options.get("max_connections")
        self._lock = threading.Lock()
        self._stopping = False
        # Guarded by _lock.
        self._threads: set[threading.Thread] = set()
        # Notified when a thread leaves _threads.
        self._threads_changed = threading.Condition(self._lock)
        self._sockets: dict[threading.Thread, socket.socket] = {}
        self._connections: set[WebSocketConnection] = set()
        # The threads of clients over max_connections, which answer them 503.
        self._overflow = 0
        self._no_thread = Trouble(
            "cannot start a thread for a client (%s): refused it "
            "(clients refused since the last warning: %d)",
            "handler threads start again after %.1f s (clients refused: %d)",
        )

    @property
    def connections(self) -> frozenset[WebSocketConnection]:
        """The accepted connections that are still open (a snapshot)."""
        with self._lock:
            return frozenset(c for c in self._connections if not c.is_closed)

    @property
    def running(self) -> int:
        """How many handler threads are running."""
        with self._lock:
            return len(self._threads)

    def start(self, sock: socket.socket, refuse: Callable[[socket.socket], None]) -> None:
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
            refuse(sock)
            if not isinstance(exc, RuntimeError):
                raise
            # "can't start new thread": out of memory for its stack, or over a limit
            # on threads or processes (a container's pids limit, RLIMIT_NPROC).
            self._no_thread.happened(exc)
            return
        self._no_thread.over()

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

    def stop(self) -> None:
        """Start no more threads; close each connection accepted from now on at once."""
        with self._lock:
            self._stopping = True

    def close_all(self) -> None:
        """Wake the handshakes in progress and start closing every connection (1001)."""
        with self._lock:
            sockets = list(self._sockets.values())
            connections = list(self._connections)
        # Wake handshakes in progress; their threads close their sockets.
        for sock in sockets:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        for connection in connections:
            connection.start_close(1001, "server shutting down")

    def join(self, deadline: Deadline, hurry: SecondInterrupt | None) -> bool:
        """Wait for the handlers until ``deadline``, abort the connections left, wait a bit more.

        :param hurry: after an interrupt: a further one cuts the waits short.
        :returns: whether a further interrupt cut them short.
        """
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
            logger.warning(
                "interrupted again: stopped waiting, aborted %d connection%s; "
                "%d handler%s left running",
                len(late),
                "" if len(late) == 1 else "s",
                len(left),
                "" if len(left) == 1 else "s",
            )
            return True
        for thread in left:
            logger.warning("handler thread %s did not return after shutdown", thread.name)
        return False

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


def _wait(hurry: SecondInterrupt | None, since: int, wait: Callable[[], object]) -> bool:
    """Call ``wait()`` unless ``hurry`` says to stop; see :meth:`SecondInterrupt.wait`."""
    if hurry is None:
        wait()
        return True
    return hurry.wait(wait, since)
