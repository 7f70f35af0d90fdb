"""TLS inside TLS: a socket of its own for a connection through an ``https://`` proxy.

A ``wss://`` connection through an ``https://`` proxy runs TLS to the server inside
the TLS to the proxy. Python's :class:`ssl.SSLSocket` cannot wrap another one, and
syncws's transport waits on a real file descriptor with ``poll``, so :func:`relay`
gives the connection one end of a socket pair, on which the client runs TLS to the
server as on any socket, and starts a thread that copies bytes both ways between the
other end and the proxy's TLS socket.

The relay keeps at most :data:`BUFFER_SIZE` bytes in each direction and stops reading
a side whose bytes cannot be passed on: the back-pressure of each side reaches the
other. An end of stream is passed on as one (``shutdown``); the relay ends, closing
the proxy's socket, once both directions have ended, or at once when the connection's
end is closed or either side fails.

Such a connection's ``remote`` is the empty string, not the server's (nor the proxy's)
address: the connection reads it from its socket, the :class:`ssl.SSLSocket` that
:mod:`ssl` makes of the pair's end for TLS to the server, whose peer the kernel reports
as an unnamed Unix socket. Neither this module nor the socket it returns has a say in
that; reporting the server would take the connection accepting its remote address
from the code that opened its socket (``connection.py``), which it does not.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import select
import socket
import ssl
import threading

__all__ = ["BUFFER_SIZE", "relay"]

logger = logging.getLogger("syncws")

#: The most bytes held for each direction.
BUFFER_SIZE = 256 * 1024
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_HANGUP = select.POLLHUP | select.POLLERR | select.POLLNVAL
_numbers = itertools.count(1)


def relay(outer: ssl.SSLSocket, label: str) -> socket.socket:
    """Return a socket whose bytes a thread relays through ``outer``, which it then owns.

    :param outer: the TLS socket to the proxy, the tunnel to the server open.
    :param label: what the thread relays to, for its name and the log.
    """
    mine, theirs = socket.socketpair()
    try:
        outer.setblocking(False)
        mine.setblocking(False)
        with contextlib.suppress(OSError):
            outer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pump = _Relay(outer, mine, label)
        thread = threading.Thread(
            target=pump.run, name=f"syncws-proxy-relay-{next(_numbers)}", daemon=True
        )
        thread.start()
    except BaseException:
        mine.close()
        theirs.close()
        raise
    return theirs


class _Relay:
    """Copies bytes between the proxy's TLS socket and the connection's end of the pair."""

    def __init__(self, outer: ssl.SSLSocket, inner: socket.socket, label: str) -> None:
        self._outer = outer
        self._inner = inner
        self._label = label
        self._to_inner = bytearray()
        self._to_outer = bytearray()
        self._outer_done = False  # The proxy's side sent its end of stream.
        self._inner_done = False  # The connection's side sent its end of stream.
        self._outer_shut = False
        self._inner_shut = False
        self._outer_wants_write = False  # TLS needs the socket writable to go on.
        self._outer_gone = False  # The proxy's socket hung up: neither read nor written.

    def run(self) -> None:
        """Relay until both directions end or a side fails; then close both sockets."""
        try:
            self._loop()
        except OSError as exc:
            logger.debug("proxy relay to %s ended: %s", self._label, exc)
        finally:
            self._inner.close()
            self._outer.close()

    def _loop(self) -> None:
        poller = select.poll()
        outer_fd, inner_fd = self._outer.fileno(), self._inner.fileno()
        while True:
            moved = self._pass_on()
            if self._outer_shut and self._inner_shut:
                return
            if moved:
                continue
            poller.register(inner_fd, self._inner_events())
            if self._outer_gone:
                with contextlib.suppress(KeyError):
                    poller.unregister(outer_fd)
            else:
                poller.register(outer_fd, self._outer_events())
            for fd, events in poller.poll():
                if events & _HANGUP and not events & select.POLLIN:
                    if fd == inner_fd:
                        return  # The connection's end is closed: nothing more to do.
                    self._lose_outer()

    def _lose_outer(self) -> None:
        """Give the proxy's socket up (it hung up): pass on what it sent, drop the rest."""
        self._outer_gone = True
        self._outer_done = True
        self._outer_shut = True
        self._to_outer.clear()

    def _outer_events(self) -> int:
        events = 0
        if not self._outer_done and len(self._to_inner) < BUFFER_SIZE:
            events |= select.POLLIN
        if self._to_outer or self._outer_wants_write:
            events |= select.POLLOUT
        return events

    def _inner_events(self) -> int:
        events = 0
        if not self._inner_done and len(self._to_outer) < BUFFER_SIZE:
            events |= select.POLLIN
        if self._to_inner:
            events |= select.POLLOUT
        return events

    def _pass_on(self) -> bool:
        """Move what can be moved without blocking; return whether anything moved."""
        moved = False
        if not self._outer_done and len(self._to_inner) < BUFFER_SIZE:
            moved |= self._read_outer()
        if not self._inner_done and len(self._to_outer) < BUFFER_SIZE:
            moved |= self._read_inner()
        if self._to_inner:
            moved |= self._write(self._inner, self._to_inner)
        if self._outer_gone:
            self._to_outer.clear()
        elif self._to_outer:
            moved |= self._write_outer()
        if self._outer_done and not self._to_inner and not self._inner_shut:
            self._inner.shutdown(socket.SHUT_WR)
            self._inner_shut = True
        if self._inner_done and not self._to_outer and not self._outer_shut:
            # A TCP end of stream, without TLS's close_notify, which would need the
            # proxy's answer: the proxy passes the end of stream on to the server.
            socket.socket.shutdown(self._outer, socket.SHUT_WR)
            self._outer_shut = True
        return moved

    def _read_outer(self) -> bool:
        self._outer_wants_write = False
        try:
            data = self._outer.recv(BUFFER_SIZE - len(self._to_inner))
        except ssl.SSLWantWriteError:
            self._outer_wants_write = True
            return False
        except _WOULD_BLOCK:
            return False
        if not data:
            self._outer_done = True
        self._to_inner += data
        return True

    def _read_inner(self) -> bool:
        try:
            data = self._inner.recv(BUFFER_SIZE - len(self._to_outer))
        except _WOULD_BLOCK:
            return False
        if not data:
            self._inner_done = True
        self._to_outer += data
        return True

    @staticmethod
    def _write(sock: socket.socket, buffer: bytearray) -> bool:
        try:
            sent = sock.send(buffer)
        except _WOULD_BLOCK:
            return False
        del buffer[:sent]
        return sent > 0

    def _write_outer(self) -> bool:
        # After SSLWantWriteError, TLS must be given the same bytes again: the buffer
        # only grows at its end, so the retry starts with them (and is no shorter).
        try:
            sent = self._outer.send(self._to_outer[:BUFFER_SIZE])
        except _WOULD_BLOCK:
            return False
        del self._to_outer[:sent]
        return sent > 0
