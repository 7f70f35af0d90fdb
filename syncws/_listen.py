"""Listening sockets for a server: on host and port, on a Unix path, or one given.

Each function returns sockets that listen with :data:`LISTEN_BACKLOG`; the server
accepts on them (see :mod:`syncws.server`).
"""

from __future__ import annotations

import errno
import logging
import socket

__all__ = [
    "LISTEN_BACKLOG",
    "adopt",
    "bind",
    "check_address",
    "check_reuse_port",
    "listen_unix",
]

logger = logging.getLogger("syncws")

#: How many connections the kernel may hold for the accept loop.
LISTEN_BACKLOG = 1024


def check_reuse_port() -> None:
    """Raise ValueError when this platform has no ``SO_REUSEPORT``."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port=True needs SO_REUSEPORT, which this platform lacks")


def _server_socket(
    address: tuple[object, ...], family: int, dualstack: bool, reuse_port: bool, listen: bool
) -> socket.socket:
    """Bind a socket to ``address``; make it listen unless ``listen`` is false."""
    if listen:
        return socket.create_server(
            address,
            family=family,
            backlog=LISTEN_BACKLOG,
            reuse_port=reuse_port,
            dualstack_ipv6=dualstack,
        )
    # Bound only, as create_server() would bind it: the port is held, but the kernel
    # hands it no connection (only listening sockets get any).
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if hasattr(socket, "SO_REUSEADDR") and hasattr(socket, "AF_UNIX"):  # POSIX
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dualstack else 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def bind(
    host: str | None, port: int, *, reuse_port: bool = False, listen: bool = True
) -> list[socket.socket]:
    """Open listening sockets: all interfaces, one address, or every address of a name.

    :param reuse_port: set ``SO_REUSEPORT`` on each socket (see
        :func:`check_reuse_port`), so that other sockets may bind the same port.
    :param listen: false to bind only: the sockets then hold the port (with
        ``reuse_port``, for other sockets to listen on) but take no connection.
    """
    if reuse_port:
        check_reuse_port()
    if not host:
        if socket.has_dualstack_ipv6():
            return [_server_socket(("", port), socket.AF_INET6, True, reuse_port, listen)]
        return [_server_socket(("", port), socket.AF_INET, False, reuse_port, listen)]
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
                    _server_socket(
                        (address[0], bind_port, *address[2:]), family, False, reuse_port, listen
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
    host: str | None,
    port: int,
    sock: socket.socket | None,
    unix_path: str | None,
    reuse_port: bool = False,
) -> None:
    """Raise ValueError unless exactly one way of listening is given.

    ``reuse_port`` goes with ``host`` and ``port`` only: it is for sockets the server
    makes, and must be available.
    """
    if sock is not None and unix_path is not None:
        raise ValueError("give sock or unix_path, not both")
    given = "sock" if sock is not None else "unix_path" if unix_path is not None else None
    if given is not None and (host is not None or port != 0):
        raise ValueError(f"host and port cannot be given with {given}")
    if reuse_port and given is not None:
        raise ValueError(
            f"reuse_port cannot be given with {given}: set the socket's options yourself"
            if given == "sock"
            else "reuse_port cannot be given with unix_path (it is for TCP ports)"
        )
    if reuse_port:
        check_reuse_port()
