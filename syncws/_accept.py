"""The server's accept loop: accepting clients on the listeners, whatever goes wrong.

:class:`AcceptLoop` waits on the listening sockets and hands each accepted socket to
the server, which starts its thread. It never stops for an error: out of file
descriptors or memory, it stops watching the listeners for a growing pause (clients
wait in the backlog); a client no thread can serve gets a 503 answer, read and
closed by the loop. Its troubles are logged through :class:`~syncws._trouble.Trouble`,
one warning at most every :data:`~syncws._trouble.WARNING_INTERVAL` seconds.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
import time
from collections.abc import Callable

from ._http import response
from ._starter import START_DELAY, STARTER
from ._trouble import Trouble

logger = logging.getLogger("syncws")

__all__ = ["ACCEPT_PAUSE", "ACCEPT_PAUSE_MAX", "AcceptLoop"]

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


class AcceptLoop:
    """Accept clients on ``listeners`` until ``stopping()``, in the thread of :meth:`run`.

    :param listeners: the server's listening sockets, non-blocking.
    :param wake: readable when the server stops (its byte is drained here).
    :param start_client: called with each accepted socket and a function that refuses
        it (a 503 answer, read and closed by this loop) for when no thread can serve it.
    :param can_answer: whether a refused client may be answered in plain HTTP (not on
        a TLS server).
    """

    def __init__(
        self,
        listeners: list[socket.socket],
        wake: socket.socket,
        start_client: Callable[[socket.socket, Callable[[socket.socket], None]], None],
        can_answer: bool,
    ) -> None:
        self._listeners = listeners
        self._wake_r = wake
        self._start_client = start_client
        self._can_answer = can_answer
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
        self._bug = Trouble(
            "unexpected error in the accept loop, which goes on: %r "
            "(errors since the last report: %d)"
        )

    def run(self, signals: socket.socket | None, stopping: Callable[[], bool]) -> None:
        """Accept clients until ``stopping()``; ``signals`` is readable when a signal came."""
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ)
            if signals is not None:
                selector.register(signals, selectors.EVENT_READ)
            for listener in self._listeners:
                selector.register(listener, selectors.EVENT_READ)
            try:
                while not stopping():
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
                    if STARTER.stalled:
                        STARTER.retry()
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
        if STARTER.stalled:
            # The timer that starts reader threads could not start its own thread.
            due.append(time.monotonic() + START_DELAY)
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
            self._start_client(sock, lambda refused: self._refuse(refused, selector))
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

    def _refuse(self, sock: socket.socket, selector: selectors.BaseSelector) -> None:
        """Answer a client that no thread can serve: a 503 if it goes without blocking.

        The socket stays open until the client closes it (read and discarded by the
        accept loop), at most _REFUSAL_LINGER seconds: closed at once, with the
        request unread, it would send a reset that may destroy the answer.
        """
        if self._can_answer and len(self._refused) < _MAX_REFUSED:
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
