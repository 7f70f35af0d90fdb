"""Opening a TCP connection to a host name within one deadline: Happy Eyeballs.

:func:`open_tcp` resolves the name, orders the addresses as RFC 8305 (sections 4 and 5)
recommends, alternating address families, and races connection attempts: the next
address is tried when the previous attempt has not connected within
:data:`CONNECTION_ATTEMPT_DELAY`, or at once when it failed, while earlier attempts go
on. The first attempt that connects wins and every other socket is closed. All of it
runs in the calling thread, with non-blocking sockets and one poll loop, and all of it
within the caller's :class:`~syncws._deadline.Deadline`.

Resolving the name (:func:`socket.getaddrinfo`) blocks and cannot be interrupted without
a thread of its own: it is not bounded by the deadline, but the time it takes is spent
from it.

Error messages name each address tried with its port, as in ``cannot connect to
127.0.0.1:8765: connection refused``. The host and the port may come from a URL whose
malformed userinfo the parser read as a host or a port: the caller then says so
(``hide_host``, ``hide_port``), and the messages show ``***`` in their place.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ._deadline import Deadline
from ._redact import MASK
from .exceptions import ConnectionTimeout

__all__ = ["CONNECTION_ATTEMPT_DELAY", "Address", "interleave", "open_tcp", "resolve"]

#: Seconds to wait for an attempt before starting the next one (RFC 8305, section 5).
CONNECTION_ATTEMPT_DELAY = 0.25
#: Most addresses named in an error message; the others are counted.
_MAX_LISTED = 8
_IN_PROGRESS = frozenset(
    {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, getattr(errno, "WSAEWOULDBLOCK", 10035)}
)
# poll(2) where it exists: no file descriptor of its own, no FD_SETSIZE limit.
_Selector: type[selectors.BaseSelector] = getattr(
    selectors, "PollSelector", selectors.SelectSelector
)


@dataclass(frozen=True)
class Address:
    """One result of name resolution: what :func:`socket.socket` and ``connect`` need."""

    family: socket.AddressFamily
    type: socket.SocketKind
    proto: int
    sockaddr: tuple[str, int] | tuple[str, int, int, int]

    @property
    def host(self) -> str:
        """The IP address alone, for messages (IPv6 in brackets)."""
        host = str(self.sockaddr[0])
        return f"[{host}]" if ":" in host else host


def resolve(host: str, port: int) -> list[Address]:
    """Look ``host`` up for TCP; return its addresses in the resolver's order.

    :raises socket.gaierror: when the name cannot be resolved.
    """
    addresses: list[Address] = []
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        if isinstance(sockaddr[0], str):  # Not the (int, bytes) of AF_INET6 without IPv6.
            address = Address(family, kind, proto, sockaddr)
            if address not in addresses:
                addresses.append(address)
    return addresses


def interleave(addresses: Sequence[Address]) -> list[Address]:
    """Alternate address families, the family of the first address first (RFC 8305, 4).

    Within a family the resolver's order is kept.
    """
    families: dict[int, list[Address]] = {}
    for address in addresses:
        families.setdefault(address.family, []).append(address)
    queues = list(families.values())
    ordered: list[Address] = []
    while queues:
        for queue in queues:
            ordered.append(queue.pop(0))
        queues = [queue for queue in queues if queue]
    return ordered


def open_tcp(
    host: str,
    port: int,
    deadline: Deadline,
    attempt_delay: float | None = None,
    *,
    hide_host: bool = False,
    hide_port: bool = False,
) -> socket.socket:
    """Connect to ``host:port`` before ``deadline``; return the connected socket.

    The socket is in blocking mode, without a timeout.

    :param attempt_delay: seconds before the next attempt starts beside a pending one
        (default: :data:`CONNECTION_ATTEMPT_DELAY`).
    :param hide_host: show ``***`` in messages instead of the host and its addresses.
    :param hide_port: show ``***`` in messages instead of the port.

    :raises socket.gaierror: when the name cannot be resolved.
    :raises ConnectionTimeout: when the deadline passes first.
    :raises OSError: when every address failed; of the type (and with the ``errno``)
        of the first failure, its message naming each address and why it failed:
        ``[Errno 111] cannot connect to 127.0.0.1:8765: connection refused``.
    """
    addresses = interleave(resolve(host, port))
    shown = MASK if hide_host else host
    if deadline.expired():
        raise ConnectionTimeout(f"timed out resolving {shown}")
    if not addresses:
        raise OSError(f"{shown} has no address to connect to")
    delay = CONNECTION_ATTEMPT_DELAY if attempt_delay is None else attempt_delay
    return _Race(addresses, deadline, delay, hide_host=hide_host, hide_port=hide_port).run()


def _reason(error: OSError) -> str:
    """Why an attempt failed, for a message: ``connection refused``."""
    if error.strerror:
        return error.strerror[:1].lower() + error.strerror[1:]
    return str(error) or type(error).__name__


class _Race:
    """Connection attempts started one after the other, running side by side."""

    def __init__(
        self,
        addresses: list[Address],
        deadline: Deadline,
        attempt_delay: float,
        *,
        hide_host: bool = False,
        hide_port: bool = False,
    ) -> None:
        self._waiting = list(reversed(addresses))  # Popped from the end.
        self._deadline = deadline
        self._delay = attempt_delay
        self._hide_host = hide_host
        self._hide_port = hide_port
        self._failures: list[tuple[Address, OSError]] = []
        self._selector = _Selector()
        self._attempts: dict[socket.socket, Address] = {}

    def run(self) -> socket.socket:
        """Race the attempts; return the winner, or raise after the last failure."""
        try:
            return self._loop()
        finally:
            for sock in list(self._attempts):
                self._drop(sock)
            self._selector.close()

    def _loop(self) -> socket.socket:
        next_start = 0.0  # The first attempt starts at once.
        while True:
            if self._deadline.expired():
                raise self._timed_out()
            now = time.monotonic()
            if self._waiting and (now >= next_start or not self._attempts):
                winner = self._start(self._waiting.pop())
                if winner is not None:
                    return winner
                next_start = time.monotonic() + self._delay
                continue
            if not self._attempts:
                raise self._all_failed()
            wait = self._deadline.remaining()
            if self._waiting:
                until_next = max(0.0, next_start - now)
                wait = until_next if wait is None else min(wait, until_next)
            for key, _ in self._selector.select(wait):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code == 0:
                    return self._win(sock)
                self._fail(sock, OSError(code, os.strerror(code)))
                next_start = 0.0  # An attempt failed: start the next one at once.

    def _start(self, address: Address) -> socket.socket | None:
        """Start connecting to ``address``; return the socket if it connected at once."""
        try:
            sock = socket.socket(address.family, address.type, address.proto)
        except OSError as exc:
            self._failures.append((address, exc))
            return None
        try:
            sock.setblocking(False)
            code = sock.connect_ex(address.sockaddr)
        except OSError as exc:
            sock.close()
            self._failures.append((address, exc))
            return None
        except BaseException:
            sock.close()
            raise
        if code == 0:
            sock.setblocking(True)
            return sock
        if code not in _IN_PROGRESS:
            self._failures.append((address, OSError(code, os.strerror(code))))
            sock.close()
            return None
        self._attempts[sock] = address
        self._selector.register(sock, selectors.EVENT_WRITE)
        return None

    def _win(self, sock: socket.socket) -> socket.socket:
        self._selector.unregister(sock)
        del self._attempts[sock]
        sock.setblocking(True)
        return sock

    def _fail(self, sock: socket.socket, error: OSError) -> None:
        self._failures.append((self._attempts[sock], error))
        self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        del self._attempts[sock]
        self._selector.unregister(sock)
        sock.close()

    def _label(self, address: Address) -> str:
        """``127.0.0.1:8765``, ``[::1]:8765``, or ``***`` for what must not be shown."""
        host = MASK if self._hide_host else address.host
        port = MASK if self._hide_port else str(address.sockaddr[1])
        return f"{host}:{port}"

    def _describe_failures(self) -> str:
        """``address, address: reason; address: reason``: failures grouped by reason."""
        by_reason: dict[str, list[str]] = {}
        for address, error in self._failures[:_MAX_LISTED]:
            by_reason.setdefault(_reason(error), []).append(self._label(address))
        text = "; ".join(f"{', '.join(labels)}: {reason}" for reason, labels in by_reason.items())
        hidden = len(self._failures) - _MAX_LISTED
        if hidden > 0:
            text += f"; and {hidden} more address{'es' if hidden > 1 else ''}"
        return text

    def _all_failed(self) -> OSError:
        first = self._failures[0][1]
        message = f"cannot connect to {self._describe_failures()}"
        if first.errno is None:
            return OSError(message)
        # OSError(errno, ...) makes the matching subclass, e.g. ConnectionRefusedError.
        return OSError(first.errno, message)

    def _timed_out(self) -> ConnectionTimeout:
        silent = [self._label(address) for address in self._attempts.values()]
        message = "timed out connecting"
        if silent:
            message += f": no answer from {', '.join(silent[:_MAX_LISTED])}"
            if len(silent) > _MAX_LISTED:
                message += f" and {len(silent) - _MAX_LISTED} more"
        if self._waiting:
            message += f" ({len(self._waiting)} address(es) not tried)"
        if self._failures:
            message += f"; {self._describe_failures()}"
        return ConnectionTimeout(message)
