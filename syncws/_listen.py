"""Listening sockets for a server: on host and port, on a Unix path, or one given.

Each function returns sockets that listen with :data:`LISTEN_BACKLOG`; the server
accepts on them (see :mod:`syncws.server`).
"""

from __future__ import annotations

import errno
import logging
import socket

__all__ = ["LISTEN_BACKLOG", "adopt", "bind", "check_address", "listen_unix"]

logger = logging.getLogger("syncws")

#: How many connections the kernel may hold for the accept loop.
LISTEN_BACKLOG = 1024


def bind(host: str | None, port: int) -> list[socket.socket]:
    """Open listening sockets: all interfaces, one address, or every address of a name."""
    if not host:
        if socket.has_dualstack_ipv6():
            return [
                socket.create_server(
                    ("", port),
                    family=socket.AF_INET6,
                    dualstack_ipv6=True,
                    backlog=LISTEN_BACKLOG,
                )
            ]
        return [socket.create_server(("", port), backlog=LISTEN_BACKLOG)]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for family, _, _, _, address in infos:
            if (family, address[0]) in seen:
                continue
            seen.add((family, address[0]))
            # With port 0, every address listens on the port the first one got.
            bind_port = sockets[0].getsockname()[1] if sockets and port == 0 else port
            try:
                sockets.append(
                    socket.create_server(
                        (address[0], bind_port, *address[2:]),
                        family=family,
                        backlog=LISTEN_BACKLOG,
                    )
                )
            except OSError as exc:
                # A name may resolve to an address family this machine lacks (::1
                # without IPv6): skip it, as long as another address works.
                if exc.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    raise
                logger.debug("cannot listen on %s: %s", address[0], exc)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise OSError(errno.EADDRNOTAVAIL, f"cannot listen on any address of {host!r}")
    return sockets


def listen_unix(path: str) -> socket.socket:
    """Open a listening Unix socket at ``path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def adopt(sock: socket.socket) -> socket.socket:
    """Listen on a bound socket that the caller made (listening already or not)."""
    if not isinstance(sock, socket.socket):
        raise TypeError(f"sock must be a socket, not {type(sock).__name__}")
    if sock.type != socket.SOCK_STREAM:
        raise ValueError(f"sock must be a stream socket (SOCK_STREAM), not {sock.type!r}")
    # A listening socket only takes the new backlog.
    sock.listen(LISTEN_BACKLOG)
    return sock


def check_address(
    host: str | None, port: int, sock: socket.socket | None, unix_path: str | None
) -> None:
    """Raise ValueError unless exactly one way of listening is given."""
    if sock is not None and unix_path is not None:
        raise ValueError("give sock or unix_path, not both")
    given = "sock" if sock is not None else "unix_path" if unix_path is not None else None
    if given is not None and (host is not None or port != 0):
        raise ValueError(f"host and port cannot be given with {given}")
